"""Training: every stage runs, resume is exact, two processes train under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_CONFIG
from lumiere_cli.config import TrainConfig, dumps
from lumiere_cli.masks import random_known_mask
from lumiere_cli.train import make_batch, train
from lumiere_cli.weights import load_model

TINY = replace(TINY_CONFIG, vocabulary=())


def _cfg(tmp_path, stage="t2i", **kw):
    base = dict(stage=stage, out_dir=str(tmp_path / stage), steps=4, batch_size=2,
                checkpoint_every=2, log_every=1, warmup=2)
    if not kw.get("init"):
        base["model"] = TINY  # with init, the stage continues the init's config
    return TrainConfig(**{**base, **kw})


def test_stages_chain_and_freeze_what_they_should(tmp_path):
    text = train(_cfg(tmp_path, "text", steps=2))
    t2i = train(_cfg(tmp_path, "t2i", init=str(text), steps=2))
    video = train(_cfg(tmp_path, "video", init=str(t2i), steps=2))
    a, b, c = (load_file(str(p)) for p in (text, t2i, video))
    changed = lambda x, y, prefix: any(not torch.equal(x[k], y[k]) for k in x if k.startswith(prefix))  # noqa: E731
    assert changed(a, b, "unet.spatial.") and not changed(a, b, "text.") and not changed(a, b, "unet.temporal.")
    assert changed(b, c, "unet.temporal.") and not changed(b, c, "unet.spatial.") and not changed(b, c, "text.")
    model = load_model(video)
    assert [r["stage"] for r in model.card["training"]] == ["text", "t2i", "video"]
    assert model.config.vocabulary  # filled from the world when the config had none


def test_text_lr_fine_tunes_the_text_encoder_in_a_diffusion_stage(tmp_path):
    t2i = train(_cfg(tmp_path, "t2i", steps=2))
    video = train(_cfg(tmp_path, "video", init=str(t2i), steps=2, text_lr=1e-3))
    a, b = load_file(str(t2i)), load_file(str(video))
    moved = [k for k in a if k.startswith("text.") and not torch.equal(a[k], b[k])]
    assert any("token_embedding" in k for k in moved) and any("transformer" in k for k in moved)
    assert not any(not torch.equal(a[k], b[k]) for k in a if k.startswith("unet.spatial."))
    assert load_model(video).card["training"][-1]["text_lr"] == 1e-3
    assert load_model(video).config.diffusion.schedule_shift == 1.0
    shifted = train(_cfg(tmp_path / "s", "video", init=str(video), steps=1, schedule_shift=3.0))
    assert load_model(shifted).config.diffusion.schedule_shift == 3.0


def test_text_stage_learns_from_one_word_negatives_and_can_stay_near_its_start(tmp_path):
    from lumiere_cli.model import LumiereModel
    from lumiere_cli.train import ContrastiveStage, Dist
    from lumiere_cli.world.vocab import parse_caption

    batch = make_batch(_cfg(tmp_path, "text", batch_size=8), TINY, rank=0, step=0)
    for text, negative in zip(batch["captions"], batch["negatives"]):
        a, b = parse_caption(text), parse_caption(negative)
        assert sum(a[k] != b.get(k) for k in a) == 1

    torch.manual_seed(0)
    model = LumiereModel(TINY)
    tokens = model.text.tokenize(batch["captions"])
    negatives = model.text.tokenize(batch["negatives"])

    def loss(**cfg):
        torch.manual_seed(1)  # the same clip encoder each time
        stage = ContrastiveStage(model, Dist(), TrainConfig(**cfg))
        with torch.no_grad():
            return stage(batch["videos"], tokens, negatives).item(), stage

    plain, _ = loss(hard_negatives=0.0)
    with_negatives, _ = loss(hard_negatives=1.0)
    assert with_negatives > plain  # the two-way choice adds a positive cross-entropy
    anchored, stage = loss(hard_negatives=0.0, text_anchor=10.0)
    assert anchored == pytest.approx(plain)  # no drift yet
    with torch.no_grad():
        for p in model.text.parameters():
            p.add_(0.05 * torch.randn_like(p))
        torch.manual_seed(1)
        drifted = stage(batch["videos"], tokens, negatives).item()
        stage.text_anchor = 0.0
        torch.manual_seed(1)
        assert drifted > stage(batch["videos"], tokens, negatives).item()

    text = train(_cfg(tmp_path, "text", steps=2))
    tuned = train(_cfg(tmp_path / "ft", "text", init=str(text), steps=2, text_lr=1e-5, text_anchor=1.0))
    record = load_model(tuned).card["training"][-1]
    assert (record["text_lr"], record["hard_negatives"], record["text_anchor"]) == (1e-5, 1.0, 1.0)


def test_resume_continues_exactly(tmp_path):
    whole = load_file(str(train(_cfg(tmp_path / "a"))))

    class Stop(Exception):
        pass

    def stop_after_2(phase, step, total, **_):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(_cfg(tmp_path / "b"), progress=stop_after_2)
    resumed = load_file(str(train(_cfg(tmp_path / "b"))))
    assert whole.keys() == resumed.keys()
    for k in whole:
        torch.testing.assert_close(resumed[k], whole[k], rtol=0, atol=1e-6, msg=k)


def test_batches_are_a_function_of_seed_rank_step():
    cfg = TrainConfig(stage="video", model=TINY, batch_size=3)
    a, b = make_batch(cfg, TINY, rank=0, step=5), make_batch(cfg, TINY, rank=0, step=5)
    c = make_batch(cfg, TINY, rank=1, step=5)
    assert torch.equal(a["x0"], b["x0"]) and a["captions"] == b["captions"]
    assert not torch.equal(a["x0"], c["x0"])
    assert a["x0"].shape == (3, 3, 8, 16, 16) and a["cond_mask"].shape == (3, 1, 8, 16, 16)


def test_reversed_pairs_share_noise_level_mask_and_reversed_noise():
    from lumiere_cli.world.vocab import OPPOSITE_MOTION, parse_caption

    cfg = TrainConfig(stage="video", model=TINY, batch_size=32, reversed_pairs=1.0, empty_prompt_prob=0.0,
                      paraphrase_prob=0.0)
    batch = make_batch(cfg, TINY, rank=0, step=1)
    x0, noise, sigma, mask = batch["x0"], batch["noise"], batch["sigma"], batch["cond_mask"]
    pairs = [i for i in range(16) if torch.allclose(x0[i + 16], x0[i].flip(1), atol=1e-5)]
    assert len(pairs) >= 8
    for i in pairs:
        j = i + 16
        assert sigma[i] == sigma[j] and torch.equal(mask[i], mask[j])
        assert torch.equal(noise[j], noise[i].flip(1))
        words = parse_caption(batch["captions"][i]), parse_caption(batch["captions"][j])
        assert OPPOSITE_MOTION[words[0]["motion"]] == words[1]["motion"]
    plain = make_batch(replace(cfg, reversed_pairs=0.0), TINY, rank=0, step=1)
    assert not any(torch.allclose(plain["x0"][i + 16], plain["x0"][i].flip(1), atol=1e-5) for i in range(16))
    t2i = make_batch(replace(cfg, stage="t2i"), TINY, rank=0, step=1)
    assert t2i["x0"].shape == (32, 3, 16, 16)
    ups = make_batch(replace(cfg, motions=("moving up", "moving down")), TINY, rank=0, step=1)
    assert {parse_caption(c)["motion"] for c in ups["captions"]} == {"moving up", "moving down"}


def test_reference_clips_give_posterior_mean_targets_at_high_noise():
    noisy = replace(TINY, diffusion=replace(TINY.diffusion, schedule_shift=60.0))
    cfg = TrainConfig(stage="video", model=noisy, batch_size=24, reference_clips=16, empty_prompt_prob=0.0)
    batch = make_batch(cfg, noisy, rank=0, step=2)
    known = batch["cond_mask"].flatten(1).any(1)
    moved = (batch["target"] - batch["x0"]).flatten(1).abs().amax(1) > 1e-3
    assert known.any() and not moved[known].any()
    assert moved[~known & (batch["sigma"] > 30)].all()
    assert batch["target"].abs().max() <= 1 + 1e-6  # a weighted mean of clips in [-1, 1]
    plain = make_batch(replace(cfg, reference_clips=0), noisy, rank=0, step=2)
    assert "target" not in plain and torch.equal(plain["x0"], batch["x0"])


def test_known_mask_layouts():
    g = torch.Generator().manual_seed(0)
    m = random_known_mask(400, 4, 8, 8, generator=g)
    frame0_all = (m[:, 0, 0] == 1).flatten(1).all(1)
    later_known = m[:, 0, 1:].flatten(1).mean(1)
    kinds = {
        "none": (m.flatten(1).sum(1) == 0),
        "first": frame0_all & (later_known == 0),
        "inpaint": ~frame0_all & (later_known > 0),
        "cinemagraph": frame0_all & (later_known > 0) & (later_known < 1),
    }
    for name, sel in kinds.items():
        assert 0.1 < sel.float().mean() < 0.55, name


@pytest.mark.slow
@pytest.mark.parametrize("data", ["shapes", "manifest"])
def test_two_process_ddp_start(tmp_path, data):
    from test_data import world_clips

    if data == "manifest":  # world renders encoded as mp4, listed in a CSV manifest
        (tmp_path / "clips").mkdir()
        rows = [f"clips/{p.name},{text}" for p, text in world_clips(tmp_path / "clips", 4)]
        (tmp_path / "clips.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
        data = str(tmp_path / "clips.csv")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "lumiere_cli", "train", "--stage", "t2i", "--steps", "3", "--batch-size", "2",
           "--out", str(out), "--config", dumps(TINY), "--device", "cpu", "--quiet", "--data", data,
           "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == [str(out / "weights" / "model.safetensors")]  # once, from rank 0
    model = load_model(out / "weights")
    record = model.card["training"][-1]
    assert record["processes"] == 2 and record["samples_seen"] == 3 * 2 * 2
    if data != "shapes":
        assert record["usable"] == 4 and record["skipped"] == 0
        # The same run goes on in one process: the checkpoint holds nothing of the process count.
        resumed = train(_cfg(tmp_path, "t2i", out_dir=str(out), steps=5, model=TINY, data=data, workers=1,
                             device="cpu"))
        record = load_model(resumed).card["training"][-1]
        assert (record["processes"], record["steps"], record["samples_seen"]) == (1, 5, 3 * 2 * 2 + 2 * 2)


def test_clip_encoder_tells_where_an_object_is():
    # Averaging features over the frame (the first design) made a square at the top left and one at
    # the bottom right embed alike (2% apart), so direction words learned nothing contrastively.
    from lumiere_cli.nn.video_encoder import VideoEncoder

    torch.manual_seed(0)
    encoder = VideoEncoder(embed_dim=16)
    clip = torch.zeros(1, 3, 8, 16, 16)
    clip[..., 3:7, 3:7] = 1
    moved = torch.roll(clip, shifts=(6, 6), dims=(-2, -1))
    a, b = encoder(clip), encoder(moved)
    assert (a - b).norm() > 0.1 * a.norm()
    assert encoder(torch.zeros(2, 3, 3, 12, 10)).shape == (2, 16)  # any clip size


def test_progress_is_phase_first_and_metrics_jsonl_is_appended_on_resume(tmp_path):
    calls = []

    class Stop(Exception):
        pass

    def record(phase, done, total, **metrics):
        calls.append((phase, done, total, metrics))
        if done == 3 and len(calls) == 3:
            raise Stop

    cfg = _cfg(tmp_path)
    with pytest.raises(Stop):
        train(cfg, progress=record)
    metrics = tmp_path / "t2i" / "metrics.jsonl"
    first = metrics.read_text().splitlines()
    train(cfg, progress=record)  # resumes from the checkpoint at step 2
    assert [c[:3] for c in calls] == [("train", d, 4) for d in (1, 2, 3, 3, 4)]
    assert all(set(c[3]) == {"loss", "lr", "clips_per_s", "grad_norm"} for c in calls)
    lines = metrics.read_text().splitlines()
    assert lines[:3] == first  # earlier lines are never rewritten
    rows = [json.loads(line) for line in lines]
    assert [r["step"] for r in rows] == [1, 2, 3, 3, 4]
    assert all(set(r) == {"step", "loss", "lr", "clips_per_s", "grad_norm", "elapsed_s"} for r in rows)
    assert all(r["loss"] > 0 and r["lr"] > 0 and r["clips_per_s"] > 0 for r in rows)


def test_init_takes_a_run_folder_and_changes_only_what_no_weight_depends_on(tmp_path):
    from lumiere_cli.errors import UsageError
    from lumiere_cli.weights import resolve

    t2i = train(_cfg(tmp_path, "t2i", steps=1))
    run = tmp_path / "t2i"
    assert resolve(run) == t2i and resolve(run / "weights") == t2i
    changes = {"frames": 4, "fps": 12, "diffusion": {"sample_guidance": 2.5, "sample_sampler": "ddim"}}
    video = train(_cfg(tmp_path, "video", init=str(run), steps=1, model_overrides=changes))
    model = load_model(video)
    assert (model.config.frames, model.config.fps) == (4, 12)
    assert (model.config.diffusion.sample_guidance, model.config.diffusion.sample_sampler) == (2.5, "ddim")
    assert model.card["training"][-1]["model_overrides"] == changes
    widen = {"unet": {"channels": [32, 32]}}
    wide = load_model(train(_cfg(tmp_path / "wide", "t2i", init=str(run), steps=1, model_overrides=widen)))
    assert wide.config.unet.channels == (32, 32) and wide.config.unet.embedding_dim == 64
    assert wide.card["training"][-1]["model_overrides"] == widen

    def refused(match, **kw):
        with pytest.raises(UsageError, match=match):
            train(_cfg(tmp_path / "bad", **{"stage": "video", "init": str(run), "steps": 1, **kw}))

    refused(r"^unet\.channels: widening doubles a level.s channels or keeps them; got 16 -> 8",
            model_overrides={"unet": {"channels": [8, 16]}})
    refused(r"keeps the channels of levels with attention \(level 1\)", model_overrides={"unet": {"channels": [16, 64]}})
    refused("unet.emb_dim stays 64 when the channels widen", model_overrides={"unet": {"channels": [32, 32], "emb_dim": 128}})
    refused(r"unet\.heads, size cannot change", model_overrides={"unet": {"heads": 1}, "size": 8})
    refused("frames can change on --init weights only in a video stage", stage="t2i", model_overrides={"frames": 4})
    refused("frames must be a multiple of 2", model_overrides={"frames": 6 - 1})
    refused("sample_sampler must be one of ddim, dpmpp-2m", model_overrides={"diffusion": {"sample_sampler": "euler"}})
    refused("unknown ModelConfig keys: frame", model_overrides={"frame": 4})
    refused("with init the stage continues the init's config", model=TINY)
    refused("stage must be one of text, t2i, video, video-unfrozen", stage="image")
    assert not (tmp_path / "bad").exists()  # refused before anything was built or written


def test_plan_runs_stages_in_order_skips_finished_ones_and_resumes_a_partial_one(tmp_path):
    from lumiere_cli.train import load_plan, train_plan

    plan = {"description": "two tiny stages",
            "defaults": {"batch_size": 2, "warmup": 1, "log_every": 1, "checkpoint_every": 1, "device": "cpu"},
            "stages": [{"stage": "t2i", "out_dir": str(tmp_path / "t2i"), "steps": 2, "model": dumps_dict(TINY)},
                       {"stage": "video", "out_dir": str(tmp_path / "video"), "steps": 1,
                        "model_overrides": {"frames": 4}, "sigma_range": [10, 80]}]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    stages = load_plan(path)
    assert stages[0].model == TINY and stages[1].sigma_range == (10, 80) and stages[1].init is None
    calls = []
    out = train_plan(stages, progress=lambda phase, done, total, **m: calls.append((phase, done, total)))
    assert calls == [("stage", 0, 2), ("train", 1, 2), ("train", 2, 2), ("stage", 1, 2), ("train", 1, 1)]
    model = load_model(out)
    assert [(r["stage"], r["steps"]) for r in model.card["training"]] == [("t2i", 2), ("video", 1)]
    assert model.config.frames == 4 and model.card["training"][-1]["sigma_range"] == [10, 80]

    calls.clear()
    plan["stages"][1]["steps"] = 2  # the last stage is now half done: it resumes at step 1
    path.write_text(json.dumps(plan))
    assert train_plan(load_plan(path), progress=lambda *a, **m: calls.append(a)) == out
    assert calls == [("skip", 0, 2), ("stage", 1, 2), ("train", 2, 2)]
    assert load_model(out).card["training"][-1]["steps"] == 2


def dumps_dict(cfg):
    return json.loads(dumps(cfg))


def test_a_failed_checkpoint_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import copy

    import safetensors.torch

    from lumiere_cli.model import LumiereModel
    from lumiere_cli.train import save_checkpoint

    model = LumiereModel(TINY)
    opt = torch.optim.AdamW(model.parameters())

    def full_disk(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half a file")
        raise OSError("no space")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "checkpoint.safetensors", model=model, ema=copy.deepcopy(model),
                         module=model, opt=opt, step=1, cfg=TrainConfig(), elapsed=0.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_choice_follows_the_one_device_rule(tmp_path):
    from lumiere_cli.errors import UsageError

    with pytest.raises(UsageError, match="--device cuda but no CUDA GPU is visible"):
        train(_cfg(tmp_path, device="cuda"))


def test_setup_gives_ddp_an_indexed_gpu(monkeypatch):
    import lumiere_cli.train.loop as loop

    chosen = []
    monkeypatch.setattr(loop, "resolve_device", lambda choice: "cuda")  # "auto" outside torchrun
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert loop.setup(TrainConfig()).device == torch.device("cuda", 0)
    assert chosen == [torch.device("cuda", 0)]


def test_train_layouts_flag_chooses_the_known_frame_layouts(tmp_path, monkeypatch):
    """`lumiere train --layouts time`: the video stage's batches draw the time layouts (whole known
    frames) and the card's row says so; the default draws the standard set; other names are refused."""
    from typer.testing import CliRunner

    from lumiere_cli.cli import app
    from lumiere_cli.masks import LAYOUT_SETS
    from lumiere_cli.train import data as train_data

    seen = []
    real = train_data.random_known_mask

    def spy(*args, layouts=None, **kwargs):
        seen.append(layouts)
        return real(*args, layouts=layouts, **kwargs)

    monkeypatch.setattr(train_data, "random_known_mask", spy)
    monkeypatch.chdir(tmp_path)
    run = lambda out, *more: CliRunner().invoke(app, [  # noqa: E731
        "train", "--stage", "video", "--steps", "1", "--batch-size", "2", "--device", "cpu", "--workers", "0",
        "--out", out, "--config", dumps(TINY), *more])
    r = run("time", "--layouts", "time")
    assert r.exit_code == 0, r.output
    assert seen and all(s == LAYOUT_SETS["time"] for s in seen)
    assert load_model("time").card["training"][-1]["layouts"] == "time"
    seen.clear()
    r = run("standard")
    assert r.exit_code == 0, r.output
    assert seen and all(s == LAYOUT_SETS["standard"] for s in seen)
    assert "layouts" not in load_model("standard").card["training"][-1]
    r = run("bad", "--layouts", "keyframes")
    assert r.exit_code == 2 and "keyframes" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["train", "--stage", "t2i", "--steps", "1", "--out", "frames", "--layouts", "time",
                                 "--config", dumps(TINY)])
    assert r.exit_code == 2 and "video stages" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "frames").exists()  # refused before anything was written
