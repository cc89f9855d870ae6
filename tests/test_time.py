"""Time as an input: loops, prompt schedules, keyframes, extend, long clips coarse to fine, previews."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lumiere_cli.config import SampleOptions
from lumiere_cli.diffusion.wrappers import TemporalWindows, loop_starts
from lumiere_cli.errors import UsageError
from lumiere_cli.pipeline import Inputs, generate
from lumiere_cli.timeline import keyframe_positions


class Recorder(torch.nn.Module):
    """A denoiser that returns its input and records which frames and which prompt each call saw."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, sigma, **kwargs):
        self.calls.append((x[0, 0, :, 0, 0].tolist(), kwargs.get("context")))
        return x


def test_loop_windows_wrap_around_the_end():
    assert loop_starts(16, 16, 4) == [0, 8]
    x = torch.arange(16.0).reshape(1, 1, 16, 1, 1).expand(1, 3, 16, 2, 2).contiguous()
    rec = Recorder()
    out = TemporalWindows(rec, 16, 4, loop=True)(x, torch.ones(1))
    torch.testing.assert_close(out, x)  # every frame averaged over the windows holding it, in place
    frames = [f for f, _ in rec.calls]
    assert frames[1][:9] == [8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 0.0]  # 15 is followed by 0
    with pytest.raises(ValueError):
        loop_starts(8, 16, 4)
    rec = Recorder()  # one window starting half-way: the clip rolled by half, its end next to its start
    out = TemporalWindows(rec, 16, 4, loop=True, starts=[8])(x, torch.ones(1))
    torch.testing.assert_close(out, x)
    assert [f for f, _ in rec.calls] == [[*map(float, range(8, 16)), *map(float, range(8))]]


def test_each_window_runs_the_prompt_of_every_span_it_holds():
    from lumiere_cli.pipeline import _span_passes

    x = torch.arange(32.0).reshape(1, 1, 32, 1, 1).expand(1, 3, 32, 2, 2).contiguous()
    rec = Recorder()
    texts = {"a": {"context": torch.zeros(1)}, "b": {"context": torch.ones(1)}}
    passes = _span_passes([(0, "a"), (16, "b")], texts)
    out = TemporalWindows(rec, 16, 4, window_passes=passes)(x, torch.ones(1), context=texts["a"]["context"])
    seen = [(f[0], float(c)) for f, c in rec.calls]
    assert seen == [(0.0, 0.0), (8.0, 0.0), (8.0, 1.0), (16.0, 1.0)]  # the window across the change: both
    torch.testing.assert_close(out, x)  # weights only mix estimates, in every frame


def test_span_passes_keep_each_frame_to_its_span_but_where_places_are_drawn():
    from lumiere_cli.pipeline import OTHER_SPAN_WEIGHT, SPAN_BLEND_SIGMAS, _span_passes

    class Constant(torch.nn.Module):  # each pass denoises to the index of its prompt
        def forward(self, x, sigma, context):
            return torch.full_like(x, float(context))

    x = torch.zeros(1, 1, 32, 1, 1)
    passes = _span_passes([(0, "a"), (16, "b")], {"a": {"context": torch.tensor(0.0)},
                                                  "b": {"context": torch.tensor(1.0)}})
    windows = TemporalWindows(Constant(), 16, 4, window_passes=passes)
    for outside in (SPAN_BLEND_SIGMAS[0], 2 * SPAN_BLEND_SIGMAS[1]):  # colours and edges; motion
        alone = windows(x, torch.full((1,), outside), context=torch.tensor(0.0))[0, 0, :, 0, 0]
        torch.testing.assert_close(alone, torch.where(torch.arange(32) < 16, 0.0, 1.0), atol=3 * OTHER_SPAN_WEIGHT,
                                   rtol=0)
    high = windows(x, torch.full((1,), SPAN_BLEND_SIGMAS[1]), context=torch.tensor(0.0))[0, 0, :, 0, 0]
    assert 0.2 < high[15] < 0.5 < high[16] < 0.8  # beside the change both prompts count, each more in its own
    assert high[:8].max() < 3 * OTHER_SPAN_WEIGHT and high[24:].min() > 1 - 3 * OTHER_SPAN_WEIGHT  # one window


