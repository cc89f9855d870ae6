"""The model's pixel range, [-1, 1], and the two ranges it meets: uint8 files and [0, 1] renders.

One pair of converters, so that the scaling is written once (and rounds the same way) everywhere.
"""

from __future__ import annotations

import numpy as np
import torch


def from_uint8(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1], same layout."""
    x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    return x.float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 in [0, 255] (clamped, rounded to nearest), same layout."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_unit(x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """float in [0, 1] (the renderer's range) -> [-1, 1]; `inplace` spares a copy of a big batch."""
    return x.mul_(2).sub_(1) if inplace else x * 2 - 1
