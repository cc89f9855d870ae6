"""The server half: import once, then fork a child per command (see the package's docstring).

`serve` blocks until stopped (a `stop` request, SIGTERM, SIGHUP, Ctrl-C or the idle limit), then
waits for the commands still running before it removes its socket.
"""

from __future__ import annotations

import atexit
import fcntl
import io
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from .protocol import HANDSHAKE_S, Channel, code_stamp, private_folder, socket_path

Log = Callable[[str], None]


def preload() -> None:
    """Import what a generation command imports and read the default weights, without starting a
    thread (an OpenMP pool or CUDA would not survive the fork). numpy's OpenBLAS
    starts its thread server at import and stops it around a fork itself (pthread_atfork), so
    threads are counted after numpy."""
    import numpy  # noqa: F401

    baseline = os_threads()
    import torch  # noqa: F401

    import lumiere_cli.cascade.run  # noqa: F401
    import lumiere_cli.cli  # noqa: F401 - the typer app and every command's options
    import lumiere_cli.jobs  # noqa: F401
    import lumiere_cli.pipeline  # noqa: F401
    import lumiere_cli.video_io  # noqa: F401
    import lumiere_cli.video_io.decode  # noqa: F401
    import lumiere_cli.video_io.encode  # noqa: F401
    import lumiere_cli.weights  # noqa: F401
    from lumiere_cli.nn.text import text_modules

    text_modules()  # open_clip's tokenizer reads its BPE vocabulary at import
    _read_default_weights()
    if os_threads() != baseline:
        raise RuntimeError(f"preloading started {os_threads() - baseline} thread(s); forking would be unsafe")


def _read_default_weights() -> None:
    """Read the default base and SSR weights ahead (`weights.read_ahead`): a command on them then
    skips reading and building them. One torch thread, so that no OpenMP pool exists to fork (each
    child sets its own count); weights that fail to read are left to the command to report."""
    import torch

    from lumiere_cli.cascade.header import ssr_beside
    from lumiere_cli.cascade.weights import load_ssr
    from lumiere_cli.errors import LumiereError
    from lumiere_cli.weights import load_model, read_ahead, resolve

    torch.set_num_threads(1)
    try:
        read_ahead(resolve(None), load_model(None))
        ssr = ssr_beside(None)
        if ssr is not None:
            read_ahead(ssr, load_ssr(ssr))
    except LumiereError:
        pass


