"""Buckets: the (frames, size) shapes a stage trains on, one shape per batch.

The model's config decides which shapes exist: a frame count must be a multiple of the STUNet's
temporal factor (2**temporal_levels) and a size a multiple of its spatial one (patch x
2**(levels - 1)). A stage trains the buckets it is given (`TrainConfig.buckets`), by default the
model's own clip; the text-to-image stage trains single frames (frames 1) at each bucket's size.

Each entry goes to one bucket: the longest clip its span can give at the model's fps, then the
largest size its shorter side reaches without enlarging (when it reaches none, the smallest size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..config import ModelConfig
from ..errors import UsageError
from .media import Scanned

IMAGE_STAGES = ("t2i",)  # stages that train single frames


@dataclass(frozen=True, order=True)
class Bucket:
    frames: int
    size: int

    @property
    def key(self) -> str:
        """`8x32`: frames x size."""
        return f"{self.frames}x{self.size}"


def parse_bucket(text: str) -> tuple[int, int]:
    """`16x32` (frames x size) as (16, 32); a one-line UsageError otherwise."""
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"a bucket is FRAMESxSIZE, e.g. 16x32; got {text!r}")
    return int(parts[0]), int(parts[1])


def stage_buckets(cfg: ModelConfig, stage: str, asked: Iterable[Sequence[int]] | None = None) -> list[Bucket]:
    """The buckets a stage trains, largest first; a one-line UsageError for a shape the model
    cannot take. `asked`: (frames, size) pairs; None: the model's own clip."""
    pairs = [(cfg.frames, cfg.size)] if asked is None else [tuple(p) for p in asked]
    if not pairs:
        raise UsageError("buckets must name at least one (frames, size) pair")
    buckets = set()
    m, s = cfg.unet.frame_multiple, cfg.unet.size_multiple
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise UsageError(f"a bucket is a pair of whole numbers (frames, size), got {list(pair)!r}")
        frames, size = pair
        if size < s or size % s:
            raise UsageError(f"bucket {frames}x{size}: the size must be a multiple of {s} "
                             f"(patch {cfg.unet.patch} x 2**{len(cfg.unet.channels) - 1}), e.g. {s}, {2 * s}, {4 * s}")
        if stage in IMAGE_STAGES:
            frames = 1
        elif frames < m or frames % m:
            raise UsageError(f"bucket {frames}x{size}: frames must be a multiple of {m} (2**temporal_levels), "
                             f"e.g. {m}, {2 * m}, {4 * m}")
        buckets.add(Bucket(frames, size))
    return sorted(buckets, reverse=True)


def fit(item: Scanned, buckets: Sequence[Bucket], fps: float) -> Bucket | str:
    """The bucket `item` trains in, or why it fits none (one short clause)."""
    available = item.available(fps)
    fitting = [b for b in buckets if b.frames <= available]
    if not fitting:
        shortest = min(b.frames for b in buckets)
        if item.kind == "image":
            return f"an image is one frame, a clip needs {shortest} (images train the t2i stage)"
        return (f"too short: {item.duration_s:.2f} s gives {available} frames at {fps:g} fps, "
                f"a clip needs {shortest}")
    longest = max(b.frames for b in fitting)
    sizes = sorted(b.size for b in fitting if b.frames == longest)
    short = min(item.width, item.height)
    reached = [s for s in sizes if s <= short]
    return Bucket(longest, reached[-1] if reached else sizes[0])


__all__ = ["Bucket", "IMAGE_STAGES", "fit", "parse_bucket", "stage_buckets"]
