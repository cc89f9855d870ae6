"""The super-resolution network: a STUNet (the same blocks as the base) that also reads the
low-res clip and the level of noise added to it.

Axis legend: b batch, c channels, t frames, h height, w width, l text tokens, d features.

The denoiser builds <J, C, M> as for the base model; `SSRNet` appends the low-res clip resized to
the output size, L, so the U-Net's input is <J, C, M, L> (10 channels). Pixel-unshuffle by the
upscaling factor at the input makes one token per low-res pixel: 128x128 costs what 32x32 does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import FourierFeatures, zero_init
from .stunet import STUNet

# Levels below this are "no noise": the embedding reads log(level), so zero needs a floor. It sits
# below the step of 8-bit pixels (2/255 in [-1, 1]): nothing a file can hold tells them apart.
AUG_FLOOR = 1e-3


class AugEmbedding(nn.Module):
    """The conditioning's noise level sigma_aug (b,) -> a (b, d) vector (zero at init).

    It is added to the pooled text embedding, which every block reads through linear projections
    (the spatial embedding and the temporal layers' own): so it is added to every block's
    embedding, exactly like a term of its own, without another argument through the STUNet.
    """

    def __init__(self, dim: int, *, features: int = 64):
        super().__init__()
        self.features = FourierFeatures(features)
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), zero_init(nn.Linear(dim, dim)))

    def forward(self, aug_sigma: Tensor) -> Tensor:
        c_aug = aug_sigma.float().clamp_min(AUG_FLOOR).log() / 4  # the same scale as c_noise
        return self.mlp(self.features(c_aug))


class SSRNet(nn.Module):
    """forward(x (b, 7, [t,] h, w), c_noise (b,), *, lowres (b, 3, [t,] h, w), aug_sigma (b,),
    context, pooled, context_mask, words). Frames (4-D) run the image U-Net (`unet.spatial`, the
    first training stage), clips (5-D) the STUNet. Holds the modules, owns none: the model does."""

    def __init__(self, unet: STUNet, aug: AugEmbedding):
        super().__init__()
        self.unet = unet
        self.aug = aug

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        *,
        lowres: Tensor,
        aug_sigma: Tensor,
        context: Tensor,
        pooled: Tensor,
        context_mask: Tensor | None = None,
        words: Tensor | None = None,
    ) -> Tensor:
        if lowres.shape[2:] != x.shape[2:] or lowres.shape[:2] != (x.shape[0], 3):
            raise ValueError(f"lowres must be (b, 3, ...) at the output size {tuple(x.shape[2:])}, "
                             f"got {tuple(lowres.shape)}")
        pooled = pooled + self.aug(aug_sigma.to(x.device)).to(pooled.dtype)
        inp = torch.cat([x, lowres.to(x.dtype)], dim=1)  # <J, C, M, L>
        net = self.unet.spatial if x.ndim == 4 else self.unet
        return net(inp, c_noise, context, pooled, context_mask, words)


__all__ = ["AUG_FLOOR", "AugEmbedding", "SSRNet"]
