"""What the client and the server share: where the socket lives, how messages travel, the code stamp.

Messages are JSON objects, one per line, on a Unix stream socket; the request line also carries
the client's stdin, stdout and stderr as file descriptors (SCM_RIGHTS). No torch here: the client
imports this on every command.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
import sysconfig
from pathlib import Path
from typing import Any

from ..errors import UsageError

SOCKET_ENV = "LUMIERE_SOCKET"  # a socket path of one's own: tests, or several servers
MAX_LINE = 4 << 20  # no message is near this: an environment is a few KiB
HANDSHAKE_S = 5.0  # a server that cannot say hello within this is not used


def socket_path() -> Path:
    """$LUMIERE_SOCKET, else $XDG_RUNTIME_DIR/lumiere-cli/serve.sock, else under ~/.cache/lumiere-cli."""
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "lumiere-cli" / "serve.sock"
    from ..user_cache import cache_dir

    return cache_dir("serve") / "serve.sock"


def private_folder(path: Path) -> None:
    """Make the socket's folder (mode 0700) or check that it is this user's alone: whoever can reach
    the socket can run commands as this user."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise UsageError(f"{folder} must belong to you alone (mode 0700) to hold the server's socket")
    if len(os.fsencode(path)) > 100:  # sockaddr_un holds 108 bytes
        raise UsageError(f"socket path too long for a Unix socket ({path}); set {SOCKET_ENV} to a shorter one")


def code_stamp() -> str:
    """What decides whether the server runs the code this client would: lumiere_cli's sources (path,
    size, mtime), the interpreter and the installed packages (site-packages changes on every install)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                info = os.stat(os.path.join(root, name))
                digest.update(f"{root}/{name}:{info.st_size}:{info.st_mtime_ns};".encode())
    digest.update(sys.executable.encode())
    purelib = sysconfig.get_paths()["purelib"]
    if os.path.isdir(purelib):
        digest.update(f"{purelib}:{os.stat(purelib).st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class Channel:
    """JSON lines over a connected Unix socket; `write(..., fds=)` sends descriptors with a line."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = b""

    def write(self, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
        data = json.dumps(message).encode() + b"\n"
        if fds:
            sent = socket.send_fds(self.sock, [data], list(fds))
            data = data[sent:]
        if data:
            self.sock.sendall(data)

    def read(self, *, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message (None at end of stream) and the descriptors that came with it."""
        fds: list[int] = []
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ConnectionError("message too long")
            if max_fds:
                chunk, got, _, _ = socket.recv_fds(self.sock, 1 << 16, max_fds)
                fds.extend(got)
            else:
                chunk = self.sock.recv(1 << 16)
            if not chunk:
                for fd in fds:
                    os.close(fd)
                return None, []
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ConnectionError("malformed message")
        return message, fds