def test_long_clip_keyframes_land_on_their_coarse_frames():
    from lumiere_cli.timeline import squeeze

    frames = {p: np.full((1,), p) for p in (0, 2, 3, 31)}
    positions = keyframe_positions(32, 16)  # 0, 2, 4, ..., 31
    squeezed = squeeze(frames, positions)
    assert {i: int(f[0]) for i, f in squeezed.items()} == {0: 0, 1: 2, 2: 3, 15: 31}  # 3 beside 2: on 4's frame


def test_a_schedule_is_one_run_and_changes_only_from_its_span(tiny_model):
    from lumiere_cli.timeline import coarse_schedule

    t = tiny_model.config.frames
    opts = SampleOptions(steps=2)
    alone = generate(tiny_model, "a red circle", seed=4, options=opts).frames
    late = generate(tiny_model, "a red circle", seed=4, options=opts, schedule=[(t - 1, "a blue square")]).frames
    assert not np.array_equal(late, alone)
    same = generate(tiny_model, "a red circle", seed=4, options=opts, schedule=[(t // 2, "a red circle")]).frames
    np.testing.assert_allclose(same.astype(int), alone.astype(int), atol=1)  # one prompt in two spans: one clip
    # on a long clip's coarse frames: a span shorter than a coarse step gives way to the next one
    assert coarse_schedule([(0, "a"), (9, "b"), (10, "c"), (40, "d")], keyframe_positions(64, 16)) == \
        [(0, "a"), (3, "c"), (10, "d")]

    s, t = tiny_model.config.size, tiny_model.config.frames
    rng = np.random.default_rng(0)
    first, last = (rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for _ in range(2))
    out = generate(tiny_model, "a red circle", task="i2v", inputs=Inputs(image=first, keyframes={t - 1: last}),
                   seed=0, options=SampleOptions(steps=2)).frames
    assert np.array_equal(out[0], first) and np.array_equal(out[-1], last)
    video = rng.integers(0, 255, (t, s, s, 3), dtype=np.uint8)
    opts = SampleOptions(steps=2, frames=4)
    ahead = generate(tiny_model, "a red circle", task="extend", inputs=Inputs(video=video), seed=0, options=opts).frames
    assert len(ahead) == t + 4 and np.array_equal(ahead[:t], video)
    back = generate(tiny_model, "a red circle", task="extend", inputs=Inputs(video=video, backward=True), seed=0,
                    options=opts).frames
    assert len(back) == t + 4 and np.array_equal(back[4:], video)
    with pytest.raises(UsageError, match="keyframe index"):
        generate(tiny_model, "x", task="i2v", inputs=Inputs(image=first, keyframes={t: last}), seed=0,
                 options=SampleOptions(steps=1))


def test_a_long_clip_keeps_its_coarse_pass_as_keyframes(tiny_model):
    t = tiny_model.config.frames
    n = 3 * t
    opts = SampleOptions(steps=2, frames=n)
    coarse = generate(tiny_model, "a red circle", seed=3, options=SampleOptions(steps=2)).frames
    fine = generate(tiny_model, "a red circle", seed=3, options=opts).frames
    positions = keyframe_positions(n, t)
    assert positions[0] == 0 and positions[-1] == n - 1 and len(set(positions)) == t
    assert all(np.array_equal(fine[p], coarse[i]) for i, p in enumerate(positions))
    plain = generate(tiny_model, "a red circle", seed=3, options=SampleOptions(steps=2, frames=n, coarse=False)).frames
    assert not np.array_equal(plain, fine)


def test_loops_and_schedules_run_and_previews_arrive(tiny_model):
    t = tiny_model.config.frames
    looped = generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=2, loop=True)).frames
    plain = generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=2)).frames
    assert looped.shape == plain.shape and not np.array_equal(looped, plain)
    scheduled = generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=2, frames=2 * t),
                         schedule=[(t, "a blue square")]).frames
    assert scheduled.shape[0] == 2 * t
    seen = []
    generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=5),
             preview=lambda step, steps, frames: seen.append((step, steps, frames.shape)), preview_every=2)
    assert [s[:2] for s in seen] == [(2, 5), (4, 5), (5, 5)] and seen[0][2] == plain.shape
    with pytest.raises(UsageError, match="schedule"):
        generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=1), schedule=[(t, "x"), (t, "y")])


