"""The `lumiere` command line, driven through Typer's CliRunner and, once, as a shell script would.

Every command runs the real pipeline on the tiny randomly initialised model (`tiny_weights`), with
two sampling steps so the whole file stays fast on a shared CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lumiere_cli import video_io
from lumiere_cli.cli import app
from lumiere_cli.weights import load_model

runner = CliRunner()
FAST = ["--steps", "2", "--device", "cpu"]


@pytest.fixture
def env(tiny_weights, tmp_path, monkeypatch):
    """Run in a scratch directory with the tiny model as the default weights."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LUMIERE_WEIGHTS", str(tiny_weights))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LUMIERE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def model_cfg(tiny_weights):
    from lumiere_cli.weights import load_model

    return load_model(tiny_weights).config


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def json_lines(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _still(path: Path, h=40, w=48, colour=(200, 30, 30)):
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = colour
    Image.fromarray(img).save(path)
    return path


def _mask(path: Path, h, w):
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2 :] = 255  # right half: generate
    Image.fromarray(m).save(path)
    return path


def _video(path: Path, t, size, fmt="png"):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, size // 4, size // 4, 3), dtype=np.uint8).repeat(4, 1).repeat(4, 2)
    return video_io.write_clip(path, frames, fps=8, format=fmt), frames


# ----------------------------------------------------------------------------- commands


