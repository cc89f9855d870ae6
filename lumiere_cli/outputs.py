"""Where results go: choosing and reserving names, the overwrite rule, and writing a clip with its
parameters, its sidecar and the AI-generated statement.

The rules (README, "Outputs"):
- An output's format is its suffix (.mp4, .gif, .webp; no suffix = a folder of PNG frames); a
  --format that disagrees with the suffix is a usage error.
- A name is reserved before any work starts, by taking an exclusive lock on a hidden
  `.NAME.lock` beside it: two runs never write the same name. A default name that is taken (by a
  file, its sidecar or another run's lock) moves on to `-2`, `-3`, ...; an explicit name that is
  taken is a usage error, unless --overwrite and the thing there is one this tool could have
  written (`check_replaceable`). The lock dies with its process, so a killed run blocks nothing.
- The clip is written under a hidden temporary name and renamed onto the reserved name when
  complete (`atomic.staged`): a crash or kill -9 leaves nothing under the final name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import platform
import re
import resource
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from .choices import Format
from .errors import LumiereError, UsageError

AI_NOTICE = (
    "This video is AI-generated: it was synthesised by lumiere-cli, a diffusion model, "
    "and does not show real events."
)
DISPLAY_TARGET = 256  # display scale 0 enlarges until the short side reaches this many pixels
SLUG_MAX = 48
SUFFIX_FORMATS = {".mp4": Format.mp4, ".gif": Format.gif, ".webp": Format.webp}
FRAME_NAME = re.compile(r"frame_\d{4,}\.png")
# What the first bytes of a file of each format look like (offset, bytes).
MAGIC = {Format.mp4: (4, b"ftyp"), Format.gif: (0, b"GIF8"), Format.webp: (8, b"WEBP")}


# ----------------------------------------------------------------------------- names and formats


def format_for(path: Path | None, format: Format | str | None) -> Format:
    """The format a name asks for: its suffix, or no suffix = PNG frames; `format` must agree."""
    chosen = Format.parse(format, "format") if format is not None else None
    if path is None:
        return chosen or Format.mp4
    suffix = path.suffix.lower()
    if suffix in SUFFIX_FORMATS:
        implied = SUFFIX_FORMATS[suffix]
    elif suffix:
        raise UsageError(f"cannot tell the format from {path.name!r}: end it in .mp4, .gif or .webp, "
                         "or leave the suffix off for a folder of PNG frames")
    else:
        implied = Format.png
    if chosen is not None and chosen is not implied:
        raise UsageError(f"--format {chosen} disagrees with the name {path.name!r} ({implied}): "
                         f"drop --format or rename the output")
    return implied


def slugify(text: str, max_len: int = SLUG_MAX) -> str:
    """Lower-case ASCII words joined by '-', cut at a word boundary within `max_len`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1].rfind("-")
        slug = slug[: cut if cut > 0 else max_len].strip("-")
    return slug or "clip"


def default_stem(prompt: str, seed: int) -> str:
    return f"{slugify(prompt)}_{seed}"


def sidecar_path(path: Path) -> Path:
    """Where a clip's parameters go: the clip's own name plus `.json` (works for folders too)."""
    return path.with_name(path.name + ".json")


def inside(out_dir: Path, relative: str | os.PathLike) -> Path:
    """A batch item's `output`, relative to `out_dir`, which it may not leave."""
    rel = Path(relative)
    if rel.is_absolute():
        raise UsageError(f"output {str(rel)!r} is an absolute path: a batch item's output is relative to --out-dir")
    path = out_dir / rel
    if not os.path.abspath(path).startswith(os.path.abspath(out_dir) + os.sep):
        raise UsageError(f"output {str(rel)!r} leaves --out-dir {out_dir}: name a file inside it")
    return path


def display_scale(requested: int, fmt: Format, size: tuple[int, int]) -> int:
    """0 = enough to reach DISPLAY_TARGET pixels (PNG frames: 1, the model's own pixels)."""
    if requested:
        return requested
    return 1 if fmt is Format.png else max(1, math.ceil(DISPLAY_TARGET / min(size)))


