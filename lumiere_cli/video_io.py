"""Reading and writing images, videos and masks: the only module that touches codecs.

Arrays outside the library are uint8 (t, h, w, 3) for video, uint8 (h, w, 3) for an image and
float32 (h, w) or (t, h, w) in [0, 1] for a mask (white = 1 = generate, black = 0 = keep).

Formats: mp4 (H.264 through the ffmpeg binary that imageio-ffmpeg ships), gif and webp (Pillow), and
"png", a folder of numbered PNG frames. Every writer is atomic: it writes under a temporary name in
the destination's own directory and renames when complete, so an interrupted run leaves no
half-written clip behind.

Resizing rule for user images and videos (`fit_to_model`): centre-crop to a square (the model is
square), then resize to the model's size with Lanczos filtering (area-like when shrinking).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from lumiere_cli.errors import InputError, UsageError

FORMATS = ("mp4", "gif", "webp", "png")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".webp"}
DEFAULT_FPS = 8.0  # for a folder of PNGs that does not say its own rate
_EXIF_DESCRIPTION = 0x010E  # ImageDescription: where webp keeps the parameters
_PNG_KEY = "Comment"  # standard PNG text keyword, shown by most image viewers


# ----------------------------------------------------------------------------- reading


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
        raise InputError(f"cannot read image {path}: {_short(e)} (is it a valid PNG/JPEG?)") from e


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
        raise InputError(f"cannot read video {path}: {_short(e)} (is it a valid mp4/gif/webp?)") from e
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
            raise InputError(f"cannot read mask {path}: {_short(e)} (use a black-and-white PNG)") from e
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


# ----------------------------------------------------------------------------- writing


def metadata_text(metadata: dict[str, Any]) -> str:
    """The one-line text stored inside a file: the parameters as compact JSON."""
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where a clip's parameters go: the clip's own name plus `.json` (works for folders too)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | os.PathLike, data: dict[str, Any], *, overwrite: bool = True) -> Path:
    """Write `data` as pretty JSON to `path`, atomically."""
    path = Path(path)
    _refuse_existing(path, overwrite)
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    tmp = _temp_name(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


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
) -> Path:
    """Write uint8 (t, h, w, 3) to `path` as mp4, gif, webp or png (a folder of frames), with
    `metadata` inside the file. Atomic; refuses to replace an existing path unless `overwrite`."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (t, h, w, 3), got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    _refuse_existing(path, overwrite)
    if not path.parent.is_dir():
        raise UsageError(f"output directory does not exist: {path.parent} (create it first)")
    frames = enlarge(frames, display_scale, filter=display_filter)
    text = metadata_text(metadata or {})
    tmp = _temp_name(path)
    try:
        if fmt == "mp4":
            _write_mp4(tmp, frames, fps, text)
        elif fmt == "gif":
            _write_gif(tmp, frames, fps, text)
        elif fmt == "webp":
            _write_webp(tmp, frames, fps, text)
        else:
            _write_png_folder(tmp, frames, text)
        _replace(tmp, path)
    except PermissionError as e:
        raise UsageError(f"cannot write {path}: permission denied (choose a writable --out-dir)") from e
    finally:
        _remove(tmp)
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
    exif[_EXIF_DESCRIPTION] = text
    images[0].save(
        path, format="WEBP", save_all=True, append_images=images[1:], duration=round(1000 / fps),
        loop=0, lossless=True, exif=exif.tobytes(),
    )


def _write_png_folder(path: Path, frames: np.ndarray, text: str) -> None:
    path.mkdir()
    info = PngInfo()
    info.add_text(_PNG_KEY, text)
    width = max(4, len(str(len(frames) - 1)))
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"frame_{i:0{width}d}.png", format="PNG", pnginfo=info)


# ----------------------------------------------------------------------------- metadata


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parameters stored inside a clip written by `write_clip` ({} when there are none)."""
    path = _check_file(Path(path), "file")
    text: str | None = None
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
            if files:
                with Image.open(files[0]) as im:
                    text = im.info.get(_PNG_KEY)
        elif path.suffix.lower() in {".png", ".gif"}:
            with Image.open(path) as im:
                text = im.info.get(_PNG_KEY) if path.suffix.lower() == ".png" else im.info.get("comment")
        elif path.suffix.lower() == ".webp":
            with Image.open(path) as im:
                text = im.getexif().get(_EXIF_DESCRIPTION)
        else:
            text = _ffmpeg_comment(path)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read metadata from {path}: {_short(e)}") from e
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


# ----------------------------------------------------------------------------- helpers


def _temp_name(path: Path) -> Path:
    # Same directory as the destination so the final os.replace is a rename, never a copy.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    os.unlink(name)  # only the unique name is wanted; writers create the file or folder
    return Path(name)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists (pass --overwrite to replace it, or choose another name)")


def _replace(tmp: Path, path: Path) -> None:
    if path.is_dir() and not tmp.is_dir() or tmp.is_dir() and path.exists():
        # os.replace cannot put a folder over an existing path: move the old one aside first,
        # so the destination is never missing a complete clip for longer than two renames.
        old = _temp_name(path)
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _short(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__
