"""Position encodings for attention over frames and over whole clips.

Axis legend: t frames, h height, w width, d features, r rotated features.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange, repeat
from torch import Tensor

# Rotary wavelengths, in cells of the grid attended over: from 4 cells (an object's step between
# neighbouring cells) up to 64 (a whole clip of a large config), geometric in between.
ROPE_WAVELENGTHS = (4.0, 64.0)


def frame_positions(frames: int, dim: int, *, device=None) -> Tensor:
    """Sinusoidal positions of the frames, (t, d): attention over frames is otherwise blind to order."""
    pos = torch.arange(frames, device=device, dtype=torch.float32)
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(dim // 2, device=device) / (dim // 2))
    angles = pos[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def grid_positions(t: int, h: int, w: int, dim: int, *, device=None) -> Tensor:
    """Sinusoidal features of every (frame, row, column), ((t h w), 3 dim)."""
    axes = [frame_positions(n, dim, device=device) for n in (t, h, w)]
    ft, fy, fx = (repeat(a, f"n d -> {pattern} d", **sizes) for a, pattern, sizes in zip(
        axes, ("(n h w)", "(t n w)", "(t h n)"), (dict(h=h, w=w), dict(t=t, w=w), dict(t=t, h=h))))
    return torch.cat([ft, fy, fx], dim=-1)


def rope_angles(t: int, h: int, w: int, head_dim: int, *, device=None) -> Tensor:
    """Rotary angles of every (frame, row, column) for one attention head, ((t h w), r).

    Each axis gets head_dim // 6 frequencies (r = 3 of those); a query and a key rotated by them
    score by their offset in time and space, not by where they are. A text-dependent query can
    then ask for "the object one cell to my left, a frame earlier", which is what a motion word
    means; absolute positions added to the tokens cannot express that.
    """
    n = head_dim // 6
    if n == 0:
        raise ValueError(f"rotary positions need a head dim of at least 6, got {head_dim}")
    short, long = ROPE_WAVELENGTHS
    wavelengths = short * (long / short) ** (torch.arange(n, device=device) / max(n - 1, 1))
    freqs = 2 * math.pi / wavelengths  # (n,)
    axes = [torch.arange(size, device=device, dtype=torch.float32) for size in (t, h, w)]
    coords = rearrange(torch.stack(torch.meshgrid(*axes, indexing="ij")), "xyz t h w -> (t h w) xyz")
    return rearrange(coords[:, :, None] * freqs, "l xyz n -> l (xyz n)")


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate feature pairs (i, i + r) of x (..., l, d) by angles (l, r); features past 2r pass."""
    r = angles.shape[-1]
    if 2 * r > x.shape[-1]:
        raise ValueError(f"{r} rotary angles need at least {2 * r} features, got {x.shape[-1]}")
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2, rest = x[..., :r], x[..., r : 2 * r], x[..., 2 * r :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)
