"""`upscale()`: the SSR on a low-res clip, over temporal MultiDiffusion windows, in phases.

Axis legend: b batch, c channels, t frames, h height, w width.
The low-res clip and the result are uint8 `t h w c` arrays; inside, pixels are float in [-1, 1],
laid out (b, c, t, h, w). Known pixels (i2v, inpainting, cinemagraphs) come at the output size:
the user's own pixels, not an enlarged low-res copy, are pasted at every step and returned as is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from einops import rearrange

from .. import pixels
from ..diffusion.samplers import SAMPLERS
from ..diffusion.schedule import get_sigmas
from ..diffusion.tiles import SpatialTiles
from ..diffusion.windows import BatchedTemporalWindows
from ..diffusion.wrappers import CFGDenoiser, PasteKnown
from ..errors import UsageError
from ..nn.layers import fast_autocast
from ..progress import Progress, or_silent
from .model import SSRModel, condition
from .options import SSROptions, check_tile

# Keyword arguments cut along time with the windows.
TIME_KWARGS = ("cond_video", "cond_mask", "lowres")


@dataclass
class UpscaleResult:
    frames: np.ndarray  # uint8 (t, H, W, 3)
    options: SSROptions  # resolved: what ran
    timings: dict[str, float] = field(default_factory=dict)


def upscale(
    ssr: SSRModel,
    lowres: np.ndarray,
    prompt: str = "",
    *,
    seed: int,
    options: SSROptions = SSROptions(),
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> UpscaleResult:
    """Enlarge `lowres` (uint8 (t, h, w, 3); the SSR was trained for h = w = its `size`, and any
    size whose enlargement passes through its U-Net works) `factor` times.

    known, known_mask: (1, 3, t, H, W) in [-1, 1] and (1, 1, t, H, W), 1 = keep, at the output size.
    The same (clip, prompt, seed, options) gives the same clip, bit for bit.
    """
    t_start = time.perf_counter()
    cfg = ssr.config
    progress = or_silent(progress)
    # 1. check inputs
    options = options.resolve(ssr)
    frames, height, width = _check(ssr, lowres, options, known, known_mask)
    options = options.tiles_for(height, width)

    # 2. encode the prompt (and the negative, empty, prompt only when guided)
    with torch.inference_mode():
        cond = {k: v.to(device) for k, v in ssr.text.encode([prompt]).as_kwargs().items()}
        uncond = None
        if options.guidance != 1:
            uncond = {k: v.to(device) for k, v in ssr.text.encode([""]).as_kwargs().items()}

    # 3. the conditioning: the low-res clip noised to the sampling level, then enlarged
    generator = torch.Generator("cpu").manual_seed(seed)
    low = rearrange(pixels.from_uint8(lowres), "t h w c -> 1 c t h w")
    aug = torch.full((1,), float(options.noise))
    cond["lowres"] = condition(low, aug, cfg.factor, noise=torch.randn(low.shape, generator=generator)).to(device)
    cond["aug_sigma"] = aug.to(device)
    if known is not None:
        known, known_mask = known.to(device), known_mask.to(device)
        cond.update(cond_video=known * known_mask, cond_mask=known_mask)

    # 4. noise levels and 5. the initial noise, from the same explicit generator
    sampling = replace(cfg.diffusion, schedule_shift=options.schedule_shift)
    sigmas = get_sigmas(options.steps, sampling).to(torch.float32).to(device)
    # the residual diffusion's prior: the enlarged low-res clip plus noise at the top level
    x = cond["lowres"] + torch.randn((1, 3, frames, height, width), generator=generator).to(device) * sigmas[0]
    t_prepared = time.perf_counter()

    # 6. denoise: guidance(paste(tiles(windows(denoiser)))); every TIME_KWARGS tensor is at the output size
    denoiser = BatchedTemporalWindows(ssr.denoiser, options.window, options.overlap, TIME_KWARGS,
                                      chunk=options.chunk, average=options.average)
    if options.tile:
        denoiser = SpatialTiles(denoiser, options.tile, options.tile_overlap, TIME_KWARGS,
                                multiple=ssr.config.unet.size_multiple)
    if known is not None:
        denoiser = PasteKnown(denoiser, known, known_mask)
    if uncond is not None:
        denoiser = CFGDenoiser(denoiser, options.guidance, uncond)
    steps = len(sigmas) - 1
    progress("upscale", 0, steps)
    with torch.inference_mode(), fast_autocast(device, options.bf16):
        x = SAMPLERS[options.sampler](denoiser, x, sigmas, extra_args=cond, generator=[generator],
                                      callback=lambda info: progress("upscale", info["i"] + 1, steps))
    t_denoised = time.perf_counter()

    # 7. uint8 frames; known pixels are the given bytes exactly
    out = rearrange(pixels.to_uint8(x[0]), "c t h w -> t h w c").cpu().numpy()
    if known is not None:
        keep = rearrange(known_mask[0, 0].cpu().numpy() > 0.5, "t h w -> t h w 1")
        out = np.where(keep, rearrange(pixels.to_uint8(known[0]), "c t h w -> t h w c").cpu().numpy(), out)
    return UpscaleResult(frames=out, options=options,
                         timings={"ssr_prepare_s": t_prepared - t_start, "ssr_denoise_s": t_denoised - t_prepared,
                                  "ssr_total_s": time.perf_counter() - t_start})


def _check(ssr: SSRModel, lowres: np.ndarray, o: SSROptions, known, known_mask) -> tuple[int, int, int]:
    from .. import limits

    cfg = ssr.config
    if lowres.ndim != 4 or lowres.shape[-1] != 3 or lowres.dtype != np.uint8:
        raise UsageError(f"the clip to enlarge must be uint8 frames (t, h, w, 3), got {lowres.dtype} {lowres.shape}")
    limits.check("steps", o.steps)
    if not 0 <= o.noise <= 1:
        raise UsageError(f"the SSR's conditioning noise must be between 0 and 1, got {o.noise:g}")
    frames, height, width = lowres.shape[0], lowres.shape[1] * cfg.factor, lowres.shape[2] * cfg.factor
    try:
        ssr.unet.check_input(min(o.window, frames), height, width)
    except ValueError as e:
        raise UsageError(f"the SSR cannot take {frames} frames of {lowres.shape[2]}x{lowres.shape[1]}: {e}") from None
    if not 0 <= o.overlap < o.window:
        raise UsageError(f"overlap must be between 0 and window - 1 ({o.window - 1}); got {o.overlap}")
    check_tile(o.tiles_for(height, width), cfg.unet.size_multiple)
    for name, v, c in (("known", known, 3), ("known_mask", known_mask, 1)):
        if v is not None and tuple(v.shape) != (1, c, frames, height, width):
            raise UsageError(f"{name} must be (1, {c}, {frames}, {height}, {width}), got {tuple(v.shape)}")
    if (known is None) != (known_mask is None):
        raise UsageError("give known and known_mask together")
    return frames, height, width


__all__ = ["SSROptions", "TIME_KWARGS", "UpscaleResult", "upscale"]
