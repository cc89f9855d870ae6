"""Decoding the user's images, videos and masks into arrays (see the package docstring for layouts).

Inputs come back the way every viewer shows them:

- Orientation: EXIF orientation is applied before anything else (a phone photo stored sideways
  comes back upright), and so is a video's display rotation.
- Levels: every Pillow mode becomes 8-bit RGB. 16-bit modes (I;16, I;16B, ...) keep their grey
  levels (v of 65535 -> round(v / 257)). Mode I (32-bit integers) is read as 16-bit levels when
  every value lies in 0..65535, else stretched from its own minimum to its maximum. Mode F
  (floats) is read as [0, 1] when its largest value is at most 1, else as [0, 255]; values
  outside are clipped and NaN is 0.
- Transparency: `read_image` composites transparent pixels over BACKGROUND, black.
  A mask whose visible pixels are all one colour and which has transparent pixels is given by its
  alpha (opaque = 1 = generate, transparent = 0 = keep: paint strokes on an empty layer); any
  other mask is composited over black and read as luminance (ITU-R 601, as Pillow's "L").
- Sampling a video (`read_video`): `fps` samples the input's timeline at k / fps seconds after its
  first frame, taking the nearest source frame to each time (a tie goes to the earlier frame;
  above the source's rate, frames repeat); `stride` takes every Nth source frame; neither takes
  every frame. `frames` stops decoding once that many are out, so memory does not grow with the
  input's length.
- Timing: mp4 and the other ffmpeg formats use their timestamps; gif, webp and animated PNG their
  frame durations (a duration of 10 ms or less, or none, counts as 100 ms, as browsers show it;
  the source's rate is that of the median duration); a folder of PNGs has none, so it plays at
  the `fps` in its stored metadata, else DEFAULT_FPS. `source_fps` overrides all of these: frame
  i is then at i / source_fps.
- A folder of PNG frames is read in natural name order (frame2 before frame10); names starting
  with "." are skipped.
- Starting later (`read_video(start_s=...)`): the clip begins at the first frame at or after
  `start_s` seconds from the input's start; mp4 and the other ffmpeg formats seek to the keyframe
  before it and decode from there (not from the file's start), the other formats skip the earlier
  frames. Sampling at `fps` then counts from that frame.
- Shrinking while decoding (`read_video(short_side=N)`): each frame is resized so that its shorter
  side is N pixels, keeping its proportions (ffmpeg's area filter for ffmpeg formats, on the frame
  converted to RGB at its own size first: swscale shrinking a yuv420p frame while converting it
  misplaces the half-size chroma, up to 83 levels off at a coloured edge; Lanczos otherwise).

Resizing rule for user images and videos (`fit_to_model`): centre-crop to a square (the model is
square), then resize to the model's size with Lanczos filtering (area-like when shrinking).
"""

from __future__ import annotations

import math
import os
import re
import statistics
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from ..errors import InputError, UsageError
from .audio import AudioSpan
from .metadata import read_metadata, short_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".webp"}
DEFAULT_FPS = 8.0  # for a folder of PNGs that does not say its own rate
BACKGROUND = (0, 0, 0)  # what transparent pixels are composited over: black, the commonest background

_PILLOW_SUFFIXES = IMAGE_SUFFIXES | {".apng"}  # decoded by Pillow; anything else goes to ffmpeg (PyAV)
_ANIMATED_FORMATS = {"GIF", "WEBP", "PNG"}  # a phone's MPO JPEG or a multi-page TIFF is one still image
_HIGH_DEPTH = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}  # modes Pillow cannot scale to 8 bits itself
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_MIN_FRAME_MS = 10  # browsers show a gif/webp frame this short (or with no duration) for 100 ms
_EPS_S = 1e-6  # timestamps closer than this are the same time (float rounding of exact rationals)
_UNIFORM_LEVELS = 2  # a mask's visible colours within this many levels of each other count as one


