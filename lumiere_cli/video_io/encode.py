"""Encoding clips: mp4 (H.264 through the ffmpeg binary that imageio-ffmpeg ships), gif and webp
(Pillow), and "png", a folder of numbered PNG frames; each with its parameters inside the file.

Every writer is atomic (`atomic.staged`): an interrupted run leaves no half-written clip behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import atomic
from ..errors import UsageError
from .audio import AudioSpan, mux_audio
from .metadata import EXIF_DESCRIPTION, PNG_KEY, metadata_text

FORMATS = ("mp4", "gif", "webp", "png")


def enlarge(frames: np.ndarray, scale: int, *, filter: str = "nearest") -> np.ndarray:
    """Enlarge uint8 (t, h, w, 3) by an integer factor for viewing; nearest keeps the model's
    pixels visible as crisp squares, lanczos smooths them."""
    if scale <= 1:
        return frames
    if filter == "nearest":
        return frames.repeat(scale, axis=1).repeat(scale, axis=2)
    t, h, w, _ = frames.shape
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((w * scale, h * scale), Image.Resampling.LANCZOS)) for f in frames]
    )


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where a clip's parameters go: the clip's own name plus `.json` (works for folders too)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | os.PathLike, data: dict[str, Any], *, overwrite: bool = True) -> Path:
    """Write `data` as pretty JSON to `path`, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    try:
        return atomic.write_text(path, text, replace=overwrite)
    except FileExistsError:
        raise UsageError(f"{path} already exists (pass --overwrite to replace it, or choose another name)") from None


def write_clip(
    path: str | os.PathLike,
    frames: np.ndarray,
    *,
    fps: float,
    format: str | None = None,
    metadata: dict[str, Any] | None = None,
    display_scale: int = 1,
    display_filter: str = "nearest",
    overwrite: bool = False,
    audio: AudioSpan | None = None,
) -> Path:
    """Write uint8 (t, h, w, 3) to `path` as mp4, gif, webp or png (a folder of frames), with
    `metadata` inside the file. Atomic; refuses to replace an existing path unless `overwrite`.

    `audio`: a stretch of a source's sound to put under an mp4 (muxed before the final rename, so
    the clip appears with its sound or not at all). Other formats have no sound and ignore it, as
    does a source without sound: `has_audio(path)` tells the caller what was kept."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (t, h, w, 3), got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    if not overwrite and os.path.lexists(path):
        raise UsageError(f"{path} already exists (pass --overwrite to replace it, or choose another name)")
    if not path.parent.is_dir():
        raise UsageError(f"output directory does not exist: {path.parent} (create it first)")
    frames = enlarge(frames, display_scale, filter=display_filter)
    text = metadata_text(metadata or {})
    writer = {"mp4": _write_mp4, "gif": _write_gif, "webp": _write_webp, "png": _write_png_folder}[fmt]
    try:
        with atomic.staged(path, replace=overwrite) as tmp:
            writer(tmp, frames, fps, text)
            if audio is not None and fmt == "mp4":
                mux_audio(tmp, audio)
    except FileExistsError:
        raise UsageError(f"{path} already exists (pass --overwrite to replace it, or choose another name)") from None
    except PermissionError as e:
        raise UsageError(f"cannot write {path}: permission denied (choose a writable --out-dir)") from e
    return path


def _write_mp4(path: Path, frames: np.ndarray, fps: float, text: str) -> None:
    import imageio_ffmpeg

    # yuv420p halves the chroma resolution, so H.264 needs even sides: pad by repeating the edge.
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = frames.shape[1:3]
    gen = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",  # the pixel format every browser decodes
        quality=8,
        macro_block_size=1,  # we padded to even sizes ourselves; 16 would rescale the clip
        ffmpeg_log_level="error",
        # faststart puts the index first so a browser can play before the download ends;
        # -f is explicit because the temporary name's suffix is not ".mp4".
        output_params=["-movflags", "+faststart", "-metadata", f"comment={text}", "-f", "mp4"],
    )
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f).tobytes())
    gen.close()


def _write_gif(path: Path, frames: np.ndarray, fps: float, text: str) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
        loop=0, comment=text.encode("utf-8"), optimize=False,
    )


def _write_webp(path: Path, frames: np.ndarray, fps: float, text: str) -> None:
    images = [Image.fromarray(f) for f in frames]
    exif = Image.Exif()
    exif[EXIF_DESCRIPTION] = text
    images[0].save(
        path, format="WEBP", save_all=True, append_images=images[1:], duration=round(1000 / fps),
        loop=0, lossless=True, exif=exif.tobytes(),
    )


def _write_png_folder(path: Path, frames: np.ndarray, fps: float, text: str) -> None:
    path.mkdir()
    info = PngInfo()
    info.add_text(PNG_KEY, text)
    width = max(4, len(str(len(frames) - 1)))
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"frame_{i:0{width}d}.png", format="PNG", pnginfo=info)


