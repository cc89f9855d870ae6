"""The one object that owns the parameterisation: preconditioning, denoised prediction and loss.

EDM preconditioning (Karras et al. 2022, "Elucidating the Design Space...", Table 1 and eq. 7):

    D(x; sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))

Symbols:
    x        -- noisy input, x = x0 + sigma * eps
    sigma    -- noise level (b,)
    F        -- the network `net`; it never sees the parameterisation
    D        -- the denoised estimate of x0 (what `forward` returns)
    sigma_d  -- cfg.sigma_data

`cfg.prediction` picks what F learns (c_in = 1 / sqrt(sigma^2 + sigma_d^2) and
c_noise = log(sigma) / 4 in every case):
    "v"   -- c_skip = sigma_d^2 / (sigma^2 + sigma_d^2), c_out = -sigma sigma_d / sqrt(sigma^2 + sigma_d^2).
             With sigma_d = 1 this is exactly VP v-prediction (Salimans & Ho 2022):
             v = alpha eps - s x0 with alpha = 1 / sqrt(1 + sigma^2), s = sigma alpha.
             (EDM uses +sigma in c_out; the sign only flips the target, we keep v's usual sign.)
    "eps" -- c_skip = 1, c_out = -sigma: F predicts eps (DDPM).
    "x0"  -- c_skip = 0, c_out = 1: F predicts x0.
"""

from __future__ import annotations

import torch
from torch import nn

from lumiere_cli.config import DiffusionConfig
from lumiere_cli.diffusion.schedule import sample_training_sigmas

__all__ = ["Denoiser"]

PREDICTIONS = ("v", "eps", "x0")


def _append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(b,) -> (b, 1, ..., 1) with `ndim` dims, to broadcast per-sample scalars over x."""
    return v.view(-1, *[1] * (ndim - 1))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    # Preconditioning in fp32 even when the net runs in bf16; keep fp64 if the caller asked for it.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class Denoiser(nn.Module):
    """Wraps a network F into the denoiser D(x; sigma) of the module docstring.

    The network is called as `net(inp, c_noise, **net_kwargs)` with
    `inp = cat([c_in * x, cond_video, cond_mask], dim=1)`: Lumiere's <J, C, M> input layout
    (cond_video has x's channels, cond_mask one channel; zeros when None). Works for images
    (b, c, h, w) and videos (b, c, t, h, w).
    """

    def __init__(self, net: nn.Module, cfg: DiffusionConfig):
        super().__init__()
        if cfg.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {cfg.prediction!r}; use one of {', '.join(PREDICTIONS)}")
        self.net = net
        self.cfg = cfg

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in, c_noise), each shaped like `sigma`."""
        sd = self.cfg.sigma_data
        c_in = (sigma**2 + sd**2).rsqrt()
        c_noise = sigma.log() / 4
        if self.cfg.prediction == "v":
            c_skip = sd**2 / (sigma**2 + sd**2)
            c_out = -sigma * sd * c_in
        elif self.cfg.prediction == "eps":
            c_skip, c_out = torch.ones_like(sigma), -sigma
        else:  # "x0"
            c_skip, c_out = torch.zeros_like(sigma), torch.ones_like(sigma)
        return c_skip, c_out, c_in, c_noise

    def _prepare(self, x: torch.Tensor, sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Cast x and sigma to the compute dtype; sigma becomes (b,)."""
        dtype = _compute_dtype(x)
        sigma = torch.as_tensor(sigma, device=x.device).to(dtype)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be a scalar or shaped (b,) = ({x.shape[0]},), "
                             f"got {tuple(sigma.shape)}")
        return x.to(dtype), sigma

    def _call_net(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond_video: torch.Tensor | None,
        cond_mask: torch.Tensor | None,
        net_kwargs: dict,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (c_skip, c_out, F) broadcast against x, with F in the compute dtype."""
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)  # (b,) each
        c_skip, c_out, c_in = (_append_dims(c, x.ndim) for c in (c_skip, c_out, c_in))
        b, _, *spatial = x.shape
        cond_video = torch.zeros_like(x) if cond_video is None else cond_video.to(x.dtype)
        cond_mask = x.new_zeros(b, 1, *spatial) if cond_mask is None else cond_mask.to(x.dtype)
        inp = torch.cat([c_in * x, cond_video, cond_mask], dim=1)  # (b, c + c + 1, [t,] h, w)
        out = self.net(inp, c_noise, **net_kwargs).to(x.dtype)  # bf16 under autocast -> fp32
        return c_skip, c_out, out

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor | float,
        *,
        cond_video: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        **net_kwargs,
    ) -> torch.Tensor:
        """D(x; sigma): the estimate of x0, in fp32 (fp64 if x is fp64)."""
        x, sigma = self._prepare(x, sigma)
        c_skip, c_out, out = self._call_net(x, sigma, cond_video, cond_mask, net_kwargs)
        return c_skip * x + c_out * out

    def loss(
        self,
        x0: torch.Tensor,
        sigma: torch.Tensor,
        noise: torch.Tensor,
        *,
        cond_video: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        **net_kwargs,
    ) -> torch.Tensor:
        """Per-sample training loss (b,) (EDM eq. 8 written on F's target).

        1. x = x0 + sigma * eps                          (noised input)
        2. target = (x0 - c_skip x) / c_out               (what F must output for D(x) = x0)
        3. loss = mean (F(c_in x, c_noise) - target)^2    over all non-batch elements

        `weight` (broadcastable to x0, e.g. a (b, 1, t, h, w) mask) turns step 3 into a weighted
        mean, sum(w e^2) / sum(w), so the loss scale does not depend on the masked area.
        `target` replaces x0 in step 2 by another estimate of E[x0 | x] (`targets.posterior_mean`).
        """
        x0, sigma = self._prepare(x0, sigma)
        # 1. noised input
        x = x0 + _append_dims(sigma, x0.ndim) * noise.to(x0.dtype)
        # 2. network output and its target
        c_skip, c_out, out = self._call_net(x, sigma, cond_video, cond_mask, net_kwargs)
        x0_target = x0 if target is None else target.to(x0.dtype)
        f_target = (x0_target - c_skip * x) / c_out
        # 3. per-sample (weighted) mean squared error
        err = (out - f_target) ** 2
        if weight is None:
            return err.flatten(1).mean(1)
        w = weight.to(err.dtype).expand_as(err)
        return (w * err).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-8)

    def sample_training_sigmas(
        self, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """`schedule.sample_training_sigmas` with this denoiser's config: float32 (n,)."""
        return sample_training_sigmas(n, cfg=self.cfg, generator=generator, device=device)
