"""generate() end to end on a tiny random model, and the weights file rules."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from lumiere_cli.config import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, SampleOptions
from lumiere_cli.errors import InputError, UsageError, WeightsError
from lumiere_cli.pipeline import Inputs, generate, generate_batch, resolve_options, sampling_shift, unknown_words
from lumiere_cli.weights import load_model, read_header, save_model, weights_hash

FAST = SampleOptions(steps=3)


def test_t2v_end_to_end(tiny_model):
    seen = []
    res = generate(tiny_model, "a red circle moving left", options=FAST, seed=1,
                   progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert res.frames.shape == (8, 16, 16, 3) and res.frames.dtype == np.uint8
    assert res.frames.std() > 0
    assert ("denoise", 3, 3) in seen and ("encode", 1, 1) in seen
    assert set(res.timings) == {"encode_s", "denoise_s", "total_s"}


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m"])
def test_same_seed_same_clip_bit_for_bit(tiny_model, sampler):
    opts = SampleOptions(steps=3, sampler=sampler, eta=0.5 if sampler == "ddim" else 0.0)
    a = generate(tiny_model, "a red circle", options=opts, seed=7).frames
    b = generate(tiny_model, "a red circle", options=opts, seed=7).frames
    c = generate(tiny_model, "a red circle", options=opts, seed=8).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m"])
def test_a_batch_makes_the_clips_each_seed_makes_alone(tiny_model, sampler):
    opts = SampleOptions(steps=3, sampler=sampler, eta=1.0 if sampler == "ddim" else 0.0)
    prompts, seeds = ["a red circle moving left", "a blue square growing", "a red circle moving left"], [3, 4, 5]
    batch = generate_batch(tiny_model, prompts, seeds=seeds, options=opts)
    assert [r.seed for r in batch] == seeds
    for prompt, seed, result in zip(prompts, seeds, batch):
        alone = generate(tiny_model, prompt, options=opts, seed=seed).frames
        # Batched kernels may round differently; a pixel level or two at most.
        assert np.abs(alone.astype(int) - result.frames.astype(int)).max() <= 2
    assert not np.array_equal(batch[0].frames, batch[2].frames)  # same prompt, other seed
    assert generate_batch(tiny_model, [], seeds=[]) == []
    with pytest.raises(UsageError, match="one seed per prompt"):
        generate_batch(tiny_model, prompts, seeds=[1])
    with pytest.raises(UsageError, match="empty prompt"):
        generate_batch(tiny_model, ["a red circle", " "], seeds=[1, 2])


def test_schedule_shift_option_moves_the_sampling_steps(tiny_model):
    """None samples on the model's schedule; a shift moves the steps (and so the clip); the model's
    own shift given explicitly is the same as None."""
    own = tiny_model.config.diffusion.schedule_shift
    clip = lambda shift: generate(tiny_model, "a red circle", seed=3,
                                  options=SampleOptions(steps=4, schedule_shift=shift)).frames
    base = clip(None)
    assert np.array_equal(base, clip(own))
    assert not np.array_equal(base, clip(own * 4))
    # A model that recommends a sampling shift samples on it unless the options say otherwise.
    diffusion = dataclasses.replace(tiny_model.config.diffusion, sample_shift=own * 4)
    recommending = copy.copy(tiny_model)
    recommending.config = dataclasses.replace(tiny_model.config, diffusion=diffusion)
    assert sampling_shift(recommending.config, SampleOptions()) == own * 4
    assert sampling_shift(recommending.config, SampleOptions(schedule_shift=2.0)) == 2.0
    made = generate(recommending, "a red circle", seed=3, options=SampleOptions(steps=4)).frames
    assert np.array_equal(made, clip(own * 4))


def test_guidance_defaults_to_the_models_recommendation(tiny_model):
    """None guides at the model's recommended scale (DEFAULT_GUIDANCE when it names none); an
    explicit scale wins; the recommendation changes the clip exactly as naming it would."""
    assert resolve_options(tiny_model.config, SampleOptions()).guidance == DEFAULT_GUIDANCE
    diffusion = dataclasses.replace(tiny_model.config.diffusion, sample_guidance=2.5)
    recommending = copy.copy(tiny_model)
    recommending.config = dataclasses.replace(tiny_model.config, diffusion=diffusion)
    resolved = resolve_options(recommending.config, SampleOptions(steps=4))
    assert resolved.guidance == 2.5 and resolved.schedule_shift == diffusion.sampling_schedule_shift
    assert resolve_options(recommending.config, SampleOptions(guidance=7.0)).guidance == 7.0
    clip = lambda model, g: generate(model, "a red circle", seed=3, options=SampleOptions(steps=4, guidance=g)).frames
    assert np.array_equal(clip(recommending, None), clip(tiny_model, 2.5))
    assert not np.array_equal(clip(recommending, None), clip(tiny_model, None))


def test_low_noise_guidance_is_the_models_on_its_default_scale_and_the_callers_otherwise(tiny_model):
    """A model recommending a low-noise scale gets it with its own default scale; a caller naming
    another scale gets that scale throughout, unless naming the low-noise one too; the clip is
    the one naming both gives, and guidance at low noise alone still guides."""
    diffusion = dataclasses.replace(tiny_model.config.diffusion, sample_guidance=3.0, sample_guidance_low=1.5)
    recommending = copy.copy(tiny_model)
    recommending.config = dataclasses.replace(tiny_model.config, diffusion=diffusion)
    scales = lambda **kw: (lambda r: (r.guidance, r.guidance_low))(resolve_options(recommending.config, SampleOptions(**kw)))
    assert scales() == (3.0, 1.5) and scales(guidance=3.0) == (3.0, 1.5)
    assert scales(guidance=5.0) == (5.0, 5.0) and scales(guidance=1.0) == (1.0, 1.0)
    assert scales(guidance_low=2.0) == (3.0, 2.0) and scales(guidance=5.0, guidance_low=1.0) == (5.0, 1.0)
    assert resolve_options(tiny_model.config, SampleOptions()).guidance_low == DEFAULT_GUIDANCE  # none recommended
    clip = lambda model, **kw: generate(model, "a red circle", seed=3, options=SampleOptions(steps=6, **kw)).frames
    assert np.array_equal(clip(recommending), clip(tiny_model, guidance=3.0, guidance_low=1.5))
    assert not np.array_equal(clip(recommending), clip(tiny_model, guidance=3.0))
    assert not np.array_equal(clip(tiny_model, guidance=1.0, guidance_low=4.0), clip(tiny_model, guidance=1.0))
    with pytest.raises(UsageError, match="guidance low must be between 0 and 50"):
        generate(tiny_model, "a red circle", seed=3, options=SampleOptions(steps=2, guidance_low=-1.0))


def test_high_noise_guidance_follows_the_same_rule(tiny_model):
    """The high-noise scale: the model's on its default scale, the caller's otherwise; it changes
    the clip, the clip is the one naming it gives, and a bad value is a one-line UsageError."""
    diffusion = dataclasses.replace(tiny_model.config.diffusion, sample_guidance=3.0, sample_guidance_high=2.0)
    recommending = copy.copy(tiny_model)
    recommending.config = dataclasses.replace(tiny_model.config, diffusion=diffusion)
    high = lambda **kw: resolve_options(recommending.config, SampleOptions(**kw)).guidance_high
    assert high() == 2.0 and high(guidance=3.0) == 2.0 and high(guidance=5.0) == 5.0 and high(guidance_high=4.0) == 4.0
    assert resolve_options(tiny_model.config, SampleOptions()).guidance_high == DEFAULT_GUIDANCE  # none recommended
    # levels above 5 only on the first steps of the cosine from 80
    clip = lambda model, **kw: generate(model, "a red circle", seed=3, options=SampleOptions(steps=6, **kw)).frames
    assert np.array_equal(clip(recommending), clip(tiny_model, guidance=3.0, guidance_high=2.0))
    assert not np.array_equal(clip(recommending), clip(tiny_model, guidance=3.0))
    with pytest.raises(UsageError, match="guidance high must be between 0 and 50"):
        generate(tiny_model, "a red circle", seed=3, options=SampleOptions(steps=2, guidance_high=51.0))


def test_tuned_noise_levels_are_the_models_at_their_step_count_and_named_levels_are_the_callers(tiny_model):
    """A model's tuned levels serve sampling at their step count on its own shift; another step
    count, or a named shift, gets the shifted cosine; levels the caller names are sampled as given
    (their clip differs from the cosine's), and bad ones are one-line errors."""
    tuned = (80.0, 20.0, 4.0, 0.5)
    diffusion = dataclasses.replace(tiny_model.config.diffusion, sample_sigmas=tuned)
    recommending = copy.copy(tiny_model)
    recommending.config = dataclasses.replace(tiny_model.config, diffusion=diffusion)
    levels = lambda model, **kw: resolve_options(model.config, SampleOptions(**kw)).sigmas
    assert levels(recommending, steps=4) == tuned and levels(recommending, steps=5) is None
    assert levels(recommending, steps=4, schedule_shift=2.0) is None and levels(tiny_model, steps=4) is None
    assert levels(tiny_model, sigmas=[40, 2]) == (40.0, 2.0)
    assert resolve_options(tiny_model.config, SampleOptions(sigmas=(40.0, 2.0))).steps == 2
    clip = lambda model, **kw: generate(model, "a red circle", seed=3, options=SampleOptions(**kw)).frames
    assert np.array_equal(clip(recommending, steps=4), clip(tiny_model, sigmas=tuned))
    assert not np.array_equal(clip(recommending, steps=4), clip(tiny_model, steps=4))
    for bad, match in [((80.0, 90.0), "decrease strictly"), ((10.0, 10.0), "decrease strictly"), ((5.0, 0.0), "decrease"),
                       ((200.0, 1.0), "decrease strictly"), ((), "decrease"), (("a", 1.0), "list of numbers"),
                       (5.0, "list of numbers")]:
        with pytest.raises(UsageError, match=match):
            generate(tiny_model, "a red circle", seed=3, options=SampleOptions(sigmas=bad))
    with pytest.raises(UsageError, match="2 noise levels are 2 steps, not 3"):
        generate(tiny_model, "a red circle", seed=3, options=SampleOptions(sigmas=(40.0, 2.0), steps=3))


def test_tuned_noise_levels_travel_in_the_weights_header(tiny_model, tmp_path):
    """DiffusionConfig.sample_sigmas is written to the header and read back as the same tuple."""
    tuned = (80.0, 20.0, 4.0, 0.5)
    model = copy.deepcopy(tiny_model)
    model.config = dataclasses.replace(model.config, diffusion=dataclasses.replace(model.config.diffusion, sample_sigmas=tuned))
    back = load_model(save_model(model, tmp_path))
    assert back.config.diffusion.sample_sigmas == tuned and back.config == model.config


def test_sampler_defaults_to_the_models_recommendation(tiny_model):
    """None samples with the model's recommended sampler (DEFAULT_SAMPLER when it names none);
    an explicit sampler wins; the recommendation gives the clip naming it would."""
    assert resolve_options(tiny_model.config, SampleOptions()).sampler == DEFAULT_SAMPLER == "dpmpp-2m"
    diffusion = dataclasses.replace(tiny_model.config.diffusion, sample_sampler="ddim")
    recommending = copy.copy(tiny_model)
    recommending.config = dataclasses.replace(tiny_model.config, diffusion=diffusion)
    assert resolve_options(recommending.config, SampleOptions()).sampler == "ddim"
    assert resolve_options(recommending.config, SampleOptions(sampler="dpmpp-2m")).sampler == "dpmpp-2m"
    clip = lambda model, name: generate(model, "a red circle", seed=3, options=SampleOptions(steps=4, sampler=name)).frames
    assert np.array_equal(clip(recommending, None), clip(tiny_model, "ddim"))
    assert not np.array_equal(clip(recommending, None), clip(tiny_model, None))


def test_unknown_words_reported(tiny_model):
    res = generate(tiny_model, "a red dragon moving left", options=FAST, seed=0)
    assert res.unknown_words == ["dragon"]
    assert unknown_words("A RED circle", ("a", "red", "circle")) == []


def test_known_pixels_come_back_unchanged(tiny_model):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1
    out = generate(tiny_model, "a red circle", task="inpaint", inputs=Inputs(video=video, generate_region=mask),
                   options=FAST, seed=0).frames
    assert np.array_equal(out[:, mask == 0], video[:, mask == 0])
    assert not np.array_equal(out[:, mask == 1], video[:, mask == 1])

    image = video[0]
    out = generate(tiny_model, "a red circle", task="i2v", inputs=Inputs(image=image), options=FAST, seed=0).frames
    assert np.array_equal(out[0], image)

    out = generate(tiny_model, "a red circle", task="cinemagraph", inputs=Inputs(image=image, generate_region=mask),
                   options=FAST, seed=0).frames
    assert np.array_equal(out[0], image)
    assert all(np.array_equal(f[mask == 0], image[mask == 0]) for f in out)


def test_edit_low_strength_stays_close(tiny_model):
    video = np.full((8, 16, 16, 3), 100, np.uint8)
    weak = generate(tiny_model, "a red circle", task="edit", inputs=Inputs(video=video, strength=0.05),
                    options=SampleOptions(steps=20), seed=0).frames
    strong = generate(tiny_model, "a red circle", task="edit", inputs=Inputs(video=video, strength=1.0),
                      options=SampleOptions(steps=20), seed=0).frames
    err = lambda f: np.abs(f.astype(int) - 100).mean()  # noqa: E731
    assert err(weak) < err(strong)


def test_longer_clip_through_temporal_windows(tiny_model):
    res = generate(tiny_model, "a red circle", options=SampleOptions(steps=2, frames=16, overlap=2), seed=0)
    assert res.frames.shape[0] == 16


@pytest.mark.parametrize("kwargs, err", [
    (dict(prompt="  "), UsageError),
    (dict(options=SampleOptions(frames=7)), UsageError),
    (dict(options=SampleOptions(steps=0)), UsageError),
    (dict(options=SampleOptions(sampler="euler")), UsageError),
    (dict(options=SampleOptions(schedule_shift=0.0)), UsageError),
    (dict(task="i2v"), UsageError),
    (dict(task="edit", inputs=Inputs(video=np.zeros((8, 16, 16, 3), np.uint8), strength=1.5)), UsageError),
    (dict(task="i2v", inputs=Inputs(image=np.zeros((20, 16, 3), np.uint8))), InputError),
    (dict(task="inpaint", inputs=Inputs(video=np.zeros((8, 16, 16, 3), np.uint8), generate_region=np.ones((8, 8)))), InputError),
])
def test_bad_requests_raise_one_line_errors(tiny_model, kwargs, err):
    kwargs = {"prompt": "a red circle", **kwargs}
    with pytest.raises(err) as e:
        generate(tiny_model, kwargs.pop("prompt"), seed=0, **{"options": FAST, **kwargs})
    assert "\n" not in str(e.value)
    if "frames" in str(e.value):
        assert "8" in str(e.value)  # names valid frame counts


def test_weights_round_trip_and_config(tiny_model, tiny_weights, tmp_path):
    again = load_model(tiny_weights)
    assert again.config == tiny_model.config
    for (k, a), (_, b) in zip(tiny_model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    assert weights_hash(tiny_weights) == again.weights_hash
    meta = read_header(tiny_weights)
    assert json.loads(meta["config"])["frames"] == 8
    half = save_model(again, tmp_path / "half.safetensors", dtype=torch.float16)
    assert load_model(half).config == again.config


def test_tampered_missing_and_pickled_weights_are_refused(tiny_weights, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_weights, bad)
    f = bad / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF  # flip a byte inside the last tensor
    f.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="hash mismatch"):
        load_model(bad)
    with pytest.raises(WeightsError, match="no weights"):
        load_model(tmp_path / "nowhere")
    pickle = tmp_path / "model.pt"
    torch.save({"x": torch.zeros(1)}, pickle)
    with pytest.raises(WeightsError, match="pickled"):
        load_model(pickle)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        load_model(junk)


def test_older_weights_grow_into_new_layers_only_when_asked(tiny_model, tmp_path):
    """A training stage may start from weights saved before a layer was added to the code."""
    from safetensors.torch import save_file

    from lumiere_cli.config import dumps
    from lumiere_cli.weights import FORMAT, content_hash

    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()
             if not k.startswith("unet.temporal.text_pool.")}
    old = tmp_path / "old.safetensors"
    save_file(state, str(old), metadata={"format": FORMAT, "config": dumps(tiny_model.config),
                                          "card": "{}", "content_hash": content_hash(state)})
    with pytest.raises(WeightsError, match="do not match"):
        load_model(old)
    grown = load_model(old, grow=True)
    torch.testing.assert_close(grown.unet.temporal.text_pool.out.weight,
                               torch.zeros_like(grown.unet.temporal.text_pool.out.weight))
    torch.testing.assert_close(grown.unet.spatial.state_dict(), tiny_model.unet.spatial.state_dict())

    extra = dict(tiny_model.state_dict(), **{"unet.unknown.weight": torch.zeros(2)})
    extra = {k: v.contiguous() for k, v in extra.items()}
    save_file(extra, str(old), metadata={"format": FORMAT, "config": dumps(tiny_model.config),
                                          "card": "{}", "content_hash": content_hash(extra)})
    with pytest.raises(WeightsError, match="unexpected"):
        load_model(old, grow=True)


def test_shipped_weights_load_by_default_and_generate(monkeypatch):
    monkeypatch.delenv("LUMIERE_WEIGHTS", raising=False)
    model = load_model()  # lumiere_cli/shipped/model.safetensors, hash-checked
    cfg = model.config
    assert cfg.frames >= 16 and cfg.size >= 32 and "circle" in cfg.vocabulary
    assert model.card["training"] and "eval" in model.card
    res = generate(model, "a red circle moving left on a black background", options=SampleOptions(steps=2), seed=0)
    assert res.frames.shape == (cfg.frames, cfg.size, cfg.size, 3) and not res.unknown_words
    # the default: its tuned levels for 10 steps, within its sigma range, with a lower scale above noise 5;
    # another step count samples on the shifted cosine
    tuned = cfg.diffusion.sample_sigmas
    assert len(tuned) == 10 and tuned[0] == cfg.diffusion.sigma_max and tuned[-1] >= cfg.diffusion.sigma_min
    default = resolve_options(cfg, SampleOptions())
    assert default.steps == 10 and default.sigmas == tuned and (default.guidance, default.guidance_high) == (3.0, 2.0)
    assert resolve_options(cfg, SampleOptions(steps=25)).sigmas is None
