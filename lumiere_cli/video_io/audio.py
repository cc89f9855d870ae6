"""The source's sound under a generated clip: the stretch of an input's audio that the used frames
span, muxed as AAC into the mp4 the encoder wrote (gif, webp and PNG frames have no sound).

The ffmpeg binary that imageio-ffmpeg ships does the work: the video stream is copied as it is,
the audio is cut on the source's own timeline (`-ss`/`-t` on the source input, counted from the
source's start as `Video.start_s` is) and re-encoded, since a cut between AAC frames needs it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..errors import InputError
from .metadata import short_error

_SILENT_SUFFIXES = {".gif", ".webp", ".png", ".apng", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class AudioSpan:
    """`duration_s` seconds of `source`'s sound from `start_s` (seconds from the source's start)."""

    source: Path
    start_s: float
    duration_s: float


def has_audio(path: str | os.PathLike) -> bool:
    """Whether a media file has an audio stream: how a caller learns whether `write_clip` kept the
    sound (False for gif, webp, PNG frames and sources without sound). InputError if unreadable."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in _SILENT_SUFFIXES:
        return False
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"cannot read {path}: {getattr(e, 'strerror', None) or short_error(e)}") from e


def mux_audio(video: str | os.PathLike, span: AudioSpan) -> bool:
    """Replace the mp4 `video` by a copy carrying `span` of its source's sound; False (and nothing
    written) when the source has none.

    The copy is written beside `video` and renamed onto it, so `video` is never half-written; the
    caller's own staging (`atomic.staged`) keeps the final name atomic. There is no `-shortest`:
    `-t` already ends the sound with the clip, and `-shortest` would drop video frames whenever the
    source's sound ends before the clip does.
    """
    import imageio_ffmpeg

    video = Path(video)
    if span.duration_s <= 0 or span.start_s < 0:
        raise ValueError(f"an audio span needs start_s >= 0 and duration_s > 0, got {span}")
    if not has_audio(span.source):
        return False
    tmp = atomic.temp_path(video)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y",
        "-i", str(video),
        "-ss", f"{span.start_s:.6f}", "-t", f"{span.duration_s:.6f}", "-i", str(span.source),
        "-map", "0:v", "-map", "1:a:0", "-map_metadata", "0",  # the clip's parameters stay in the file
        "-c:v", "copy", "-c:a", "aac",
        "-movflags", "+faststart", "-f", "mp4", str(tmp),  # -f: the temporary name has no .mp4
    ]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, timeout=600)
        if proc.returncode != 0:
            why = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["ffmpeg failed"]
            raise InputError(f"cannot copy the sound of {span.source}: {why[0][:200]}")
        os.replace(tmp, video)
    finally:
        atomic.remove(tmp)
    return True
