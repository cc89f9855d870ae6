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
from lumiere_cli.eval import COLUMNS, EvalReport, draw_specs, evaluate, evaluate_clips, score
from lumiere_cli.world.detect import Detection, detect
from lumiere_cli.world.render import ClipSpec, render, render_batch, sample_spec
from lumiere_cli.world.vocab import HELD_OUT, parse_caption


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


def test_evaluate_clips_on_ground_truth():
    rng = random.Random(0)
    specs = [sample_spec(rng, "all") for _ in range(60)]
    s = evaluate_clips(render_batch(specs, 16, 32), specs)
    assert s["count"] == 60 and s["all"] >= 0.98 and s["consistent"] >= 0.98
    assert s["grain"] < 0.5  # flat backgrounds


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
    assert progress == [("held_in", 4, 6), ("held_in", 6, 6), ("held_out", 4, 6), ("held_out", 6, 6)]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["options"]["steps"] == 2 and len(data["samples"]) == 12
    # the settings the clips were made with, not "the model's"
    assert data["options"]["schedule_shift"] == 1.5 and data["options"]["guidance"] == 4.0
    rows = report.rows()
    assert len(rows) == 2 and all(len(r) == len(COLUMNS) for r in rows)
    assert rows[0][0] == "held_in" and rows[0][-2] == "100.0%"


def test_draw_specs_deterministic_and_split():
    a, b = draw_specs(20, 5), draw_specs(20, 5)
    assert a == b
    assert not any(s.triple in HELD_OUT for s in a["held_in"])
    assert all(s.triple in HELD_OUT for s in a["held_out"])
