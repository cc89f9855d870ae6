"""The SSR model and its conditioning.

Axis legend: b batch, c channels, t frames, h height, w width.

The SSR keeps a text encoder of its own (a frozen copy of the base's at training time), so an SSR
file is complete on its own: `lumiere upscale` needs no base model, and a base fine-tuned later
does not change what the SSR reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import SSRConfig
from ..diffusion.denoiser import Denoiser
from ..nn.ssr import AugEmbedding, SSRNet
from ..nn.stunet import STUNet
from ..nn.text import TextEncoder

IN_CHANNELS = 10  # <J (3), C (3), M (1), L (3)>


class SSRModel(nn.Module):
    """State-dict keys `text.*`, `unet.*` (`unet.spatial.*`, `unet.temporal.*`) and `aug.*`."""

    def __init__(self, config: SSRConfig, *, card: dict[str, Any] | None = None):
        super().__init__()
        u = config.unet
        if config.text.width != u.context_dim or config.text.embed_dim != u.pooled_dim:
            raise ValueError(f"text width/embed_dim ({config.text.width}/{config.text.embed_dim}) must equal "
                             f"unet context_dim/pooled_dim ({u.context_dim}/{u.pooled_dim})")
        if u.in_channels != IN_CHANNELS or u.out_channels != 3:
            raise ValueError(f"an SSR U-Net takes {IN_CHANNELS} channels in (<J, C, M, low-res>) and gives 3, "
                             f"got {u.in_channels} and {u.out_channels}")
        if config.factor < 1:
            raise ValueError(f"factor must be at least 1, got {config.factor}")
        self.config = config
        self.card: dict[str, Any] = dict(card or {})
        self.weights_hash: str | None = None
        self.path: Path | None = None  # the file it was loaded from
        self.text = TextEncoder(config.text)
        self.unet = STUNet(u)
        self.aug = AugEmbedding(u.pooled_dim)

    @property
    def denoiser(self) -> ResidualDenoiser:
        """D(x; sigma, lowres=, aug_sigma=, text...) on high-res clips (b, 3, t, H, W) or frames."""
        return ResidualDenoiser(Denoiser(SSRNet(self.unet, self.aug), self.config.diffusion))


class ResidualDenoiser(nn.Module):
    """Diffusion on what the enlarged low-res clip L leaves out (SRDiff, Li et al. 2022):

        D(x; sigma) = L + D_r(x - L; sigma)        loss(x0) = loss_r(x0 - L)

    where D_r is the preconditioned network on residuals r0 = x0 - L. With x = x0 + sigma eps,
    x - L = r0 + sigma eps, so samplers, guidance, windows and known-pixel pasting keep working on
    clips; only the network's variable moves. A network asked for x0 itself must carry L through
    every normalisation to its output exactly; here L comes for free and the network draws the
    edges (measured: at 1,000 steps the x0-network still missed the enlargement by 5x bicubic's
    error at high noise, 30x at sigma 1).
    """

    def __init__(self, inner: Denoiser):
        super().__init__()
        self.inner = inner
        self.cfg = inner.cfg

    def forward(self, x: Tensor, sigma: Tensor | float, *, lowres: Tensor, **kwargs) -> Tensor:
        lowres = _check_lowres(lowres, x).to(x)
        return lowres + self.inner(x - lowres, sigma, lowres=lowres, **kwargs)

    def loss(self, x0: Tensor, sigma: Tensor, noise: Tensor, *, lowres: Tensor, **kwargs) -> Tensor:
        return self.inner.loss(x0 - _check_lowres(lowres, x0).to(x0), sigma, noise, lowres=lowres, **kwargs)


def _check_lowres(lowres: Tensor, x: Tensor) -> Tensor:
    if lowres.shape != x.shape:
        raise ValueError(f"lowres must be (b, 3, ...) at the output size {tuple(x.shape[2:])}, got {tuple(lowres.shape)}")
    return lowres


def enlarge(lowres: Tensor, factor: int) -> Tensor:
    """Bicubic enlargement by `factor` of frames (b, c, h, w) or clips (b, c, t, h, w)."""
    if lowres.ndim == 4:
        return F.interpolate(lowres, scale_factor=factor, mode="bicubic", align_corners=False)
    t = lowres.shape[2]
    frames = F.interpolate(rearrange(lowres, "b c t h w -> (b t) c h w"), scale_factor=factor, mode="bicubic",
                           align_corners=False)
    return rearrange(frames, "(b t) c h w -> b c t h w", t=t)


def condition(lowres: Tensor, aug_sigma: Tensor, factor: int, *, noise: Tensor | None = None) -> Tensor:
    """The SSR's low-res input L: the low-res clip noised to aug_sigma (b,) at its own size,
    then enlarged (so the noise has the size of the low-res pixels, like a base model's errors).

        L = enlarge(lowres + aug_sigma * noise)     (noise ~ N(0, I) when not given)
    """
    if noise is None:
        noise = torch.randn_like(lowres)
    sigma = aug_sigma.to(lowres).view(-1, *[1] * (lowres.ndim - 1))
    return enlarge(lowres + sigma * noise.to(lowres), factor)


__all__ = ["IN_CHANNELS", "ResidualDenoiser", "SSRModel", "condition", "enlarge"]
