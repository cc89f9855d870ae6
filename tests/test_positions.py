"""Rotary space-time positions: attention scores depend on offsets, not on where tokens are."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from lumiere_cli.nn.layers import TemporalAttentionBlock
from lumiere_cli.nn.positions import apply_rope, rope_angles


def _scores(q: torch.Tensor, k: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Scores (t h w, t h w) between the same query and key vector placed at every position."""
    n = angles.shape[0]
    qs, ks = apply_rope(q.expand(n, -1), angles), apply_rope(k.expand(n, -1), angles)
    return qs @ ks.T


def test_rotary_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    t, h, w, d = 4, 5, 6, 32
    angles = rope_angles(t, h, w, d)
    assert angles.shape == (t * h * w, 3 * (d // 6))
    q, k = torch.randn(1, d), torch.randn(1, d)
    s = rearrange(_scores(q, k, angles), "(t1 h1 w1) (t2 h2 w2) -> t1 h1 w1 t2 h2 w2", t1=t, h1=h, t2=t, h2=h)
    # Query at (1, 2, 3), key one frame earlier, one row up, two columns left; then both moved.
    torch.testing.assert_close(s[1, 2, 3, 0, 1, 1], s[3, 4, 5, 2, 3, 3])
    torch.testing.assert_close(s[1, 2, 3, 0, 1, 1], s[2, 1, 2, 1, 0, 0])
    # ...and the offset itself matters: left and right are told apart.
    assert not torch.isclose(s[1, 2, 3, 1, 2, 1], s[1, 2, 3, 1, 2, 5])


def test_rotation_keeps_norms_and_passes_spare_features():
    torch.manual_seed(0)
    angles = rope_angles(2, 3, 3, 20)  # 3 frequencies per axis: 18 rotated features, 2 spare
    x = torch.randn(2, 4, angles.shape[0], 20)
    y = apply_rope(x, angles)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[..., 18:], x[..., 18:])
    assert not torch.allclose(y[..., :18], x[..., :18])


def test_bad_rotary_settings_are_refused():
    with pytest.raises(ValueError, match="head dim"):
        rope_angles(2, 2, 2, 4)
    with pytest.raises(ValueError, match="features"):
        apply_rope(torch.randn(8, 10), rope_angles(2, 2, 2, 32))
    with pytest.raises(ValueError, match="space-time"):
        TemporalAttentionBlock(16, emb_dim=8, heads=2, context_dim=8, rope=True)
