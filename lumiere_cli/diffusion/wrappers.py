"""Guidance, known-pixel pasting and temporal windows, as wrappers with the denoiser's signature.

Each wrapper is called as `wrapper(x, sigma (b,), **kwargs) -> denoised`, exactly like
`Denoiser`, so they compose: `CFGDenoiser(PasteKnown(TemporalWindows(denoiser, ...), ...), ...)`.

Axis legend: b batch, c channels, t frames, h height, w width, l text tokens.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from einops import rearrange
from torch import nn

__all__ = ["CFGDenoiser", "PasteKnown", "TemporalWindows", "WindowPasses", "loop_starts", "window_starts"]

# (a window's frame indices, the noise level) -> [(kwargs replacing the call's, per-frame weights)]
WindowPasses = Callable[[torch.Tensor, float], list[tuple[dict[str, Any], "torch.Tensor | None"]]]


def _batch_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


def _match_batch(v: torch.Tensor, b: int, name: str) -> torch.Tensor:
    """Repeat a tensor along dim 0 to batch b (1 -> b, or b/k copies when CFG doubled the batch)."""
    n = v.shape[0]
    if n == b:
        return v
    if b % n:
        raise ValueError(f"{name} has batch {n}, which does not divide the batch {b}")
    return v.repeat(b // n, *[1] * (v.ndim - 1))


class CFGDenoiser(nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022) with a negative prompt.

    `uncond` holds the text kwargs of the negative (or empty) prompt, e.g. {context, pooled,
    context_mask}; the call's kwargs hold the same keys for the prompt, plus shared kwargs
    (cond_video, cond_mask) used by both branches. Both branches run in ONE batched call:

        1. x2 = [x, x], text2 = [uncond, cond], shared2 = [shared, shared]  (cat on dim 0)
        2. D_u, D_c = model(x2, [sigma, sigma], ...).chunk(2)
        3. D = D_u + scale * (D_c - D_u)

    `low = (below, scale_low)` guides samples whose sigma is under `below` with `scale_low`
    instead, and `high = (above, scale_high)` those over `above`: a guidance scale by noise level,
    as Kynkaanniemi et al. 2024 limit guidance to an interval of noise levels. Layout and motion
    are drawn at middle noise and need the guidance; at low noise a high scale only sharpens the
    grain and distorts the edges, and on the first, large steps of a short schedule it pushes the
    background's brightness to an extreme (README, Performance).

    A call whose scales are all 1 returns the conditional prediction with one plain call. `uncond`
    tensors with batch 1 are repeated to the call's batch; token lengths must match (same tokenizer).
    """

    def __init__(self, model: nn.Module, scale: float, uncond: dict[str, Any],
                 low: tuple[float, float] | None = None, high: tuple[float, float] | None = None):
        super().__init__()
        self.model = model
        self.scale = float(scale)
        self.uncond = dict(uncond)
        self.low = None if low is None or float(low[1]) == self.scale else (float(low[0]), float(low[1]))
        self.high = None if high is None or float(high[1]) == self.scale else (float(high[0]), float(high[1]))

    def scales(self, sigma: torch.Tensor) -> torch.Tensor:
        """(b,) the guidance scale of each sample at its noise level."""
        scale = torch.full(sigma.shape, self.scale, dtype=torch.float32, device=sigma.device)
        if self.low is not None:
            scale = torch.where(sigma < self.low[0], torch.full_like(scale, self.low[1]), scale)
        if self.high is not None:
            scale = torch.where(sigma > self.high[0], torch.full_like(scale, self.high[1]), scale)
        return scale

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **kwargs) -> torch.Tensor:
        b = x.shape[0]
        sigma = _batch_sigma(sigma, x)
        scale = self.scales(sigma)
        if bool((scale == 1).all()):
            return self.model(x, sigma, **kwargs)
        missing = set(self.uncond) - set(kwargs)
        if missing:
            raise ValueError(f"conditional kwargs missing for guidance: {', '.join(sorted(missing))}")
        # 1. batch the unconditional branch first, the conditional second
        joint = {}
        for key, value in kwargs.items():
            if key in self.uncond:
                joint[key] = self._cat_text(key, self.uncond[key], value, b)
            elif isinstance(value, torch.Tensor):
                joint[key] = torch.cat([value, value])
            else:
                joint[key] = value
        # 2. one call for both branches
        d_uncond, d_cond = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), **joint).chunk(2)
        # 3. guidance (Ho & Salimans eq. 6, in x0 space)
        scale = rearrange(scale, "b -> b" + " 1" * (x.ndim - 1)).to(d_cond.dtype)
        return d_uncond + scale * (d_cond - d_uncond)

    @staticmethod
    def _cat_text(
        key: str, uncond: torch.Tensor | None, cond: torch.Tensor | None, b: int
    ) -> torch.Tensor | None:
        if uncond is None and cond is None:
            return None
        # A None mask means "every token is valid": make it explicit to batch it with a real mask.
        if uncond is None or cond is None:
            other = cond if uncond is None else uncond
            if other.dtype != torch.bool:
                raise ValueError(f"{key} is None for one branch of guidance but not the other")
            filled = torch.ones_like(other)
            uncond, cond = (filled, cond) if uncond is None else (uncond, filled)
        uncond, cond = _match_batch(uncond, b, key), _match_batch(cond, b, key)
        if uncond.shape[1:] != cond.shape[1:]:
            raise ValueError(
                f"{key}: negative prompt shape {tuple(uncond.shape[1:])} differs from prompt shape "
                f"{tuple(cond.shape[1:])}; encode both with the same tokenizer and context length"
            )
        return torch.cat([uncond, cond])