# ----------------------------------------------------------------------------- the overwrite rule


def check_replaceable(path: Path, fmt: Format) -> None:
    """Refuse (UsageError) unless what is at `path` (and its sidecar) is something this tool could
    have written in format `fmt`: a file of that format, or a folder of nothing but numbered frames
    that the tool wrote (its sidecar or its frames say so). The user's own files stay untouched."""
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link; --overwrite replaces only clips this tool wrote")
    if path.is_dir():
        if fmt is not Format.png:
            raise UsageError(f"{path} is a folder; --overwrite replaces only a {fmt} file this tool wrote")
        entries = list(path.iterdir())
        if entries and not (all(e.is_file() and FRAME_NAME.fullmatch(e.name) for e in entries)
                            and _written_by_us(path)):
            raise UsageError(f"{path} is a folder that this tool did not write (it holds other files); "
                             "--overwrite leaves it alone: choose another name")
    elif path.exists():
        offset, magic = MAGIC.get(fmt, (0, b""))
        with open(path, "rb") as f:
            head = f.read(16)
        if fmt is Format.png or head[offset:offset + len(magic)] != magic:
            raise UsageError(f"{path} is not a {fmt} clip; --overwrite replaces only clips this tool wrote")
    side = sidecar_path(path)
    if side.is_symlink() or (side.exists() and not _is_our_sidecar(side)):
        raise UsageError(f"{side} is not a sidecar this tool wrote; --overwrite leaves it alone: choose another name")


def _is_our_sidecar(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("ai_generated") is True and "prompt" in data


def _written_by_us(folder: Path) -> bool:
    if _is_our_sidecar(sidecar_path(folder)):
        return True
    from .video_io import read_metadata  # only for a folder without its sidecar

    try:
        return read_metadata(folder).get("ai_generated") is True
    except LumiereError:
        return False


# ----------------------------------------------------------------------------- reservations


@dataclass
class Reservation:
    """A name this process holds until it is written or released."""

    path: Path
    format: Format
    overwrite: bool
    _fd: int | None = field(default=None, repr=False)

    @property
    def lock_path(self) -> Path:
        return _lock_path(self.path)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _unlock(self.path, fd)


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _take_lock(path: Path) -> int | None:
    """An exclusive lock on `path`'s hidden lock file, or None when another live run holds it."""
    lock = _lock_path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The holder before us may have finished and unlinked the file we opened: lock the live one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}@{platform.node()}\n".encode())
            return fd
        os.close(fd)


def _clear_stale_partials(path: Path) -> None:
    """Temporary files a killed run left for this name (only the lock holder writes them)."""
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*{atomic.PARTIAL_SUFFIX}"):
        atomic.remove(stale)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _prepare_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output folder {folder} is a file (pass a folder to --out-dir, or another -o name)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {folder}: {e.strerror} (choose another output)") from None


def _lock_or_fail(path: Path) -> int | None:
    try:
        return _take_lock(path)
    except OSError as e:
        if e.errno == errno.EMFILE:
            raise UsageError("too many outputs reserved at once for this system's open-file limit; "
                             "split the batch") from None
        raise UsageError(f"cannot write to {path.parent}: {e.strerror} (choose a writable output folder)") from None


class NameTaken(UsageError):
    """The name is there already (and may not be replaced), or another run holds it."""


def _claim(path: Path, fmt: Format, *, replace: bool) -> Reservation:
    """Lock `path` and check that it may be written: free, or with `replace` a clip this tool wrote."""
    fd = _lock_or_fail(path)
    if fd is None:
        raise NameTaken(f"{path} is being written by another run right now; choose another name")
    try:
        if _taken(path):  # checked again under the lock: it may have been written while we looked
            if not replace:
                raise NameTaken(f"{path} already exists (pass --overwrite to replace it, or choose another name)")
            check_replaceable(path, fmt)
    except UsageError as e:
        _unlock(path, fd)
        raise NameTaken(str(e)) from None
    _clear_stale_partials(path)
    return Reservation(path, fmt, replace, fd)


