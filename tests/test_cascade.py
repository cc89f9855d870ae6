"""The cascade in the product: `lumiere upscale`, and (with an SSR beside the base weights) every
generation command at the SSR's resolution, `--base-only`, sidecars and `info`.

The models are the tiny random ones (base 16x16, SSR 2x: 32x32) with one or two steps."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lumiere_cli import video_io
from lumiere_cli.cli import app
from test_ssr import TINY_SSR, make_tiny_ssr

runner = CliRunner()


@pytest.fixture(scope="module")
def cascade_weights(tiny_weights, tmp_path_factory):
    """A weights folder holding the tiny base (16x16) and a tiny SSR (16 -> 32) beside it."""
    from lumiere_cli.cascade.weights import save_ssr

    folder = tmp_path_factory.mktemp("cascade")
    shutil.copy(tiny_weights / "model.safetensors", folder / "model.safetensors")
    ssr = make_tiny_ssr()
    ssr.config = replace(TINY_SSR, size=16)
    save_ssr(ssr, folder)
    return folder


@pytest.fixture
def env(cascade_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LUMIERE_WEIGHTS", str(cascade_weights))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LUMIERE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _clip(path, frames=8, size=24):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    video_io.write_clip(path, video, fps=8, format="png", metadata={}, display_scale=1)
    return path


def test_upscale_enlarges_any_clip_with_the_ssr_alone(env, cascade_weights):
    src = _clip(env / "small")
    result = invoke("upscale", "--video", src, "a red circle", "-o", "big", "--ssr-steps", "1", "--seed", "3",
                    "--display-scale", "1", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["task"] == "upscale" and record["size"] == [32, 32] and record["frames"] == 8
    frames = video_io.read_video(env / "big").frames
    assert frames.shape == (8, 32, 32, 3)
    side = json.loads((env / "big.json").read_text())
    assert side["task"] == "upscale" and side["cascade"]["stages"] == ["ssr"]
    assert side["cascade"]["ssr_steps"] == 1 and side["weights"]["path"].endswith("ssr.safetensors")
    assert "ssr_s" not in side["timings"] and side["timings"]["ssr_denoise_s"] > 0


def test_upscale_needs_a_video_and_ssr_weights(env, tiny_weights):
    assert invoke("upscale", "a red circle").exit_code == 2
    src = _clip(env / "small")
    result = invoke("upscale", "--video", src, "--weights", tiny_weights, "-o", "x.mp4")
    assert result.exit_code == 3 and "no super-resolution weights" in result.output
    result = invoke("upscale", "--video", env / "missing.mp4", "-o", "x.mp4")
    assert result.exit_code == 3
    assert invoke("upscale", "--video", src, "--ssr-noise", "2").exit_code == 2


def test_info_reports_both_stages(env, cascade_weights, tiny_weights):
    data = json.loads(invoke("info", "--json").stdout)
    assert data["size"] == 16 and data["ssr"]["size"] == 32 and data["ssr"]["factor"] == 2
    assert data["ssr"]["weights"]["path"].endswith("ssr.safetensors")
    text = invoke("info").stdout
    assert "super-resolution" in text and "16x16 -> 32x32" in text
    assert "ssr" not in json.loads(invoke("info", "--json", "--weights", tiny_weights).stdout)


def test_eval_reports_the_cascade_next_to_the_base(env, tmp_path):
    result = invoke("eval", "--n", "1", "--steps", "1", "--ssr-steps", "1", "--json-out", tmp_path / "ev.json")
    assert result.exit_code == 0, result.output
    assert "cascade 32px" in result.stdout
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert set(ev["splits"]) == set(ev["cascade"]["splits"]) == {"held_in", "held_out"}
    assert ev["cascade"]["options"]["ssr"]["steps"] == 1
    assert [s["prompt"] for s in ev["samples"]] == [s["prompt"] for s in ev["cascade"]["samples"]]
    only = invoke("eval", "--n", "1", "--steps", "1", "--base-only", "--json")
    assert "cascade" not in json.loads(only.stdout)


FAST = ["--steps", "1", "--ssr-steps", "1", "--device", "cpu", "--display-scale", "1"]


def test_generation_returns_the_cascade_resolution_and_base_only_skips_it(env):
    result = invoke("t2v", "a red circle", "--seed", "1", "-o", "big", "--json", *FAST)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["size"] == [32, 32]
    assert video_io.read_video(env / "big").frames.shape == (8, 32, 32, 3)
    side = json.loads((env / "big.json").read_text())
    assert side["cascade"]["stages"] == ["base", "ssr"] and side["cascade"]["base_size"] == 16
    assert side["cascade"]["ssr_steps"] == 1 and side["cascade"]["ssr"]["path"].endswith("ssr.safetensors")
    assert side["size"] == [32, 32] and side["timings"]["ssr_s"] > 0 and side["timings"]["generate_s"] > 0
    small = invoke("t2v", "a red circle", "--seed", "1", "-o", "small", "--base-only", "--json", *FAST)
    assert json.loads(small.stdout.splitlines()[-1])["size"] == [16, 16]
    side = json.loads((env / "small.json").read_text())
    assert side["cascade"]["stages"] == ["base"] and side["cascade"]["base_only"] is True


def test_known_pixels_are_the_users_own_at_the_output_resolution(env):
    rng = np.random.default_rng(2)
    still = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(still).save(env / "still.png")
    result = invoke("i2v", "a red circle", "--image", "still.png", "-o", "i2v", *FAST)
    assert result.exit_code == 0, result.output
    want = video_io.fit_to_model(still, 32)  # the user's image at 32x32, not the 16x16 one enlarged
    got = video_io.read_video(env / "i2v").frames
    assert np.array_equal(got[0], want)
    mask = np.zeros((48, 48), np.uint8)
    mask[12:36, 12:36] = 255
    Image.fromarray(mask).save(env / "mask.png")
    result = invoke("cinemagraph", "a red circle", "--image", "still.png", "--mask", "mask.png", "-o", "cg", *FAST)
    assert result.exit_code == 0, result.output
    got = video_io.read_video(env / "cg").frames
    keep = video_io.fit_to_model(mask.astype(np.float32) / 255, 32) <= 0.5
    assert np.array_equal(got[0], want) and all(np.array_equal(f[keep], want[keep]) for f in got)


def test_a_pingpong_loop_stays_exact_at_the_output_resolution(env):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(env / "still.png")
    for name, args in (("t2v", ["t2v", "a red circle"]),
                       ("i2v", ["i2v", "a red circle", "--image", "still.png", "--keyframe", "still.png@6"])):
        result = invoke(*args, "--loop", "-o", name, *FAST)  # a folder of lossless PNG frames
        assert result.exit_code == 0, result.output
        got = video_io.read_video(env / name).frames
        n = len(got)
        assert got.shape[1:3] == (32, 32) and all(np.array_equal(got[k], got[n - k]) for k in range(1, n // 2)), args


def test_batch_items_set_the_cascade_options(env):
    (env / "items.jsonl").write_text(
        '{"prompt": "a red circle", "seed": 1, "base_only": true, "output": "a"}\n'
        '{"prompt": "a red circle", "seed": 1, "ssr_steps": 2, "ssr_noise": 0.2, "output": "b"}\n')
    result = invoke("t2v", "--prompts", "items.jsonl", "--json", *FAST)
    assert result.exit_code == 0, result.output
    sizes = [json.loads(line)["size"] for line in result.stdout.splitlines() if line.strip()]
    assert sizes == [[16, 16], [32, 32]]
    side = json.loads((env / "b.json").read_text())
    assert side["cascade"]["ssr_steps"] == 2 and side["cascade"]["ssr_noise"] == 0.2
    (env / "bad.jsonl").write_text('{"prompt": "a red circle", "ssr_noise": 3}\n')
    bad = invoke("t2v", "--prompts", "bad.jsonl", *FAST)
    assert bad.exit_code == 2 and "ssr noise" in bad.output


def test_upscale_at_a_size_of_ones_own_in_tiles(env, cascade_weights):
    """--size fits the clip to another side first; frames larger than one --ssr-tile go in tiles,
    recorded in the sidecar; a size or tile the SSR cannot take is refused before it loads."""
    src = _clip(env / "small")
    result = invoke("upscale", "--video", src, "-o", "big.mp4", "--size", "32", "--ssr-tile", "32", "--ssr-steps", "1",
                    "--display-scale", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["size"] == [64, 64]
    assert video_io.read_video(env / "big.mp4").frames.shape[1:3] == (64, 64)
    cascade = json.loads((env / "big.mp4.json").read_text())["cascade"]
    assert cascade["base_size"] == 32 and cascade["size"] == 64 and cascade["tile"] == 32
    for args, words in ((["--size", "31"], "--size must be a multiple"), (["--ssr-tile", "18"], "SSR tile must be")):
        bad = invoke("upscale", "--video", src, "-o", "bad.mp4", *args)
        assert bad.exit_code == 2 and words in bad.output and "loading" not in bad.output