class PasteKnown(nn.Module):
    """Replace the denoised estimate with known pixels wherever `known_mask` is 1.

        D = known_mask * known + (1 - known_mask) * D_model

    Applied at every step, so whatever the sampler, its final step into sigma = 0 returns the
    known pixels unchanged. `known_mask` is 1 = keep (the opposite of the CLI's "1 = generate"),
    float or bool, broadcastable to x (e.g. (b, 1, t, h, w)). Batches that are a multiple of
    known's (CFG's doubled batch) get known repeated.

    Without `known`, the call's own `cond_video` and `cond_mask` (the <C, M> input, C = known * M)
    are pasted: then the wrapper works on whatever slice of time TemporalWindows hands it.
    """

    def __init__(self, model: nn.Module, known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None):
        super().__init__()
        if (known is None) != (known_mask is None):
            raise ValueError("give both known and known_mask, or neither (then cond_video and cond_mask are used)")
        self.model = model
        self.known = known
        self.known_mask = known_mask

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **kwargs) -> torch.Tensor:
        denoised = self.model(x, sigma, **kwargs)
        b = denoised.shape[0]
        if self.known is None:
            known, mask = kwargs["cond_video"], kwargs["cond_mask"]
        else:
            known, mask = self.known, self.known_mask
        known = _match_batch(known, b, "known").to(denoised)
        mask = _match_batch(mask, b, "known_mask").to(denoised)
        return mask * known + (1 - mask) * denoised


def stacked_kwargs(kwargs: dict[str, Any], cut_keys: tuple[str, ...], cut, b: int, n: int) -> dict[str, Any]:
    """Keyword arguments for n pieces of a batch of b stacked along the batch (piece-major): `cut`
    applied to the tensors named in `cut_keys`, other b-sized tensors repeated n times, the rest as
    given. Temporal windows and spatial tiles cut their inputs this way."""
    out = {}
    for k, v in kwargs.items():
        if k in cut_keys and isinstance(v, torch.Tensor):
            out[k] = cut(v)
        elif isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == b:
            out[k] = v.repeat(n, *[1] * (v.ndim - 1))
        else:
            out[k] = v
    return out


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each temporal window: the fewest windows of `window` frames that cover
    `frames` with at least `overlap` frames shared by neighbours, spread evenly, the first at 0 and
    the last aligned to the end."""
    if not 0 <= overlap < window:
        raise ValueError(f"need 0 <= overlap < window, got overlap={overlap}, window={window}")
    if window >= frames:
        return [0]
    # n - 1 gaps of at most (window - overlap) frames must span frames - window.
    n = math.ceil((frames - window) / (window - overlap)) + 1
    # Rounding an even spread keeps every gap <= window - overlap (an integer upper bound).
    return [round(i * (frames - window) / (n - 1)) for i in range(n)]


def loop_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window on a circular timeline (frame frames-1 is followed by frame 0):
    the fewest evenly spread windows with at least `overlap` frames shared by neighbours, and at
    least two, so that some window always runs across the end of the clip into its start."""
    if not 0 <= overlap < window <= frames:
        raise ValueError(f"a loop needs 0 <= overlap < window <= frames, got {overlap}, {window}, {frames}")
    n = max(2, math.ceil(frames / (window - overlap)))
    return [round(i * frames / n) for i in range(n)]


