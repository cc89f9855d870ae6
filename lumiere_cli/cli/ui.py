"""What the user sees on stderr: log lines, warnings, progress bars; and JSON lines on stdout.

Bars only when stderr is a terminal; colour follows Rich's own rules (off when not a terminal,
off with NO_COLOR). `--quiet` leaves only errors.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import contextmanager
from functools import wraps
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape

INTERRUPTED = 130


def debug_enabled() -> bool:
    return os.environ.get("LUMIERE_DEBUG", "") not in ("", "0")


def error_console() -> Console:
    # Built per call, not at import: the runner (or a test) may have swapped sys.stderr.
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


# Piped or redirected, Rich assumes 80 columns and cuts table cells to fit ("held_…"); a table read
# by a script or a log file gets room for every cell instead.
PIPED_WIDTH = 200


def table_console() -> Console:
    """The console tables are printed on (stdout): the terminal's width, or PIPED_WIDTH off a terminal."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)


def report_error(message: str) -> None:
    """One `error:` line per problem (a batch may report several)."""
    console = error_console()
    for line in message.splitlines() or [""]:
        console.print(f"[bold red]error:[/] {escape(line)}")


def failure(e: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception that ends a command (README,
    "Exit codes"): the one mapping the entry point and every command share."""
    from lumiere_cli.errors import LumiereError

    if isinstance(e, KeyboardInterrupt | typer.Abort):
        return INTERRUPTED, "interrupted"
    if isinstance(e, typer.TyperException):  # usage errors: bad option, bad value, no such command
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return getattr(e, "exit_code", 2), f"{e.format_message()}{hint}"
    if isinstance(e, LumiereError):
        return e.exit_code, str(e)
    return 1, f"{type(e).__name__}: {e} (set LUMIERE_DEBUG=1 for a traceback)"


def handle_errors(fn: Callable) -> Callable:
    """Turn failures into one line on stderr and the documented exit code.

    Applied to every command (not only in `main`) so Typer's test runner sees the same exit codes
    a shell does. LUMIERE_DEBUG=1 shows the traceback as well.
    """

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the last line of defence for the user
            code, message = failure(e)
            if debug_enabled() and code != INTERRUPTED:
                traceback.print_exc()
            report_error(message)
            raise typer.Exit(code) from None

    return wrapper


class UI:
    """Logging, warnings and progress for one command run."""

    def __init__(self, *, quiet: bool = False, json_lines: bool = False):
        self.quiet = quiet
        self.json_lines = json_lines
        self.console = error_console()
        self.bars = self.console.is_terminal and not quiet
        self._progress = None
        self._status_task = None
        self._overall_task = None
        self._clip_task = None
        self.warned_words: set[str] = set()

    # -------------------------------------------------------------- lines
    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(message)
        else:
            self.console.print(message)

    def warn(self, message: str) -> None:
        self.log(f"[yellow]warning:[/] {escape(message)}")

    def error(self, message: str) -> None:
        target = self._progress.console if self._progress is not None else self.console
        for line in message.splitlines():
            target.print(f"[bold red]error:[/] {escape(line)}")

    def emit(self, record: dict[str, Any]) -> None:
        """One JSON object on stdout, flushed at once so a pipe reader sees it immediately."""
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        sys.stdout.flush()

    # -------------------------------------------------------------- progress
    @contextmanager
    def session(self, batch_total: int | None = None) -> Iterator["UI"]:
        """Live bars for the duration of the block (no-op without a terminal)."""
        if not self.bars:
            yield self
            return
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        with self._progress:
            self._status_task = self._progress.add_task("starting", total=None)
            if batch_total and batch_total > 1:
                self._overall_task = self._progress.add_task("[bold]all clips", total=batch_total)
            try:
                yield self
            finally:
                self._progress.remove_task(self._status_task)
        self._progress = None

    def status(self, message: str) -> None:
        """A short-lived status line: a spinner row with a terminal, a log line without."""
        if self._progress is not None:
            self._progress.update(self._status_task, description=escape(message))
        else:
            self.log(escape(message))

    def start_clip(self, label: str, total: int) -> None:
        if self._progress is not None:
            if self._clip_task is not None:
                self._progress.remove_task(self._clip_task)
            self._clip_task = self._progress.add_task(escape(label), total=total)

    def step(self, done: int, total: int) -> None:
        if self._progress is not None and self._clip_task is not None:
            self._progress.update(self._clip_task, completed=done, total=total)

    def finish_clip(self) -> None:
        if self._progress is not None and self._overall_task is not None:
            self._progress.advance(self._overall_task)

    def listener(self, json_lines: bool = False):
        """A `jobs.Listener` that shows a run on this UI (and its JSON lines on stdout)."""
        from lumiere_cli.jobs import Listener

        ui = self

        class Shown(Listener):
            def __init__(self):
                self.label = ""

            def status(self, message: str) -> None:
                ui.status(message)

            def warn(self, message: str) -> None:
                ui.warn(message)

            def clip_started(self, request, label: str) -> None:
                self.label = label
                ui.start_clip(label, request.options.steps or 0)
                if not ui.bars:  # with bars the clip's own row says this
                    ui.log(f"generating {request.prompt!r} (seed {request.seed})")

            def clip_finished(self, outcome) -> None:
                if outcome.error is not None and len(outcome.request.where or "") > 0:
                    ui.error(f"item {outcome.request.index} ({outcome.request.prompt!r}): {outcome.error}")
                if json_lines:
                    ui.emit(outcome.record())
                ui.finish_clip()

            def progress(self, phase: str, done: int, total: int, **metrics: float) -> None:
                if phase in ("denoise", "style"):
                    ui.step(done, total)
                elif ui._progress is not None:
                    ui.status(f"{self.label}: {phase} {done}/{total}")

        return Shown()