class SamplingError(UsageError, ValueError):
    """Sampling arguments that cannot be met: a UsageError for the CLI, a ValueError for code."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field has no single truth value
class Video:
    """Decoded frames and how they were taken from the source.

    frames: uint8 (t, h, w, 3); fps: the rate of `frames` (source_fps / stride); source_fps: the
    input's own rate, or the one the caller gave; stride: source frames per returned frame (1.0 =
    every frame); start_s: source time of the first returned frame, from the input's start.
    """

    frames: np.ndarray
    fps: float
    source_fps: float
    stride: float
    start_s: float
    has_audio: bool
    source: Path | None = None

    @property
    def duration_s(self) -> float:
        """How long `frames` lasts at `fps`."""
        return len(self.frames) / self.fps

    def describe(self) -> str:
        """One log line saying which part of the input was used, and how."""
        name = self.source.name if self.source else "the input"
        rate = "" if math.isclose(self.stride, 1.0) else f" at {_num(self.fps, 2)} fps"
        if math.isclose(self.stride, 1.0):
            step = "every frame"
        elif self.stride > 1:
            step = f"every {_num(self.stride, 1)} source frames"
        else:
            step = f"each source frame shown {_num(1 / self.stride, 1)} times"
        end = self.start_s + self.duration_s
        return (f"used {len(self.frames)} frames of {name} ({_num(self.source_fps, 2)} fps){rate}: "
                f"{step}, {self.start_s:.1f}-{end:.1f} s")

    def audio_span(self, frames: int | None = None) -> AudioSpan | None:
        """The stretch of the source's sound that plays under the first `frames` frames (all by
        default), for `write_clip(audio=...)`; None when the source has no sound."""
        if not self.has_audio or self.source is None:
            return None
        n = len(self.frames) if frames is None else min(frames, len(self.frames))
        return AudioSpan(source=self.source, start_s=self.start_s, duration_s=n / self.fps)


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` learns about an input without decoding it: sizes are as shown (upright)."""

    kind: str  # "image" or "video"
    width: int
    height: int
    frames: int | None  # None when the container does not say
    fps: float | None  # None for an image
    duration_s: float | None
    has_audio: bool


def _num(x: float, digits: int) -> str:
    """`x` with at most `digits` decimals and no trailing zeros: 25, 8.33, 3.1."""
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


def _check_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path} (check the path)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} is not readable: {path} (check its permissions)")
    return path


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What decoders raise on a bad file. PyAV's errors count only once PyAV is loaded (it is
    imported lazily, and nothing can raise them before)."""
    errors: tuple[type[BaseException], ...] = (
        UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error,
        Image.DecompressionBombError,
    )
    av = sys.modules.get("av")
    return errors + (av.FFmpegError,) if av is not None else errors


def _why(e: BaseException) -> str:
    """An error's reason in one line; PyAV's carry it in strerror (str() adds an errno and path)."""
    return getattr(e, "strerror", None) or short_error(e)


@contextmanager
def _reading(path: Path, what: str, hint: str) -> Iterator[None]:
    """Turn any decoder failure inside the block into a one-line InputError about `path`."""
    try:
        yield
    except InputError:
        raise
    except SamplingError:
        raise
    except _decode_errors() as e:
        raise InputError(f"cannot read {what} {path}: {_why(e)} ({hint})") from e


# ----------------------------------------------------------------------------- public readers


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 (h, w, 3), upright and over black; the first frame of an animated
    file."""
    path = _check_file(Path(path), "image")
    if path.is_dir():
        raise InputError(f"expected an image file, got a folder: {path}")
    with _reading(path, "image", "is it a valid PNG/JPEG?"), Image.open(path) as im:
        im.seek(0)
        return _rgb8(_upright(im))


def read_video(
    path: str | os.PathLike,
    *,
    frames: int | None = None,
    fps: float | None = None,
    stride: int | None = None,
    source_fps: float | None = None,
    start_s: float = 0.0,
    short_side: int | None = None,
) -> Video:
    """A video sampled as the module docstring says: mp4 and other ffmpeg formats, gif, webp,
    animated PNG, or a folder of PNG frames.

    frames: at most this many (decoding stops there); fps: sample the timeline at this rate;
    stride: every Nth source frame (not with fps); source_fps: the input's rate, overriding its own;
    start_s: begin at the first frame at or after this time (seconds from the input's start; ffmpeg
    formats seek there); short_side: resize every frame so its shorter side has this many pixels.
    Raises SamplingError (a UsageError and a ValueError) for impossible arguments, InputError for a
    file that cannot be used.
    """
    _check_sampling(frames, fps, stride, source_fps)
    _check_window(start_s, short_side)
    path = _check_file(Path(path), "video")
    array, src = _decode(path, _rgb8, "video", frames=frames, fps=fps, stride=stride, source_fps=source_fps,
                         start_s=float(start_s), short_side=short_side)
    rate = src.rate
    step = float(stride) if stride else (rate / fps if fps else 1.0)
    return Video(frames=array, fps=rate / step, source_fps=rate, stride=step, start_s=src.start_s,
                 has_audio=src.has_audio, source=path)