def test_help_is_fast_and_lists_every_command():
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("t2v", "i2v", "inpaint", "cinemagraph", "stylize", "edit", "info", "train", "eval"):
        assert cmd in r.stdout
    # torch must not be imported to answer --help.
    code = "import sys; from lumiere_cli.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_t2v_mp4_reads_back_with_parameters(env, model_cfg):
    r = invoke("t2v", "a red circle moving left", "--seed", 5, "--json", *FAST)
    assert r.exit_code == 0, r.output
    (rec,) = json_lines(r)
    path = Path(rec["path"])
    assert path.name == "a-red-circle-moving-left_5.mp4" and rec["seed"] == 5
    clip = video_io.read_video(path)
    frames, fps = clip.frames, clip.fps
    scale = -(-256 // model_cfg.size)  # default display scale reaches 256 px
    assert frames.shape == (model_cfg.frames, model_cfg.size * scale, model_cfg.size * scale, 3)
    assert fps == pytest.approx(model_cfg.fps)
    meta = video_io.read_metadata(path)
    side = json.loads(Path(rec["sidecar"]).read_text())
    for m in (meta, side):
        assert m["prompt"] == "a red circle moving left" and m["seed"] == 5 and m["steps"] == 2
        assert m["ai_generated"] is True and "AI-generated" in m["notice"]
        assert m["size"] == [model_cfg.size, model_cfg.size] and m["frames"] == model_cfg.frames
        assert m["sampler"] == "dpmpp-2m" and "versions" in m
        assert m["schedule_shift"] == 1.0  # the tiny model's own: recorded, not "default"
    # Run times live in the sidecar only: the clip's bytes depend on the request alone.
    assert "timings" in side and "timings" not in meta and "created" not in meta
    assert side["weights"]["hash"]
    r = invoke("t2v", "a red circle moving left", "--seed", 5, "--json", "--schedule-shift", 3, *FAST)
    (rec,) = json_lines(r)
    assert json.loads(Path(rec["sidecar"]).read_text())["schedule_shift"] == 3.0
    assert "bf16" not in meta  # fp32 clips carry no bf16 key: their bytes stay as they were
    r = invoke("t2v", "a red circle moving left", "--seed", 5, "--json", "--bf16", *FAST)
    (rec,) = json_lines(r)
    assert r.exit_code == 0 and video_io.read_metadata(rec["path"])["bf16"] is True
    assert "guidance_low" not in meta  # one scale throughout: no key, as before
    assert "sigmas" not in meta  # the shifted cosine: no key
    r = invoke("t2v", "a red circle moving left", "--seed", 5, "--json", "--guidance-low", 1.5, *FAST)
    (rec,) = json_lines(r)
    assert r.exit_code == 0 and video_io.read_metadata(rec["path"])["guidance_low"] == 1.5
    r = invoke("t2v", "a red circle moving left", "--guidance-low", 99, *FAST)
    assert r.exit_code == 2 and "less than or equal to 50" in r.stderr
    assert "guidance_high" not in meta
    r = invoke("t2v", "a red circle moving left", "--seed", 5, "--json", "--guidance-high", 2, *FAST)
    (rec,) = json_lines(r)
    assert r.exit_code == 0 and video_io.read_metadata(rec["path"])["guidance_high"] == 2.0


def test_random_seed_is_reported_and_default_names_never_collide(env):
    r1 = invoke("t2v", "a red circle", "--json", "--format", "gif", *FAST)
    r2 = invoke("t2v", "a red circle", "--json", "--format", "gif", "--seed", json_lines(r1)[0]["seed"], *FAST)
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = json_lines(r1)[0], json_lines(r2)[0]
    assert f"seed {a['seed']}" in r1.stderr
    assert a["path"] != b["path"] and b["path"].endswith("-2.gif")
    # Same seed, same settings: the same clip (gif is lossy only in its palette, deterministically).
    np.testing.assert_array_equal(video_io.read_video(a["path"]).frames, video_io.read_video(b["path"]).frames)


def test_output_file_is_never_overwritten_without_flag(env):
    assert invoke("t2v", "a red circle", "-o", "x.webp", "--seed", 1, *FAST).exit_code == 0
    before = Path("x.webp").read_bytes()
    r = invoke("t2v", "a blue square", "-o", "x.webp", "--seed", 2, *FAST)
    assert r.exit_code == 2 and "--overwrite" in r.stderr and Path("x.webp").read_bytes() == before
    r = invoke("t2v", "a blue square", "-o", "x.webp", "--seed", 2, "--overwrite", *FAST)
    assert r.exit_code == 0 and video_io.read_metadata("x.webp")["prompt"] == "a blue square"
    assert sorted(p.name for p in Path(".").iterdir() if p.name != "cache") == ["x.webp", "x.webp.json"]


def test_i2v_png_frames(env, model_cfg):
    _still(env / "still.png")
    r = invoke("i2v", "the circle moves right", "--image", "still.png", "-f", "png", "-o", "out", "--seed", 0, *FAST)
    assert r.exit_code == 0, r.output
    frames = video_io.read_video("out").frames
    assert frames.shape == (model_cfg.frames, model_cfg.size, model_cfg.size, 3)  # png: no enlargement
    meta = video_io.read_metadata("out")
    assert meta["task"] == "i2v" and meta["inputs"]["image"]["sha256"]


def test_inpaint_keeps_pixels_outside_the_mask(env, model_cfg):
    s = model_cfg.size
    _, src = _video(env / "in", model_cfg.frames, s)
    _mask(env / "mask.png", s, s)
    r = invoke("inpaint", "a blue square", "--video", "in", "--mask", "mask.png", "-f", "png", "-o", "out", *FAST)
    assert r.exit_code == 0, r.output
    out = video_io.read_video("out").frames
    assert out.shape == src.shape
    keep = slice(0, s // 2)
    assert np.abs(out[:, :, keep].astype(int) - src[:, :, keep]).max() <= 2


def test_inpaint_with_a_mask_video(env, model_cfg):
    s, t = model_cfg.size, model_cfg.frames
    _video(env / "in", t, s)
    m = np.zeros((t, s, s, 3), np.uint8)
    m[:, s // 2 :] = 255
    video_io.write_clip(env / "maskv", m, fps=8, format="png")
    r = invoke("inpaint", "a circle", "--video", "in", "--mask", "maskv", "--json", *FAST)
    assert r.exit_code == 0, r.output


def test_cinemagraph(env, model_cfg):
    _still(env / "still.png", 32, 32)
    _mask(env / "region.png", 32, 32)
    r = invoke("cinemagraph", "a circle bouncing", "--image", "still.png", "--mask", "region.png", "--json", *FAST)
    assert r.exit_code == 0, r.output
    rec = json_lines(r)[0]
    assert rec["task"] == "cinemagraph" and video_io.read_video(rec["path"]).frames.shape[0] == model_cfg.frames


def test_edit(env, model_cfg):
    _video(env / "in.mp4", model_cfg.frames, model_cfg.size, fmt="mp4")
    r = invoke("edit", "a green triangle", "--video", "in.mp4", "--strength", 0.5, "--json", *FAST)
    assert r.exit_code == 0, r.output
    assert video_io.read_metadata(json_lines(r)[0]["path"])["strength"] == 0.5


def test_stylize_caches_and_reuses_style(env):
    _still(env / "ref.png")
    args = ["stylize", "a red circle", "--ref", "ref.png", "--style-steps", 2, "--alpha", 0.5, "--json", *FAST]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    cached = list((env / "cache" / "lumiere-cli" / "styles").glob("*.safetensors"))
    assert len(cached) == 1
    r = invoke(*args)
    assert r.exit_code == 0 and "reusing cached style" in r.stderr, r.output
    r = invoke("stylize", "a red circle", "--style-weights", cached[0], "--json", *FAST)
    assert r.exit_code == 0, r.output
    assert video_io.read_metadata(json_lines(r)[0]["path"])["style"]["alpha"] == 0.8


def test_info(env, model_cfg):
    r = invoke("info", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["frames"] == model_cfg.frames and data["size"] == model_cfg.size
    assert data["vocabulary"] == list(model_cfg.vocabulary)
    r = invoke("info")
    assert r.exit_code == 0 and "frames" in r.stdout


def test_eval_table_and_json(env):
    r = invoke("eval", "--n", 1, "--steps", 1, "--json-out", "e.json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "held_in" in r.stdout and "held_out" in r.stdout and "grain" in r.stdout
    # piped, every cell whole: Rich's default 80 columns cut them ("held_…", "backg…")
    assert "all correct (matched filter)" in r.stdout and "…" not in r.stdout
    report = json.loads(Path("e.json").read_text())
    assert report["splits"]["held_in"]["grain"] >= 0 and "grain" in report["samples"][0]["detected"]
    assert set(report["splits"]) == {"held_in", "held_out"}
    assert report["options"]["schedule_shift"] == 1.0


def test_train_a_few_steps(env):
    r = invoke("train", "--stage", "t2i", "--steps", 2, "--batch-size", 2, "--out", "run", "--device", "cpu",
               "--config", json.dumps({"size": 16, "frames": 8, "unet": {"channels": [16, 32], "attn_levels": [False, True],
                                                                        "temporal_levels": 1}}))
    assert r.exit_code == 0, r.output
    assert Path(r.stdout.strip().splitlines()[-1]).exists()
    r = invoke("train", "--stage", "text", "--steps", 1, "--batch-size", 2, "--out", "text", "--device", "cpu",
               "--init", "run/weights", "--text-lr", "1e-5", "--text-anchor", "0.5", "--schedule-shift", "2")
    assert r.exit_code == 0, r.output
    model = load_model(r.stdout.strip().splitlines()[-1])
    assert model.card["training"][-1]["text_anchor"] == 0.5 and model.config.diffusion.schedule_shift == 2.0
    r = invoke("train", "--stage", "video", "--steps", 1, "--batch-size", 4, "--out", "video", "--device", "cpu",
               "--init", "run/weights", "--sigma-range", "10", "80", "--reversed-pairs", "1", "--reference-clips", "3",
               "--motions", "moving left, moving right")
    assert r.exit_code == 0, r.output
    record = load_model(r.stdout.strip().splitlines()[-1]).card["training"][-1]
    assert (record["sigma_range"], record["reversed_pairs"], record["reference_clips"]) == ([10, 80], 1.0, 3)
    assert record["motions"] == ["moving left", "moving right"]
    r = invoke("train", "--stage", "video", "--steps", 1, "--out", "bad", "--sigma-range", "80", "10")
    assert r.exit_code != 0 and "sigma_range" in r.output and "Traceback" not in r.output
    r = invoke("train", "--stage", "video", "--steps", 1, "--out", "bad", "--motions", "moving sideways")
    assert r.exit_code != 0 and "moving sideways" in r.output and "Traceback" not in r.output


# ----------------------------------------------------------------------------- batch use


def test_prompt_file_json_lines_with_per_item_settings(env, model_cfg):
    Path("p.txt").write_text(
        "# a comment\n\na red circle\n"
        '{"prompt": "a blue square", "seed": 99, "steps": 1}\n'
        '{"prompt": "a yellow square", "guidance_low": 2}\n'
    )
    r = invoke("t2v", "--prompts", "p.txt", "--seed", 10, "--json", "-f", "gif", *FAST)
    assert r.exit_code == 0, r.output
    recs = json_lines(r)
    assert [x["seed"] for x in recs] == [10, 99, 12]
    assert video_io.read_metadata(recs[1]["path"])["steps"] == 1
    assert video_io.read_metadata(recs[2]["path"])["guidance_low"] == 2


def test_a_batch_is_checked_whole_before_anything_is_generated(env, model_cfg):
    Path("p.txt").write_text(
        "a red circle\n"
        '{"prompt": "a blue square", "colour": "red"}\n'  # unknown key
        '{"prompt": "a green circle", "guidance": 99}\n'  # out of range
        '{"prompt": "a circle", not json}\n'  # broken JSON is not a prompt
        '{"prompt": "a green circle", "frames": 3}\n'  # a frame count the model cannot take
        '{"prompt": "one", "output": "same.gif"}\n'
        '{"prompt": "two", "output": "same.gif"}\n'  # two items, one name
        '{"prompt": "three", "output": "../../escape.gif"}\n'  # leaves --out-dir
        '{"prompt": "four", "output": "/tmp/abs.gif"}\n'  # absolute
        '{"prompt": "five", "bf16": "yes"}\n'  # not a boolean
    )
    r = invoke("t2v", "--prompts", "p.txt", "--json", "--out-dir", "outs", *FAST)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    for lineno, words in ((2, "colour"), (3, "guidance"), (4, "invalid JSON"), (5, "frames"), (7, "same.gif"),
                          (8, "leaves --out-dir"), (9, "absolute"), (10, "bf16 must be true or false")):
        assert any(f"p.txt:{lineno}:" in e and words in e for e in errors), (lineno, r.stderr)
    assert len(errors) == 8 and "loading model" not in r.stderr and "Traceback" not in r.output
    assert not json_lines(r) and not any(Path("outs").iterdir() if Path("outs").exists() else [])


def test_an_items_output_suffix_picks_its_format(env):
    Path("p.txt").write_text('{"prompt": "a red circle", "output": "sub/a.gif"}\n{"prompt": "b", "output": "b"}\n')
    r = invoke("t2v", "--prompts", "p.txt", "--json", "--out-dir", "outs", *FAST)
    assert r.exit_code == 0, r.output
    a, b = json_lines(r)
    assert a["format"] == "gif" and Path(a["path"]).read_bytes()[:4] == b"GIF8"
    assert b["format"] == "png" and Path(b["path"]).is_dir()
    r = invoke("t2v", "--prompts", "p.txt", "--out-dir", "outs2", "--format", "webp", *FAST)
    assert r.exit_code == 2 and "disagrees" in r.stderr and not Path("outs2").exists()


def test_output_flag_with_several_prompts_is_a_usage_error(env):
    Path("p.txt").write_text("a\nb\n")
    r = invoke("t2v", "--prompts", "p.txt", "-o", "x.mp4")
    assert r.exit_code == 2 and "--out-dir" in r.stderr


def test_ranks_split_a_prompt_file(env, monkeypatch):
    Path("p.txt").write_text("one\ntwo\nthree\nfour\nfive\n")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    r = invoke("t2v", "--prompts", "p.txt", "--seed", 0, "--json", "-f", "gif", *FAST)
    assert r.exit_code == 0, r.output
    assert [(x["index"], x["prompt"], x["seed"]) for x in json_lines(r)] == [(1, "two", 1), (3, "four", 3)]


def test_quiet_leaves_only_errors(env):
    r = invoke("t2v", "a red circle", "--quiet", "-f", "gif", *FAST)
    assert r.exit_code == 0 and r.stderr == ""
    r = invoke("t2v", "", "--quiet")
    assert r.exit_code == 2 and r.stderr.startswith("error:")


def test_unknown_words_warn_once(env, model_cfg):
    if not model_cfg.vocabulary:
        pytest.skip("the tiny model records no vocabulary")
    Path("p.txt").write_text("a zorblax circle\na red zorblax\n")
    r = invoke("t2v", "--prompts", "p.txt", "-f", "gif", *FAST)
    assert r.exit_code == 0, r.output
    assert r.stderr.count("never saw") == 1 and "zorblax" in r.stderr and "lumiere info" in r.stderr


def test_shell_script_batch_through_stdin(env, tiny_weights):
    """What a shell script does: pipe prompts in, read one JSON object per line, check the code."""
    repo = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    environ = {**os.environ, "LUMIERE_WEIGHTS": str(tiny_weights), "NO_COLOR": "1", "PYTHONPATH": pythonpath}
    proc = subprocess.run(
        [sys.executable, "-m", "lumiere_cli", "t2v", "--prompts", "-", "--json", "--seed", "3", "-f", "gif",
         "--out-dir", "outs", *FAST],
        input="a red circle\n\n# skipped\na blue square\n", capture_output=True, text=True, cwd=env,
        env=environ, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["seed"] for r in recs] == [3, 4]
    assert all((env / r["path"]).exists() for r in recs)
    assert "\x1b[" not in proc.stderr  # no colour or bars when stderr is not a terminal


# ----------------------------------------------------------------------------- bad input


def _one_line_error(r, code):
    assert r.exit_code == code, r.output
    # Status lines may come first; the failure itself is exactly one line, and the last.
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], r.stderr
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["i2v", "x", "--image", "nope.png"], 3, "not found"),
        (["i2v", "x", "--image", "corrupt.png"], 3, "cannot read"),
        (["edit", "x", "--video", "corrupt.mp4"], 3, "cannot read"),
        (["inpaint", "x", "--video", "in", "--mask", "small.png"], 3, "same size"),
        (["edit", "x", "--video", "short"], 3, "frames"),
        (["t2v", "   "], 2, "empty prompt"),
        (["t2v", "x", "--frames", "3"], 2, "frame"),
        (["t2v", "x", "--out-dir", "afile"], 2, "--out-dir"),
        (["t2v", "x", "-o", "clip.avi"], 2, ".mp4"),
        (["t2v", "x", "--weights", "missing-weights"], 3, "weights"),
        (["stylize", "x"], 2, "--ref"),
        (["t2v", "--prompts", "nope.txt"], 3, "not found"),
    ],
)
def test_bad_input_is_one_line(env, model_cfg, args, code, words):
    Path("corrupt.png").write_bytes(b"\x89PNG but not really")
    Path("corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 4)
    Path("afile").write_text("")
    _video(env / "in", model_cfg.frames, model_cfg.size)
    _video(env / "short", 2, model_cfg.size)
    _mask(env / "small.png", 8, 12)
    r = invoke(*args, *FAST)
    _one_line_error(r, code)
    assert words in r.stderr


@pytest.mark.parametrize("args", [["t2v", "x", "--steps", "0"], ["edit", "x", "--video", "v", "--strength", "1.5"],
                                  ["stylize", "x", "--ref", "r.png", "--alpha", "2"], ["t2v", "x", "--sampler", "euler"],
                                  ["t2v", "x", "--schedule-shift", "0"]])
def test_out_of_range_numbers_are_usage_errors(env, args):
    r = invoke(*args)
    assert r.exit_code == 2 and "Traceback" not in r.output


@pytest.mark.parametrize("args, words", [(["t2v", "x", "--bogus"], "No such option: --bogus"),
                                         (["t2v", "x", "--steps", "abc"], "'--steps'"),
                                         (["nosuch"], "No such command")])
def test_click_usage_errors_are_one_line_through_the_entry_point(args, words):
    proc = subprocess.run([sys.executable, "-m", "lumiere_cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and words in proc.stderr
    assert "--help" in proc.stderr and not proc.stdout


def test_the_process_ends_with_its_exit_handlers_run_and_its_output_whole(tmp_path):
    """end_process skips the interpreter's teardown, not what a command relies on it for: exit
    handlers (a temporary folder's finalizer among them), buffered output, the exit code."""
    code = ("import atexit, tempfile\n"
            "from lumiere_cli.cli import end_process\n"
            "kept = tempfile.TemporaryDirectory(dir=%r)\n"
            "atexit.register(print, 'handler ran')\n"
            "print('x' * 100000, end='|')\n"
            "end_process(3)\n") % str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "x" * 100000 + "|handler ran\n"
    assert list(tmp_path.iterdir()) == []  # the finalizer removed it


def test_no_arguments_prints_help():
    proc = subprocess.run([sys.executable, "-m", "lumiere_cli"], capture_output=True, text=True)
    assert proc.returncode == 0 and "t2v" in proc.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_directory(env):
    ro = env / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    _one_line_error(invoke("t2v", "x", "--out-dir", ro, *FAST), 2)


def test_tampered_and_pickled_weights(env, tiny_weights):
    import shutil

    bad = env / "bad"
    shutil.copytree(tiny_weights, bad)
    target = max((p for p in bad.rglob("*.safetensors")), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF  # flip a byte inside the tensors
    target.write_bytes(bytes(data))
    r = invoke("t2v", "x", "--weights", bad, *FAST)
    _one_line_error(r, 3)
    pickled = env / "pickled"
    pickled.mkdir()
    import pickle

    (pickled / "model.pt").write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    r = invoke("t2v", "x", "--weights", pickled / "model.pt", *FAST)
    _one_line_error(r, 3)
    assert "pickled" in r.stderr


def test_interrupt_exits_130_and_leaves_no_file(env, monkeypatch):
    import lumiere_cli.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lumiere_cli.pipeline, "generate", interrupted)
    r = invoke("t2v", "a red circle", "--out-dir", "outs", *FAST)
    assert r.exit_code == 130 and "interrupted" in r.stderr
    assert list(Path("outs").iterdir()) == []


def test_debug_shows_traceback(env, monkeypatch):
    monkeypatch.setenv("LUMIERE_DEBUG", "1")
    r = invoke("i2v", "x", "--image", "nope.png", *FAST)
    assert r.exit_code == 3 and "Traceback" in r.stderr


# ----------------------------------------------------------------------------- files a user can trust


def _lumiere(env, *args, **popen):
    """`lumiere ARGS` as its own process, in `env`, with the tiny model."""
    repo = str(Path(__file__).resolve().parents[1])
    environ = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(filter(None, (repo, os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen([sys.executable, "-m", "lumiere_cli", *map(str, args)], cwd=env, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_concurrent_runs_get_distinct_default_names(env):
    procs = [_lumiere(env, "t2v", "a red circle", "--seed", 7, "--out-dir", "outs", "-f", "gif", "--json", *FAST)
             for _ in range(3)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    paths = sorted(json.loads(out)["path"] for _, out, _ in results)
    assert paths == ["outs/a-red-circle_7-2.gif", "outs/a-red-circle_7-3.gif", "outs/a-red-circle_7.gif"]
    assert sorted(p.name for p in (env / "outs").iterdir()) == sorted([*(Path(p).name for p in paths),
                                                                      *(Path(p).name + ".json" for p in paths)])


def test_two_runs_naming_one_output_one_wins(env):
    procs = [_lumiere(env, "t2v", "a red circle", "--seed", s, "-o", "new.gif", *FAST) for s in (1, 2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 2], [p.stderr.read() for p in procs]
    assert video_io.read_metadata("new.gif")["seed"] in (1, 2)
    assert sorted(p.name for p in env.iterdir() if p.name != "cache") == ["new.gif", "new.gif.json"]


def test_overwrite_never_deletes_a_users_folder(env):
    mine = env / "holiday"
    mine.mkdir()
    (mine / "IMG_0001.jpg").write_bytes(b"\xff\xd8 a photo")
    for args in (["-o", "holiday"], ["-o", "holiday", "-f", "png"]):
        r = invoke("t2v", "a red circle", *args, "--overwrite", *FAST)
        _one_line_error(r, 2)
        assert "did not write" in r.stderr and "loading model" not in r.stderr
    assert [p.name for p in mine.iterdir()] == ["IMG_0001.jpg"]
    # Its own frame folder it replaces.
    assert invoke("t2v", "a red circle", "-o", "frames", "--seed", 1, *FAST).exit_code == 0
    r = invoke("t2v", "a blue square", "-o", "frames", "--seed", 2, "--overwrite", *FAST)
    assert r.exit_code == 0, r.output
    assert video_io.read_metadata("frames")["prompt"] == "a blue square"


def test_unwritable_outputs_fail_before_the_model_loads(env):
    for args in (["-o", "/proc/x.mp4"], ["--out-dir", "/proc/outs"]):
        r = invoke("t2v", "a red circle", *args, *FAST)
        _one_line_error(r, 2)
        assert "loading model" not in r.stderr


def test_batch_items_supply_the_commands_inputs(env, model_cfg):
    _still(env / "a.png")
    _still(env / "b.png", colour=(30, 30, 200))
    Path("items.jsonl").write_text('{"prompt": "x", "image": "a.png"}\n{"prompt": "y", "image": "b.png"}\n')
    r = invoke("i2v", "--prompts", "items.jsonl", "--json", "-f", "gif", *FAST)
    assert r.exit_code == 0, r.output
    assert [rec["prompt"] for rec in json_lines(r)] == ["x", "y"]
    Path("bad.jsonl").write_text('{"prompt": "x", "image": "a.png"}\n{"prompt": "y"}\n{"prompt": "z", "image": "no.png"}\n')
    r = invoke("i2v", "--prompts", "bad.jsonl", "--json", "-f", "gif", *FAST)
    assert r.exit_code == 2 and "bad.jsonl:2: i2v needs --image" in r.stderr and "bad.jsonl:3:" in r.stderr, r.stderr
    assert "loading model" not in r.stderr


def test_words_past_the_text_context_are_named(env, model_cfg):
    long = "a red circle moving left on a black background " * 4
    r = invoke("t2v", long + "then a blue square", "--json", "-f", "gif", *FAST)
    assert r.exit_code == 0, r.output
    ignored = json_lines(r)[0]["ignored_words"]
    assert ignored and ignored[-4:] == ["then", "a", "blue", "square"]
    assert f"the last {len(ignored)} words" in r.stderr


def test_steps_default_to_the_models_recommendation(env, tiny_weights):
    from dataclasses import replace

    from lumiere_cli.weights import save_model

    model = load_model(tiny_weights)
    model.config = replace(model.config, diffusion=replace(model.config.diffusion, sample_steps=3))
    save_model(model, env / "w3")
    r = invoke("t2v", "a red circle", "--json", "-f", "gif", "--weights", "w3", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert video_io.read_metadata(json_lines(r)[0]["path"])["steps"] == 3


def test_edit_strength_zero_returns_the_input(env, model_cfg):
    _, src = _video(env / "in", model_cfg.frames, model_cfg.size)
    r = invoke("edit", "a green triangle", "--video", "in", "--strength", 0, "-o", "out", *FAST)
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(video_io.read_video("out").frames, src)


def test_the_readme_python_example_writes_the_clis_bytes(env, tiny_weights):
    """README, "Python API": its example and the command it names write identical files."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(r"`lumiere (t2v [^`]*)`", section).group(1)
    (env / "py").mkdir()
    (env / "cli").mkdir()
    os.chdir(env / "py")
    exec(compile(code, "README.md", "exec"), {})
    os.chdir(env / "cli")
    import shlex

    r = invoke(*shlex.split(command), "--device", "cpu")
    assert r.exit_code == 0, r.output
    a, b = (env / "py" / "clip.mp4").read_bytes(), (env / "cli" / "clip.mp4").read_bytes()
    assert a == b and len(a) > 1000


def test_edit_samples_a_25_fps_input_at_the_models_rate_and_keeps_its_sound(env, model_cfg):
    import imageio_ffmpeg

    src = env / "in.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(src)], check=True)
    r = invoke("edit", "a red circle", "--video", src, "-o", "out.mp4", "--strength", 0.5, *FAST)
    assert r.exit_code == 0, r.output
    assert "(25 fps) at 8 fps" in r.stderr
    out = video_io.probe("out.mp4")
    assert out.has_audio and out.fps == pytest.approx(model_cfg.fps)
    assert out.duration_s == pytest.approx(model_cfg.frames / model_cfg.fps, abs=0.2)
    r = invoke("edit", "a red circle", "--video", src, "-o", "out.gif", *FAST)
    assert r.exit_code == 0 and "audio was dropped" in r.stderr
    r = invoke("edit", "a red circle", "--video", src, "-o", "slow.mp4", "--stride", 1, "--json", *FAST)
    assert r.exit_code == 0 and json_lines(r)[0]["fps"] == pytest.approx(25.0)  # every frame, at the input's rate


# ----------------------------------------------------------------------------- time


def test_time_commands_from_the_command_line(env, model_cfg):
    s, t = model_cfg.size, model_cfg.frames
    _, src = _video(env / "in", t, s)
    r = invoke("extend", "a red circle", "--video", "in", "--frames", 4, "-o", "ext", *FAST)
    assert r.exit_code == 0, r.output
    out = video_io.read_video("ext").frames
    assert len(out) == t + 4 and np.array_equal(out[:t], src)
    _still(env / "a.png", s, s)
    _still(env / "b.png", s, s, colour=(30, 30, 200))
    r = invoke("i2v", "x", "--image", "a.png", "--last-image", "b.png", "--keyframe", "a.png@3", "-o", "kf", *FAST)
    assert r.exit_code == 0, r.output
    frames = video_io.read_video("kf").frames
    assert np.array_equal(frames[-1], video_io.read_image("b.png")) and np.array_equal(frames[3], frames[0])
    r = invoke("t2v", "--prompt-at", "0:a red circle", "--prompt-at", f"{t // 2}:a blue square", "--loop",
               "--preview", "prev.gif", "--preview-every", 1, "-o", "clip.gif", *FAST)
    assert r.exit_code == 0, r.output
    assert Path("prev.gif").exists() and "preview at step 2/2" in r.stderr
    meta = video_io.read_metadata("clip.gif")
    assert meta["loop"] == "round" and meta["schedule"] == [[0, "a red circle"], [t // 2, "a blue square"]], meta
    Path("loops.jsonl").write_text('{"prompt": "x", "output": "a.gif", "loop_style": "pingpong"}\n{"prompt": "y", "output": "b.gif"}\n')
    r = invoke("t2v", "--prompts", "loops.jsonl", "--out-dir", "loops", "--json", *FAST)
    assert r.exit_code == 0, r.output
    assert video_io.read_metadata("loops/a.gif")["loop"] == "pingpong" and "loop" not in video_io.read_metadata("loops/b.gif")
    Path("bad.jsonl").write_text('{"prompt": "x", "loop_style": 3}\n')
    r = invoke("t2v", "--prompts", "bad.jsonl", "--out-dir", "bad", *FAST)
    assert r.exit_code == 2 and "loop_style must be a string" in r.stderr, r.stderr
    for args, words in ((["edit", "x", "--video", "in", "--loop"], "No such option"),
                        (["i2v", "x", "--image", "a.png", "--keyframe", "a.png"], "PATH@INDEX"),
                        (["i2v", "x", "--image", "a.png", "--keyframe", f"a.png@{t}"], "outside the clip"),
                        (["t2v", "x", "--prompt-at", "later:a cat"], "FRAME:PROMPT"),
                        (["t2v", "x", "--prompt-at", f"{t}:a cat"], "past the clip"),
                        (["t2v", "x", "--loop-style", "spiral"], "--loop-style"),
                        (["t2v", "x", "--loop-style", "pingpong", "--prompt-at", "2:a cat"], "pingpong loop plays")):
        r = invoke(*args, *FAST)
        assert r.exit_code == 2 and words in r.stderr, (args, r.stderr)
