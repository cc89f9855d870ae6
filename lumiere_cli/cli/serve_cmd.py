"""`lumiere serve`: keep torch and the model code imported, so that commands start at once."""

from __future__ import annotations

import json as jsonlib
import time
from typing import Annotated

import typer
from rich.markup import escape

from lumiere_cli.cli import options as o
from lumiere_cli.cli.ui import UI, handle_errors
from lumiere_cli.errors import UsageError

PANEL = "Model"


def register(app: typer.Typer) -> None:
    app.command(name="serve", rich_help_panel=PANEL)(handle_errors(serve))


def serve(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running server (after the commands it runs).")] = False,
    status: Annotated[bool, typer.Option("--status", help="Say whether a server runs, and what it runs.")] = False,
    idle_exit: Annotated[float, typer.Option("--idle-exit", min=0, help="Stop after this many minutes without a "
                                                                       "command; 0: never.")] = 30.0,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Run a warm lumiere: it imports torch and the model code once, and while it runs every
    lumiere command of this user (in any shell) runs in a fork of it, in the caller's folder,
    environment and terminal, and starts in a fraction of a second. Ctrl-C, --stop or the idle
    limit stop it; a change to the installed code makes commands run on their own until it is
    restarted. LUMIERE_NO_SERVER=1 runs a command on its own; LUMIERE_SOCKET names another socket.

    Example: [bold]lumiere serve &[/]  then  [bold]lumiere t2v "a red circle moving left on a black background"[/]
    """
    from lumiere_cli.serve.client import control
    from lumiere_cli.serve.protocol import socket_path

    path = socket_path()
    if stop and status:
        raise UsageError("--stop and --status cannot be combined")
    if stop or status:
        reply = control("stop" if stop else "status")
        summary = {"socket": str(path), "running": reply is not None}
        if reply is not None:
            summary.update({"pid": reply["pid"], "uptime_s": round(time.time() - reply["started"], 1)})
            summary.update({"commands": reply["running"]} if status else {"waiting_for": reply["running"]})
            if status:
                summary["served"] = reply["served"]
        if json:
            typer.echo(jsonlib.dumps(summary))
        elif reply is None:
            typer.echo(f"no lumiere server runs on {path}")
        elif stop:
            typer.echo(f"stopping the lumiere server (pid {reply['pid']})"
                       + (f" after its {reply['running']} running command(s)" if reply["running"] else ""))
        else:
            typer.echo(f"lumiere server pid {reply['pid']} on {path}: up {summary['uptime_s']:.0f} s, "
                       f"{reply['served']} command(s) served, {len(reply['running'])} running")
            for command in reply["running"]:
                typer.echo(f"  [{command['pid']}] lumiere {' '.join(command['argv'])}")
        if stop and reply is None:
            raise typer.Exit(1)
        return
    from lumiere_cli.serve.server import serve as run_server

    ui = UI(quiet=quiet)
    run_server(path, idle_exit_s=idle_exit * 60, log=lambda line: ui.log(escape(line)))
