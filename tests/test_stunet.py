"""STUNet inflation: identity at init, static clips, resampling, input checks, freezing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from einops import rearrange

from lumiere_cli.config import UNetConfig
from lumiere_cli.nn import STUNet, UNet2D
from lumiere_cli.nn.positions import grid_positions
from lumiere_cli.nn.layers import (
    SpatialAttention,
    TemporalAttentionBlock,
    TemporalConvBlock,
    TemporalDownsample,
    TemporalUpsample,
    TextPool,
)

TINY = UNetConfig(
    channels=(16, 32, 32),
    res_blocks=1,
    attn_levels=(False, True, True),
    heads=2,
    context_dim=24,
    pooled_dim=20,
    temporal_levels=2,
    temporal_attn_blocks=2,
)
L = 5


def cond(b: int, cfg: UNetConfig = TINY, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, L, dtype=torch.bool)
    mask[:, 3:] = False
    return (
        torch.randn(b, generator=g) * 0.5,
        torch.randn(b, L, cfg.context_dim, generator=g),
        torch.randn(b, cfg.pooled_dim, generator=g),
        mask,
    )


def randomise_zero_inits(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give zero-initialised tensors random values, so identities are not trivially true."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return module


def random_unet(cfg: UNetConfig = TINY) -> UNet2D:
    torch.manual_seed(0)
    unet = UNet2D(cfg)
    randomise_zero_inits(unet)
    return unet


def video(b: int, t: int, size: int = 16, cfg: UNetConfig = TINY, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, cfg.in_channels, t, size, size, generator=g)


# (a) every new residual block is the identity at init
def test_temporal_residual_blocks_are_identity_at_init():
    x = torch.randn(2, 16, 4, 3, 5)
    emb = torch.randn(2, 64)
    conv = TemporalConvBlock(16, emb_dim=64, kernel=3)
    attn = TemporalAttentionBlock(16, emb_dim=64, heads=2, context_dim=8)
    ctx = torch.randn(2, 5, 8)
    assert torch.equal(conv(x, emb), x)
    assert torch.equal(attn(x, emb, ctx, None), x)
    assert torch.equal(TextPool(8, 64, heads=2)(ctx, None), torch.zeros(2, 64))

    net = STUNet(TINY)
    blocks = [m for m in net.temporal.modules() if isinstance(m, (TemporalConvBlock, TemporalAttentionBlock))]
    assert len(blocks) == 2 * 2 * TINY.res_blocks + TINY.temporal_attn_blocks + TINY.spacetime_attn_blocks
    assert TINY.spacetime_attn_blocks and sum(getattr(b, "space", False) for b in blocks) == TINY.spacetime_attn_blocks
    for blk in blocks:
        y_emb = torch.randn(1, net.spatial.emb_dim)
        if isinstance(blk, TemporalConvBlock):
            y = torch.randn(1, blk.proj.in_channels, 4, 2, 2)
            out = blk(y, y_emb)
        else:
            y = torch.randn(1, blk.qkv.in_features, 4, 2, 2)
            out = blk(y, y_emb, torch.randn(1, 3, TINY.context_dim), None)
        torch.testing.assert_close(out, y, rtol=0, atol=0)


# (b) a static clip through a freshly inflated STUNet equals the T2I U-Net on every frame
@pytest.mark.parametrize("temporal_levels", [0, 1, 2])
def test_static_clip_matches_image_unet(temporal_levels):
    cfg = dataclasses.replace(TINY, temporal_levels=temporal_levels)
    unet = random_unet(cfg)
    net = STUNet(cfg, spatial=unet).eval()
    frame = video(2, 1, cfg=cfg)[:, :, 0]
    clip = frame[:, :, None].expand(-1, -1, 8, -1, -1).contiguous()
    c = cond(2, cfg)
    with torch.no_grad():
        expected = unet(frame, *c)
        out = net(clip, *c)
    assert expected.abs().mean() > 1e-2  # the U-Net really does something
    for i in range(clip.shape[2]):
        torch.testing.assert_close(out[:, :, i], expected, rtol=0, atol=1e-5)


def test_static_clip_channels_last_3d_matches():
    unet = random_unet()
    net = STUNet(TINY, spatial=unet).eval()
    frame = video(1, 1)[:, :, 0]
    clip = frame[:, :, None].expand(-1, -1, 4, -1, -1)
    c = cond(1)
    with torch.no_grad():
        expected = unet(frame, *c)
        out = net(clip.contiguous(memory_format=torch.channels_last_3d), *c)
    torch.testing.assert_close(out, expected[:, :, None].expand_as(out), rtol=0, atol=1e-5)


# (c) temporal resamplers at init: stride 2 and frame duplication
def test_temporal_resampling_at_init():
    x = torch.randn(2, 8, 6, 3, 3)
    down = TemporalDownsample(8, kernel=3)
    up = TemporalUpsample(8, kernel=3)
    assert torch.equal(down(x), x[:, :, ::2])
    assert torch.equal(up(x), x.repeat_interleave(2, dim=2))
    # A constant clip stays exactly constant (no [0.5, 1, 0.5] doubling).
    const = torch.ones(1, 8, 4, 2, 2)
    assert torch.equal(up(down(const)), const)


# (d) a frame count or size the network cannot take
def test_invalid_inputs_name_valid_values():
    net = STUNet(TINY)
    with pytest.raises(ValueError, match=r"frames must be a multiple of 4.*8, 12, 16.*got 10"):
        net.check_input(10, 16, 16)
    with pytest.raises(ValueError, match=r"multiples of 8.*got 12x16"):
        net.check_input(8, 12, 16)
    with pytest.raises(ValueError, match="got 6"):
        net(video(1, 6), *cond(1))
    assert net.valid_frames(16) == [4, 8, 12, 16]
    net.check_input(12, 8, 24)  # fine

    free = STUNet(dataclasses.replace(TINY, temporal_levels=0)).eval()
    with torch.no_grad():
        assert free(video(1, 3, size=8), *cond(1)).shape == (1, 3, 3, 8, 8)
    with pytest.raises(ValueError, match="temporal_levels"):
        STUNet(dataclasses.replace(TINY, temporal_levels=3))


# (e) freeze_spatial leaves only temporal parameters trainable
def test_freeze_spatial():
    net = STUNet(TINY).freeze_spatial()
    names = {n for n, p in net.named_parameters()}
    assert all(n.startswith(("spatial.", "temporal.")) for n in names)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("temporal.") for n in trainable)
    assert trainable == {n for n in names if n.startswith("temporal.")}
    net.freeze_spatial(False)
    assert all(p.requires_grad for p in net.parameters())


def test_gradients_reach_temporal_parameters():
    net = STUNet(TINY).freeze_spatial()
    randomise_zero_inits(net.spatial)  # the zero head would otherwise block every gradient
    out = net(video(2, 8), *cond(2))
    out.square().mean().backward()
    assert all(p.grad is None for p in net.spatial.parameters())
    # Zero-initialised output projections get gradient first; every temporal block has one. (The
    # text pool only modulates those blocks, and the words feed cross-attention whose output starts
    # at zero, so both are reached from the second step on.)
    grads = {n: p.grad for n, p in net.temporal.named_parameters()
             if not n.startswith("text_pool.") and "words" not in n}
    for name in (".proj.weight", ".out.weight", ".out_cross.weight", ".mlp_out.weight"):
        hit = [g for n, g in grads.items() if n.endswith(name)]
        assert hit and all(g is not None and g.abs().sum() > 0 for g in hit), name
    for name in ("downsample.0.conv.weight", "upsample.0.conv.weight"):
        assert grads[name].abs().sum() > 0


def test_embedding_conditions_temporal_blocks():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 4, 3, 3)
    emb = torch.randn(1, 64).expand(2, -1).clone()
    emb[1] += 1.0
    ctx = torch.randn(1, 5, 8).expand(2, -1, -1)
    for blk in (TemporalConvBlock(16, emb_dim=64, kernel=3),
                TemporalAttentionBlock(16, emb_dim=64, heads=2, context_dim=8)):
        randomise_zero_inits(blk)
        args = (ctx, None) if isinstance(blk, TemporalAttentionBlock) else ()
        same = blk(x[:1].expand(2, -1, -1, -1, -1), emb, *args)
        assert not torch.allclose(same[0], same[1], atol=1e-4)

    # Through the whole network: only the pooled text differs and only the temporal path learned.
    net = STUNet(TINY).eval()
    randomise_zero_inits(net.temporal)
    randomise_zero_inits(net.spatial.head)
    c_noise, ctx, pooled, mask = cond(1)
    pooled2 = torch.cat([pooled, pooled + 1.0])
    x = video(1, 8).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        out = net(x, c_noise.expand(2), ctx.expand(2, -1, -1), pooled2, mask.expand(2, -1))
        out_temporal_only = out[0] - out[1]
        net.temporal.pooled_proj.weight.zero_()
        net.temporal.pooled_proj.bias.zero_()
        net.spatial.pooled_proj.weight.zero_()
        out2 = net(x, c_noise.expand(2), ctx.expand(2, -1, -1), pooled2, mask.expand(2, -1))
    assert out_temporal_only.abs().max() > 1e-4
    torch.testing.assert_close(out2[0], out2[1])


def test_text_tokens_condition_temporal_layers_beyond_the_pooled_embedding():
    """Captions that differ in one word (the pooled embedding held fixed) reach the temporal layers
    through attention pooling and cross-attention; masked-out tokens do not."""
    torch.manual_seed(0)
    ctx = torch.randn(1, 6, 8).repeat(2, 1, 1)
    ctx[1, 3] = torch.randn(8)  # one word differs
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    pool = randomise_zero_inits(TextPool(8, 64, heads=2))
    attn = randomise_zero_inits(TemporalAttentionBlock(16, emb_dim=64, heads=2, context_dim=8))
    x = torch.randn(1, 16, 4, 3, 3).expand(2, -1, -1, -1, -1)
    emb = torch.randn(1, 64).expand(2, -1)
    with torch.no_grad():
        pooled, out = pool(ctx, mask), attn(x, emb, ctx, mask)
        assert not torch.allclose(pooled[0], pooled[1], atol=1e-4)
        assert not torch.allclose(out[0], out[1], atol=1e-4)
        padded = ctx.clone()
        padded[:, 4:] = torch.randn(2, 2, 8)  # behind the mask: ignored
        torch.testing.assert_close(pool(padded, mask), pooled)
        torch.testing.assert_close(attn(x, emb, padded, mask), out)


def test_words_reach_cross_attention_only_once_their_projection_is_trained():
    """The word embeddings change nothing at init (older weights keep their behaviour), then
    tell apart captions whose contextual token features are identical."""
    torch.manual_seed(0)
    ctx = torch.randn(1, 6, 8).repeat(2, 1, 1)  # identical contextual features
    words = torch.randn(1, 6, 8).repeat(2, 1, 1)
    words[1, 3] = torch.randn(8)  # but one word differs
    mask = torch.ones(2, 6, dtype=torch.bool)
    pool = TextPool(8, 64, heads=2)
    attn = TemporalAttentionBlock(16, emb_dim=64, heads=2, context_dim=8)
    spatial = SpatialAttention(16, heads=2, context_dim=8)
    with torch.no_grad():
        for name in ("out", "out_cross", "mlp_out"):  # trained outputs, zero words projection
            torch.nn.init.normal_(getattr(attn, name).weight, std=0.1)
        torch.nn.init.normal_(pool.out.weight, std=0.1)
        torch.nn.init.normal_(spatial.out_cross.weight, std=0.1)
    image = torch.randn(1, 16, 3, 3).expand(2, -1, -1, -1)
    x = torch.randn(1, 16, 4, 3, 3).expand(2, -1, -1, -1, -1)
    emb = torch.randn(1, 64).expand(2, -1)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, emb, ctx, mask, words), attn(x, emb, ctx, mask))
        torch.testing.assert_close(pool(ctx, mask, words), pool(ctx, mask))
        torch.testing.assert_close(spatial(image, ctx, mask, words), spatial(image, ctx, mask))
        out, pooled, drawn = attn(x, emb, ctx, mask, words), pool(ctx, mask, words), spatial(image, ctx, mask, words)
        assert torch.allclose(out[0], out[1]) and torch.allclose(pooled[0], pooled[1])
        assert torch.allclose(drawn[0], drawn[1])
        randomise_zero_inits(attn.words_cross)
        randomise_zero_inits(pool.words_kv)
        randomise_zero_inits(spatial.words_cross)
        out, pooled, drawn = attn(x, emb, ctx, mask, words), pool(ctx, mask, words), spatial(image, ctx, mask, words)
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    assert not torch.allclose(pooled[0], pooled[1], atol=1e-4)
    assert not torch.allclose(drawn[0], drawn[1], atol=1e-4)


def test_spacetime_attention_moves_information_across_pixels_and_frames():
    """Per-pixel temporal attention keeps pixels apart; the space-time block lets a change at one
    pixel of frame 0 reach other pixels of later frames."""
    torch.manual_seed(0)
    emb, ctx = torch.randn(1, 64), torch.randn(1, 3, 8)
    x = torch.randn(1, 16, 4, 3, 3)
    poked = x.clone()
    poked[:, :, 0, 0, 0] += 3.0 * torch.randn(16)  # not constant: LayerNorm would remove that
    for space, rope, spreads in ((False, False, False), (True, False, True), (True, True, True)):
        blk = TemporalAttentionBlock(16, emb_dim=64, heads=2, context_dim=8, space=space, rope=rope)
        randomise_zero_inits(blk)
        with torch.no_grad():
            diff = (blk(poked, emb, ctx, None) - blk(x, emb, ctx, None)).abs()
        assert (diff[:, :, 1:, 1:, 1:].amax() > 1e-4) == spreads
    assert grid_positions(2, 3, 4, 6).shape == (2 * 3 * 4, 18)


def test_bf16_autocast_forward():
    net = STUNet(TINY)
    randomise_zero_inits(net)
    x = video(2, 8).contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, *cond(2))
    assert out.shape == (2, TINY.out_channels, 8, 16, 16)
    assert torch.isfinite(out).all()
    with torch.no_grad():
        ref = net(x.contiguous(), *cond(2))
    assert (out.float() - ref).abs().mean() < 0.1 * ref.abs().mean() + 1e-3


def test_all_masked_context_is_finite():
    net = STUNet(TINY).eval()
    randomise_zero_inits(net)
    c_noise, ctx, pooled, mask = cond(1)
    with torch.no_grad():
        out = net(video(1, 4), c_noise, ctx, pooled, torch.zeros_like(mask))
        out_none = net(video(1, 4), c_noise, ctx, pooled, None)
    assert torch.isfinite(out).all() and torch.isfinite(out_none).all()


def test_unet2d_shapes_and_masking():
    unet = random_unet().eval()
    x = rearrange(video(3, 1), "b c 1 h w -> b c h w")
    c_noise, ctx, pooled, mask = cond(3)
    with torch.no_grad():
        out = unet(x, c_noise, ctx, pooled, mask)
        ctx2 = ctx.clone()
        ctx2[:, 3:] = torch.randn_like(ctx2[:, 3:])  # masked tokens must not matter
        out2 = unet(x, c_noise, ctx2, pooled, mask)
    assert out.shape == (3, TINY.out_channels, 16, 16)
    torch.testing.assert_close(out, out2)


def test_space_to_depth_keeps_torchs_channel_order():
    # The shipped weights learned F.pixel_unshuffle's order; the faster rearrange must keep it.
    unet = random_unet(dataclasses.replace(TINY, patch=2)).eval()
    unet.stem, unet.head_norm, unet.head = torch.nn.Identity(), torch.nn.Identity(), torch.nn.Identity()
    x = torch.randn(3, 5, 16, 24)
    torch.testing.assert_close(unet.encode_input(x), torch.nn.functional.pixel_unshuffle(x, 2), rtol=0, atol=0)
    h = torch.randn(3, 20, 8, 12)
    expected = torch.nn.functional.pixel_shuffle(torch.nn.functional.silu(h), 2)
    torch.testing.assert_close(unet.decode_output(h), expected, rtol=0, atol=0)


def test_bf16_kernels_when_the_cpu_has_them(monkeypatch):
    # This machine may lack native bf16 (autocast is then turned off inside the net); force the
    # bf16 path anyway on a tiny clip to check it runs and stays close to fp32.
    from lumiere_cli.nn import layers

    monkeypatch.setattr(layers, "_cpu_supports", lambda dtype: True)
    net = STUNet(TINY).eval()
    randomise_zero_inits(net)
    x = video(1, 4)
    with torch.no_grad():
        ref = net(x, *cond(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x, *cond(1))
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().mean() < 0.1 * ref.abs().mean() + 1e-3


# (d) the faster kernels compute the same sums as the layers they stand for
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_over_frames_is_the_conv3d(stride, channels_last):
    from lumiere_cli.nn.layers import conv_over_frames

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 5, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0))
    x = torch.randn(2, 6, 8, 3, 4)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(conv_over_frames(conv, x), conv(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        conv_over_frames(torch.nn.Conv3d(6, 5, 3, padding=1), x)


def test_repeat_frames_in_either_layout():
    from lumiere_cli.nn.layers import repeat_frames

    x = torch.randn(2, 3, 4, 5, 6)
    expected = x.repeat_interleave(2, dim=2)
    assert torch.equal(repeat_frames(x, 2), expected)
    cl = repeat_frames(x.contiguous(memory_format=torch.channels_last_3d), 2)
    assert torch.equal(cl, expected) and cl.is_contiguous(memory_format=torch.channels_last_3d)


def test_per_clip_text_equals_the_text_repeated_on_every_frame():
    """Blocks read the caption once per clip (keys and values once, not per frame): the same
    numbers as the caption repeated on every frame of the folded batch, frames=1."""
    from einops import repeat

    from lumiere_cli.nn.layers import SpatialBlock

    torch.manual_seed(0)
    b, t = 2, 4
    blk = randomise_zero_inits(SpatialBlock(16, 16, emb_dim=32, attn=True, heads=2, context_dim=24)).eval()
    x = torch.randn(b * t, 16, 4, 4)
    emb = torch.randn(b, 32)
    _, context, _, mask = cond(b)
    words = torch.randn(b, L, 24)
    per_frame = [repeat(v, "b ... -> (b t) ...", t=t) for v in (emb, context, mask, words)]
    with torch.no_grad():
        once = blk(x, emb, context, mask, words, frames=t)
        repeated = blk(x, *per_frame)
    torch.testing.assert_close(once, repeated, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("space", [False, True])
def test_temporal_attention_in_either_layout(space):
    torch.manual_seed(0)
    blk = randomise_zero_inits(TemporalAttentionBlock(16, emb_dim=32, heads=2, context_dim=24, space=space,
                                                      rope=space)).eval()
    x = torch.randn(2, 16, 4, 3, 5)
    emb, (_, context, _, mask) = torch.randn(2, 32), cond(2)
    with torch.no_grad():
        plain = blk(x, emb, context, mask)
        cl = blk(x.contiguous(memory_format=torch.channels_last_3d), emb, context, mask)
    assert (plain - x).abs().mean() > 1e-2
    torch.testing.assert_close(cl, plain, rtol=1e-5, atol=1e-5)


def test_stunet_same_output_in_either_layout():
    net = randomise_zero_inits(STUNet(TINY)).eval()
    x, c = video(2, 8), cond(2)
    with torch.no_grad():
        plain = net(x, *c)
        cl = net(x.contiguous(memory_format=torch.channels_last_3d), *c)
    assert plain.is_contiguous() and plain.abs().mean() > 1e-2
    # oneDNN sums a channels-last convolution in another order; on an AVX2 CPU 6 of 12,288
    # outputs differ by up to 1.7e-5 (a layout bug moves them by ~1e-1)
    torch.testing.assert_close(cl, plain, rtol=1e-4, atol=5e-5)


def test_skipped_init_builds_modules_that_load_to_the_same_network():
    from lumiere_cli.nn.layers import skipped_init

    normal = torch.nn.init.normal_
    net = randomise_zero_inits(STUNet(TINY)).eval()
    with skipped_init():
        fresh = STUNet(TINY)
    assert torch.nn.init.normal_ is normal  # put back
    fresh.load_state_dict(net.state_dict())
    x, c = video(1, 4), cond(1)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x, *c), net(x, *c))


def test_widening_a_level_keeps_the_function_and_lets_the_copies_part():
    from lumiere_cli.nn.widen import widened

    torch.manual_seed(0)
    net = randomise_zero_inits(STUNet(TINY)).eval()
    wide = widened(net, (32, 32, 32), seed=3)
    assert wide.cfg.channels == (32, 32, 32) and wide.cfg.embedding_dim == net.cfg.embedding_dim
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in net.parameters())
    x, c = video(2, 8), cond(2)
    with torch.no_grad():
        before, after = net(x, *c), wide(x, *c)
    assert (after - before).abs().max() <= 1e-4 * before.abs().max()
    # The split's noise breaks the copies' symmetry: the two copies of a channel learn apart.
    wide(x, *c).square().mean().backward()
    grad = wide.spatial.stem.weight.grad  # writes the doubled first level: rows 2j, 2j + 1 copy row j
    assert not torch.allclose(grad[0::2], grad[1::2])


def test_widening_refuses_what_would_change_the_function():
    from lumiere_cli.nn.widen import widened

    net = randomise_zero_inits(STUNet(TINY)).eval()
    with pytest.raises(ValueError, match="doubles a level's channels or keeps them; got 16 -> 24"):
        widened(net, (24, 32, 32))
    with pytest.raises(ValueError, match="keeps the levels"):
        widened(net, (32, 32))
    with pytest.raises(ValueError, match=r"keeps the channels of levels with attention \(level 1, 2\)"):
        widened(net, (16, 64, 64))
