"""What an entry's file holds (`scan`), and one training clip cut from it (`read_clip`).

Clip sampling: a clip of `frames` frames at the model's `fps` starts at a source frame of the
entry's span and takes, for each time k / fps after it, the nearest source frame (the frame stride
follows the source's own rate: a 24 fps source gives every 3rd frame at 8 fps, a 30 fps one every
3.75th). Every frame is resized so that its shorter side is `size` (while decoding), then cropped
to `size` x `size` at the offsets given (random in training, the centre for validation). Nothing is
flipped: a mirrored "moving left" is "moving right". An image is a one-frame clip.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..errors import InputError
from .entries import Entry, Problem

if TYPE_CHECKING:
    from .scan_cache import ScanCache

_EPS = 1e-6


class ClipError(InputError):
    """A clip that cannot be cut from a file that scanned well (cut short, corrupt further in)."""


@dataclass(frozen=True)
class Scanned:
    """An entry whose file opened: its kind, size as shown, source rate and the span clips come
    from (`frames` source frames from `start_s`; one for an image)."""

    entry: Entry
    kind: str  # "image" | "video"
    width: int
    height: int
    fps: float | None  # the source's rate; None for an image
    frames: int
    start_s: float = 0.0
    duration_s: float | None = None  # of the span; None for an image

    def last_start(self, frames: int, fps: float) -> int:
        """The last source frame (from the span's start) a clip of `frames` frames at `fps` can
        start on; -1 when the span is too short. The clip's last time, start + (frames - 1) / fps,
        must be within half a source frame of the span's last frame (what `read_video` samples)."""
        if self.kind == "image" or self.fps is None:
            return 0 if frames == 1 else -1
        return math.floor(self.frames - 0.5 - (frames - 1) * self.fps / fps + _EPS)

    def available(self, fps: float) -> int:
        """The most frames a clip at `fps` can have from this span."""
        if self.kind == "image" or self.fps is None:
            return 1
        return max(0, math.floor(1 + (self.frames - 0.5) * fps / self.fps + _EPS))

    def clip_start(self, frames: int, fps: float, u: float) -> float:
        """The start time (seconds in the source) of a clip whose start frame is drawn by u in
        [0, 1): uniformly among the frames a clip can start on."""
        last = self.last_start(frames, fps)
        if last < 0:
            raise ClipError(f"too short: {self.available(fps)} frames at {fps:g} fps, a clip needs {frames}")
        if self.kind == "image":
            return 0.0
        return self.start_s + min(last, math.floor(u * (last + 1))) / self.fps

    def describe(self) -> str:
        if self.kind == "image":
            return f"image {self.width}x{self.height}"
        return f"video {self.width}x{self.height}, {self.fps:.3g} fps, {self.duration_s:.2f} s"


def _reason(e: InputError, entry: Entry) -> str:
    """An InputError's message without the path (the report names it already)."""
    if not entry.path.exists():
        return "file not found"
    text = str(e)
    for name in (str(entry.path), entry.path.name):
        text = text.replace(f" {name}:", ":").replace(f" {name} ", " ").replace(f" {name}", "")
    return text


def scan_entry(entry: Entry) -> Scanned | Problem:
    """The entry's file from its header and two decoded frames (the span's first and last), or
    the reason it cannot be used. Never decodes the whole file."""
    from ..video_io.decode import probe, read_video

    try:
        info = probe(entry.path)
        if info.kind == "image":
            return Scanned(entry, "image", info.width, info.height, None, 1)
        fps = float(info.fps or 0)
        duration = info.duration_s
        if duration is None and info.frames:
            duration = info.frames / fps
        if not fps or not duration:
            return Problem(entry.where, str(entry.path), "its container gives no length or frame rate")
        start = entry.start or 0.0
        end = duration if entry.end is None else min(entry.end, duration)
        if start >= duration:
            return Problem(entry.where, str(entry.path), f"start {start:g} s is past the video's end ({duration:.2f} s)")
        first = math.ceil(start * fps - _EPS)  # the span's first source frame
        n = math.ceil(end * fps - _EPS) - first
        if info.frames:
            n = min(n, info.frames - first)
        if n < 1:
            return Problem(entry.where, str(entry.path), f"no frames between {start:g} and {end:g} s")
        start = first / fps
        if start > 0:
            read_video(entry.path, frames=1, start_s=start)
        last = start + (n - 1) / fps
        try:
            read_video(entry.path, frames=1, start_s=last)
        except InputError:
            return Problem(entry.where, str(entry.path),
                           f"no frame at {last:.2f} s although the header says {duration:.2f} s (cut short?)")
    except InputError as e:
        return Problem(entry.where, str(entry.path), _reason(e, entry))
    return Scanned(entry, "video", info.width, info.height, fps, n, start, n / fps)


def scan(entries: Iterable[Entry], *, threads: int = 4, cache: ScanCache | None = None) -> list[Scanned | Problem]:
    """`scan_entry` for each entry, in order (a few at once: decoders release the GIL). With a
    `cache`, an unchanged file's remembered scan is used and every new scan is remembered."""
    entries = list(entries)
    known = [cache.get(e) if cache else None for e in entries]
    todo = [e for e, k in zip(entries, known) if k is None]
    if threads <= 1 or len(todo) <= 1:
        fresh = [scan_entry(e) for e in todo]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            fresh = list(pool.map(scan_entry, todo))
    if cache:
        for e, result in zip(todo, fresh):
            cache.put(e, result)
    it = iter(fresh)
    return [k if k is not None else next(it) for k in known]


def _fit_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    if min(h, w) == size:
        return frame
    scale = size / min(h, w)
    new = (size if w <= h else max(1, round(w * scale)), size if h < w else max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(new, Image.Resampling.LANCZOS))


def read_clip(item: Scanned, *, frames: int, size: int, fps: float, start_s: float,
              crop: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """uint8 (t, size, size, 3): `frames` frames at `fps` from `start_s` (seeking there), the
    shorter side resized to `size`, then cropped at (top, left) fractions of the room left
    ((0.5, 0.5): the centre). ClipError (an InputError) when the file gives fewer frames."""
    from ..video_io.decode import read_image, read_video

    if item.kind == "image":
        clip = _fit_short_side(read_image(item.entry.path), size)[None]
    else:
        clip = read_video(item.entry.path, frames=frames, fps=fps, start_s=start_s, short_side=size).frames
    if len(clip) < frames:
        raise ClipError(f"too short: {len(clip)} of {frames} frames from {start_s:.2f} s")
    h, w = clip.shape[1:3]
    top, left = round(crop[0] * (h - size)), round(crop[1] * (w - size))
    return np.ascontiguousarray(clip[:, top:top + size, left:left + size])


__all__ = ["ClipError", "Scanned", "read_clip", "scan", "scan_entry"]
