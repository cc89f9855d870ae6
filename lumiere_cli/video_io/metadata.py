"""The parameters stored inside a written clip, and reading them back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import InputError

EXIF_DESCRIPTION = 0x010E  # ImageDescription: where webp keeps the parameters
PNG_KEY = "Comment"  # standard PNG text keyword, shown by most image viewers


def metadata_text(metadata: dict[str, Any]) -> str:
    """The one-line text stored inside a file: the parameters as compact JSON."""
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parameters stored inside a clip written by `write_clip` ({} when there are none)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path} (check the path)")
    text: str | None = None
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
            if files:
                with Image.open(files[0]) as im:
                    text = im.info.get(PNG_KEY)
        elif path.suffix.lower() in {".png", ".gif"}:
            with Image.open(path) as im:
                text = im.info.get(PNG_KEY) if path.suffix.lower() == ".png" else im.info.get("comment")
        elif path.suffix.lower() == ".webp":
            with Image.open(path) as im:
                text = im.getexif().get(EXIF_DESCRIPTION)
        else:
            text = _ffmpeg_comment(path)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read metadata from {path}: {short_error(e)}") from e
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"comment": text}
    return data if isinstance(data, dict) else {"comment": text}


def _ffmpeg_comment(path: Path) -> str | None:
    """The container's `comment` tag, read with ffmpeg's ffmetadata muxer (no ffprobe needed)."""
    import imageio_ffmpeg

    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True, timeout=60,
    )
    if proc.returncode != 0:
        raise ValueError(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or "ffmpeg failed")
    # ffmetadata escapes '=', ';', '#', '\' and newlines with a backslash; values may span lines.
    entries, key, buf, escaped = {}, None, [], False
    for ch in proc.stdout.decode("utf-8", "replace"):
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "=" and key is None:
            key, buf = "".join(buf), []
        elif ch == "\n":
            if key is not None:
                entries[key.strip()] = "".join(buf)
            key, buf = None, []
        else:
            buf.append(ch)
    if key is not None:
        entries[key.strip()] = "".join(buf)
    return entries.get("comment")




def short_error(e: BaseException) -> str:
    """The first line of an exception's text, for a one-line message."""
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__
