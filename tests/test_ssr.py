"""The cascade's super-resolution model: config, weights, conditioning, windows, sampling, training."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lumiere_cli.cascade.header import SSR_FILENAME, read_ssr_info, ssr_beside
from lumiere_cli.cascade.model import SSRModel, condition, enlarge
from lumiere_cli.cascade.sample import SSROptions, upscale
from lumiere_cli.cascade.weights import load_ssr, save_ssr
from lumiere_cli.config import SSRConfig, TextConfig, UNetConfig, dumps, loads
from lumiere_cli.diffusion.windows import BatchedTemporalWindows
from lumiere_cli.diffusion.wrappers import TemporalWindows, window_starts
from lumiere_cli.errors import UsageError, WeightsError

TINY_SSR = SSRConfig(
    text=TextConfig(context_length=16, width=32, heads=2, layers=1, embed_dim=32),
    unet=UNetConfig(in_channels=10, patch=2, channels=(16, 32), res_blocks=1, attn_levels=(False, True), heads=2,
                    context_dim=32, pooled_dim=32, temporal_levels=1, temporal_attn_blocks=1, spacetime_attn_blocks=0),
    factor=2, size=8, frames=4, overlap=2, crop=8, sample_aug_sigma=0.0,
    vocabulary=("a", "red", "circle"),
)


def make_tiny_ssr(seed: int = 0) -> SSRModel:
    torch.manual_seed(seed)
    model = SSRModel(TINY_SSR, card={"name": "tiny-ssr"})
    with torch.no_grad():  # zero-initialised output layers would hide every input
        for p in [*model.unet.parameters(), *model.aug.parameters()]:
            if p.ndim > 1 and not p.any():
                p.normal_(0, 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_ssr():
    return make_tiny_ssr()


def test_ssr_config_round_trips_and_refuses_unknown_keys():
    assert loads(SSRConfig, dumps(TINY_SSR)) == TINY_SSR
    assert SSRConfig().out_size == 128 and SSRConfig().factor == 4
    with pytest.raises(ValueError, match="unknown SSRConfig keys"):
        loads(SSRConfig, json.dumps({**json.loads(dumps(TINY_SSR)), "bogus": 1}))


def test_weights_round_trip_header_and_tamper(tmp_path, tiny_ssr, tiny_weights):
    path = save_ssr(tiny_ssr, tmp_path, dtype=torch.float16)
    assert path.name == SSR_FILENAME
    info = read_ssr_info(tmp_path)
    assert info.config == TINY_SSR and info.card["name"] == "tiny-ssr"
    assert info.parameters == sum(p.numel() for p in tiny_ssr.state_dict().values())
    loaded = load_ssr(path)
    assert loaded.weights_hash == info.content_hash
    for k, v in tiny_ssr.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.half().float()), k
    # a flipped byte in the tensors fails the hash
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    bad = tmp_path / "bad" / SSR_FILENAME
    bad.parent.mkdir()
    bad.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="hash mismatch"):
        load_ssr(bad)
    # base weights are not SSR weights
    with pytest.raises(WeightsError, match="not lumiere-cli super-resolution weights"):
        read_ssr_info(tiny_weights / "model.safetensors")


def test_ssr_found_beside_the_base_weights(tmp_path, tiny_weights, tiny_ssr):
    import shutil

    assert ssr_beside(tiny_weights) is None
    folder = tmp_path / "cascade"
    shutil.copytree(tiny_weights, folder)
    save_ssr(tiny_ssr, folder)
    assert ssr_beside(folder) == folder / SSR_FILENAME
    assert ssr_beside(folder / "model.safetensors") == folder / SSR_FILENAME


def test_condition_is_bicubic_at_level_zero_and_noised_at_low_res():
    low = torch.rand(2, 3, 4, 8, 8) * 2 - 1
    zero = condition(low, torch.zeros(2), 4)
    assert zero.shape == (2, 3, 4, 32, 32)
    assert torch.equal(zero, enlarge(low, 4))
    noise = torch.randn(low.shape)
    noisy = condition(low, torch.tensor([0.0, 0.5]), 4, noise=noise)
    assert torch.equal(noisy[0], zero[0])
    assert torch.allclose(noisy[1], enlarge(low + 0.5 * noise, 4)[1])
    # the noise lives on low-res pixels: averaging each 4x4 block of it gives back the low-res noise
    # up to the bicubic kernel's smoothing (far more than independent per-pixel noise would keep)
    diff = (noisy[1] - zero[1]).unflatten(-1, (8, 4)).unflatten(-3, (8, 4)).mean((-1, -3))
    assert torch.corrcoef(torch.stack([diff.flatten(), 0.5 * noise[1].flatten()]))[0, 1] > 0.8


def test_ssr_net_reads_the_low_res_clip_and_the_augmentation_level(tiny_ssr):
    d = tiny_ssr.denoiser
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 4, 16, 16, generator=g)
    low = torch.randn(1, 3, 4, 16, 16, generator=g)
    text = {k: v for k, v in tiny_ssr.text.encode(["a red circle"]).as_kwargs().items()}
    with torch.no_grad():
        a = d(x, 1.0, lowres=low, aug_sigma=torch.zeros(1), **text)
        b = d(x, 1.0, lowres=-low, aug_sigma=torch.zeros(1), **text)
        c = d(x, 1.0, lowres=low, aug_sigma=torch.full((1,), 0.3), **text)
        frame = d(x[:, :, 0], 1.0, lowres=low[:, :, 0], aug_sigma=torch.zeros(1), **text)  # the image U-Net
    assert a.shape == x.shape and frame.shape == x[:, :, 0].shape
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match="lowres must be"):
        d(x, 1.0, lowres=low[:, :, :, :8, :8], aug_sigma=torch.zeros(1), **text)


def test_freshly_inflated_default_ssr_is_the_image_unet_on_every_frame_of_a_moving_clip():
    # No temporal down/upsampling in the SSR: with the temporal layers at their identity init the
    # video stage starts exactly where the frames stage ended, whatever moves in the clip.
    cfg = replace(TINY_SSR, unet=replace(TINY_SSR.unet, temporal_levels=0))
    assert SSRConfig().unet.temporal_levels == 0
    torch.manual_seed(0)
    model = SSRModel(cfg).eval()
    with torch.no_grad():
        for p in model.unet.spatial.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(0, 0.05)
    g = torch.Generator().manual_seed(0)
    x, low = torch.randn(1, 3, 5, 16, 16, generator=g), torch.randn(1, 3, 5, 16, 16, generator=g)
    text = model.text.encode(["a red circle"]).as_kwargs()
    with torch.no_grad():
        clip = model.denoiser(x, 0.7, lowres=low, aug_sigma=torch.zeros(1), **text)
        for t in range(5):
            frame = model.denoiser(x[:, :, t], 0.7, lowres=low[:, :, t], aug_sigma=torch.zeros(1), **text)
            assert torch.allclose(clip[:, :, t], frame, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Temporal MultiDiffusion


class FrameDenoiser(torch.nn.Module):
    """A denoiser that depends on its window: each frame gets the window's mean added, so windows
    disagree about shared frames (like a network that sees different neighbours)."""

    def forward(self, x, sigma, **kwargs):
        self.calls = getattr(self, "calls", 0) + 1
        return 0.5 * x + x.mean(dim=2, keepdim=True) + kwargs["lowres"]


def test_one_window_covering_the_clip_equals_the_plain_call():
    model = FrameDenoiser()
    x, low = torch.randn(2, 3, 8, 4, 4), torch.randn(2, 3, 8, 4, 4)
    plain = model(x, 1.0, lowres=low)
    for window in (8, 12):
        wrapped = BatchedTemporalWindows(model, window, 2, ("lowres",))
        assert torch.equal(wrapped(x, 1.0, lowres=low), plain)


def test_batched_windows_match_sequential_windows_in_fewer_calls():
    x, low = torch.randn(2, 3, 16, 4, 4), torch.randn(2, 3, 16, 4, 4)
    seq_model, batched_model = FrameDenoiser(), FrameDenoiser()
    seq = TemporalWindows(seq_model, 8, 2, ("lowres",))(x, torch.ones(2), lowres=low)
    batched = BatchedTemporalWindows(batched_model, 8, 2, ("lowres",))(x, torch.ones(2), lowres=low)
    assert torch.allclose(seq, batched, atol=1e-6)
    assert seq_model.calls == len(window_starts(16, 8, 2)) == 3 and batched_model.calls == 1
    chunked = BatchedTemporalWindows(FrameDenoiser(), 8, 2, ("lowres",), chunk=2)(x, torch.ones(2), lowres=low)
    assert torch.allclose(chunked, seq, atol=1e-6)


def test_boundary_measure_sees_a_jump_where_a_window_starts():
    from lumiere_cli.cascade.measure import window_boundaries, boundary_ratio

    assert window_boundaries(16, 8, 2) == [3, 7, 11]  # pairs (3, 4), (7, 8), (11, 12)
    ramp = torch.linspace(0, 3, 16).view(1, 16, 1, 1, 1).expand(16, 16, 4, 4, 3).permute(1, 0, 2, 3, 4)[:, :1]
    smooth = ramp.reshape(16, 4, 4, 3).contiguous()  # (t, h, w, c): one step per frame
    assert boundary_ratio(smooth, 8, 2) == pytest.approx(1.0)
    jumped = smooth.clone()
    jumped[8:] += 0.5
    assert boundary_ratio(jumped, 8, 2) > 2.0


def test_without_averaging_later_windows_are_pasted_over_earlier_ones():
    class WindowIndex(torch.nn.Module):  # every window returns its first frame's value everywhere
        def forward(self, x, sigma, **kwargs):
            return x[:, :, :1].expand_as(x).clone()

    x = torch.arange(16.0).view(1, 1, 16, 1, 1)
    on = BatchedTemporalWindows(WindowIndex(), 8, 2)(x, 1.0)
    off = BatchedTemporalWindows(WindowIndex(), 8, 2, average=False)(x, 1.0)
    # windows start at 0, 4, 8: pasted, frames take the last window covering them
    assert off.flatten().tolist() == [0.0] * 4 + [4.0] * 4 + [8.0] * 8
    assert on.flatten().tolist() == [0.0] * 4 + [2.0] * 4 + [6.0] * 4 + [8.0] * 4


# ---------------------------------------------------------------------------------------------
# Sampling


def test_upscale_shapes_determinism_and_options(tiny_ssr):
    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    a = upscale(tiny_ssr, low, "a red circle", seed=3, options=SSROptions(steps=2))
    b = upscale(tiny_ssr, low, "a red circle", seed=3, options=SSROptions(steps=2))
    c = upscale(tiny_ssr, low, "a red circle", seed=4, options=SSROptions(steps=2))
    assert a.frames.shape == (8, 16, 16, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, c.frames)
    assert a.options.window == 4 and a.options.overlap == 2 and a.options.noise == 0.0
    noisy = upscale(tiny_ssr, low, "a red circle", seed=3, options=SSROptions(steps=2, noise=0.4))
    assert not np.array_equal(noisy.frames, a.frames)
    with pytest.raises(UsageError, match="uint8 frames"):
        upscale(tiny_ssr, low.astype(np.float32), seed=0)
    assert upscale(tiny_ssr, low[:, :4, :6], seed=0, options=SSROptions(steps=1)).frames.shape == (8, 8, 12, 3)
    with pytest.raises(UsageError, match="cannot take 8 frames of 5x4"):
        upscale(tiny_ssr, low[:, :4, :5], seed=0)
    with pytest.raises(UsageError, match="cannot take 3 frames"):
        upscale(tiny_ssr, low[:3], seed=0)
    with pytest.raises(UsageError, match="noise"):
        upscale(tiny_ssr, low, seed=0, options=SSROptions(noise=2.0))


def test_upscale_keeps_known_pixels_at_the_output_resolution(tiny_ssr):
    rng = np.random.default_rng(1)
    low = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # the user's own high-res pixels
    known = torch.zeros(1, 3, 4, 16, 16)
    known[:, :, 0] = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    mask = torch.zeros(1, 1, 4, 16, 16)
    mask[:, :, 0] = 1
    out = upscale(tiny_ssr, low, seed=0, options=SSROptions(steps=2), known=known, known_mask=mask)
    assert np.array_equal(out.frames[0], image)
    assert not np.array_equal(out.frames[1], image)


# ---------------------------------------------------------------------------------------------
# Training


def test_training_pairs_show_the_same_crop_at_both_sizes():
    from lumiere_cli.cascade.train import SSRTrainConfig, make_batch

    model_cfg = replace(SSRConfig(), aug_zero=1.0)  # clean conditioning: L is the enlarged low-res crop
    for stage in ("frames", "video"):
        b = make_batch(SSRTrainConfig(stage=stage, batch_size=4), model_cfg, step=0)
        x0, lowres = b["x0"], b["lowres"]
        assert x0.shape[-2:] == (64, 64) and lowres.shape == x0.shape
        assert (x0.ndim == 4) == (stage == "frames")
        assert torch.equal(b["aug_sigma"], torch.zeros(4))
        # the high-res crop averaged over 4x4 blocks is (nearly) the low-res crop enlarged back
        pool = torch.nn.functional.avg_pool2d
        hi = pool(x0.flatten(0, -4), 4)
        lo = pool(lowres.flatten(0, -4), 4)
        assert (hi - lo).abs().mean() < 0.02
        shifted = pool(x0.flatten(0, -4).roll(4, dims=-1), 4)
        assert (shifted - lo).abs().mean() > (hi - lo).abs().mean() + 0.01 or x0.std() < 0.05


def test_restored_inputs_are_the_base_models_own_drawings(tiny_model, tiny_weights):
    from lumiere_cli.cascade.train import SSRTrainConfig, _Batches, _check, make_batch
    from lumiere_cli.errors import UsageError

    model_cfg = replace(TINY_SSR, size=tiny_model.config.size, aug_zero=1.0)
    for stage in ("frames", "video"):
        plain = make_batch(SSRTrainConfig(stage=stage, batch_size=16), model_cfg, step=1)
        half = SSRTrainConfig(stage=stage, batch_size=16, restore=0.5)
        drawn = make_batch(half, model_cfg, step=1, base=tiny_model)
        # only the low-res inputs change, and the same step draws the same batch again
        assert torch.equal(drawn["x0"], plain["x0"]) and drawn["captions"] == plain["captions"]
        assert torch.equal(drawn["lowres"], make_batch(half, model_cfg, step=1, base=tiny_model)["lowres"])
        changed = (drawn["lowres"] - plain["lowres"]).flatten(1).abs().amax(1) > 1e-6
        assert 0 < int(changed.sum()) < 16, changed
    with pytest.raises(UsageError, match="restore"):
        _check(SSRTrainConfig(restore=1.5))
    with pytest.raises(UsageError, match="restore_from draws"):
        _Batches(SSRTrainConfig(restore=0.5, restore_from=str(tiny_weights)), replace(TINY_SSR, size=32), 0)


def test_trainer_stages_resume_and_continue(tmp_path, tiny_weights):
    from lumiere_cli.cascade.train import SSRTrainConfig, train_ssr

    model = replace(TINY_SSR, text=TextConfig(context_length=16, width=32, heads=2, layers=1, embed_dim=32))
    first = SSRTrainConfig(stage="frames", out_dir=str(tmp_path / "frames"), model=model, text_from=str(tiny_weights),
                           steps=2, batch_size=2, checkpoint_every=1, log_every=1, warmup=1, threads=1)
    seen = []
    path = train_ssr(first, progress=lambda phase, done, total, **m: seen.append((phase, done)))
    assert path.name == SSR_FILENAME and seen[-1] == ("train", 2)
    info = read_ssr_info(path)
    assert info.card["training"][-1]["steps"] == 2 and info.config.vocabulary  # the base's vocabulary
    # the text encoder is the base's
    from lumiere_cli.weights import load_model

    base = load_model(tiny_weights)
    assert all(torch.equal(v, base.text.state_dict()[k].half().float()) or torch.equal(v, base.text.state_dict()[k])
               for k, v in load_ssr(path).text.state_dict().items())
    # resuming a finished stage runs nothing more; a longer one continues from the checkpoint
    longer = replace(first, steps=3)
    seen.clear()
    train_ssr(longer, progress=lambda phase, done, total, **m: seen.append(done))
    assert seen == [3]
    ssr = load_ssr(path)
    video = SSRTrainConfig(stage="video", out_dir=str(tmp_path / "video"), init=str(path), steps=1, batch_size=1,
                           log_every=1, warmup=1, threads=1)
    out = load_ssr(train_ssr(video))
    assert [r["stage"] for r in out.card["training"]] == ["frames", "video"]
    for k, v in ssr.state_dict().items():  # the video stage trains the temporal layers only
        if not k.startswith("unet.temporal."):
            assert torch.equal(out.state_dict()[k], v), k


def test_measures_psnr_ssim_and_edge_width():
    from lumiere_cli.cascade.measure import edge_width, enlarge_pil, psnr, ssim

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert psnr(clip, clip) == float("inf") and ssim(clip, clip) == pytest.approx(1.0)
    noisy = np.clip(clip.astype(int) + rng.integers(-8, 9, clip.shape), 0, 255).astype(np.uint8)
    assert 25 < psnr(clip, noisy) < 40 and ssim(clip, noisy) < 1.0
    step = np.zeros((1, 16, 16, 3), np.uint8)
    step[:, :, 8:] = 255
    assert edge_width(step) == pytest.approx(1.0)
    ramp = np.zeros((1, 16, 16, 3), np.uint8)
    ramp[:, :, 6:10] = np.array([51, 102, 153, 204], np.uint8)[None, None, :, None]
    ramp[:, :, 10:] = 255
    assert edge_width(ramp) == pytest.approx(5.0)  # five steps of 51
    assert enlarge_pil(step, 4, "lanczos").shape == (1, 64, 64, 3)
    assert edge_width(enlarge_pil(step, 4, "bicubic")) > 2.0


def test_ship_rule_and_the_cards_ssr_part(tmp_path, tiny_ssr):
    from lumiere_cli.cascade.card import render_ssr
    from lumiere_cli.cascade.evaluate import beats_baselines, table

    row = lambda p, s: {"psnr": p, "ssim": s, "edge_width": 2.0}  # noqa: E731
    report = {"n": 4, "seed": 0, "frames": 16, "options": {"steps": 4, "noise": 0.0}, "render_edge_width": 1.5,
              "methods": {"bicubic": row(31.0, 0.96), "lanczos": row(31.5, 0.97), "ssr": row(36.0, 0.98)}}
    assert beats_baselines(report)
    assert "| ssr | 36.00 | 0.9800 | 2.00 |" in table(report)
    report["methods"]["ssr"] = row(36.0, 0.965)  # better PSNR, worse SSIM than Lanczos: not shipped
    assert not beats_baselines(report)
    save_ssr(tiny_ssr, tmp_path, card={"name": "tiny-ssr", "fidelity": report, "measurements": ["windows: 1.0"],
                                       "training": [{"stage": "frames", "steps": 2, "batch_size": 2, "samples_seen": 4,
                                                     "device": "cpu", "wall_minutes": 0.1, "lr": 0.001}]})
    page = "\n".join(render_ssr(read_ssr_info(tmp_path)))
    assert "## Super-resolution (SSR)" in page and "8x8 -> 16x16" in page
    assert "| frames | 2 | 2 | 4 | cpu | 0.1 | 0.001 |" in page and "| lanczos | 31.50 | 0.9700 |" in page
    assert "- windows: 1.0" in page


def test_a_cascade_clip_is_read_strictly_at_the_base_size():
    """Renders at the cascade's 128 px, averaged back to 32 (`shrink`, what `lumiere eval` does with
    the cascade's clips) pass the strict reading calibrated at 32 px, every attribute right."""
    import random

    from lumiere_cli.cascade.evaluate import shrink
    from lumiere_cli.eval import evaluate_clips
    from lumiere_cli.pixels import to_uint8
    from lumiere_cli.world.render import render_batch, sample_spec

    rng = random.Random(5)
    specs = [sample_spec(rng, "all") for _ in range(6)]
    big = to_uint8(render_batch(specs, 16, 128) * 2 - 1).permute(0, 2, 3, 4, 1).numpy()
    s = evaluate_clips([shrink(c, 4) for c in big], specs)
    assert s["all"] == 1.0 and s["iou"] >= 0.97, s


