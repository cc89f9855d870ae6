"""`lumiere info`, `train` and `eval`: header-only info, training logs and metrics, run folders,
--config with --init, --plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY_CONFIG
from lumiere_cli.cli import app
from lumiere_cli.config import dumps
from lumiere_cli.weights import load_model

runner = CliRunner()
TINY = dumps(replace(TINY_CONFIG, vocabulary=()))
FAST_TRAIN = ["--batch-size", "2", "--device", "cpu"]
# Runs the CLI in a fresh interpreter, then lists the heavy modules it had imported (on stderr).
PROBE = """
import json, sys
from lumiere_cli.cli import app
try:
    app(args=sys.argv[1:], prog_name="lumiere", standalone_mode=False)
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "safetensors", "numpy")
                   or m == "lumiere_cli.cli.runner")
    print("MODULES " + json.dumps(heavy), file=sys.stderr)
"""


@pytest.fixture
def env(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LUMIERE_WEIGHTS", str(tiny_weights))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LUMIERE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def probe(*args):
    """(stdout, modules imported) of `lumiere ARGS` in a fresh interpreter."""
    r = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stderr.splitlines() if x.startswith("MODULES "))
    return r.stdout, json.loads(line[len("MODULES "):])


def test_info_reads_the_header_only(tiny_weights, tiny_model):
    out, modules = probe("info", "--json", "--weights", tiny_weights)
    assert modules == []  # neither torch nor safetensors: no model is built
    data = json.loads(out)
    assert set(data) == {"weights", "frames", "size", "fps", "temporal_factor", "parameters", "vocabulary",
                         "config", "card"}
    assert data["parameters"] == sum(p.numel() for p in tiny_model.parameters())
    assert data["weights"] == {"path": str(tiny_weights / "model.safetensors"), "hash": tiny_model.weights_hash}
    assert (data["frames"], data["temporal_factor"], data["card"]["name"]) == (8, 2, "tiny-test")
    out, modules = probe("info", "--weights", tiny_weights)  # the table too
    assert modules == [] and f"{data['parameters']:,}" in out


def test_shipped_weights_parameter_count_from_the_header():
    from lumiere_cli.weights_header import SHIPPED_WEIGHTS, read_info

    header = read_info(SHIPPED_WEIGHTS)
    model = load_model(SHIPPED_WEIGHTS)
    assert header.parameters == sum(p.numel() for p in model.parameters())
    assert header.config == model.config and header.content_hash == model.weights_hash


def test_cli_modules_import_neither_torch_nor_safetensors():
    code = ("import importlib, pkgutil, sys, lumiere_cli.cli as c\n"
            "[importlib.import_module('lumiere_cli.cli.' + m.name) for m in pkgutil.iter_modules(c.__path__)]\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr[-2000:]


def test_eval_loads_weights_itself(tiny_weights):
    out, modules = probe("eval", "--n", 1, "--steps", 1, "--batch-size", 2, "--device", "cpu", "--json",
                         "--weights", tiny_weights, "--quiet")
    assert "lumiere_cli.cli.runner" not in modules
    assert set(json.loads(out)["splits"]) == {"held_in", "held_out"}


def test_info_eval_and_weights_accept_a_run_folder(env):
    r = invoke("train", "--stage", "t2i", "--steps", 2, "--out", "runs/t2i", "--config", TINY, *FAST_TRAIN)
    assert r.exit_code == 0, r.output
    weights = Path(r.stdout.strip().splitlines()[-1])
    assert weights == Path("runs/t2i/weights/model.safetensors")
    r = invoke("info", "--json", "--weights", "runs/t2i")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["weights"]["path"] == str(weights)
    r = invoke("info", "--weights", "runs")
    assert r.exit_code == 3 and "no weights in runs" in r.stderr


def test_train_logs_the_loss_and_writes_metrics(env):
    r = invoke("train", "--stage", "t2i", "--steps", 3, "--out", "run", "--config", TINY, *FAST_TRAIN)
    assert r.exit_code == 0, r.output
    # No terminal: the 20-step log interval and the last step each give a line.
    lines = [x for x in r.stderr.splitlines() if x.startswith("step ")]
    assert len(lines) == 1 and lines[0].startswith("step 3/3 loss ")
    assert " lr " in lines[0] and " clips/s " in lines[0]
    rows = [json.loads(x) for x in Path("run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3] and rows[0]["loss"] == pytest.approx(float(lines[0].split()[3]), abs=1e-4)


def test_train_config_with_init(env):
    r = invoke("train", "--stage", "t2i", "--steps", 1, "--out", "t2i", "--config", TINY, *FAST_TRAIN)
    assert r.exit_code == 0, r.output
    r = invoke("train", "--stage", "video", "--steps", 1, "--out", "video", "--init", "t2i",
               "--config", '{"frames": 4, "fps": 12, "diffusion": {"sample_shift": 2.0}}', *FAST_TRAIN)
    assert r.exit_code == 0, r.output
    model = load_model("video")
    assert (model.config.frames, model.config.fps, model.config.diffusion.sample_shift) == (4, 12, 2.0)
    r = invoke("train", "--stage", "video", "--steps", 1, "--out", "bad", "--init", "t2i",
               "--config", '{"unet": {"channels": [8, 16]}}', *FAST_TRAIN)
    assert r.exit_code == 2 and "widening doubles a level's channels or keeps them; got 16 -> 8" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = invoke("train", "--stage", "video", "--steps", 1, "--out", "bad", "--init", "t2i",
               "--config", '{"unet": {"heads": 1}}', *FAST_TRAIN)
    assert r.exit_code == 2 and "unet.heads cannot change on --init weights" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = invoke("train", "--stage", "t2i", "--steps", 1, "--out", "bad", "--init", "t2i",
               "--config", '{"frames": 4}', *FAST_TRAIN)
    assert r.exit_code == 2 and "only in a video stage" in r.stderr
    r = invoke("train", "--stage", "video", "--steps", 1, "--out", "bad", "--init", "t2i",
               "--config", '{"frames": 3}', *FAST_TRAIN)
    assert r.exit_code == 2 and "frames must be a multiple of 2" in r.stderr
    r = invoke("train", "--stage", "image", "--steps", 1, "--out", "bad")
    assert r.exit_code == 2 and "image" in r.output


def test_train_plan(env):
    plan = {"defaults": {"batch_size": 2, "warmup": 1, "device": "cpu"},
            "stages": [{"stage": "t2i", "out_dir": "runs/t2i", "steps": 1, "model": json.loads(TINY)},
                       {"stage": "video", "out_dir": "runs/video", "steps": 1}]}
    Path("plan.json").write_text(json.dumps(plan))
    r = invoke("train", "--plan", "plan.json")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1] == str(Path("runs/video/weights/model.safetensors"))
    assert "stage 1/2: t2i, 1 steps -> runs/t2i" in r.stderr and "stage 2/2: video" in r.stderr
    assert [s["stage"] for s in load_model("runs/video").card["training"]] == ["t2i", "video"]
    r = invoke("train", "--plan", "plan.json", "--device", "cpu")
    assert r.exit_code == 0 and r.stderr.count("already complete") == 2
    r = invoke("train", "--plan", "plan.json", "--steps", 5, "--out", "x")
    assert r.exit_code == 2 and "drop --steps, --out" in r.stderr
    Path("bad.json").write_text('{"stages": [{"stage": "t2i", "step": 3}]}')
    r = invoke("train", "--plan", "bad.json")
    assert r.exit_code == 3 and "stage 1: unknown TrainConfig keys: step" in r.stderr