class TemporalWindows(nn.Module):
    """Temporal MultiDiffusion (Bar-Tal et al. 2023; Lumiere §3.3) for clips (b, c, t, h, w).

    At every call:
        1. cut t into overlapping windows (`window_starts`), slicing x and the time-axis kwargs
           (`time_kwargs`, dim 2) the same way; other kwargs are passed whole;
        2. denoise each window separately;
        3. average the windows' estimates frame by frame, which is the least-squares solution
           argmin_D sum_w ||D[window w] - D_w||^2 (MultiDiffusion eq. 5 with uniform weights).

    window >= t is one plain call.

    loop: the timeline is a circle (`loop_starts`): windows run across the end into the start, so
    the last frame is denoised as the neighbour of the first.
    starts: a loop's windows' first frames, instead of the evenly spread ones. A single window of
    the clip's length starting half-way is the clip rolled by half: its end meets its start in the
    middle of the window (how `pipeline` regenerates a loop's seam).
    window_passes(frames, sigma) -> [(kwargs, weights), ...]: the window holding those frames is
    denoised once per pair, the kwargs replacing the call's (a prompt), and each estimate counts
    with its (len(frames),) weights in its frames' averages (None: 1 everywhere). A prompt schedule
    runs the prompt of every span a window touches over the whole window, each counting little in
    the other spans' frames: both see the same noisy frames, so the clip changes where the schedule
    says and stays one clip across the change.
    """

    def __init__(
        self,
        model: nn.Module,
        window: int,
        overlap: int,
        time_kwargs: tuple[str, ...] = ("cond_video", "cond_mask"),
        *,
        loop: bool = False,
        window_passes: WindowPasses | None = None,
        starts: Sequence[int] | None = None,
    ):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        if not 0 <= overlap < window:
            raise ValueError(f"overlap must be in [0, window), got overlap={overlap}, window={window}")
        self.model = model
        self.window = window
        self.overlap = overlap
        self.time_kwargs = tuple(time_kwargs)
        self.loop = loop
        self.window_passes = window_passes
        if starts is not None and not loop:
            raise ValueError("window starts are given for loops only")
        self.starts = None if starts is None else tuple(starts)

    def windows(self, frames: int) -> list[torch.Tensor]:
        """The frame indices of each window, in order."""
        if self.loop:
            starts = self.starts if self.starts is not None else loop_starts(frames, self.window, self.overlap)
            return [torch.arange(s, s + self.window) % frames for s in starts]
        if self.window >= frames:
            return [torch.arange(frames)]
        return [torch.arange(s, s + self.window) for s in window_starts(frames, self.window, self.overlap)]

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **kwargs) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"TemporalWindows needs videos (b, c, t, h, w), got shape {tuple(x.shape)}")
        frames = x.shape[2]
        windows = self.windows(frames)
        if len(windows) == 1 and self.window_passes is None and torch.equal(windows[0], torch.arange(frames)):
            return self.model(x, sigma, **kwargs)
        level = float(torch.as_tensor(sigma).max())
        total, count = None, x.new_zeros(frames)
        for idx in windows:
            # 1. slice the window in time (a loop's last window wraps around to the first frames)
            idx = idx.to(x.device)
            sliced = {
                k: v.index_select(2, idx) if k in self.time_kwargs and isinstance(v, torch.Tensor) else v
                for k, v in kwargs.items()
            }
            passes = self.window_passes(idx, level) if self.window_passes is not None else [({}, None)]
            for replaced, w in passes:
                # 2. denoise it (once per pass)
                d = self.model(x.index_select(2, idx), sigma, **(sliced | replaced))
                if total is None:
                    total = d.new_zeros(*d.shape[:2], frames, *d.shape[3:])  # (b, c, t, h, w)
                if w is None:  # the plain average: no weighted copy of every estimate
                    total.index_add_(2, idx, d)
                    count.index_add_(0, idx, torch.ones_like(idx, dtype=count.dtype))
                else:
                    w = w.to(d)
                    total.index_add_(2, idx, d * rearrange(w, "t -> 1 1 t 1 1"))
                    count.index_add_(0, idx, w.to(count))
        # 3. per-frame (weighted) average of the overlapping estimates
        return total / rearrange(count, "t -> 1 1 t 1 1").to(total)