def test_a_pingpong_loop_plays_its_clipthere_and_back(tiny_model):
    t = tiny_model.config.frames
    half = t // 2
    looped = generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=2, loop=True)).frames
    plain = generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=2)).frames
    assert looped.shape == plain.shape and np.array_equal(looped[:half + 1], plain[:half + 1])
    assert all(np.array_equal(looped[half + k], looped[half - k]) for k in range(1, half))
    # the i2v image stays frame 0; a keyframe past the middle also fixes the frame played back there
    image = np.full((tiny_model.config.size,) * 2 + (3,), 200, np.uint8)
    key = np.zeros_like(image)
    clip = generate(tiny_model, "a red circle", task="i2v", inputs=Inputs(image=image, keyframes={t - 2: key}),
                    seed=0, options=SampleOptions(steps=2, loop=True)).frames
    assert np.array_equal(clip[0], image) and np.array_equal(clip[t - 2], key) and np.array_equal(clip[2], key)
    with pytest.raises(UsageError, match="same"):
        generate(tiny_model, "a red circle", task="i2v", inputs=Inputs(image=image, keyframes={2: image, t - 2: key}),
                 seed=0, options=SampleOptions(steps=1, loop=True))
    rounded = generate(tiny_model, "a red circle", seed=0, options=SampleOptions(steps=2, loop=True, loop_style="round"))
    assert not np.array_equal(rounded.frames, looped) and "draft_s" in rounded.timings


def test_loop_styles_resolve_from_the_schedule():
    from lumiere_cli.choices import LoopStyle

    assert LoopStyle.resolve(None, scheduled=False) is LoopStyle.pingpong
    assert LoopStyle.resolve(None, scheduled=True) is LoopStyle.round
    assert LoopStyle.resolve("round", scheduled=False) is LoopStyle.round
    with pytest.raises(UsageError, match="round"):
        LoopStyle.resolve("pingpong", scheduled=True)
    with pytest.raises(UsageError, match="pingpong, round"):
        LoopStyle.resolve("spiral", scheduled=False)


def test_a_loop_whose_size_jumps_at_the_wrap_is_not_seamless():
    """A rendered growing square, played round, snaps from big back to small: its centre barely
    moves, so only the size tells; played there and back it is seamless."""
    from lumiere_cli.eval_time import loop_measure, rendered
    from lumiere_cli.timeline import there_and_back

    _, clip = rendered("growing", 1, "green", "square", "gray")
    row = loop_measure(clip)
    assert row["wrap"] <= row["inner"] and row["wrap_size"] > 3 * row["inner_size"] and not row["seamless"], row
    row = loop_measure(there_and_back(clip, 16))
    assert row["seamless"] and row["largest_size"] == row["inner_size"], row


def test_time_layouts_know_whole_frames_and_leave_the_standard_batches_alone():
    from lumiere_cli.masks import LAYOUT_SETS, known_frames, random_known_mask

    assert known_frames("ends", 16, 0.3, 0.7) == [0, 15]
    assert known_frames("keyframes", 16, 0.0, 0.0) == [0, 2, 4, 6, 8, 10, 12, 14, 15]
    assert known_frames("prefix", 16, 0.99, 0.0) == list(range(8)) and known_frames("suffix", 16, 0.0, 0.0) == [14, 15]
    # A loop's seam window: 3 kept frames at each end, an i2v loop's image in the middle.
    assert known_frames("ring", 16, 0.5, 0.25) == [0, 1, 2, 8, 13, 14, 15]
    assert known_frames("ring", 16, 0.0, 0.9) == [0, 15] and known_frames("ring", 16, 0.99, 0.9) == [*range(4), *range(12, 16)]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    masks = random_known_mask(64, 16, 4, 4, generator=g(), layouts=LAYOUT_SETS["time"])
    whole = masks.flatten(3).all(-1)[:, 0]  # (b, t): frames known entirely
    partial = whole.any(1) & ~whole.all(1) & (masks.flatten(3).any(-1)[:, 0] == whole).all(1)
    assert partial.sum() > 10  # samples with some whole frames known and others generated
    # The standard set draws from the generator exactly what it drew before time layouts existed
    # (the layout kinds, then the boxes' sizes and starts), so shipped stages' batches replay.
    used = g()
    random_known_mask(8, 16, 4, 4, generator=used, layouts=LAYOUT_SETS["standard"])
    ref = g()
    probs = torch.tensor(list(LAYOUT_SETS["standard"].values()))
    torch.multinomial(probs, 8, replacement=True, generator=ref)
    torch.rand(8, 2, generator=ref), torch.rand(8, 2, generator=ref)
    assert torch.equal(torch.rand(4, generator=used), torch.rand(4, generator=ref))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_long_clip_on_the_shipped_model_is_one_journey(seed):
    """48 frames of a translation, read by the world's detector: one object in every frame, no step
    back against the motion, colour and shape held (independent windows jump back 1-4 times)."""
    from lumiere_cli.eval_time import long_clip_row
    from lumiere_cli.weights import load_model

    row = long_clip_row(load_model(), "a green circle moving right on a black background", "moving right", seed, 48,
                        coarse=True)
    assert row["not_one_object"] == 0 and row["backward_jumps"] == 0 and row["held"], row


