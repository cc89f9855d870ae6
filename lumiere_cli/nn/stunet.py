"""Space-Time U-Net: a text-to-image U-Net inflated in time (Lumiere, docs/DESIGN.md §1).

Axis legend: b batch, c channels, t frames, h height, w width, l text tokens, d features.

The image U-Net lives untouched under `self.spatial` and runs on every frame (frames folded into
the batch); everything new lives under `self.temporal` and is the identity at init, so a freshly
inflated network maps a static clip to the image U-Net's output on every frame.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import UNetConfig
from .layers import (
    TemporalAttentionBlock,
    TemporalConvBlock,
    TemporalDownsample,
    TemporalUpsample,
    TextPool,
    exists,
    native_precision,
)
from .unet import UNet2D, safe_context_mask


class TemporalLayers(nn.Module):
    """All parameters added by inflation, indexed by the spatial level they follow."""

    def __init__(self, cfg: UNetConfig, *, emb_dim: int):
        super().__init__()
        levels = len(cfg.channels)
        ch = cfg.channels
        kw = dict(emb_dim=emb_dim, kernel=cfg.temporal_kernel, dropout=cfg.dropout)
        # Motion words must reach the temporal layers even with the spatial weights frozen, so the
        # pooled text gets a trainable projection of its own, added to the spatial embedding.
        self.pooled_proj = nn.Linear(cfg.pooled_dim, emb_dim)
        self.text_pool = TextPool(cfg.context_dim, emb_dim, heads=cfg.heads)
        # down_blocks[i][j] follows the j-th spatial block of encoder level i (not the coarsest).
        self.down_blocks = nn.ModuleList(
            nn.ModuleList(TemporalConvBlock(ch[i], **kw) for _ in range(cfg.res_blocks))
            for i in range(levels - 1)
        )
        self.up_blocks = nn.ModuleList(
            nn.ModuleList(TemporalConvBlock(ch[i], **kw) for _ in range(cfg.res_blocks))
            for i in range(levels - 1)
        )
        # downsample[i] follows the spatial downsample out of level i, into level i + 1.
        self.downsample = nn.ModuleList(
            TemporalDownsample(ch[i + 1], kernel=cfg.temporal_kernel)
            for i in range(cfg.temporal_levels)
        )
        # upsample[i] follows the spatial upsample from level i + 1 into level i.
        self.upsample = nn.ModuleList(
            TemporalUpsample(ch[i], kernel=cfg.temporal_kernel) for i in range(cfg.temporal_levels)
        )
        self.attn_blocks = nn.ModuleList(
            TemporalAttentionBlock(ch[-1], emb_dim=emb_dim, heads=cfg.heads, context_dim=cfg.context_dim)
            for _ in range(cfg.temporal_attn_blocks)
        )
        self.spacetime_blocks = nn.ModuleList(
            TemporalAttentionBlock(ch[-1], emb_dim=emb_dim, heads=cfg.heads, context_dim=cfg.context_dim, space=True,
                                   rope=cfg.spacetime_rope)
            for _ in range(cfg.spacetime_attn_blocks)
        )


class STUNet(nn.Module):
    """forward(x (b, in, t, h, w), c_noise (b,), context (b, l, d), pooled (b, d), context_mask,
    words (b, l, d))."""

    def __init__(self, cfg: UNetConfig, spatial: UNet2D | None = None):
        super().__init__()
        levels = len(cfg.channels)
        if not 0 <= cfg.temporal_levels <= levels - 1:
            raise ValueError(
                f"temporal_levels must be between 0 and {levels - 1} (levels - 1), "
                f"got {cfg.temporal_levels}"
            )
        self.cfg = cfg
        self.spatial = spatial if exists(spatial) else UNet2D(cfg)
        if self.spatial.cfg.channels != cfg.channels:
            raise ValueError("the spatial U-Net's channels differ from the STUNet config")
        self.temporal = TemporalLayers(cfg, emb_dim=self.spatial.emb_dim)

    # -- inputs ----------------------------------------------------------------------------------

    @property
    def frame_multiple(self) -> int:
        return self.cfg.frame_multiple

    def valid_frames(self, limit: int = 64) -> list[int]:
        m = self.frame_multiple
        return list(range(m, limit + 1, m))

    def check_input(self, frames: int, height: int, width: int) -> None:
        """Raise ValueError naming valid values when the clip cannot pass through the network."""
        self.cfg.check_frames(frames)
        self.spatial.check_size(height, width)

    def freeze_spatial(self, frozen: bool = True) -> STUNet:
        """Train only the temporal layers (the paper keeps the T2I weights fixed)."""
        for p in self.spatial.parameters():
            p.requires_grad_(not frozen)
        return self

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        context: Tensor,
        pooled: Tensor,
        context_mask: Tensor | None = None,
        words: Tensor | None = None,
    ) -> Tensor:
        self.check_input(*x.shape[2:])
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
        words: Tensor | None,
    ) -> Tensor:
        b, _, t, height, width = x.shape
        sp, tp = self.spatial, self.temporal
        # Follow the caller's layout: channels_last_3d clips make every frame fold a free view.
        # (Not the default on CPU: GroupNorm's channels_last kernel is 10x slower at one channel
        # per group, the first level here.)
        channels_last = x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
        fmt4 = torch.channels_last if channels_last else torch.contiguous_format
        fmt5 = torch.channels_last_3d if channels_last else torch.contiguous_format

        mask = safe_context_mask(context_mask)
        emb = sp.embed(c_noise, pooled)  # (b, d)
        temb = emb + tp.pooled_proj(pooled) + tp.text_pool(context, mask, words)  # temporal layers' embedding
        text = (context, mask, words)  # one per clip: the blocks repeat what they need per frame

        def to_clip(h: Tensor, t: int) -> Tensor:
            return rearrange(h, "(b t) c h w -> b c t h w", t=t).contiguous(memory_format=fmt5)

        def to_frames(h: Tensor) -> Tensor:
            return rearrange(h, "b c t h w -> (b t) c h w").contiguous(memory_format=fmt4)

        h = sp.encode_input(rearrange(x, "b c t h w -> (b t) c h w"), memory_format=fmt4)  # ((b t) c h w)
        skips = []
        for i, level in enumerate(sp.down):
            for j, blk in enumerate(level.blocks):
                h = blk(h, emb, *text, frames=t)
                if i < sp.levels - 1:
                    h = to_frames(tp.down_blocks[i][j](to_clip(h, t), temb))
            skips.append(h)
            if exists(level.resample):
                h = level.resample(h)
                if i < self.cfg.temporal_levels:
                    h = to_frames(tp.downsample[i](to_clip(h, t)))
                    t //= 2

        h = sp.mid(h, emb, *text, frames=t)
        if len(tp.attn_blocks) or len(tp.spacetime_blocks):
            clip = to_clip(h, t)
            for blk in (*tp.attn_blocks, *tp.spacetime_blocks):
                clip = blk(clip, temb, context, mask, words)
            h = to_frames(clip)

        for i in reversed(range(sp.levels)):
            level = sp.up[i]
            if exists(level.resample):
                h = level.resample(h)
                if i < self.cfg.temporal_levels:
                    h = to_frames(tp.upsample[i](to_clip(h, t)))
                    t *= 2
            h = torch.cat([h, skips[i]], dim=1)
            for j, blk in enumerate(level.blocks):
                h = blk(h, emb, *text, frames=t)
                if i < sp.levels - 1:
                    h = to_frames(tp.up_blocks[i][j](to_clip(h, t), temb))

        out = sp.decode_output(h)
        return rearrange(out, "(b t) c h w -> b c t h w", b=b).contiguous()

