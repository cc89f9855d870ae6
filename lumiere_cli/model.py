"""The model a command samples from: text encoder + STUNet + diffusion parameterisation."""

from __future__ import annotations

from typing import Any

from torch import nn

from .config import ModelConfig
from .diffusion.denoiser import Denoiser
from .nn.stunet import STUNet
from .nn.text import TextEncoder


class LumiereModel(nn.Module):
    """Holds the trainable parts; state-dict keys are `text.*` and `unet.*` (`unet.spatial.*`,
    `unet.temporal.*`). The denoiser is built on demand so the U-Net's weights are stored once."""

    def __init__(self, config: ModelConfig, *, card: dict[str, Any] | None = None):
        super().__init__()
        if config.text.width != config.unet.context_dim or config.text.embed_dim != config.unet.pooled_dim:
            raise ValueError(
                f"text width/embed_dim ({config.text.width}/{config.text.embed_dim}) must equal "
                f"unet context_dim/pooled_dim ({config.unet.context_dim}/{config.unet.pooled_dim})"
            )
        self.config = config
        self.card: dict[str, Any] = dict(card or {})
        self.weights_hash: str | None = None
        self.text = TextEncoder(config.text)
        self.unet = STUNet(config.unet)

    @property
    def denoiser(self) -> Denoiser:
        """Video denoiser: (b, 3, t, h, w) clips."""
        return Denoiser(self.unet, self.config.diffusion)

    @property
    def image_denoiser(self) -> Denoiser:
        """The text-to-image U-Net alone: (b, 3, h, w) frames (training stage 2, stylization)."""
        return Denoiser(self.unet.spatial, self.config.diffusion)
