"""Samplers: plain functions of (model, x, sigmas), k-diffusion style, with no hidden state.

Symbols (sigma form, x = x0 + sigma * eps; see schedule.py):
    model      -- a denoiser D(x, sigma (b,), **extra_args) -> estimate of x0
    x          -- current sample; on entry the initial noise already scaled by sigmas[0]
    sigmas     -- noise levels (n + 1,), decreasing, usually ending in 0
    sigma      -- sigma_i = sigmas[i];  sigma_next -- sigma_{i+1}
    denoised   -- D(x_i; sigma_i), the x0 estimate
    alpha      -- the VP signal scale, alpha = 1 / sqrt(1 + sigma^2); VP latents are z = alpha x

Step coefficients are computed from the float64 sigmas as Python floats, then applied to x in x's
dtype. Randomness only comes from the explicit `generator`: one torch.Generator for the batch, or
a sequence of them, one per sample, so a sample's noise does not depend on the batch it ran in.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

__all__ = ["sample_ddim", "sample_dpmpp_2m", "SAMPLERS"]

Callback = Callable[[dict], None]


def _levels(sigmas: torch.Tensor) -> list[float]:
    levels = sigmas.detach().to("cpu", torch.float64).tolist()
    if len(levels) < 2:
        raise ValueError("sigmas must hold at least two levels (one step)")
    return levels


def _randn_like(x: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    # Drawn on the generator's device, so a CPU generator gives the same noise for a CUDA x.
    if isinstance(generator, Sequence):
        if len(generator) != x.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {x.shape[0]}")
        rows = [torch.randn((1, *x.shape[1:]), generator=g, dtype=x.dtype, device=g.device) for g in generator]
        return torch.cat([r.to(x.device) for r in rows])
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def _denoise(model, x: torch.Tensor, sigma: float, extra_args: dict) -> torch.Tensor:
    # The denoiser takes one noise level per sample: (b,).
    return model(x, x.new_full((x.shape[0],), sigma), **extra_args).to(x.dtype)


@torch.no_grad()
def sample_ddim(
    model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM (Song et al. 2021) written in sigma form.

    DDIM eq. 12 on VP latents z = alpha x0 + s eps (alpha^2 + s^2 = 1, s = sigma alpha), with
    c = eta * (s_next / s) * sqrt(1 - alpha^2 / alpha_next^2) (its eq. 16):

        z_next = alpha_next x0_hat + sqrt(s_next^2 - c^2) eps_hat + c xi

    Dividing by alpha_next (x = z / alpha) and using alpha^2 = 1 / (1 + sigma^2), the VP factors
    cancel and the step depends on the sigmas only:

        sigma_up   = c / alpha_next = eta * sigma_next * sqrt(sigma^2 - sigma_next^2) / sigma
        sigma_down = sqrt(sigma_next^2 - sigma_up^2)
        x_next     = x0_hat + sigma_down * eps_hat + sigma_up * xi

    eta = 0 is the deterministic Euler step of the probability-flow ODE dx/dsigma = eps_hat;
    eta = 1 is DDPM's ancestral variance. sigma_up is capped at sigma_next for eta > 1.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    extra_args = extra_args or {}
    levels = _levels(sigmas)
    for i in range(len(levels) - 1):
        sigma, sigma_next = levels[i], levels[i + 1]
        # 1. predict x0 and the implied noise (DDIM eq. 12, "predicted x0" and its eps)
        denoised = _denoise(model, x, sigma, extra_args)
        eps = (x - denoised) / sigma
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, sigma_next=sigma_next, denoised=denoised))
        # 2. split the next noise level into a deterministic part and fresh noise (eq. 16)
        sigma_up = 0.0
        if eta > 0 and sigma_next > 0:
            sigma_up = eta * sigma_next * math.sqrt(max(0.0, sigma**2 - sigma_next**2)) / sigma
            sigma_up = min(sigma_next, sigma_up)
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        # 3. step: x_next = x0_hat + sigma_down eps_hat (+ sigma_up xi)
        x = denoised + sigma_down * eps
        if sigma_up > 0:
            x = x + sigma_up * _randn_like(x, generator)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), written in sigma form.

    With lambda = log(alpha / s) = -log(sigma) and h = lambda_next - lambda, the data-prediction
    update on VP latents, z_next = (s_next / s) z - alpha_next (e^{-h} - 1) D, divided by
    alpha_next becomes

        x_next = (sigma_next / sigma) x - expm1(-h) D

    where D is the first-order estimate (first step, and the last step into sigma = 0, whose
    limit is x_next = D) or the multistep correction with r = h_prev / h:

        D = (1 + 1 / (2 r)) denoised - 1 / (2 r) denoised_prev

    Deterministic: `generator` is accepted for a uniform sampler signature and unused.
    """
    del generator  # deterministic solver
    extra_args = extra_args or {}
    levels = _levels(sigmas)
    denoised_prev, h_prev = None, None
    for i in range(len(levels) - 1):
        sigma, sigma_next = levels[i], levels[i + 1]
        # 1. data prediction at the current level
        denoised = _denoise(model, x, sigma, extra_args)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, sigma_next=sigma_next, denoised=denoised))
        if sigma_next == 0:
            # 2a. final step: lambda_next = +inf, e^{-h} = 0, so the update is the estimate itself
            x = denoised
        else:
            # 2b. step size in lambda = -log sigma
            h = math.log(sigma) - math.log(sigma_next)
            if denoised_prev is None:
                d = denoised  # first order (DPM-Solver++(1) = DDIM)
            else:
                # 3. second-order multistep correction (Algorithm 2, line 7)
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * denoised_prev
            # 4. exponential-integrator step
            x = (sigma_next / sigma) * x - math.expm1(-h) * d
            h_prev = h
        denoised_prev = denoised
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddim": sample_ddim,
    "dpmpp-2m": sample_dpmpp_2m,
}
