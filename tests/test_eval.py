"""Evaluation arithmetic, and the whole `evaluate` loop with a stand-in pipeline that draws ground truth."""

from __future__ import annotations

import json
import random
import sys
import types
from dataclasses import dataclass, replace

import pytest
import torch

from lumiere_cli.config import SampleOptions
import numpy as np

from lumiere_cli.eval import COLUMNS, EvalReport, confusion, draw_specs, evaluate, evaluate_clips, score
from lumiere_cli.pixels import to_uint8
from lumiere_cli.world import strict
from lumiere_cli.world.detect import Detection, detect
from lumiere_cli.world.render import ClipSpec, draw_spec, render, render_batch, sample_spec
from lumiere_cli.world.vocab import HELD_OUT, MOTIONS, SHAPES, parse_caption


def as_uint8(videos: torch.Tensor) -> np.ndarray:
    """Renders (b, 3, t, h, w) in [0, 1] as the pipeline returns clips: uint8 (b, t, h, w, 3)."""
    return to_uint8(videos * 2 - 1).permute(0, 2, 3, 4, 1).numpy()


def one_of_each(seed: int) -> list[ClipSpec]:
    """A clip of every motion, shapes and backgrounds in turn: every rule's render range."""
    rng = random.Random(seed)
    backgrounds = ("black", "white", "gray")
    colours = ("red", "orange", "yellow", "green", "blue", "purple")
    return [draw_spec(rng, colours[i % 6], SHAPES[i % 3], m, backgrounds[(i // 3) % 3])
            for i, m in enumerate(MOTIONS * 3)]


def test_score_arithmetic():
    specs = [
        ClipSpec("red", "circle", "growing", "black"),
        ClipSpec("blue", "square", "moving left", "white"),
        ClipSpec("green", "triangle", "bouncing", "gray"),
        ClipSpec("purple", "circle", "shrinking", "gray"),
    ]
    dets = [
        Detection("red", "circle", "growing", "black", True),  # all right
        Detection("blue", "circle", "moving left", "white", True),  # shape wrong
        Detection("green", "triangle", None, "gray", False),  # motion missing
        Detection("red", "square", "moving up", "white", False),  # all wrong
    ]
    s = score(dets, specs)
    assert s == {"count": 4, "colour": 0.75, "shape": 0.5, "motion": 0.5, "background": 0.75, "all": 0.25, "consistent": 0.5,
                 "grain": 0.0}
    assert score([], [])["all"] == 0.0
    with pytest.raises(ValueError):
        score(dets[:2], specs)


def test_renders_pass_the_strict_reading():
    # Renders as the eval sees clips (uint8), fresh seeds: not the calibration's clips.
    specs = one_of_each(7)
    s = evaluate_clips(list(as_uint8(render_batch(specs, 16, 32))), specs)
    assert s["count"] == 21
    assert all(s[k] == 1.0 for k in ("colour", "shape", "motion", "background", "all", "consistent")), s
    assert s["iou"] >= 0.97 and s["stability"] >= 0.97
    assert s["grain"] < 1 and s["spread"] < 1 and s["residual"] < 4
    assert s["matched_all"] == 1.0 and s["motion_read"]["bouncing"] == 1.0


def test_renders_through_the_mp4_writer_pass(tmp_path):
    # The codec the CLI writes (H.264, yuv420p, 8x display scale), read back at the model's size.
    from lumiere_cli.video_io import read_video, write_clip

    specs = one_of_each(11)[::4]
    clips = []
    for k, clip in enumerate(as_uint8(render_batch(specs, 16, 32))):
        big = read_video(write_clip(tmp_path / f"{k}.mp4", clip, fps=8, display_scale=8)).frames
        clips.append(np.round(big.astype(np.float32).reshape(16, 32, 8, 32, 8, 3).mean((2, 4))).astype(np.uint8))
    s = evaluate_clips(clips, specs)
    assert s["all"] == 1.0 and s["consistent"] == 1.0 and s["iou"] >= 0.96, s


def _square_frames(background=(128, 128, 128), colour=(30, 170, 50)):
    spec = ClipSpec("green", "square", "moving right", "gray", x=0.3, y=0.5, size=0.3, end_size=0.3, travel=0.4)
    return spec, as_uint8(render_batch([spec], 16, 32))[0]


def test_a_pinched_square_is_no_shape():
    # The shipped model's squares: sides pinched in and the top cupped. The matched filter still
    # calls them squares; no render looks like them.
    spec, clip = _square_frames()
    bad = clip.copy()
    for t in range(16):
        ys, xs = np.nonzero((bad[t].astype(int) - (128, 128, 128)).any(-1))
        top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
        mid = (top + bottom) // 2
        bad[t, mid - 1:mid + 2, left:left + 2] = 128  # pinched at the sides
        bad[t, mid - 1:mid + 2, right - 1:right + 1] = 128
        cx = (left + right) // 2
        bad[t, top:top + 2, cx - 1:cx + 2] = 128  # cupped at the top
    assert detect(bad).shape == "square"
    r = strict.read_clip(bad)
    assert r.shape is None and not r.consistent and r.mean_iou < 0.94
    assert strict.read_clip(clip).shape == "square"


def test_a_circle_with_a_tail_is_no_shape():
    spec = ClipSpec("orange", "circle", "moving right", "black", x=0.3, y=0.4, size=0.28, end_size=0.28, travel=0.4)
    clip = as_uint8(render_batch([spec], 16, 32))[0]
    bad = clip.copy()
    for t in range(16):
        ys, xs = np.nonzero(bad[t].any(-1))
        bad[t, ys.max() + 1:ys.max() + 4, int(xs.mean()) - 1:int(xs.mean()) + 1] = (255, 130, 0)
    assert detect(bad).shape == "circle"
    assert strict.read_clip(bad).shape is None and strict.read_clip(clip).shape == "circle"


def test_checkerboard_colour_and_grain_are_measured():
    spec, clip = _square_frames()
    checker = ((np.indices((32, 32)).sum(0) % 2) * 2 - 1)[None, :, :, None] * 12
    textured = np.clip(clip.astype(int) + checker, 0, 255).astype(np.uint8)
    clean, rough = strict.read_clip(clip), strict.read_clip(textured)
    assert clean.spread < 1 and clean.grain < 1
    assert rough.spread > 15 and rough.grain > 15 and rough.mean_residual > 15


def test_a_path_no_render_takes_is_no_motion():
    # A translation that wobbles across its direction a pixel each frame, and a jump back.
    spec, clip = _square_frames()
    wobble = clip.copy()
    for t in range(1, 16, 2):
        wobble[t] = np.roll(clip[t], 2, axis=0)
    assert detect(wobble).motion == "moving right"
    assert strict.read_clip(wobble).motion is None and strict.read_clip(clip).motion == "moving right"


def test_grain_measures_background_noise():
    rng = random.Random(4)
    spec = next(s for s in (sample_spec(rng, "all") for _ in range(100)) if s.background == "gray")  # no clipping
    clean = render_batch([spec], 16, 32)[0]
    noisy = clean + 0.04 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    assert detect(clean).grain < 0.5
    # 0.04 * 255 = 10.2 per channel: an RGB distance of sqrt(3) * 10.2 = 17.7
    assert 15 < detect(noisy).grain < 20


@dataclass
class _Result:
    frames: object


def test_evaluate_with_ground_truth_pipeline(monkeypatch):
    # A stand-in for lumiere_cli.pipeline whose "model" draws exactly what the prompt says.
    calls = []

    def generate(prompt, seed):
        calls.append((prompt, seed))
        attrs = parse_caption(prompt)
        # Continuous parameters belong to a motion: draw specs until one has the prompt's motion.
        r = random.Random(seed)
        while (spec := sample_spec(r, "all")).motion != attrs["motion"]:
            pass
        spec = replace(spec, **attrs)
        clip = render(spec, 16, 32)
        return _Result((clip.permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy())

    batches = []

    def generate_batch(model, prompts, *, seeds, options=None, device="cpu"):
        batches.append(len(prompts))
        return [generate(p, s) for p, s in zip(prompts, seeds)]

    def resolve_options(cfg, options):
        return replace(options, schedule_shift=1.5, guidance=4.0)

    stand_in = types.SimpleNamespace(generate_batch=generate_batch, resolve_options=resolve_options)
    monkeypatch.setitem(sys.modules, "lumiere_cli.pipeline", stand_in)
    progress = []
    report = evaluate(types.SimpleNamespace(config=None), n=6, seed=3, options=SampleOptions(steps=2), batch_size=4,
                      progress=lambda *a: progress.append(a))
    assert isinstance(report, EvalReport)
    assert set(report.splits) == {"held_in", "held_out"}
    for s in report.splits.values():
        assert s["count"] == 6 and s["all"] == 1.0 and s["consistent"] == 1.0
    assert len(calls) == 12 and batches == [4, 2, 4, 2]
    assert [s for _, s in calls] == [3, 4, 5, 6, 7, 8] * 2
    held_out_prompts = [p for p, *_ in calls[6:]]
    assert all(tuple(parse_caption(p)[k] for k in ("colour", "shape", "motion")) in HELD_OUT for p in held_out_prompts)
    assert progress == [("held_in", 4, 6), ("held_in", 6, 6), ("held_out", 4, 6), ("held_out", 6, 6),
                        ("held_in, reading", 6, 6), ("held_out, reading", 6, 6)]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["options"]["steps"] == 2 and len(data["samples"]) == 12
    # the settings the clips were made with, not "the model's"
    assert data["options"]["schedule_shift"] == 1.5 and data["options"]["guidance"] == 4.0
    rows = report.rows()
    assert len(rows) == 2 and all(len(r) == len(COLUMNS) for r in rows)
    assert rows[0][0] == "held_in" and rows[0][COLUMNS.index("consistent")] == "100.0%"
    assert rows[0][COLUMNS.index("all correct (matched filter)")] == "100.0%"
    assert float(rows[0][COLUMNS.index("IoU")]) >= 0.97
    assert data["confusion"]["motion"] == confusion(report.samples, "motion")
    assert all(s["read"]["motion"] == s["expected"]["motion"] for s in data["samples"])


def test_draw_specs_deterministic_and_split():
    a, b = draw_specs(20, 5), draw_specs(20, 5)
    assert a == b
    assert not any(s.triple in HELD_OUT for s in a["held_in"])
    assert all(s.triple in HELD_OUT for s in a["held_out"])


def _ground_truth_report(monkeypatch, n=2):
    """`evaluate` with a stand-in pipeline that renders what each prompt asks, clips kept."""
    def generate_batch(model, prompts, *, seeds, options=None, device="cpu"):
        out = []
        for prompt, seed in zip(prompts, seeds):
            attrs = parse_caption(prompt)
            spec = draw_spec(random.Random(seed), attrs["colour"], attrs["shape"], attrs["motion"], attrs["background"])
            out.append(_Result(as_uint8(render_batch([spec], 16, 32))[0]))
        return out

    stand_in = types.SimpleNamespace(generate_batch=generate_batch, resolve_options=lambda cfg, o: o)
    monkeypatch.setitem(sys.modules, "lumiere_cli.pipeline", stand_in)
    return evaluate(types.SimpleNamespace(config=None), n=n, seed=0, keep_clips=True)


def test_report_writes_sheets_and_page(monkeypatch, tmp_path):
    from PIL import Image

    from lumiere_cli.eval_report import write_report

    report = _ground_truth_report(monkeypatch)
    paths = write_report(report, tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text()
    assert paths[0].name == "index.html"
    for split in ("held_in", "held_out"):
        sheet = Image.open(tmp_path / "rep" / f"{split}.png")
        assert sheet.height >= 2 * 32 * 3  # a row of frames per clip
        assert f"{split}.png" in page
    gifs = sorted((tmp_path / "rep" / "clips").glob("*.gif"))
    assert len(gifs) == 4 and all(f"clips/{g.name}" in page for g in gifs)
    assert 'data-clips-total="4"' in page and "asked \\ read (motion)" in page
    assert report.samples[0]["prompt"] in page
    with pytest.raises(ValueError):
        write_report(EvalReport(splits={}, n=0, seed=0), tmp_path / "empty")


def _browser() -> str | None:
    import shutil

    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed")
def test_report_page_loads_in_headless_chromium(monkeypatch, tmp_path):
    import re
    import subprocess

    from lumiere_cli.eval_report import write_report

    write_report(_ground_truth_report(monkeypatch), tmp_path)
    dom = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", (tmp_path / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-clips-loaded="(\d+)"', dom)
    assert loaded is not None and int(loaded.group(1)) == 4, dom[:500]
