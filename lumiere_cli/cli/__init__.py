"""The `lumiere` command line.

Importing this package must stay cheap: `lumiere --help` loads only typer, rich and the option
definitions; torch and the model are imported inside command bodies.

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 bad input file (or weights), 130 interrupted.
"""

from __future__ import annotations

import atexit
import os
import sys
import traceback
from typing import NoReturn

import typer

from lumiere_cli.cli import data_cmds, generate, model_cmds, serve_cmd, upscale
from lumiere_cli.cli.ui import INTERRUPTED, debug_enabled, failure, report_error

app = typer.Typer(
    name="lumiere",
    help="Generate and edit short videos with a Space-Time U-Net diffusion model (after Lumiere). "
    "Every output is AI-generated and says so in its metadata.",
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_enable=False,  # main() prints one line instead; LUMIERE_DEBUG=1 for a traceback
    context_settings={"help_option_names": ["-h", "--help"]},
)
generate.register(app)
model_cmds.register(app)
upscale.register(app)
data_cmds.register(app)
serve_cmd.register(app)


def run(argv: list[str]) -> int:
    """Run `lumiere ARGV` and return its exit code; anything that escapes a command becomes one."""
    try:
        # Not standalone: Click's own usage errors come back here, to be reported in one line.
        code = app(args=argv or ["--help"], prog_name="lumiere", standalone_mode=False)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        code, message = failure(e)
        if debug_enabled() and code != INTERRUPTED:
            traceback.print_exc()
        report_error(message)
    return code if isinstance(code, int) else 0


def end_process(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, which spends 0.4-0.6 s taking torch's modules apart
    (README, Performance). What that teardown would still do for a command is done here: the exit
    handlers (weakref finalizers such as temporary folders', multiprocessing's children) and the
    standard streams' buffers. Every file the commands write is closed before they return."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what it missed cannot be given to it
            pass
    os._exit(code)


def main() -> NoReturn:
    """Entry point: run the command in this process, then end it."""
    end_process(run(sys.argv[1:]))


__all__ = ["app", "end_process", "main", "run"]
