"""The client half: hand a command to a running server, or say that none can take it.

`forward` returns None whenever the command should run in this process instead: no server, a
server running other code, a closed standard stream, torchrun's environment, LUMIERE_NO_SERVER=1.
Nothing here imports torch or typer.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any, Callable

from .protocol import HANDSHAKE_S, Channel, code_stamp, socket_path

NO_SERVER_ENV = "LUMIERE_NO_SERVER"
# Under torchrun every rank must be its own process with its own environment.
_DISTRIBUTED_ENV = ("WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID")
_FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
LOST = 1  # the exit code when the server goes away before the command ends


class ServerLost(ConnectionError):
    """The server closed the connection before the command's exit code came back."""


def _connect(timeout: float = HANDSHAKE_S) -> tuple[Channel, dict[str, Any]] | None:
    try:
        path = socket_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except Exception:  # noqa: BLE001 - no usable socket path: run here
        return None
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        channel = Channel(sock)
        hello, _ = channel.read()
    except (OSError, ValueError):
        sock.close()
        return None
    if hello is None or "stamp" not in hello:
        sock.close()
        return None
    return channel, hello


def forward(argv: list[str], *, warn: Callable[[str], None]) -> int | None:
    """Run `lumiere ARGV` in the server and return its exit code; None: run it here instead."""
    if os.environ.get(NO_SERVER_ENV, "") not in ("", "0") or any(k in os.environ for k in _DISTRIBUTED_ENV):
        return None
    if not sys.platform.startswith("linux"):  # the server is Linux's (SO_PEERCRED, fork, affinity)
        return None
    if argv[:1] == ["serve"]:
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        cwd = os.getcwd()
    except OSError:  # a closed stream or a deleted folder: a fresh process reports it best
        return None
    connected = _connect()
    if connected is None:
        return None
    channel, hello = connected
    if hello["stamp"] != code_stamp():
        channel.sock.close()
        warn(f"the lumiere server (pid {hello.get('pid')}) runs other code than this lumiere, so this "
             "command runs here; restart it: lumiere serve --stop, then lumiere serve")
        return None
    umask = os.umask(0)
    os.umask(umask)
    request = {"op": "run", "argv": list(argv), "cwd": cwd, "env": dict(os.environ), "umask": umask,
               "affinity": sorted(os.sched_getaffinity(0))}
    try:
        channel.write(request, fds=(0, 1, 2))
        started, _ = channel.read()
    except OSError:
        channel.sock.close()
        return None
    if started is None or "pid" not in started:
        channel.sock.close()
        return None
    return _wait(channel)


def _wait(channel: Channel) -> int:
    """Relay this process's signals to the child until its exit code arrives."""
    channel.sock.settimeout(None)

    def relay(signum, frame):
        try:
            channel.write({"signal": signal.Signals(signum).name})
        except OSError:
            pass

    previous = {sig: signal.signal(sig, relay) for sig in (getattr(signal, name) for name in _FORWARDED_SIGNALS)}
    try:
        while True:
            try:
                message, _ = channel.read()
            except OSError:
                message = None
            if message is None:
                raise ServerLost("the lumiere server stopped before the command ended")
            if "exit" in message:
                return int(message["exit"])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        channel.sock.close()


def control(op: str, timeout: float = HANDSHAKE_S) -> dict[str, Any] | None:
    """Ask the server for "status" or to "stop"; None when none answers."""
    connected = _connect(timeout)
    if connected is None:
        return None
    channel, hello = connected
    try:
        channel.write({"op": op})
        reply, _ = channel.read()
    except OSError:
        return None
    finally:
        channel.sock.close()
    return None if reply is None else {**hello, **reply}
