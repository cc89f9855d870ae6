"""The `lumiere` executable: hand the command to a running `lumiere serve`, else run it here.

Kept free of torch and typer so that a served command starts in a fraction of a second.
"""

from __future__ import annotations

import sys


def main() -> None:
    from lumiere_cli.serve.client import LOST, ServerLost, forward

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    try:
        code = forward(sys.argv[1:], warn=warn)
    except ServerLost as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(LOST)
    if code is not None:
        sys.exit(code)
    from lumiere_cli.cli import main as run_here

    run_here()