def read_mask(
    path: str | os.PathLike,
    *,
    frames: int | None = None,
    fps: float | None = None,
    stride: int | None = None,
    source_fps: float | None = None,
) -> np.ndarray:
    """A mask as float32 in [0, 1], white = 1 = generate: (h, w) from a still image, (t, h, w)
    from a video, an animated file or a folder of frames.

    A moving mask is sampled with the same arguments as `read_video`: give it those of the video
    it masks, so that frame i of the mask goes with frame i of the video. A still mask ignores them.
    """
    _check_sampling(frames, fps, stride, source_fps)
    path = _check_file(Path(path), "mask")
    if not _is_still(path):
        array, _ = _decode(path, _mask01, "mask", frames=frames, fps=fps, stride=stride, source_fps=source_fps)
        return array
    with _reading(path, "mask", "use a black-and-white PNG"), Image.open(path) as im:
        return _mask01(_upright(im))


def probe(path: str | os.PathLike) -> MediaInfo:
    """Kind, size, length, rate and sound of an input, cheaply: a batch checks all its inputs with
    this before a model loads. Decodes at most one frame, except that an animated gif/webp/PNG is
    stepped through for its frame durations. InputError on anything unreadable."""
    path = _check_file(Path(path), "input")
    if path.is_dir():
        return _probe_folder(path)
    with _reading(path, "input", "is it a valid image or video?"):
        if path.suffix.lower() in _PILLOW_SUFFIXES:
            return _probe_pillow(path)
        return _probe_av(path)


def _check_sampling(frames: Any, fps: Any, stride: Any, source_fps: Any) -> None:
    """Refuse arguments that no input could satisfy, before any file is opened."""
    if fps is not None and stride is not None:
        raise SamplingError("sample the video either at a rate (fps) or every Nth frame (stride), not both")
    for name, value in (("frames", frames), ("stride", stride)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SamplingError(f"{name} must be a whole number of at least 1, got {value!r}")
    for name, value in (("fps", fps), ("source_fps", source_fps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise SamplingError(f"{name} must be a positive number, got {value!r}")


def _check_window(start_s: Any, short_side: Any) -> None:
    """Refuse a start time or a frame size that no input could satisfy."""
    if (isinstance(start_s, bool) or not isinstance(start_s, (int, float)) or not math.isfinite(start_s)
            or start_s < 0):
        raise SamplingError(f"start_s must be a number of seconds of at least 0, got {start_s!r}")
    if short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1):
        raise SamplingError(f"short_side must be a whole number of at least 1, got {short_side!r}")


def _scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the shorter side `short_side` and the proportions kept (rounded)."""
    scale = short_side / min(width, height)
    return (short_side if width <= height else max(1, round(width * scale)),
            short_side if height < width else max(1, round(height * scale)))


def _is_still(path: Path) -> bool:
    """Whether a mask path is one still image (else it is read as a video)."""
    if path.is_dir() or path.suffix.lower() not in _PILLOW_SUFFIXES:
        return False
    try:
        with Image.open(path) as im:
            return _frame_count(im) <= 1
    except _decode_errors():
        return True  # the still-image path reports the problem properly


# ----------------------------------------------------------------------------- pixels


def _frame_count(im: Image.Image) -> int:
    """How many frames a viewer plays: 1 unless the file is an animation (a phone JPEG may carry a
    second picture, a depth map or a preview; it is still a photo)."""
    return getattr(im, "n_frames", 1) if im.format in _ANIMATED_FORMATS else 1


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation in place (no copy when there is none), so that every later step
    sees the image the way viewers show it."""
    ImageOps.exif_transpose(im, in_place=True)
    return im


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode in {"P", "L", "RGB", "1"} and "transparency" in im.info)


def _grey_levels(im: Image.Image) -> np.ndarray:
    """float64 (h, w) in [0, 1] for the modes Pillow would clip to 8 bits (see the module rules)."""
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return a.astype(np.float64) / 65535
    if im.mode == "I":
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 65535:
            return a.astype(np.float64) / 65535
        if hi == lo:  # a constant outside 0..65535: clipped
            return np.full(a.shape, 1.0 if lo > 65535 else 0.0)
        return (a.astype(np.float64) - lo) / (hi - lo)
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=np.inf, neginf=0.0)  # mode "F"
    finite = a[np.isfinite(a)]
    scale = 1.0 if finite.size == 0 or finite.max() <= 1 else 255.0
    return np.clip(a / scale, 0.0, 1.0)


