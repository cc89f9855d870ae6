"""What the SSR is measured by: fidelity (PSNR, SSIM) against renders at the output size next to
bicubic and Lanczos enlargement, sharpness (edge width), and jumps at temporal window boundaries.

Axis legend: t frames, h height, w width, c channels. Clips are uint8 (t, h, w, 3) arrays (or
float tensors of the same layout in 0-255).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from ..diffusion.wrappers import window_starts


def _float(clip) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(clip)) if not isinstance(clip, torch.Tensor) else clip
    return x.double()


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB over the whole clip (peak 255); inf for equal clips."""
    mse = float(((_float(a) - _float(b)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim(a, b) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, peak 255)
    over frames and RGB channels, on the valid part of each frame."""
    x = rearrange(_float(a), "t h w c -> (t c) 1 h w")
    y = rearrange(_float(b), "t h w c -> (t c) 1 h w")
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :])[None, None]
    blur = lambda z: F.conv2d(z, kernel)  # noqa: E731 - valid part only, as the reference code
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def enlarge_pil(clip: np.ndarray, factor: int, method: str) -> np.ndarray:
    """Each frame enlarged `factor` times by Pillow's "bicubic" or "lanczos" filter."""
    from PIL import Image

    resample = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}[method]
    t, h, w, _ = clip.shape
    return np.stack([np.asarray(Image.fromarray(f).resize((w * factor, h * factor), resample)) for f in clip])


def edge_width(clip, *, min_contrast: float = 40.0) -> float:
    """Mean effective width, in pixels, of the clip's edges (contrast-weighted).

    Along every row and column of the luminance, each run of same-signed steps (|step| > 2 of
    255) is one edge profile; its effective width is (sum |g|)^2 / sum g^2 over the run's steps g:
    1 for a step between two pixels, n for a ramp spread evenly over n steps. Runs whose total
    rise is below `min_contrast` (of 255) are grain, not edges, and are skipped.
    """
    y = _float(clip)[..., :3] @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)  # (t, h, w)
    lines = torch.cat([rearrange(y, "t h w -> (t h) w"), rearrange(y, "t h w -> (t w) h")])
    g = lines[:, 1:] - lines[:, :-1]  # (lines, steps)
    active = g.abs() > 2
    sign = torch.sign(g)
    same = torch.zeros_like(active)
    same[:, 1:] = active[:, 1:] & active[:, :-1] & (sign[:, 1:] == sign[:, :-1])
    starts = (active & ~same).flatten()
    run = torch.cumsum(starts.long(), 0) - 1  # run id of every step (meaningful where active)
    keep = active.flatten()
    run, gk = run[keep], g.flatten()[keep]
    if not len(gk):
        return 0.0
    n = int(run.max()) + 1
    total = torch.zeros(n, dtype=torch.float64).index_add_(0, run, gk.abs())
    square = torch.zeros(n, dtype=torch.float64).index_add_(0, run, gk**2)
    edges = total >= min_contrast
    if not edges.any():
        return 0.0
    width = total[edges] ** 2 / square[edges]
    return float((width * total[edges]).sum() / total[edges].sum())


def window_boundaries(frames: int, window: int, overlap: int) -> list[int]:
    """Adjacent-frame pairs k (frames k and k + 1) that straddle the start or end of a window."""
    starts = window_starts(frames, window, overlap)
    edges = {s for s in starts if s > 0} | {s + window for s in starts if s + window < frames}
    return [k - 1 for k in sorted(edges)]


def adjacent_msd(clip) -> torch.Tensor:
    """(t - 1,) mean squared difference of each pair of adjacent frames."""
    x = _float(clip)
    return ((x[1:] - x[:-1]) ** 2).flatten(1).mean(1)


def boundary_ratio(clip, window: int, overlap: int) -> float:
    """Mean adjacent-frame MSD at window boundaries over the same inside windows (1: no jump)."""
    msd = adjacent_msd(clip)
    at = window_boundaries(len(msd) + 1, window, overlap)
    inside = [k for k in range(len(msd)) if k not in at]
    return float(msd[at].mean() / msd[inside].mean().clamp_min(1e-12))


__all__ = ["adjacent_msd", "boundary_ratio", "edge_width", "enlarge_pil", "psnr", "ssim", "window_boundaries"]
