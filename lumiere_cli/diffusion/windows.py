"""Temporal MultiDiffusion with every window in one batched call, and the same cut without the
averaging (to measure what the averaging buys).

Axis legend: b batch, c channels, t frames, h height, w width, n windows.
"""

from __future__ import annotations

import torch
from einops import rearrange

from .wrappers import TemporalWindows, _batch_sigma, stacked_kwargs, window_starts

__all__ = ["BatchedTemporalWindows"]


class BatchedTemporalWindows(TemporalWindows):
    """`TemporalWindows` (same windows, same per-frame average, the same numbers up to batched
    kernels' rounding) with the windows stacked along the batch: one network call per step for
    `chunk` windows at a time (None: all), which keeps the cores busier than one window at a time.

    average=False pastes the windows' estimates one after the other instead of averaging them (a
    frame shared by two windows takes the later window's): what temporal MultiDiffusion replaces,
    whose clips jump where a window starts.
    """

    def __init__(self, model, window: int, overlap: int, time_kwargs: tuple[str, ...] = ("cond_video", "cond_mask"),
                 *, chunk: int | None = None, average: bool = True):
        super().__init__(model, window, overlap, time_kwargs)
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be at least 1 window, got {chunk}")
        self.chunk = chunk
        self.average = average

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **kwargs) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"TemporalWindows needs videos (b, c, t, h, w), got shape {tuple(x.shape)}")
        b, frames = x.shape[0], x.shape[2]
        if self.window >= frames:
            return self.model(x, sigma, **kwargs)
        sigma = _batch_sigma(sigma, x)
        starts = window_starts(frames, self.window, self.overlap)
        per_call = self.chunk or len(starts)
        total = count = None
        for first in range(0, len(starts), per_call):
            group = starts[first:first + per_call]
            n = len(group)

            # 1. cut the windows and stack them along the batch, window-major: row k * b + i
            def cut(v: torch.Tensor) -> torch.Tensor:
                return torch.cat([v[:, :, s:s + self.window] for s in group])  # (n b, c, window, h, w)

            window_kwargs = stacked_kwargs(kwargs, self.time_kwargs, cut, b, n)
            # 2. denoise them in one call
            d = self.model(cut(x), sigma.repeat(n), **window_kwargs)
            d = rearrange(d, "(n b) c t h w -> n b c t h w", n=n)
            if total is None:
                total = d.new_zeros(b, d.shape[2], frames, *d.shape[4:])  # (b, c, t, h, w)
                count = d.new_zeros(frames)
            # 3. accumulate (average) or paste (no average) each window's estimate
            for k, s in enumerate(group):
                sl = slice(s, s + self.window)
                if self.average:
                    total[:, :, sl] += d[k]
                    count[sl] += 1
                else:
                    total[:, :, sl] = d[k]
                    count[sl] = 1
        return total / rearrange(count, "t -> 1 1 t 1 1")
