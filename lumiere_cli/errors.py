"""Errors the CLI turns into one line and an exit code (see README, "Exit codes")."""


class LumiereError(Exception):
    """A known failure with a message fit for the user. `exit_code` follows the README table."""

    exit_code = 1


class UsageError(LumiereError):
    """Bad arguments: empty prompt, out-of-range number, a frame count the model cannot take."""

    exit_code = 2


class InputError(LumiereError):
    """A file the user gave is missing, unreadable, corrupt or of the wrong size."""

    exit_code = 3


class WeightsError(InputError):
    """Missing, tampered or pickled weights."""