def _composite(rgba: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 4) -> (h, w, 3) over BACKGROUND, rounded exactly in integers."""
    rgb, a = rgba[..., :3].astype(np.uint32), rgba[..., 3:].astype(np.uint32)
    bg = np.asarray(BACKGROUND, dtype=np.uint32)
    return ((rgb * a + bg * (255 - a) + 127) // 255).astype(np.uint8)


def _rgb8(im: Image.Image) -> np.ndarray:
    """uint8 (h, w, 3) from any Pillow mode, transparency composited over BACKGROUND."""
    if im.mode in _HIGH_DEPTH:
        grey = np.rint(_grey_levels(im) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if _has_alpha(im):
        return _composite(np.asarray(im.convert("RGBA")))
    return np.array(im.convert("RGB"), dtype=np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """float32 (h, w) in [0, 1]: ITU-R 601 luma with Pillow's integer rounding, so white is 1."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 299 + g * 587 + b * 114 + 500) // 1000).astype(np.float32) / 255


def _given_by_alpha(rgba: np.ndarray) -> bool:
    """Whether only the alpha of a mask carries information: some pixels are transparent and the
    visible ones are all one colour (the colour of invisible pixels does not count)."""
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return False
    visible = rgba[..., :3][alpha > 0]
    return visible.size == 0 or int((visible.max(axis=0).astype(int) - visible.min(axis=0)).max()) <= _UNIFORM_LEVELS


def _mask01(im: Image.Image) -> np.ndarray:
    """float32 (h, w) in [0, 1] by the mask rules in the module docstring."""
    if im.mode in _HIGH_DEPTH:
        return _grey_levels(im).astype(np.float32)
    if not _has_alpha(im):
        return _luma(np.asarray(im.convert("RGB")))
    rgba = np.asarray(im.convert("RGBA"))
    if _given_by_alpha(rgba):
        return rgba[..., 3].astype(np.float32) / 255
    return _luma(_composite(rgba))


def _av_image(frame: Any) -> Image.Image:
    """An av.VideoFrame as an upright RGB image: its display rotation applied (as players do).
    Colours follow the frame's own colourspace and range tags (PyAV passes them to swscale)."""
    im = Image.fromarray(frame.to_ndarray(format="rgb24"))
    turn = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270,
            180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180}.get(round(frame.rotation))
    return im.transpose(turn) if turn is not None else im


def _pixels_of(item: Any, pixels: Callable[[Image.Image], np.ndarray], scaler: _Scaler | None = None) -> np.ndarray:
    """Decode one chosen frame (a PNG path, an upright Pillow image or an av.VideoFrame), its
    shorter side resized by `scaler` when given."""
    short_side = scaler.short_side if scaler is not None else None
    if isinstance(item, Path):
        with Image.open(item) as im:
            return pixels(_shrunk(_upright(im), short_side))
    if isinstance(item, Image.Image):
        return pixels(_shrunk(item, short_side))
    if scaler is not None:
        return pixels(scaler.av_image(item))
    return pixels(_av_image(item))


def _shrunk(im: Image.Image, short_side: int | None) -> Image.Image:
    """`im` with its shorter side resized to `short_side` (Lanczos); itself when already so."""
    if short_side is None or min(im.size) == short_side:
        return im
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if _has_alpha(im) else "RGB")
    return im.resize(_scaled_size(*im.size, short_side), Image.Resampling.LANCZOS)


