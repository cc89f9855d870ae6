"""The text-to-image U-Net that STUNet inflates.

Axis legend: b batch, c channels, h height, w width, p q offsets inside a patch, l text tokens,
d features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import UNetConfig
from .layers import (
    Downsample,
    FourierFeatures,
    SpatialBlock,
    Upsample,
    exists,
    group_norm,
    native_precision,
    zero_init,
)


class Level(nn.Module):
    """The blocks of one resolution and the resampler that leaves it (None at the end)."""

    def __init__(self, blocks: list[SpatialBlock], resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample


class MidBlock(nn.Module):
    def __init__(self, channels: int, *, emb_dim: int, cfg: UNetConfig):
        super().__init__()
        kw = dict(emb_dim=emb_dim, heads=cfg.heads, context_dim=cfg.context_dim, dropout=cfg.dropout)
        self.first = SpatialBlock(channels, channels, attn=True, **kw)
        self.second = SpatialBlock(channels, channels, attn=False, **kw)

    def forward(
        self,
        x: Tensor,
        emb: Tensor,
        context: Tensor,
        context_mask: Tensor | None,
        words: Tensor | None = None,
        *,
        frames: int = 1,
    ) -> Tensor:
        h = self.first(x, emb, context, context_mask, words, frames=frames)
        return self.second(h, emb, context, context_mask, frames=frames)


def safe_context_mask(context_mask: Tensor | None) -> Tensor | None:
    """Always let the first (start) token through: an all-False row would make softmax NaN."""
    if not exists(context_mask):
        return None
    mask = context_mask.bool().clone()
    mask[:, 0] = True
    return mask


class UNet2D(nn.Module):
    """Text-to-image U-Net on pixel-unshuffled input.

    Level i runs at (size / patch) / 2**i with cfg.channels[i] channels; one skip per level.
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        levels = len(cfg.channels)
        if len(cfg.attn_levels) != levels:
            raise ValueError(
                f"attn_levels has {len(cfg.attn_levels)} entries but channels has {levels}"
            )
        self.cfg = cfg
        ch = cfg.channels
        emb_dim = cfg.embedding_dim
        self.emb_dim = emb_dim
        self.noise_features = FourierFeatures(emb_dim)
        self.noise_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.pooled_proj = nn.Linear(cfg.pooled_dim, emb_dim)

        p2 = cfg.patch * cfg.patch
        self.stem = nn.Conv2d(cfg.in_channels * p2, ch[0], 3, padding=1)

        def block(c_in: int, c_out: int, i: int) -> SpatialBlock:
            return SpatialBlock(
                c_in,
                c_out,
                emb_dim=emb_dim,
                attn=cfg.attn_levels[i],
                heads=cfg.heads,
                context_dim=cfg.context_dim,
                dropout=cfg.dropout,
            )

        self.down = nn.ModuleList(
            Level(
                [block(ch[i], ch[i], i) for _ in range(cfg.res_blocks)],
                Downsample(ch[i], ch[i + 1]) if i < levels - 1 else None,
            )
            for i in range(levels)
        )
        self.mid = MidBlock(ch[-1], emb_dim=emb_dim, cfg=cfg)
        # up[i] works at level i; its resample brings features up from level i + 1 first.
        self.up = nn.ModuleList(
            Level(
                [block(2 * ch[i] if j == 0 else ch[i], ch[i], i) for j in range(cfg.res_blocks)],
                Upsample(ch[i + 1], ch[i]) if i < levels - 1 else None,
            )
            for i in range(levels)
        )
        self.head_norm = group_norm(ch[0])
        self.head = zero_init(nn.Conv2d(ch[0], cfg.out_channels * p2, 3, padding=1))

    @property
    def levels(self) -> int:
        return len(self.cfg.channels)

    def embed(self, c_noise: Tensor, pooled: Tensor) -> Tensor:
        """Noise-level embedding plus the projected pooled text embedding, (b, d)."""
        emb = self.noise_mlp(self.noise_features(c_noise).to(pooled.dtype))
        return emb + self.pooled_proj(pooled)

    def encode_input(self, x: Tensor, *, memory_format: torch.memory_format = torch.preserve_format) -> Tensor:
        # Space-to-depth: the full-resolution level costs a quarter as much for patch 2. The same
        # channel order as F.pixel_unshuffle, which runs 4-5x slower on the CPU at the SSR's sizes.
        p = self.cfg.patch
        x = rearrange(x, "b c (h p) (w q) -> b (c p q) h w", p=p, q=p)
        # torch's contiguous() refuses preserve_format, the default: leave the layout as it is then.
        return self.stem(x if memory_format == torch.preserve_format else x.contiguous(memory_format=memory_format))

    def decode_output(self, h: Tensor) -> Tensor:
        p = self.cfg.patch
        return rearrange(self.head(F.silu(self.head_norm(h))), "b (c p q) h w -> b c (h p) (w q)", p=p, q=p)

    def check_size(self, height: int, width: int) -> None:
        mult = self.cfg.size_multiple
        if height % mult or width % mult or height <= 0 or width <= 0:
            examples = ", ".join(str(mult * k) for k in (1, 2, 4, 8, 16) if mult * k <= 1024)
            raise ValueError(
                f"height and width must be multiples of {mult} "
                f"(patch {self.cfg.patch} x 2**{self.levels - 1}), e.g. {examples}; "
                f"got {height}x{width}"
            )

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        context: Tensor,
        pooled: Tensor,
        context_mask: Tensor | None = None,
        words: Tensor | None = None,
    ) -> Tensor:
        self.check_size(x.shape[-2], x.shape[-1])
        with native_precision(x.device) as fp32:
            if fp32:
                x, context, pooled = x.float(), context.float(), pooled.float()
                words = words.float() if exists(words) else None
            return self._forward(x, c_noise, context, pooled, context_mask, words)

    def _forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        context: Tensor,
        pooled: Tensor,
        context_mask: Tensor | None,
        words: Tensor | None = None,
    ) -> Tensor:
        cond = (self.embed(c_noise, pooled), context, safe_context_mask(context_mask), words)
        h = self.encode_input(x)
        skips = []
        for level in self.down:
            for blk in level.blocks:
                h = blk(h, *cond)
            skips.append(h)
            if exists(level.resample):
                h = level.resample(h)
        h = self.mid(h, *cond)
        for i in reversed(range(self.levels)):
            level = self.up[i]
            if exists(level.resample):
                h = level.resample(h)
            h = torch.cat([h, skips[i]], dim=1)
            for blk in level.blocks:
                h = blk(h, *cond)
        return self.decode_output(h)

