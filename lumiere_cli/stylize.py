"""Stylized generation as in Lumiere §4.1: fine-tune the spatial (text-to-image) weights on a
reference image, then sample with W = α·W_style + (1 − α)·W_orig for the spatial weights only.
The temporal layers are untouched, so the motion prior survives; α near 1 gives more style and
less faithful motion.

Axis legend: b batch, c channels, h height, w width.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch
from einops import rearrange, repeat

from . import atomic, pixels
from .errors import InputError, UsageError
from .model import LumiereModel
from .nn.layers import fast_autocast
from .progress import Progress, or_silent
from .user_cache import cache_dir


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and small shifts per sample, so the style is learned rather than the layout."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    shifts = torch.randint(-(h // 8), h // 8 + 1, (b, 2), generator=generator)
    return torch.stack([xi.roll(tuple(s.tolist()), dims=(-2, -1)) for xi, s in zip(x, shifts)])


def train_style(
    model: LumiereModel,
    image: np.ndarray,
    *,
    steps: int = 200,
    seed: int = 0,
    lr: float = 2e-4,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Fine-tune a copy of the spatial U-Net on `image` (uint8 (h, w, 3) at the model's size) with
    the empty prompt; returns its state dict (keys as in `model.unet.spatial`)."""
    size = model.config.size
    if image.shape != (size, size, 3) or image.dtype != np.uint8:
        raise InputError(f"style image must be uint8 {(size, size, 3)}; got {image.dtype} {image.shape}")
    if steps < 1:
        raise UsageError(f"style steps must be at least 1; got {steps}")
    progress = or_silent(progress)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)

    student = copy.deepcopy(model.unet.spatial).train().requires_grad_(True)
    from .diffusion.denoiser import Denoiser

    denoiser = Denoiser(student, model.config.diffusion)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, betas=(0.9, 0.99))
    with torch.no_grad():
        text = model.text.encode([""])
    x0 = rearrange(pixels.from_uint8(image), "h w c -> 1 c h w")
    ctx = {k: repeat(v, "1 ... -> b ...", b=batch_size).to(device)
           for k, v in text.as_kwargs().items()}
    for step in range(steps):
        batch = _augment(repeat(x0, "1 c h w -> b c h w", b=batch_size), generator).to(device)
        sigma = denoiser.sample_training_sigmas(batch_size, generator=generator).to(device)
        noise = torch.randn(batch.shape, generator=generator).to(device)
        with fast_autocast(device):
            loss = denoiser.loss(batch, sigma, noise, **ctx).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        progress("style", step + 1, steps)
    return {k: v.detach().cpu() for k, v in student.state_dict().items()}


def blend_style(model: LumiereModel, style_state: dict[str, torch.Tensor], alpha: float) -> LumiereModel:
    """A copy of `model` whose spatial weights are α·W_style + (1 − α)·W_orig; temporal weights kept."""
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be between 0 and 1; got {alpha}")
    orig = model.unet.spatial.state_dict()
    if set(style_state) != set(orig) or any(style_state[k].shape != orig[k].shape for k in orig):
        raise InputError("style weights do not fit this model (made for other weights?): learn the style again with --ref")
    blended = copy.deepcopy(model)
    mixed = {
        k: torch.lerp(v.float(), style_state[k].to(v.device).float(), alpha).to(v.dtype) if v.is_floating_point() else v
        for k, v in orig.items()
    }
    blended.unet.spatial.load_state_dict(mixed)
    return blended.eval()


# ----------------------------------------------------------------------------- the style cache


def cache_path(image_sha256: str, weights_hash: str | None, steps: int) -> Path:
    """A learned style is keyed by the reference's bytes, the weights it was learned on and its steps."""
    return cache_dir("styles") / f"{image_sha256}_{(weights_hash or 'unknown')[:12]}_{steps}.safetensors"


def load_style(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"style weights not found: {path} (check the path, or use --ref to learn a style)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"cannot read style weights {path}: {e} (they must be a .safetensors file)") from e


def save_style(state: dict[str, torch.Tensor], path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.staged(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    return path