def os_threads() -> int:
    """Threads of this process as the kernel counts them (torch's pools included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


@dataclass
class _Running:
    channel: Channel
    argv: list[str]
    started: float


@dataclass
class _State:
    started: float = field(default_factory=time.time)
    served: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    stopping: bool = False
    running: dict[int, _Running] = field(default_factory=dict)


def serve(path: Path | None = None, *, idle_exit_s: float = 1800.0, log: Log = lambda line: None) -> int:
    """Serve until stopped; returns the number of commands served."""
    if not sys.platform.startswith("linux"):
        raise UsageError("lumiere serve runs on Linux (it forks, and checks its callers with SO_PEERCRED)")
    path = socket_path() if path is None else Path(path)
    private_folder(path)
    lock = open(f"{path}.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UsageError(f"a lumiere server already runs on {path} (lumiere serve --status)") from None
    try:
        preload()
        stamp = code_stamp()
        if path.exists() or path.is_symlink():
            path.unlink()  # a server that died: the lock says none runs now
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.fspath(path))
        os.chmod(path, 0o600)
        listener.listen(64)
        bound = path.stat().st_ino

        def close_listener() -> None:  # new commands then run in their own process at once
            if listener.fileno() != -1:
                listener.close()
                if path.exists() and path.stat().st_ino == bound:
                    path.unlink()

        try:
            return _loop(listener, close_listener, stamp, idle_exit_s, log, path, inherited=[lock.fileno()])
        finally:
            close_listener()
    finally:
        lock.close()


def _loop(listener: socket.socket, close_listener: Callable[[], None], stamp: str, idle_exit_s: float, log: Log,
          path: Path, inherited: list[int]) -> int:
    state = _State()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def stop(signum, frame):
        if state.stopping and signum == signal.SIGINT:  # a second Ctrl-C interrupts the commands too
            for pid in state.running:
                _signal(pid, signal.SIGINT)
        state.stopping = True

    handlers = {sig: signal.signal(sig, h) for sig, h in
                ((signal.SIGCHLD, lambda s, f: None), (signal.SIGTERM, stop), (signal.SIGHUP, stop),
                 (signal.SIGINT, stop))}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    log(f"serving on {path} (pid {os.getpid()}); lumiere commands of this user now run here")
    try:
        while not state.stopping or state.running:
            if state.stopping and listener.fileno() != -1:
                selector.unregister(listener)
                close_listener()
                if state.running:
                    log(f"stopping: waiting for {len(state.running)} running command(s)")
            timeout = None
            if idle_exit_s > 0 and not state.running and not state.stopping:
                timeout = max(0.0, state.last_activity + idle_exit_s - time.monotonic())
            for key, _ in selector.select(timeout):
                if key.fileobj is listener:
                    _accept(listener, stamp, state, log,
                            closing=[*inherited, listener.fileno(), wake_r, wake_w, selector.fileno()])
                else:
                    _drain(wake_r)
            _reap(state, log)
            if (idle_exit_s > 0 and not state.running and not state.stopping
                    and time.monotonic() - state.last_activity >= idle_exit_s):
                log(f"idle for {idle_exit_s / 60:g} min: stopping")
                state.stopping = True
    finally:
        selector.close()
        signal.set_wakeup_fd(previous_wakeup)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
    log(f"stopped after {state.served} command(s)")
    return state.served


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _accept(listener: socket.socket, stamp: str, state: _State, log: Log, closing: list[int]) -> None:
    conn, _ = listener.accept()
    conn.settimeout(HANDSHAKE_S)
    channel = Channel(conn)
    fds: list[int] = []
    try:
        if not _same_user(conn):
            conn.close()
            return
        channel.write({"pid": os.getpid(), "stamp": stamp, "started": state.started})
        request, fds = channel.read(max_fds=3)
        op = None if request is None else request.get("op")
        if op == "status":
            channel.write({"served": state.served, "running": [{"pid": pid, "argv": r.argv} for pid, r in
                                                                state.running.items()]})
        elif op == "stop":
            state.stopping = True
            channel.write({"stopping": True, "running": len(state.running)})
        elif op == "run" and len(fds) == 3:
            state.last_activity = time.monotonic()
            others = [r.channel.sock.fileno() for r in state.running.values()]
            pid = _fork(channel, request, fds, closing + others)
            state.running[pid] = _Running(channel, list(request.get("argv", [])), time.monotonic())
            state.served += 1
            channel.write({"pid": pid})
            log(f"[{pid}] lumiere {' '.join(request.get('argv', []))}")
            return  # the connection stays open for the exit code
        conn.close()
    except (OSError, ValueError) as e:
        log(f"dropped a connection: {e}")
        conn.close()
    finally:
        for fd in fds:
            os.close(fd)


def _same_user(conn: socket.socket) -> bool:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid == os.getuid()


def _reap(state: _State, log: Log) -> None:
    while state.running:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        done = state.running.pop(pid, None)
        if done is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by signal n: 128 + n, as a shell reports it
        # A child that exited sent its code itself; this one reaches the client only if it was killed.
        state.last_activity = time.monotonic()
        log(f"[{pid}] exit {code} after {time.monotonic() - done.started:.2f} s")
        try:
            done.channel.write({"exit": code})
        except OSError:
            pass
        done.channel.sock.close()


# ----------------------------------------------------------------------------- the child


def _fork(channel: Channel, request: dict[str, Any], fds: list[int], closing: list[int]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = _child(channel, request, fds, closing)
    except BaseException:  # noqa: BLE001 - a child must never return into the server's loop
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            atexit._run_exitfuncs()  # as a process of its own would (cli.end_process)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        try:  # from the child itself, so that a server killed meanwhile loses no exit code
            channel.write({"exit": code})
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


def _child(channel: Channel, request: dict[str, Any], fds: list[int], closing: list[int]) -> int:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)  # the server's terminal's Ctrl-C is not this command's
    for fd in closing:
        try:
            os.close(fd)
        except OSError:
            pass
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    fds.clear()
    _reopen_stdio()
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    os.umask(int(request["umask"]))
    try:
        os.sched_setaffinity(0, request["affinity"])
    except (OSError, ValueError):
        pass
    _threads(len(request["affinity"]))
    random.seed()
    channel.sock.settimeout(None)
    threading.Thread(target=_watch, args=(channel,), daemon=True).start()
    try:
        os.chdir(request["cwd"])
    except OSError as e:
        print(f"error: cannot enter {request['cwd']}: {e.strerror}", file=sys.stderr)
        return 1
    from lumiere_cli.cli import run

    sys.argv = ["lumiere", *request["argv"]]
    return run(list(request["argv"]))


def _reopen_stdio() -> None:
    """Text streams on the client's descriptors, buffered as a fresh interpreter would buffer them."""
    def stream(fd: int, mode: str, errors: str, line: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors, line_buffering=line)

    sys.stdin = sys.__stdin__ = stream(0, "r", "strict", False)
    sys.stdout = sys.__stdout__ = stream(1, "w", "strict", os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, "w", "backslashreplace", True)


def _threads(cpus: int) -> None:
    """torch's thread count as a fresh process would choose it: OMP_NUM_THREADS, else one per CPU
    this process may run on (libgomp read the server's environment once, at import)."""
    import torch

    value = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(value) if value.isdigit() and int(value) > 0 else max(1, cpus))


def _watch(channel: Channel) -> None:
    """Interrupt the command when the client relays a signal or goes away (its cleanup then runs
    as after Ctrl-C: no half-written output is left)."""
    while True:
        try:
            message, _ = channel.read()
        except (OSError, ValueError):
            message = None
        if message is None or "signal" in message:
            os.kill(os.getpid(), signal.SIGINT)
            if message is None:
                return