class _Scaler:
    """Resizes the frames of one read so their shorter side is `short_side`: ffmpeg formats
    while converting to RGB, through one swscale context for every frame (a context per frame cost
    5 ms of set-up for each 360p frame, the scaling itself 0.2 ms)."""

    def __init__(self, short_side: int):
        self.short_side = short_side
        self._to_rgb = self._resize = None

    def av_image(self, frame: Any) -> Image.Image:
        """`_av_image` with the shorter side resized (it is the same before and after the
        display rotation). Converted to RGB at the frame's size, then resized: one context doing
        both misplaces yuv420p's chroma (module docstring)."""
        if self._to_rgb is None:
            from av.video.reformatter import VideoReformatter

            self._to_rgb, self._resize = VideoReformatter(), VideoReformatter()
        width, height = _scaled_size(frame.width, frame.height, self.short_side)
        shrink = width * height <= frame.width * frame.height
        full = self._to_rgb.reformat(frame, format="rgb24")
        rgb = self._resize.reformat(full, width=width, height=height, format="rgb24",
                                    interpolation="AREA" if shrink else "BICUBIC").to_ndarray()
        im = Image.fromarray(rgb)
        turn = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270,
                180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180}.get(round(frame.rotation))
        return im.transpose(turn) if turn is not None else im


# ----------------------------------------------------------------------------- sources


class _Source:
    """A video input as a stream of (time in seconds, undecoded frame), read lazily so that
    skipped frames cost no memory. `rate` is the source's own rate (or the caller's)."""

    def __init__(self, items: Iterable[tuple[float, Any]], rate: float, *,
                 has_audio: bool = False, start_s: float = 0.0):
        self.items = items
        self.rate = rate
        self.has_audio = has_audio
        self.start_s = start_s


def _natural_key(path: Path) -> tuple[list[Any], str]:
    """Sort key putting frame2.png before frame10.png, as file managers list them."""
    parts = re.split(r"([0-9]+)", path.name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], path.name


def _png_files(path: Path) -> list[Path]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")),
                   key=_natural_key)
    if not files:
        raise InputError(f"folder {path} holds no .png frames (a video folder is PNG frames named in order)")
    return files


def _folder_rate(files: list[Path]) -> float:
    """The rate `write_clip` stored in a PNG folder's frames, else DEFAULT_FPS. Read from the first
    frame used (every frame holds the same text), so hidden files never count."""
    fps = read_metadata(files[0]).get("fps")
    return float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0 else DEFAULT_FPS


def _folder_source(path: Path, source_fps: float | None) -> _Source:
    files = _png_files(path)
    rate = source_fps or _folder_rate(files)
    return _Source(((i / rate, f) for i, f in enumerate(files)), rate)


def _frame_ms(frame: Image.Image) -> float:
    """A gif/webp/apng frame's duration as browsers show it."""
    ms = frame.info.get("duration") or 0
    return float(ms) if ms > _MIN_FRAME_MS else 100.0


def _durations_ms(im: Image.Image) -> list[float]:
    """Every frame's duration. Pillow has to decode the frames for it: a gif to step through them,
    a webp because it sets a frame's duration only when the frame is loaded."""
    out = []
    for frame in ImageSequence.Iterator(im):
        frame.load()
        out.append(_frame_ms(frame))
    im.seek(0)
    return out


def _pillow_source(path: Path, im: Image.Image, source_fps: float | None) -> _Source:
    if _frame_count(im) <= 1:
        raise InputError(f"{path} is a still image, not a video (give it as an image)")
    rate = source_fps or 1000.0 / statistics.median(_durations_ms(im))

    def items() -> Iterator[tuple[float, Any]]:
        t_ms = 0.0
        for i, frame in enumerate(ImageSequence.Iterator(im)):
            upright = ImageOps.exif_transpose(frame)  # a copy: Pillow reuses `frame` for the next one
            yield (i / source_fps if source_fps else t_ms / 1000), upright
            t_ms += _frame_ms(frame)  # after the copy loaded it (a webp's duration comes with the pixels)

    return _Source(items(), rate)


