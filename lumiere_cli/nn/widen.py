"""Widen a trained STUNet without changing what it computes (Net2WiderNet, Chen et al. 2016).

A level whose width doubles gets every channel twice: new channel j is old channel j // 2, so a
concatenation of widened parts (the up path's [upsampled, skip], AdaGN's [scale, shift]) maps the
same way. Writers of a channel (weights' output rows, biases, norms' affine) are copied; readers
(weights' input columns) split the old weight between the two copies, W/2 + e and W/2 - e, which
sums back to W. The small e breaks the copies' symmetry, so training can tell them apart; with
e = 0 both copies would get the same gradient forever.

Levels with attention keep their width (copied channels would change the logits' scale).
GroupNorm keeps its statistics when a doubled group holds the copies of one old group (or groups
are single channels): `widened` checks the whole function on a probe clip and refuses otherwise.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..config import UNetConfig
from .stunet import STUNet

# Relative size of the symmetry-breaking split, against each reader's weight spread.
SPLIT_NOISE = 0.05
PROBE_TOLERANCE = 1e-4


def widened_config(cfg: UNetConfig, channels: tuple[int, ...]) -> UNetConfig:
    """`cfg` with `channels`: each level the same or twice as wide, the embedding's width kept."""
    channels = tuple(channels)
    if len(channels) != len(cfg.channels):
        raise ValueError(f"widening keeps the levels: {len(cfg.channels)} channel counts, got {len(channels)}")
    bad = [f"{c} -> {n}" for c, n in zip(cfg.channels, channels) if n not in (c, 2 * c)]
    if bad:
        raise ValueError(f"widening doubles a level's channels or keeps them; got {', '.join(bad)}")
    # Copied channels double a head's query-key products and break rotary positions' pairs.
    attended = [str(i) for i, (c, n, attn) in enumerate(zip(cfg.channels, channels, cfg.attn_levels))
                if attn and n != c]
    if attended:
        raise ValueError(f"widening keeps the channels of levels with attention (level {', '.join(attended)})")
    return replace(cfg, channels=channels, emb_dim=cfg.embedding_dim)


def _widen_tensor(old: Tensor, shape: torch.Size, name: str, generator: torch.Generator) -> Tensor:
    t = old
    for dim, (was, now) in enumerate(zip(old.shape, shape)):
        if now == was:
            continue
        if now != 2 * was or dim > 1:
            raise ValueError(f"cannot widen {name}: {tuple(old.shape)} -> {tuple(shape)}")
        t = t.repeat_interleave(2, dim=dim)
        if dim == 1:  # an input dimension: the copies share the old weight
            e = torch.randn(t.shape[0], was, *t.shape[2:], generator=generator)
            e = e * SPLIT_NOISE * old.std().clamp_min(1e-8)
            t = t / 2
            t[:, 0::2] += e
            t[:, 1::2] -= e
    return t


def _probe(net: STUNet, seed: int) -> Tensor:
    """`net`'s output, in eval mode, on a random clip and caption drawn from `seed`."""
    cfg, generator = net.cfg, torch.Generator().manual_seed(seed)
    frames, side = cfg.frame_multiple * 2, cfg.size_multiple * 2
    x = torch.randn(1, cfg.in_channels, frames, side, side, generator=generator)
    context = torch.randn(1, 5, cfg.context_dim, generator=generator)
    pooled = torch.randn(1, cfg.pooled_dim, generator=generator)
    was_training = net.training
    out = net.eval()(x, torch.tensor([0.3]), context, pooled)
    net.train(was_training)
    return out


@torch.no_grad()
def widened(net: STUNet, channels: tuple[int, ...], *, seed: int = 0) -> STUNet:
    """A new STUNet with `channels` computing what `net` computes (checked on a probe clip)."""
    cfg = widened_config(net.cfg, channels)
    old_state = net.state_dict()
    generator = torch.Generator().manual_seed(seed)
    wide = STUNet(cfg)
    state = {}
    for name, target in wide.state_dict().items():
        if name not in old_state:
            raise ValueError(f"cannot widen: {name} is not in the weights")
        state[name] = _widen_tensor(old_state[name].float(), target.shape, name, generator)
    wide.load_state_dict(state)
    wide.train(net.training)

    before, after = _probe(net, seed + 1), _probe(wide, seed + 1)
    err = (after - before).abs().max().item() / before.abs().max().clamp_min(1e-6).item()
    if not err <= PROBE_TOLERANCE:
        raise ValueError(f"widening {net.cfg.channels} to {cfg.channels} changes the network's output "
                         f"(relative error {err:.1e})")
    return wide


__all__ = ["widened", "widened_config"]