# ---------------------------------------------------------------- the shipped model, read by the detector
# Few sampling steps keep each clip to a few seconds on one CPU thread. The steps are the shifted
# cosine cut to 10, guided at 3 above noise 1: the model's tuned levels for 10 steps and its lower
# scale above noise 5 (the default since 2026-12-02) are left out, so these rows and the figures in
# their reasons stay the ones measured before; README, Time has the default's rows beside them.
FEW = 10


@pytest.fixture(scope="module")
def shipped():
    from dataclasses import replace

    from lumiere_cli.weights import load_model

    model = load_model()
    model.config = replace(model.config, diffusion=replace(model.config.diffusion, sample_sigmas=None,
                                                           sample_guidance_high=None))
    return model


@pytest.mark.parametrize("style", ["pingpong", "round"])
@pytest.mark.parametrize("prompt, seed", [("a red circle bouncing on a black background", 6),
                                          ("a blue square moving right on a white background", 3)])
def test_a_loop_on_the_shipped_model_has_no_seam(shipped, prompt, seed, style):
    """Played round, the step from the last frame to the first is no larger than the largest step
    between neighbours inside the clip, for the object's place and size and for the pixels, and
    every frame shows one object."""
    from lumiere_cli.eval_time import loop_row

    row = loop_row(shipped, prompt, seed, steps=FEW, style=style)
    assert row["seamless"] and row["not_one_object"] == 0, row
    if style == "pingpong":  # every step of the loop is one of the clip made without --loop
        assert not row["jumps"], row


@pytest.mark.parametrize("task", ["i2v", "cinemagraph"])
def test_image_loops_on_the_shipped_model_keep_the_image_and_have_no_seam(shipped, task):
    """The image stays frame 0 and the loop is seamless, with no step faster than the clip made
    without --loop and one object in every frame (played there and back: the default)."""
    from lumiere_cli.eval_time import loop_row, rendered

    prompt, ref = rendered("bouncing", 1, "red", "circle", "black")
    region = np.ones(ref.shape[1:3], np.float32)  # animate the whole frame
    inputs = Inputs(image=ref[0], generate_region=region if task == "cinemagraph" else None)
    clip = generate(shipped, prompt, task=task, inputs=inputs, seed=1, options=SampleOptions(loop=True, steps=FEW)).frames
    row = loop_row(shipped, prompt, 1, task=task, inputs=inputs, steps=FEW)
    assert np.array_equal(clip[0], ref[0]), task
    assert row["seamless"] and not row["jumps"] and row["not_one_object"] == 0, row


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: made round, the shipped model does not lead back into the image "
                   "once it sits mid-window, even after 5,000 steps on the time layouts with the seam window's own "
                   "(i2v loops seamless in 2 of 18); README, Time")
def test_a_round_image_loop_on_the_shipped_model_has_no_seam(shipped):
    from lumiere_cli.eval_time import loop_row, rendered

    prompt, ref = rendered("bouncing", 1, "red", "circle", "black")
    row = loop_row(shipped, prompt, 1, task="i2v", inputs=Inputs(image=ref[0]), steps=FEW, style="round")
    assert row["seamless"], row