def _video_stream(container: Any, path: Path) -> Any:
    """The main video stream; cover art (an attached picture) does not make a file a video."""
    import av

    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise InputError(f"{path} has no video stream (not a video)")
    return streams[0]


def _stream_rate(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else DEFAULT_FPS


def _av_source(path: Path, container: Any, source_fps: float | None, start_s: float = 0.0) -> _Source:
    stream = _video_stream(container, path)
    stream.thread_type = "AUTO"
    rate = source_fps or _stream_rate(stream)
    origin = container.start_time / 1e6 if container.start_time is not None else 0.0
    src = _Source((), rate, has_audio=bool(container.streams.audio))

    def items() -> Iterator[tuple[float, Any]]:
        for i, frame in enumerate(container.decode(stream)):
            if i == 0 and frame.time is not None:
                src.start_s = max(0.0, frame.time - origin)
            yield (i / rate if source_fps or frame.time is None else frame.time), frame

    def items_from() -> Iterator[tuple[float, Any]]:
        """The frames at or after start_s: seek to the keyframe before it, drop what precedes it.
        A seek that lands past the target (a container without an index) decodes from the start."""
        target = int(math.floor((origin + start_s) / stream.time_base)) if stream.time_base else 0
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is not None and (first.time is None or first.time - origin > start_s + _EPS_S):
            container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
            first = next(frames, None)
        kept = False
        while first is not None:
            if first.time is None:  # no timestamps after all: count frames from the start
                raise InputError(f"{path} has frames without timestamps: it cannot start at {start_s:g} s")
            if first.time - origin >= start_s - _EPS_S:
                if not kept:
                    src.start_s, kept = max(0.0, first.time - origin), True
                yield first.time, first
            first = next(frames, None)

    # With the caller's own rate, frame i is at i / rate: time is a count of frames, so no seeking.
    src.items = items_from() if start_s > 0 and not source_fps else items()
    return src


def _starting_at(src: _Source, start_s: float) -> _Source:
    """`src` from its first frame at or after `start_s` (seconds from its first frame's time)."""
    items = src.items

    def kept() -> Iterator[tuple[float, Any]]:
        t_first, found = None, False
        for t, item in items:
            t_first = t if t_first is None else t_first
            if t - t_first < start_s - _EPS_S:
                continue
            if not found:  # src.start_s: the first frame's time (an ffmpeg source sets it as it starts)
                src.start_s, found = src.start_s + (t - t_first), True
            yield t, item

    src.items = kept()
    return src


@contextmanager
def _source(path: Path, source_fps: float | None, start_s: float = 0.0) -> Iterator[_Source]:
    """The right source for `path`, open for the duration of the block, from `start_s` on."""
    later = (lambda src: _starting_at(src, start_s)) if start_s > 0 else (lambda src: src)  # noqa: E731
    if path.is_dir():
        yield later(_folder_source(path, source_fps))
    elif path.suffix.lower() in _PILLOW_SUFFIXES:
        with Image.open(path) as im:
            yield later(_pillow_source(path, im, source_fps))
    else:
        import av

        with av.open(str(path)) as container:
            src = _av_source(path, container, source_fps, start_s)
            yield later(src) if source_fps else src  # without a rate of its own it seeks


# ----------------------------------------------------------------------------- sampling


def _nearest(items: Iterable[tuple[float, Any]], fps: float) -> Iterator[Any]:
    """For each time t0 + k / fps (t0: the first frame's time), the frame nearest to it.

    A frame is chosen once the next one shows the target is nearer to it (a tie goes to the
    earlier frame), so only one frame is held back. Past the last frame, a target still gets it
    while it is within half a frame interval.
    """
    prev, prev_t, gap, k, t0 = None, 0.0, 0.0, 0, 0.0
    for t, item in items:
        if prev is None:
            t0 = t
        else:
            t = max(t, prev_t)  # a stamp out of order counts as the previous time
            while t0 + k / fps <= (prev_t + t) / 2 + _EPS_S:
                yield prev
                k += 1
            gap = t - prev_t
        prev, prev_t = item, t
    if prev is not None:
        while t0 + k / fps <= prev_t + gap / 2 + _EPS_S:
            yield prev
            k += 1


def _sample(items: Iterable[tuple[float, Any]], *, fps: float | None, stride: int | None) -> Iterator[Any]:
    if stride:
        return (item for i, (_, item) in enumerate(items) if i % stride == 0)
    if fps:
        return _nearest(items, fps)
    return (item for _, item in items)


def _decode(path: Path, pixels: Callable[[Image.Image], np.ndarray], what: str, *, frames: int | None,
            fps: float | None, stride: int | None, source_fps: float | None, start_s: float = 0.0,
            short_side: int | None = None) -> tuple[np.ndarray, _Source]:
    """Stream the chosen frames of `path` through `pixels`, stopping after `frames` of them."""
    out: list[np.ndarray] = []
    scaler = _Scaler(short_side) if short_side is not None else None
    with (_reading(path, what, "is it a valid mp4/gif/webp or a folder of PNGs?"),
          _source(path, source_fps, start_s) as src):
        for item in islice(_sample(src.items, fps=fps, stride=stride), frames):
            out.append(_pixels_of(item, pixels, scaler))
            if out[-1].shape != out[0].shape:
                raise InputError(f"frames in {path} differ in size (all frames must be the same size)")
    if not out:
        raise InputError(f"{what} {path} has no frames")
    return np.stack(out), src


# ----------------------------------------------------------------------------- probing


def _upright_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as shown: EXIF orientations 5-8 swap the sides."""
    w, h = im.size
    return (h, w) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)


def _probe_folder(path: Path) -> MediaInfo:
    files = _png_files(path)
    sizes = set()
    with _reading(path, "video", "is every frame a valid PNG?"):
        for f in files:  # headers only: cheap even for long folders
            with Image.open(f) as im:
                sizes.add(_upright_size(im))
        rate = _folder_rate(files)
    if len(sizes) > 1:
        raise InputError(f"frames in {path} differ in size (all frames must be the same size)")
    (w, h), = sizes
    return MediaInfo("video", w, h, len(files), rate, len(files) / rate, False)


def _probe_pillow(path: Path) -> MediaInfo:
    with Image.open(path) as im:
        w, h = _upright_size(im)
        n = _frame_count(im)
        if n <= 1:
            im.load()  # the one frame: a truncated file fails here
            return MediaInfo("image", w, h, 1, None, None, False)
        durations = _durations_ms(im)
        im.load()
    return MediaInfo("video", w, h, n, 1000.0 / statistics.median(durations), sum(durations) / 1000, False)


def _probe_av(path: Path) -> MediaInfo:
    import av

    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        first = next(container.decode(stream), None)
        if first is None:
            raise InputError(f"video {path} has no frames")
        w, h = first.width, first.height
        if round(first.rotation) in (90, -90):
            w, h = h, w
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = container.duration / 1e6 if container.duration is not None else None
        return MediaInfo("video", w, h, stream.frames or None, _stream_rate(stream), duration,
                         bool(container.streams.audio))


# ----------------------------------------------------------------------------- resizing


def fit_to_model(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize to `size` x `size` with Lanczos.

    Accepts uint8 (h, w, 3) or (t, h, w, 3), or a float mask (h, w) or (t, h, w); returns the same
    layout and dtype. Cropping (not padding or stretching) keeps the subject's proportions and puts
    no artificial borders in front of the model.
    """
    frames = np.asarray(frames)
    is_rgb = frames.ndim >= 3 and frames.shape[-1] == 3 and frames.dtype == np.uint8
    single = frames.ndim == (3 if is_rgb else 2)
    batch = frames[None] if single else frames
    h, w = batch.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    batch = batch[:, top : top + side, left : left + side]
    if side != size:
        out = []
        for f in batch:
            im = Image.fromarray(f) if is_rgb else Image.fromarray(f.astype(np.float32), mode="F")
            out.append(np.asarray(im.resize((size, size), Image.Resampling.LANCZOS)))
        batch = np.stack(out)
        if not is_rgb:  # Lanczos rings slightly past [0, 1]
            batch = np.clip(batch, 0.0, 1.0).astype(frames.dtype)
    return np.ascontiguousarray(batch[0] if single else batch)
