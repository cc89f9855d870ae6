"""The procedural world: determinism, captions, splits, geometry, and the detector on ground truth."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pytest
import torch

from lumiere_cli.world.detect import Detection, detect
from lumiere_cli.world.render import (
    MARGIN,
    ClipSpec,
    render,
    draw_like,
    draw_spec,
    render_batch,
    reversal_pairs,
    reversed_spec,
    sample_batch,
    sample_spec,
    trajectories,
)
from lumiere_cli.world.vocab import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT,
    MOTION_SYNONYMS,
    MOTIONS,
    OPPOSITE_MOTION,
    SHAPE_SYNONYMS,
    SHAPES,
    TRAIN_TRIPLES,
    caption,
    paraphrase,
    parse_caption,
    swap_one,
    vocabulary,
)

CANONICAL = re.compile(
    rf"^(a|an) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) ({'|'.join(MOTIONS)}) "
    rf"on a ({'|'.join(BACKGROUNDS)}) background$"
)


def specs(n: int, seed: int, split: str = "all") -> list[ClipSpec]:
    rng = random.Random(seed)
    return [sample_spec(rng, split) for _ in range(n)]


def test_deterministic_from_seed():
    a = sample_batch(8, 16, 32, torch.Generator().manual_seed(3), paraphrase_prob=0.5)
    b = sample_batch(8, 16, 32, torch.Generator().manual_seed(3), paraphrase_prob=0.5)
    c = sample_batch(8, 16, 32, torch.Generator().manual_seed(4), paraphrase_prob=0.5)
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    assert not torch.equal(a[0], c[0])
    assert specs(20, 1) == specs(20, 1)
    assert torch.equal(render(a[2][0]), render(b[2][0]))


def test_sample_batch_shapes_range_and_captions():
    videos, captions, drawn = sample_batch(32, 16, 32, torch.Generator().manual_seed(0), paraphrase_prob=0.0)
    assert videos.shape == (32, 3, 16, 32, 32) and videos.dtype == torch.float32
    assert videos.min() >= -1 and videos.max() <= 1
    assert captions == [caption(s) for s in drawn]
    assert all(CANONICAL.match(c) for c in captions)
    _, paraphrased, drawn = sample_batch(64, 8, 16, torch.Generator().manual_seed(1), paraphrase_prob=1.0)
    assert any(p != caption(s) for p, s in zip(paraphrased, drawn))
    # Other frame counts and sizes work too.
    assert sample_batch(2, 32, 64, torch.Generator().manual_seed(0))[0].shape == (2, 3, 32, 64, 64)


def test_reversed_spec_is_the_clip_played_backwards():
    drawn = specs(200, 5)
    for spec in drawn:
        twin = reversed_spec(spec)
        if spec.motion == "bouncing":
            assert twin is None
            continue
        back = reversed_spec(twin)
        assert twin.motion == OPPOSITE_MOTION[spec.motion] and back.motion == spec.motion
        assert (back.x, back.y, back.size) == pytest.approx((spec.x, spec.y, spec.size))
        a, b = render_batch([spec, twin], 8, 16)
        torch.testing.assert_close(b, a.flip(1), rtol=0, atol=1e-5)


def test_sample_batch_pairs_clips_with_their_reversals_inside_the_split():
    videos, captions, drawn = sample_batch(64, 8, 16, torch.Generator().manual_seed(2), reversed_pairs=1.0)
    pairs = reversal_pairs(drawn)
    movers = sum(s.motion != "bouncing" for s in drawn[:32])
    assert 0 < len(pairs) <= movers and all(j == i + 32 for i, j in pairs)
    for i, j in pairs:
        torch.testing.assert_close(videos[j], videos[i].flip(1), rtol=0, atol=1e-5)
        assert parse_caption(captions[j])["motion"] == OPPOSITE_MOTION[drawn[i].motion]
    assert all(s.triple in TRAIN_TRIPLES for s in drawn)
    unpaired = sample_batch(64, 8, 16, torch.Generator().manual_seed(2))[2]
    assert reversal_pairs(unpaired) == []


def test_draw_like_keeps_what_the_caption_names_and_draws_the_rest():
    rng = random.Random(0)
    named = draw_like("a blue box going up on a white background", 40, rng)
    assert {s.triple for s in named} == {("blue", "square", "moving up")} and {s.background for s in named} == {"white"}
    assert len({(s.x, s.y) for s in named}) == 40
    assert len({s.background for s in draw_like("a blue box going up", 40, rng)}) == 3
    anything = draw_like("", 200, rng)
    assert len({s.triple for s in anything}) > 50 and all(s.triple in TRAIN_TRIPLES for s in anything)
    held = next(iter(HELD_OUT))
    with pytest.raises(ValueError, match="no clip"):
        draw_like(caption(dict(zip(("colour", "shape", "motion"), held), background="black")), 1, rng)


def test_caption_grammar_and_parse_round_trip():
    spec = ClipSpec("orange", "circle", "moving left", "gray")
    assert caption(spec) == "an orange circle moving left on a gray background"
    assert caption(ClipSpec("red", "square", "bouncing", "white")) == "a red square bouncing on a white background"
    rng = random.Random(0)
    words = set(vocabulary())
    for s in specs(300, 5):
        want = {"colour": s.colour, "shape": s.shape, "motion": s.motion, "background": s.background}
        assert parse_caption(caption(s)) == want
        text = paraphrase(s, rng)
        assert text.startswith("an " if s.colour == "orange" else "a ")
        assert set(text.split()) <= words
        parsed = parse_caption(text)
        assert {k: parsed[k] for k in ("colour", "shape", "motion")} == {k: want[k] for k in ("colour", "shape", "motion")}
        assert parsed.get("background", s.background) == s.background
    assert parse_caption("a ball expanding") == {"shape": "circle", "motion": "growing"}
    assert parse_caption("a blue box moving to the left on a grey background")["background"] == "gray"
    assert parse_caption("hello world") is None
    # Every synonym is reachable and parses to its attribute.
    for motion, phrases in MOTION_SYNONYMS.items():
        assert all(parse_caption(f"a red circle {p}")["motion"] == motion for p in phrases)
    for shape, names in SHAPE_SYNONYMS.items():
        assert all(parse_caption(f"a red {n} growing")["shape"] == shape for n in names)


def test_swap_one_changes_exactly_one_attribute_in_the_captions_own_words():
    rng = random.Random(0)
    words = set(vocabulary())
    seen = set()
    for s in specs(300, 6):
        text = paraphrase(s, rng) if rng.random() < 0.5 else caption(s)
        swapped = swap_one(text, rng)
        a, b = parse_caption(text), parse_caption(swapped)
        changed = [k for k in a if a[k] != b.get(k)]
        assert len(changed) == 1 and set(b) == set(a), (text, swapped)
        seen.add(changed[0])
        if changed[0] == "motion" and a["motion"] in OPPOSITE_MOTION:
            assert b["motion"] == OPPOSITE_MOTION[a["motion"]]
        assert set(swapped.split()) <= words
        assert swapped.startswith("an " if b["colour"] == "orange" else "a ")
    assert seen == {"colour", "shape", "motion", "background"}
    assert swap_one("a red ball going left", random.Random(1)) in {
        "a red ball going right", "a red square going left", "a red triangle going left",
    } | {f"{'an' if c == 'orange' else 'a'} {c} ball going left" for c in COLOURS if c != "red"}
    assert swap_one("a blue box rising", random.Random(0)).endswith(("sinking", "rising"))
    with pytest.raises(ValueError, match="names no attribute"):
        swap_one("hello world", rng)


def test_held_out_split():
    assert len(HELD_OUT) == 13 and len(TRAIN_TRIPLES) == 126 - 13
    train = specs(2000, 7, "train")
    assert not any(s.triple in HELD_OUT for s in train)
    assert {s.triple for s in specs(300, 8, "held_out")} == set(HELD_OUT)
    # Every word is seen in training, and so is every pair inside every held-out triple.
    seen = Counter(w for s in train for w in caption(s).split())
    assert set(COLOURS) | set(SHAPES) | set(BACKGROUNDS) <= set(seen)
    assert all(any(m == s.motion for s in train) for m in MOTIONS)
    for c, sh, m in HELD_OUT:
        assert sum(t[0] == c and t[1] == sh for t in TRAIN_TRIPLES) >= 5
        assert sum(t[0] == c and t[2] == m for t in TRAIN_TRIPLES) >= 2
        assert sum(t[1] == sh and t[2] == m for t in TRAIN_TRIPLES) >= 4
    for counts in (Counter(t[0] for t in TRAIN_TRIPLES), Counter(t[1] for t in TRAIN_TRIPLES), Counter(t[2] for t in TRAIN_TRIPLES)):
        assert min(counts.values()) >= 15
    with pytest.raises(ValueError):
        sample_spec(random.Random(0), "test")


def test_object_stays_in_frame_and_motion_is_visible():
    drawn = specs(400, 11)
    for frames in (16, 32):
        cx, cy, size = trajectories(drawn, frames)
        eps = 1e-5
        assert (cx - size / 2 >= MARGIN - eps).all() and (cx + size / 2 <= 1 - MARGIN + eps).all()
        assert (cy - size / 2 >= MARGIN - eps).all() and (cy + size / 2 <= 1 - MARGIN + eps).all()
        assert (size >= 0.17).all() and (size <= 0.47).all()
        for i, s in enumerate(drawn):
            x, y, z = cx[i], cy[i], size[i]
            if s.motion.startswith("moving"):
                assert max(abs(x[-1] - x[0]), abs(y[-1] - y[0])) >= 0.35
            elif s.motion in ("growing", "shrinking"):
                assert max(z[-1] / z[0], z[0] / z[-1]) >= 2
            else:
                floor = 1 - MARGIN - s.size / 2
                fall = y - torch.cummin(y, 0).values
                rise = y - torch.cummin(y.flip(0), 0).values.flip(0)
                # Some frame near the floor comes after a fall of >= 0.3 and before a rise >= 0.1.
                assert ((floor - y < 0.1) & (fall >= 0.3) & (rise >= 0.1)).any()
    # Rendered borders are pure background: nothing of the object touches the frame's edge.
    videos = render_batch(drawn[:64], 16, 32)
    for v, s in zip(videos, drawn[:64]):
        bg = torch.tensor(BACKGROUNDS[s.background]).float()[:, None, None] / 255
        for edge in (v[:, :, 0], v[:, :, -1], v[:, :, :, 0], v[:, :, :, -1]):
            assert torch.allclose(edge, bg.expand_as(edge), atol=1e-6)


@pytest.mark.parametrize("size,n", [(32, 300), (64, 120)])
def test_detector_reads_ground_truth(size, n):
    drawn = specs(n, size)
    videos = render_batch(drawn, 16, size)
    # Feed half as float (3, t, h, w) and half as uint8 (t, h, w, 3): both layouts are accepted.
    clips = [v if i % 2 else (v.permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy() for i, v in enumerate(videos)]
    dets = [detect(c) for c in clips]
    for attr in ("colour", "shape", "motion", "background"):
        acc = np.mean([getattr(d, attr) == getattr(s, attr) for d, s in zip(dets, drawn)])
        assert acc >= 0.98, (attr, acc)
    assert np.mean([d.consistent for d in dets]) >= 0.98


def test_detector_survives_noise_on_a_clip():
    # Generated clips are noisy: a few stray pixels and mild noise must not change the answer.
    gen = torch.Generator().manual_seed(0)
    drawn = specs(40, 99)
    videos = render_batch(drawn, 16, 32)
    noisy = (videos + 0.04 * torch.randn(videos.shape, generator=gen)).clamp(0, 1)
    noisy[:, :, :, 5, 2] = 1 - noisy[:, :, :, 5, 2]  # one stray pixel per frame
    right = sum(
        (d.colour, d.shape, d.motion, d.background) == (s.colour, s.shape, s.motion, s.background)
        for d, s in ((detect(v), s) for v, s in zip(noisy, drawn))
    )
    assert right >= 38


def test_detector_shape_is_unbiased_by_pixel_noise():
    # Sampled clips carry grain. Noise must not push one shape towards another: a fill ratio of
    # per-column maxima called half of these squares circles.
    gen = torch.Generator().manual_seed(1)
    drawn = specs(90, 7)
    videos = render_batch(drawn, 16, 32)
    noisy = (videos + 0.08 * torch.randn(videos.shape, generator=gen)).clamp(0, 1)
    for shape in SHAPES:
        mine = [(v, s) for v, s in zip(noisy, drawn) if s.shape == shape]
        right = sum(detect(v).shape == shape for v, _ in mine)
        assert len(mine) >= 20 and right >= 0.95 * len(mine), (shape, right, len(mine))


def test_detector_on_blank_and_noise_clips():
    blank = np.zeros((16, 32, 32, 3), np.uint8)
    d = detect(blank)
    assert isinstance(d, Detection) and not d.consistent
    assert (d.colour, d.shape, d.motion, d.background) == (None, None, None, "black")
    noise = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    assert not detect(noise).consistent
    # Two objects in a frame: not consistent.
    a, b = render_batch([ClipSpec("red", "square", "growing", "black", x=0.3, y=0.3, size=0.2, end_size=0.2),
                         ClipSpec("red", "square", "growing", "black", x=0.7, y=0.7, size=0.2, end_size=0.2)], 4, 32)
    assert not detect(torch.maximum(a, b)).consistent
    with pytest.raises(ValueError):
        detect(np.zeros((16, 32, 32), np.uint8))


def test_sample_batch_keeps_only_the_asked_motions():
    moves = ("moving left", "moving right")
    _, captions, drawn = sample_batch(48, 4, 16, torch.Generator().manual_seed(3), motions=moves, reversed_pairs=1.0)
    assert {s.motion for s in drawn} == set(moves) and all(s.triple in TRAIN_TRIPLES for s in drawn)
    assert len(reversal_pairs(drawn)) > 0  # a translation's reversal is a translation, still allowed
    with pytest.raises(ValueError, match="wobbling"):
        sample_batch(4, 4, 16, torch.Generator().manual_seed(3), motions=("wobbling",))


def test_fit_recovers_a_render_and_its_path():
    # world.fit draws with the renderer's own coverage, so a render is fitted where it was drawn.
    from lumiere_cli.world import fit, strict

    rng = random.Random(21)
    for i, motion in enumerate(MOTIONS):
        spec = draw_spec(rng, "red", SHAPES[i % 3], motion, "white")
        clip = (render(spec, 16, 32).permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy()
        cx, cy, size = (v[0].numpy() for v in trajectories([spec], 16))
        reading = strict.read_clip(clip)
        track = np.array(reading.track)
        assert np.abs(track[:, 0] - cx).max() < 0.01 and np.abs(track[:, 1] - cy).max() < 0.01
        assert np.abs(track[:, 2] / size - 1).max() < 0.04
        assert reading.motion_fit is not None and reading.motion_fit.motion == spec.motion
        if spec.motion == "bouncing":
            p = reading.motion_fit.params
            assert abs(p["impact"] - spec.impact) <= 0.011 and abs(p["restitution"] - spec.restitution) <= 0.03
        if spec.motion.startswith("moving"):
            assert abs(reading.motion_fit.params["travel"] - spec.travel) < 0.01
    # IoU is symmetric, 1 on itself, and 0 apart.
    a = fit.render_coverage("circle", 10.0, 10.0, 4.0, 32, 32)
    b = fit.render_coverage("circle", 24.0, 24.0, 4.0, 32, 32)
    assert fit.silhouette_iou(a, a) == 1.0 and fit.silhouette_iou(a, b) == 0.0
    sq = fit.render_coverage("square", 10.0, 10.0, 4.0, 32, 32)
    assert fit.silhouette_iou(a, sq) == fit.silhouette_iou(sq, a) < 0.9