def test_keyframes_on_the_shipped_model_come_back_and_the_clip_moves_between_them(shipped):
    """i2v with a rendered clip's first and last frames: both exactly, one object in every frame,
    no step back against the reference's direction, and the detector reads its motion."""
    from lumiere_cli.eval_time import keyframes_row, rendered

    prompt, ref = rendered("moving right", 1, "red", "triangle", "black")
    row = keyframes_row(shipped, prompt, ref, 1, steps=FEW)
    assert row["exact"] and row["not_one_object"] == 0 and row["backward_jumps"] == 0, row
    assert row["motion"] == "moving right", row


def test_extend_on_the_shipped_model_keeps_its_input_and_continues_it(shipped):
    """The given clip comes back unchanged and the object is there on both sides of the join."""
    from lumiere_cli.eval_time import extend_row, rendered

    prompt, given = rendered("moving right", 1, length=32)
    row = extend_row(shipped, prompt, given[:16], 1, steps=FEW)
    assert row["unchanged"] and np.isfinite(row["join"]), row


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_extend_on_the_shipped_model_has_no_jump_at_the_join(shipped, seed):
    """The step across the join is no larger than any step of a trained-length render, every
    frame shows one object, and the new frames move the given way (a window holding the given
    frames at its start turned the motion back: joins of 0.056-0.098 frame widths, "moving left")."""
    from lumiere_cli.eval_time import extend_row, render_max_step, rendered

    prompt, given = rendered("moving right", seed, length=32)
    row = extend_row(shipped, prompt, given[:16], seed, steps=FEW)
    assert row["join"] <= render_max_step("moving right") and row["motion"] == "moving right", row
    assert row["not_one_object"] == 0, row


@pytest.fixture(scope="module")
def shipped_as_shipped():
    """The shipped model at its own sampling settings (the prompt schedules were measured there)."""
    from lumiere_cli.weights import load_model

    return load_model()


@pytest.mark.parametrize("seed", [1, 8, pytest.param(2, marks=pytest.mark.xfail(
    strict=True, reason="measured: the up-motion starts 0.036 frame widths off the left-motion's last place "
    "(largest step elsewhere 0.032); right on every count in 7 of 20 seeds, README, Time"))])
def test_a_motion_schedule_on_the_shipped_model_is_continuous_at_the_change(shipped_as_shipped, seed):
    """README's example, 'moving left' then 'moving up' from frame 16 of 32: each span's motion
    read, one object in every frame, and the step at the change no larger than the largest step
    elsewhere (independent windows read 1 of 5 seeds' second motion, and left 3-7 frames without
    one object)."""
    from lumiere_cli.eval_time import schedule_row

    row = schedule_row(shipped_as_shipped, "a red circle moving left on a black background",
                       "a red circle moving up on a black background", 16, seed)
    assert row["before"] == ("red", "circle", "moving left") and row["after"] == ("red", "circle", "moving up"), row
    assert row["not_one_object"] == 0 and row["change_step"] <= row["other_max"], row


@pytest.mark.parametrize("seed", [5, pytest.param(1, marks=pytest.mark.xfail(
    strict=True, reason="measured: the blue circle lands 0.201 frame widths from the red one's last place "
    "(largest step elsewhere 0.043); continuous in 10 of 20 seeds, README, Time"))])
def test_a_colour_schedule_on_the_shipped_model_changes_at_its_frame_in_place(shipped_as_shipped, seed):
    """'a red circle' then 'a blue circle' from frame 16 of 32: red read before, blue after, one
    object in every frame, and no jump at the change (made span by span, the blue circle was drawn
    anew where the world's clips start: continuous in 4 of 20 seeds)."""
    from lumiere_cli.eval_time import schedule_row

    row = schedule_row(shipped_as_shipped, "a red circle moving right on a black background",
                       "a blue circle moving right on a black background", 16, seed)
    assert row["before"] == ("red", "circle", "moving right") and row["after"] == ("blue", "circle", "moving right"), row
    assert row["not_one_object"] == 0 and row["change_step"] <= row["other_max"], row