def reserve(path: Path, fmt: Format, *, overwrite: bool) -> Reservation:
    """Reserve an explicit name: it must be free, or replaceable with --overwrite."""
    _prepare_dir(path.parent)
    return _claim(path, fmt, replace=overwrite)


def reserve_default(out_dir: Path, stem: str, fmt: Format, *, overwrite: bool = False) -> Reservation:
    """Reserve `stem`, else `stem-2`, `stem-3`, ...: the first name no file, sidecar or run holds.
    With `overwrite`, `stem` itself is taken again when what is there is a clip this tool wrote."""
    _prepare_dir(out_dir)
    suffix = "" if fmt is Format.png else f".{fmt}"
    for n in range(1, 100_000):
        path = out_dir / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        replace = overwrite and n == 1
        if replace or not _taken(path):
            try:
                return _claim(path, fmt, replace=replace)
            except NameTaken:
                pass
    raise UsageError(f"no free name for {stem} in {out_dir}")


def _taken(path: Path) -> bool:
    return os.path.lexists(path) or os.path.lexists(sidecar_path(path))


def _unlock(path: Path, fd: int) -> None:
    _lock_path(path).unlink(missing_ok=True)
    os.close(fd)


def raise_open_file_limit() -> None:
    """Each reserved output holds one lock: allow as many as the system lets this process have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


# ----------------------------------------------------------------------------- writing


def metadata(*, task: str, prompt: str, seed: int, options: Any, fps: float, frames: int,
             size: tuple[int, int], scale: int, display_filter: str, weights: dict, inputs: dict,
             strength: float | None, style: dict | None, schedule: list | None = None) -> dict[str, Any]:
    """The parameters stored inside a clip: everything needed to make it again, and nothing that
    changes from run to run (times go to the sidecar only), so the same request gives the same bytes."""
    from . import __version__

    return {
        "notice": AI_NOTICE,
        "ai_generated": True,
        "task": task,
        "prompt": prompt,
        "negative": options.negative,
        "seed": seed,
        "sampler": options.sampler,
        "schedule_shift": options.schedule_shift,
        "steps": options.steps,
        "guidance": options.guidance,
        # recorded where it differs, so clips on one scale keep their bytes
        **({"guidance_low": options.guidance_low} if options.guidance_low not in (None, options.guidance) else {}),
        **({"guidance_high": options.guidance_high} if options.guidance_high not in (None, options.guidance) else {}),
        **({"bf16": True} if options.bf16 else {}),  # fp32 clips keep their bytes
        # the levels runs from pure noise took, where they are not the shifted cosine
        **({"sigmas": list(options.sigmas)} if options.sigmas is not None else {}),
        # the time options where they are used, so other clips keep their bytes
        **({"loop": options.loop_style} if options.loop else {}),  # the style, named by requests
        **({"schedule": [[int(f), p] for f, p in schedule]} if schedule else {}),
        "frames": frames,
        "fps": fps,
        "size": list(size),
        "display_scale": scale,
        "display_filter": display_filter,
        "weights": weights,
        "inputs": inputs,
        "strength": strength,
        "style": style,
        "versions": {"lumiere_cli": __version__, "python": platform.python_version(), **_torch_version()},
    }


def _torch_version() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__}


def write(reservation: Reservation, frames, *, fps: float, meta: dict[str, Any], scale: int,
          display_filter: str, timings: dict[str, float], audio=None) -> tuple[Path, Path]:
    """Write the clip (atomically, onto the reserved name), then its sidecar; release the name."""
    from . import video_io

    path = reservation.path
    try:
        t0 = time.perf_counter()
        video_io.write_clip(path, frames, fps=fps, format=str(reservation.format), metadata=meta,
                            display_scale=scale, display_filter=display_filter, overwrite=reservation.overwrite,
                            **({"audio": audio} if audio is not None else {}))
        sidecar = {**meta, "timings": {**{k: round(float(v), 4) for k, v in timings.items()},
                                       "write_s": round(time.perf_counter() - t0, 4)},
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        side = atomic.write_text(sidecar_path(path), json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n")
    finally:
        reservation.release()
    return path, side