# ----------------------------------------------------------------------------- spatial tiles


def test_tile_starts_cover_the_side_on_the_grid_with_the_overlap():
    from lumiere_cli.diffusion.tiles import tile_starts

    for length, tile, overlap, m in [(512, 128, 32, 16), (256, 128, 32, 16), (128, 64, 32, 16), (96, 64, 8, 4)]:
        starts = tile_starts(length, tile, overlap, m)
        assert starts[0] == 0 and starts[-1] == length - tile and all(s % m == 0 for s in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # every pair overlaps enough
    assert tile_starts(128, 128, 32, 16) == [0]
    with pytest.raises(ValueError, match="multiples of 16"):
        tile_starts(128, 100, 32, 16)
    with pytest.raises(ValueError, match="cannot overlap"):
        tile_starts(128, 32, 32, 16)


def test_tiles_of_a_local_model_give_the_whole_frames_result():
    """A model that works pixel by pixel gives the same clip in tiles as whole (the average of
    equal estimates), whatever the chunk; a frame within one tile is one plain call."""
    from lumiere_cli.diffusion.tiles import SpatialTiles

    calls = []

    def local(x, sigma, lowres, aug):
        calls.append(tuple(x.shape))
        return x * 2 + lowres * sigma.view(-1, 1, 1, 1, 1) + aug.view(-1, 1, 1, 1, 1)

    g = torch.Generator().manual_seed(0)
    x, low = torch.randn(2, 3, 4, 96, 80, generator=g), torch.randn(2, 3, 4, 96, 80, generator=g)
    sigma, aug = torch.tensor([0.5, 2.0]), torch.tensor([0.1, 0.3])
    whole = local(x, sigma, low, aug)
    for chunk in (1, 4, 100):
        calls.clear()
        tiled = SpatialTiles(local, 32, 8, ("lowres",), multiple=8, chunk=chunk)(x, sigma, lowres=low, aug=aug)
        assert torch.allclose(tiled, whole, atol=1e-6)
        assert all(shape[3:] == (32, 32) for shape in calls) and len(calls) == -(-12 // chunk)  # 4 x 3 tiles
    calls.clear()
    assert torch.equal(SpatialTiles(local, 96, 8, ("lowres",))(x, sigma, lowres=low, aug=aug), whole)
    assert calls == [tuple(x.shape)]


def test_the_shipped_ssr_in_tiles_keeps_its_fidelity():
    """Measured on renders: tiles of 64 px on 128 px frames stay within 1.5 dB of whole frames
    against the render (0.2-1.1 dB on these clips) and 40 dB of the whole frames' output."""
    from einops import rearrange

    from lumiere_cli import pixels
    from lumiere_cli.cascade.measure import psnr
    from lumiere_cli.cascade.weights import load_ssr
    from lumiere_cli.world.render import draw_spec, render

    ssr = load_ssr(Path(__file__).resolve().parents[1] / "lumiere_cli" / "shipped" / "ssr.safetensors")
    for seed, words in enumerate([("red", "circle", "moving left", "gray"), ("blue", "square", "moving up", "white")]):
        spec = draw_spec(seed, *words)
        low = rearrange(pixels.to_uint8(render(spec, 16, 32)), "c t h w -> t h w c").numpy()
        ref = rearrange(pixels.to_uint8(render(spec, 16, 128)), "c t h w -> t h w c").numpy()
        whole = upscale(ssr, low, spec.caption, seed=0, options=SSROptions(steps=2, tile=0))
        tiled = upscale(ssr, low, spec.caption, seed=0, options=SSROptions(steps=2, tile=64))
        assert tiled.options.tile == 64 and whole.options.tile == 0
        assert psnr(tiled.frames, ref) >= psnr(whole.frames, ref) - 1.5
        assert psnr(tiled.frames, whole.frames) >= 40
    # by default frames up to 256 px go whole (the cascade's 128 among them), larger ones in tiles of 128
    assert SSROptions().tiles_for(128, 128).tile == 0
    assert (SSROptions().tiles_for(512, 384).tile, SSROptions().tiles_for(512, 384).tile_overlap) == (128, 32)
    with pytest.raises(UsageError, match="multiple of 16"):
        upscale(ssr, low, "", seed=0, options=SSROptions(steps=1, tile=100))
