"""Diffusion machinery in k-diffusion's sigma form (x = x0 + sigma * eps).

- schedule: pure noise-level functions (float64);
- denoiser: `Denoiser`, the one owner of the parameterisation and the loss;
- samplers: DDIM and DPM-Solver++(2M) as plain functions;
- wrappers: guidance, known-pixel pasting and temporal windows with the denoiser's signature.
"""

from lumiere_cli.diffusion.denoiser import Denoiser
from lumiere_cli.diffusion.samplers import SAMPLERS, sample_ddim, sample_dpmpp_2m
from lumiere_cli.diffusion.schedule import (
    get_sigmas,
    sample_training_sigmas,
    sigma_from_t,
    sigmas_for_strength,
    t_from_sigma,
)
from lumiere_cli.diffusion.wrappers import CFGDenoiser, PasteKnown, TemporalWindows, window_starts

__all__ = [
    "Denoiser",
    "SAMPLERS",
    "sample_ddim",
    "sample_dpmpp_2m",
    "get_sigmas",
    "sample_training_sigmas",
    "sigma_from_t",
    "sigmas_for_strength",
    "t_from_sigma",
    "CFGDenoiser",
    "PasteKnown",
    "TemporalWindows",
    "window_starts",
]
