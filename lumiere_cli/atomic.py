"""Writing a file or folder so that no reader ever sees it half-written.

Everything the project writes (clips, sidecars, weights, checkpoints, style caches, metrics) goes
through `staged`: the content is written under a hidden temporary name in the destination's own
folder, then renamed onto the final name in one step. A crash, a kill -9 or a full disk leaves at
most a hidden `.NAME.*.partial` beside the destination, never a partial file under NAME.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import LumiereError

PARTIAL_SUFFIX = ".partial"


def temp_path(dest: str | os.PathLike) -> Path:
    """A fresh hidden name beside `dest` (same folder, so the final rename never copies)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")


def remove(path: Path) -> None:
    """Delete a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def commit(tmp: Path, dest: Path, *, replace: bool) -> None:
    """Put the finished `tmp` under `dest` in one rename.

    replace=False never clobbers: a file is hard-linked (which fails if `dest` appeared meanwhile)
    and a folder renamed only while nothing is at `dest`. replace=True swaps an existing file in one
    rename, and an existing folder through a hidden name, so `dest` always holds a complete clip.
    """
    if not replace:
        if tmp.is_dir():
            if os.path.lexists(dest):
                raise FileExistsError(errno.EEXIST, "already exists", str(dest))
            os.rename(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # A filesystem without hard links (FAT, some network shares): check, then rename.
                if os.path.lexists(dest):
                    raise FileExistsError(errno.EEXIST, "already exists", str(dest)) from None
                os.rename(tmp, dest)
            else:
                tmp.unlink()
        return
    if tmp.is_dir() and os.path.lexists(dest):
        old = temp_path(dest)
        os.rename(dest, old)
        os.rename(tmp, dest)
        remove(old)
    else:
        os.replace(tmp, dest)


@contextmanager
def staged(dest: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it becomes `dest` (see `commit`).

    On any error the temporary file is removed; a full disk is reported as one LumiereError.
    """
    dest = Path(dest)
    tmp = temp_path(dest)
    try:
        yield tmp
        commit(tmp, dest, replace=replace)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise LumiereError(f"no space left on the device to write {dest} (free some space or "
                               "choose another output folder); nothing was written") from None
        raise
    finally:
        remove(tmp)


def write_text(dest: str | os.PathLike, text: str, *, replace: bool = True) -> Path:
    """Write a UTF-8 text file atomically."""
    dest = Path(dest)
    with staged(dest, replace=replace) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return dest
