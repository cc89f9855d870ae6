"""Lower-variance regression targets: the posterior mean of x0 estimated from candidates.

Axis legend: b batch, n candidates.

The denoising loss regresses D(x; sigma) on the one x0 that made x. Its minimiser is E[x0 | x],
so any unbiased estimate of that mean is as good a target, and at high noise a far quieter one:
there x barely tells clips of one caption apart, the x0 drawn is one clip among many, and what
the caption says about all of them (which way they move) is a small part of each sample's error.
Stable Target Field (Xu et al., ICLR 2023) estimates the mean by self-normalised importance
sampling over a reference batch; given several clips drawn from p(x0 | caption) (a procedural
world can draw them), the weights are the Gaussian likelihoods N(x; x0_j, sigma^2).
"""

from __future__ import annotations

import torch
from einops import einsum, rearrange


def posterior_mean(x: torch.Tensor, sigma: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """E[x0 | x] over `candidates` (b, n, ...): the x0 that made each x (one of them, so the
    estimate is exact at low noise) and draws from the same conditional. x (b, ...), sigma (b,)."""
    if candidates.shape[0] != x.shape[0] or candidates.shape[2:] != x.shape[1:]:
        raise ValueError(f"candidates must be (b, n, ...) matching x {tuple(x.shape)}, got {tuple(candidates.shape)}")
    dist2 = rearrange((candidates - x[:, None]).square(), "b n ... -> b n (...)").sum(-1)
    weights = torch.softmax(-dist2 / (2 * sigma[:, None].double() ** 2), dim=1).to(candidates.dtype)
    return einsum(weights, candidates, "b n, b n ... -> b ...")
