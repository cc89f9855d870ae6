"""Noise levels in k-diffusion's sigma form, as pure functions.

We write the forward process as x = x0 + sigma * eps (variance exploding form). A VP process
z = alpha * x0 + s * eps maps onto it with x = z / alpha and sigma = s / alpha; for the cosine
schedule (Nichol & Dhariwal 2021, without the offset) alpha = cos(pi t / 2), s = sin(pi t / 2),
so sigma = tan(pi t / 2).

Symbols:
    t      -- diffusion time in [0, 1]
    sigma  -- noise level sigma(t) = tan(pi t / 2); alpha = 1 / sqrt(1 + sigma^2)
    shift  -- cfg.schedule_shift: training and sampling use sigma = shift * tan(pi t / 2)

Everything is computed in float64 (the tails of tan/atan and Karras' rho=7 power lose digits in
float32) and cast by the caller at use.
"""

from __future__ import annotations

import math

import torch

from lumiere_cli.config import DiffusionConfig

__all__ = [
    "sigma_from_t",
    "t_from_sigma",
    "get_sigmas",
    "sigmas_for_strength",
    "sample_training_sigmas",
]

_KARRAS_RHO = 7.0  # EDM (Karras et al. 2022) eq. 5 default


def sigma_from_t(t: torch.Tensor | float) -> torch.Tensor:
    """Cosine VP schedule in sigma form: sigma = tan(pi t / 2), float64."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.tan(t * (math.pi / 2))


def t_from_sigma(sigma: torch.Tensor | float) -> torch.Tensor:
    """Inverse of `sigma_from_t`: t = 2 atan(sigma) / pi, float64."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return torch.atan(sigma) * (2 / math.pi)


def get_sigmas(steps: int, cfg: DiffusionConfig, kind: str = "cosine") -> torch.Tensor:
    """Sampling noise levels: float64 (steps + 1,), from cfg.sigma_max down to cfg.sigma_min, then 0.

    kind "cosine": uniform steps in t of the (shifted) cosine schedule, sigma = shift tan(pi t / 2).
    kind "karras": EDM eq. 5, uniform in sigma^(1/rho) with rho = 7.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0 < cfg.sigma_min < cfg.sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {cfg.sigma_min}, {cfg.sigma_max}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)  # 0 at sigma_max, 1 at sigma_min
    if kind == "cosine":
        shift = _shift(cfg)
        t_max, t_min = t_from_sigma(cfg.sigma_max / shift), t_from_sigma(cfg.sigma_min / shift)
        sigmas = shift * sigma_from_t(t_max + ramp * (t_min - t_max))
    elif kind == "karras":
        lo, hi = cfg.sigma_min ** (1 / _KARRAS_RHO), cfg.sigma_max ** (1 / _KARRAS_RHO)
        sigmas = (hi + ramp * (lo - hi)) ** _KARRAS_RHO
    else:
        raise ValueError(f"unknown schedule kind {kind!r}; use 'cosine' or 'karras'")
    # tan(atan(.)) and (.^(1/rho))^rho are off by an ulp or so: pin the documented endpoints.
    sigmas[0] = cfg.sigma_max
    if steps > 1:
        sigmas[-1] = cfg.sigma_min
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _shift(cfg: DiffusionConfig) -> float:
    if not cfg.schedule_shift > 0:
        raise ValueError(f"schedule_shift must be positive, got {cfg.schedule_shift}")
    return float(cfg.schedule_shift)


def sigmas_for_strength(steps: int, cfg: DiffusionConfig, strength: float) -> torch.Tensor:
    """The last `strength` of the sampling schedule, for SDEdit (Meng et al. 2022): float64.

    The sampling schedule is uniform in t, so strength is the fraction of diffusion time run: the
    clip is noised to the level at t_min + strength (t_max - t_min), then denoised in
    ceil(strength * steps) steps uniform in t (at least one). strength 1 is `get_sigmas(steps, cfg)`;
    the start level moves smoothly with strength instead of jumping from step to step. The caller
    noises its clip to the first returned level: x = video + sigmas[0] * noise.
    """
    if not 0 < strength <= 1:  # also rejects NaN; strength 0 runs nothing and is the caller's
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    full = get_sigmas(steps, cfg)
    if strength == 1:
        return full
    shift = _shift(cfg)
    t_max, t_min = t_from_sigma(cfg.sigma_max / shift), t_from_sigma(cfg.sigma_min / shift)
    t_start = t_min + strength * (t_max - t_min)
    n = max(1, math.ceil(strength * steps - 1e-9))
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    sigmas = shift * sigma_from_t(t_start + ramp * (t_min - t_start))
    if n > 1:
        sigmas[-1] = cfg.sigma_min
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def sample_training_sigmas(
    n: int,
    *,
    cfg: DiffusionConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Training noise levels for the cosine schedule: float32 (n,).

    1. t ~ U(0, 1)                                  (drawn in float64 on the generator's device)
    2. sigma = shift tan(pi t / 2), clamped to [sigma_min, sigma_max]
    """
    # torch.rand needs the generator's device; move the result afterwards.
    draw_device = generator.device if generator is not None else device
    t = torch.rand(n, generator=generator, dtype=torch.float64, device=draw_device)
    sigma = (_shift(cfg) * sigma_from_t(t)).clamp(cfg.sigma_min, cfg.sigma_max)
    return sigma.to(device=device if device is not None else sigma.device, dtype=torch.float32)
