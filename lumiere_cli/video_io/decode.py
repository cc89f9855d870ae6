"""Decoding the user's images, videos and masks into arrays (see the package docstring for layouts).

Resizing rule for user images and videos (`fit_to_model`): centre-crop to a square (the model is
square), then resize to the model's size with Lanczos filtering (area-like when shrinking).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ..errors import InputError
from .metadata import read_metadata, short_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".webp"}
DEFAULT_FPS = 8.0  # for a folder of PNGs that does not say its own rate

def _check_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path} (check the path)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} is not readable: {path} (check its permissions)")
    return path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 (h, w, 3); the first frame of an animated file."""
    path = _check_file(Path(path), "image")
    if path.is_dir():
        raise InputError(f"expected an image file, got a folder: {path}")
    try:
        with Image.open(path) as im:
            im.seek(0)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot read image {path}: {short_error(e)} (is it a valid PNG/JPEG?)") from e


def read_video(path: str | os.PathLike, *, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """A video as (uint8 (t, h, w, 3), fps): mp4 and other ffmpeg formats, gif, webp, or a folder
    of PNG frames (read in name order)."""
    path = _check_file(Path(path), "video")
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            frames, fps = _read_png_folder(path, max_frames)
        elif suffix in {".gif", ".webp"} or suffix in IMAGE_SUFFIXES:
            frames, fps = _read_pil_sequence(path, max_frames)
        else:
            frames, fps = _read_ffmpeg(path, max_frames)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, RuntimeError, SyntaxError, StopIteration) as e:
        raise InputError(f"cannot read video {path}: {short_error(e)} (is it a valid mp4/gif/webp?)") from e
    if len(frames) == 0:
        raise InputError(f"video {path} has no frames")
    return frames, fps


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask as float32 in [0, 1], white = 1 = generate: (h, w) from an image, (t, h, w) from a
    video or a folder of frames."""
    path = Path(path)
    suffix = path.suffix.lower()
    is_video = path.is_dir() or suffix in VIDEO_SUFFIXES - {".webp", ".gif"} or _is_animated(path)
    if is_video:
        frames, _ = read_video(path)
        gray = frames.astype(np.float32).mean(axis=-1)  # (t, h, w)
    else:
        _check_file(path, "mask")
        try:
            with Image.open(path) as im:
                gray = np.asarray(im.convert("L"), dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise InputError(f"cannot read mask {path}: {short_error(e)} (use a black-and-white PNG)") from e
    return np.clip(gray / 255.0, 0.0, 1.0).astype(np.float32)


def _is_animated(path: Path) -> bool:
    if path.suffix.lower() not in {".gif", ".webp"} or not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except (UnidentifiedImageError, OSError, ValueError):
        return False  # read_image will report it properly


def _read_png_folder(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise InputError(f"folder {path} holds no .png frames")
    files = files[:max_frames] if max_frames else files
    frames = [read_image(f) for f in files]
    if len({f.shape for f in frames}) != 1:
        raise InputError(f"frames in {path} differ in size (all frames must be the same size)")
    meta = read_metadata(path)
    return np.stack(frames), float(meta.get("fps", DEFAULT_FPS))


def _read_pil_sequence(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    frames, durations = [], []
    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            frames.append(np.asarray(frame.convert("RGB"), dtype=np.uint8).copy())
            durations.append(frame.info.get("duration", im.info.get("duration", 0)) or 0)
            if max_frames and len(frames) >= max_frames:
                break
    mean_ms = float(np.mean(durations)) if durations else 0.0
    return np.stack(frames), (1000.0 / mean_ms if mean_ms > 0 else DEFAULT_FPS)


def _read_ffmpeg(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(gen)
        w, h = meta["size"]
        frames = []
        for buf in gen:
            frames.append(np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3))
            if max_frames and len(frames) >= max_frames:
                break
    finally:
        gen.close()
    return np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8), float(meta["fps"])


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
