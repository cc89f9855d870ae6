"""Commands about the model itself: info, train, eval."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lumiere_cli.choices import Layouts, Stage
from lumiere_cli.cli import options as o
from lumiere_cli.cli.ui import UI, handle_errors, table_console
from lumiere_cli.cli.upscale import BaseOnly, SsrNoise, SsrSteps
from lumiere_cli.errors import InputError, UsageError

PANEL = "Model"


def register(app: typer.Typer) -> None:
    for fn in (info, train, eval_):
        app.command(name=fn.__name__.rstrip("_"), rich_help_panel=PANEL)(handle_errors(fn))


def info(weights: o.Weights = None, json: o.Json = False) -> None:
    """The model's card: sizes, frames, the vocabulary it knows, eval figures (read from the
    weights' header: no model is built).

    Example: [bold]lumiere info[/]  or  [bold]lumiere info --json | jq .config.frames[/]
    """
    from dataclasses import asdict

    from lumiere_cli.card import guidance_bands
    from lumiere_cli.weights_header import read_info

    header = read_info(weights)
    cfg, card = header.config, header.card
    winfo = {"path": str(header.path), "hash": header.content_hash}
    summary = {
        "weights": winfo,
        "frames": cfg.frames, "size": cfg.size, "fps": cfg.fps,
        "temporal_factor": 2 ** cfg.unet.temporal_levels,
        "parameters": header.parameters,
        "vocabulary": list(cfg.vocabulary),
        "config": asdict(cfg),
        "card": card,
    }
    from lumiere_cli.cascade.header import read_ssr_info, ssr_beside

    ssr_path = ssr_beside(weights)
    ssr = read_ssr_info(ssr_path) if ssr_path is not None else None
    if ssr is not None:  # the cascade's second stage: what every generation command ends with
        summary["ssr"] = {"weights": {"path": str(ssr.path), "hash": ssr.content_hash},
                          "size": ssr.config.out_size, "factor": ssr.config.factor, "parameters": ssr.parameters,
                          "config": asdict(ssr.config), "card": ssr.card}
    if json:
        typer.echo(jsonlib.dumps(summary, default=str))
        return
    from rich.table import Table

    out = table_console()
    t = Table(title="lumiere model", show_header=False)
    t.add_row("weights", f"{winfo['path']}  (hash {winfo['hash'][:12]})")
    t.add_row("clip", f"{cfg.frames} frames at {cfg.fps} fps, {cfg.size}x{cfg.size} px")
    t.add_row("frame counts", f"multiples of {2 ** cfg.unet.temporal_levels}")
    t.add_row("parameters", f"{header.parameters:,}")
    t.add_row("U-Net channels", ", ".join(map(str, cfg.unet.channels)))
    t.add_row("text encoder", cfg.text.openclip_model or f"{cfg.text.layers} layers, width {cfg.text.width}")
    d = cfg.diffusion
    t.add_row("noise schedule", f"{d.prediction}-prediction, cosine; shift {d.schedule_shift:g} in training, "
                                f"{d.sampling_schedule_shift:g} for sampling (--schedule-shift)" +
              (f"; at {len(d.sample_sigmas)} steps the model's tuned levels "
               f"{', '.join(f'{v:.3g}' for v in d.sample_sigmas)}" if d.sample_sigmas else ""))
    bands = guidance_bands(d.sampling_guidance, d.sampling_guidance_low(), d.sampling_guidance_high())
    t.add_row("guidance", ", ".join([f"{d.sampling_guidance:g} by default"] + [text for text, _ in bands])
              + f" ({', '.join(['--guidance'] + [flag for _, flag in bands])})")
    t.add_row("steps", f"{d.sampling_steps} by default (--steps)")
    t.add_row("sampler", f"{d.sampling_sampler} by default (--sampler)")
    t.add_row("vocabulary", " ".join(cfg.vocabulary) if cfg.vocabulary else "(not recorded)")
    if ssr is not None:
        sc = ssr.config
        t.add_row("super-resolution", f"{ssr.path}  (hash {ssr.content_hash[:12]})\n{sc.size}x{sc.size} -> "
                  f"{sc.out_size}x{sc.out_size} ({sc.factor}x), {ssr.parameters:,} parameters, windows of "
                  f"{sc.frames} frames (overlap {sc.overlap}); {sc.diffusion.sampling_steps} "
                  f"{sc.diffusion.sampling_sampler} steps, noise {sc.sample_aug_sigma:g} by default "
                  "(--ssr-steps, --ssr-noise; --base-only skips it)")
        if "fidelity" in ssr.card:
            t.add_row("ssr fidelity", "\n".join(f"{m}: PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}"
                                                for m, v in ssr.card["fidelity"]["methods"].items()))
    else:
        t.add_row("super-resolution", f"none (no ssr.safetensors beside the weights): clips are {cfg.size}x{cfg.size}")
    for key in ("training", "eval"):
        if key in card:
            t.add_row(key, _flat(card[key]))
    for key, value in card.items():
        if key not in ("training", "eval"):
            t.add_row(str(key), _flat(value))
    out.print(t)


def _flat(value: Any) -> str:
    if isinstance(value, dict) and "splits" in value:  # eval figures: one line per split
        return "\n".join(
            f"{name}: all {s['all']:.0%}, colour {s['colour']:.0%}, shape {s['shape']:.0%}, "
            f"motion {s['motion']:.0%}, background {s['background']:.0%} ({s['count']} clips)"
            for name, s in value["splits"].items()
        )
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return "\n".join(", ".join(f"{k} {_flat(v)}" for k, v in item.items()) for item in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# Options a plan file sets per stage; with --plan only --device (every stage) and --quiet apply.
PLAN_SETS = ("stage", "steps", "batch_size", "lr", "text_lr", "hard_negatives", "text_anchor", "schedule_shift",
             "sigma_range", "reversed_pairs", "reference_clips", "motions", "layouts", "out", "init", "config",
             "resume", "seed", "data", "val_data", "val_fraction", "val_every", "bucket", "grad_accum", "workers")
DATA = "Data"


def train(
    ctx: typer.Context,
    stage: Annotated[Stage, typer.Option(help="Which weights train: the text encoder, the image U-Net on frames, the temporal layers on clips, or every U-Net weight on clips.")] = Stage.t2i,
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 10_000,
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per step (per process).")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 3e-4,
    text_lr: Annotated[float, typer.Option(min=0.0, help="t2i/video stages: also fine-tune the text encoder at this peak rate (0: frozen); text stage with --init: the encoder's own rate.")] = 0.0,
    hard_negatives: Annotated[float, typer.Option(min=0.0, help="text stage: weight of telling each caption from itself with one attribute swapped.")] = 1.0,
    text_anchor: Annotated[float, typer.Option(min=0.0, help="text stage with --init: keep the features near the starting encoder's, so trained U-Nets still read them.")] = 0.0,
    schedule_shift: Annotated[Optional[float], typer.Option(min=0.01, help="Train (and by default sample) on this noise-schedule shift; higher = noisier.", show_default=False)] = None,
    sigma_range: Annotated[Optional[tuple[float, float]], typer.Option(metavar="LOW HIGH", help="Draw noise levels log-uniformly in [LOW, HIGH] instead of from the schedule (10 80: only what high noise decides, such as which way things move).", show_default=False)] = None,
    reversed_pairs: Annotated[float, typer.Option(min=0.0, max=1.0, help="video stages: share of clips paired with themselves played backwards (the opposite motion word) under the same noise.")] = 0.0,
    reference_clips: Annotated[int, typer.Option(min=0, help="video stages: regress text-to-video clips on their caption's posterior mean, estimated from this many more clips drawn for it (procedural data only).")] = 0,
    motions: Annotated[Optional[str], typer.Option(metavar="LIST", help="Train only on clips of these motions, comma-separated (e.g. 'moving left,moving right,moving up,moving down').", show_default=False)] = None,
    layouts: Annotated[Layouts, typer.Option(help="video stages: the <C, M> layouts clips train with: standard (none, first frame, inpaint, cinemagraph) or time (those and whole known frames anywhere: keyframes, a prefix, a suffix, both ends, for extend, keyframes and long clips).")] = Layouts.standard,
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoint, metrics.jsonl and the weights (weights/).")] = Path("runs/default"),
    init: Annotated[Optional[Path], typer.Option(help="Weights to start from: a .safetensors file, its folder, or the previous stage's run folder.", show_default=False)] = None,
    config: Annotated[Optional[str], typer.Option(help="ModelConfig changes, inline JSON or a .json file. With --init: unet.channels, a level without attention doubled or kept (the weights are widened and compute what they did), and what no weight depends on: frames (video stages), fps, diffusion.schedule_shift, sample_shift, sample_guidance, sample_guidance_low, sample_guidance_high, sample_sampler, sample_steps, sample_sigmas.", show_default=False)] = None,
    plan: Annotated[Optional[Path], typer.Option(help="Run the stages of this plan file in order (e.g. plans/shapes.json): finished stages are skipped, a partial one resumes.", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the last checkpoint in --out.")] = True,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    data: Annotated[str, typer.Option(metavar="PATH", help="What to train on: 'shapes' (the procedural world), a CSV/JSONL manifest (columns path, text; optional start, end seconds; paths relative to it) or a folder of videos and images with same-stem .txt captions. Check it first with 'lumiere data check'.", rich_help_panel=DATA)] = "shapes",
    val_data: Annotated[Optional[Path], typer.Option(help="A dataset to report the validation loss on (per noise level) every --val-every steps.", rich_help_panel=DATA, show_default=False)] = None,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.99, help="Hold out this fraction of --data's entries for validation instead.", rich_help_panel=DATA)] = 0.0,
    val_every: Annotated[int, typer.Option(min=1, help="Steps between validation losses.", rich_help_panel=DATA)] = 500,
    bucket: Annotated[Optional[list[str]], typer.Option("--bucket", metavar="FRAMESxSIZE", help="A clip shape to train, e.g. 16x32 (repeat for several; one shape per batch). Default: the model's own clip.", rich_help_panel=DATA, show_default=False)] = None,
    grad_accum: Annotated[int, typer.Option(min=1, help="Micro-batches of --batch-size clips summed into each optimiser step.", rich_help_panel=DATA)] = 1,
    workers: Annotated[int, typer.Option(min=0, help="Data-loading processes per training process (0: load in the training process).", rich_help_panel=DATA)] = 2,
    device: o.DeviceOpt = o.Device.auto,
    quiet: o.Quiet = False,
) -> None:
    """Train one stage (text, t2i, video, video-unfrozen), or every stage of a plan, on the
    procedural world or on your captioned videos (--data); works under torchrun for several GPUs
    and machines. Logs the loss every 20 steps and appends it to OUT/metrics.jsonl.

    Example: [bold]lumiere train --stage video --init runs/t2i --out runs/video --steps 2000[/]
    or [bold]lumiere train --plan plans/shapes.json[/]
    """
    import os
    from dataclasses import replace

    from lumiere_cli import train as train_mod
    from lumiere_cli.config import TrainConfig
    from lumiere_cli.data.buckets import parse_bucket

    speaks = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone logs and prints the path
    ui = UI(quiet=quiet or not speaks)
    if plan is not None:
        given = [name for name in PLAN_SETS if ctx.get_parameter_source(name).name != "DEFAULT"]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"--plan sets every stage's options; drop {flags} (only --device and --quiet apply)")
        stages = train_mod.plan_stages(train_mod.load_plan(plan))
        if ctx.get_parameter_source("device").name != "DEFAULT":
            stages = [replace(s, device=device.value) for s in stages]
        with ui.session():
            path = train_mod.train_plan(stages, progress=_train_progress(ui, stages))
    else:
        cfg = TrainConfig(
            stage=stage.value, out_dir=str(out), init=str(init) if init else None,
            model_overrides=_load_json_arg(config) if config else {},
            steps=steps, batch_size=batch_size, lr=lr, text_lr=text_lr, seed=seed,
            hard_negatives=hard_negatives, text_anchor=text_anchor, schedule_shift=schedule_shift,
            sigma_range=tuple(sigma_range) if sigma_range and None not in sigma_range else None,
            reversed_pairs=reversed_pairs, reference_clips=reference_clips, device=device.value,
            motions=tuple(m.strip() for m in motions.split(",") if m.strip()) if motions is not None else None,
            layouts=layouts.value,
            data=data, val_data=str(val_data) if val_data is not None else None, val_fraction=val_fraction,
            val_every=val_every, buckets=tuple(parse_bucket(b) for b in bucket) if bucket else None,
            grad_accum=grad_accum, workers=workers)
        with ui.session():
            ui.start_clip(f"train {cfg.stage}", cfg.steps)
            path = train_mod.train(cfg, progress=_train_progress(ui, [cfg]), resume=resume)
    ui.log(f"saved weights to {path}")
    if speaks:
        typer.echo(str(path))


def _train_progress(ui: UI, stages: list):
    """The library's progress(phase, done, total, **metrics) for training: the bar advances every
    step; every logged step shows a metrics line (the status row with a terminal, a log line
    without)."""

    def progress(phase: str, done: int, total: int, **metrics: float) -> None:
        if phase == "train":
            ui.step(done, total)
            if metrics:
                ui.status(metrics_line(done, total, metrics))
        elif phase == "val":
            bands = ", ".join(f"{band} {loss:.4f}" for band, loss in metrics.items())
            ui.log(f"step {done}/{total} validation loss by noise level (sigma): {bands}")
        elif phase in ("stage", "skip"):
            cfg = stages[done]
            what = f"stage {done + 1}/{total}: {cfg.stage}, {cfg.steps} steps -> {cfg.out_dir}"
            if phase == "skip":
                ui.log(f"{what}: already complete")
            else:
                ui.log(what)
                ui.start_clip(f"train {cfg.stage} ({done + 1}/{total})", cfg.steps)

    return progress


def metrics_line(done: int, total: int, metrics: dict[str, float]) -> str:
    """`step 40/200 loss 0.1234 lr 3.0e-04 grad 0.51 clips/s 14.2` (on a dataset, then
    `skipped 3`: entries left out or found unreadable so far)."""
    skipped = f" skipped {metrics['skipped']}" if "skipped" in metrics else ""
    return (f"step {done}/{total} loss {metrics['loss']:.4f} lr {metrics['lr']:.1e} "
            f"grad {metrics['grad_norm']:.3g} clips/s {metrics['clips_per_s']:.1f}{skipped}")


def _load_json_arg(text: str) -> dict:
    p = Path(text)
    if not text.lstrip().startswith("{") and p.suffix == ".json":
        if not p.is_file():
            raise InputError(f"config file not found: {p}")
        text = p.read_text(encoding="utf-8")
    try:
        data = jsonlib.loads(text)
    except jsonlib.JSONDecodeError as e:
        raise UsageError(f"--config is not valid JSON ({e.msg}); pass an object like '{{\"frames\": 16}}'") from e
    if not isinstance(data, dict):
        raise UsageError("--config must be a JSON object")
    return data


def eval_(
    n: Annotated[int, typer.Option(min=1, max=100_000, help="Clips per prompt split.")] = 32,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    steps: o.Steps = None,
    guidance: o.Guidance = None,
    guidance_low: o.GuidanceLow = None,
    guidance_high: o.GuidanceHigh = None,
    schedule_shift: o.ScheduleShift = None,
    sampler: o.SamplerOpt = None,
    json_out: Annotated[Optional[Path], typer.Option(help="Also write the report as JSON here.", show_default=False)] = None,
    report_dir: Annotated[Optional[Path], typer.Option("--report", help="Also write a contact sheet per split and an HTML "
                                                       "page playing every clip into this folder.",
                                                       show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=256, help="Clips per sampler run (faster; the clips do not change).")] = 8,
    weights: o.Weights = None,
    device: o.DeviceOpt = o.Device.auto,
    json: o.Json = False,
    quiet: o.Quiet = False,
    base_only: BaseOnly = False,
    ssr_steps: SsrSteps = None,
    ssr_noise: SsrNoise = None,
) -> None:
    """Evaluate the model on held-in and held-out prompts; prints a table. Clips are read strictly:
    an attribute counts only inside the range that renders of it occupy (a shape no render looks
    like is "none"); beside the rates, silhouette IoU, residual, grain, colour spread and shape
    stability against the best-fitting render, and the old matched filter's all-correct rate.
    With super-resolution weights beside the base, the same clips enlarged by the cascade are
    scored too, side by side (the JSON's "cascade" holds their report).

    Example: [bold]lumiere eval --n 16 --json-out eval.json --report eval-report[/]
    """
    from lumiere_cli import eval as eval_mod
    from lumiere_cli.config import SampleOptions
    from lumiere_cli.devices import resolve_device
    from lumiere_cli.weights import load_model

    ui = UI(quiet=quiet)
    if report_dir is not None:
        from lumiere_cli.cascade.header import ssr_beside

        if report_dir.exists() and not report_dir.is_dir():
            raise UsageError(f"--report {report_dir} is a file; name a folder")
        if not base_only and ssr_beside(weights) is not None:
            raise UsageError("--report draws the base model's clips: add --base-only (an SSR ships beside the weights)")
    device_name = resolve_device(device.value)
    model = load_model(weights, device=device_name)
    defaults = SampleOptions()
    opts = SampleOptions(steps=steps or defaults.steps,
                         guidance=guidance,
                         guidance_low=guidance_low,
                         guidance_high=guidance_high,
                         schedule_shift=schedule_shift,
                         sampler=sampler.value if sampler else None)
    with ui.session():
        current: list[str] = []

        def progress(split: str, done: int, total: int) -> None:
            if current[-1:] != [split]:  # a new split: a fresh bar
                current.append(split)
                ui.start_clip(f"evaluating {split}", total)
                if not ui.bars:
                    ui.log(f"evaluating {split} prompts ({total} clips)")
            ui.step(done, total)

        from lumiere_cli.cascade.run import load_beside

        ssr = None if base_only else load_beside(weights, device=device_name)
        if ssr is None:
            report = eval_mod.evaluate(model, n=n, seed=seed, options=opts, progress=progress,
                                       device=device_name, batch_size=batch_size, keep_clips=report_dir is not None)
            cascade = None
        else:
            from lumiere_cli.cascade.evaluate import evaluate_cascade
            from lumiere_cli.cascade.options import SSROptions

            report, cascade = evaluate_cascade(model, ssr, n=n, seed=seed, options=opts, progress=progress,
                                               ssr_options=SSROptions(steps=ssr_steps, noise=ssr_noise),
                                               device=device_name, batch_size=batch_size)
        if report_dir is not None:
            from lumiere_cli.eval_report import write_report

            page = write_report(report, report_dir)[0]
            ui.log(f"report: {page}")
    data = report.to_dict()
    if cascade is not None:
        data["cascade"] = cascade.to_dict()
    if json_out is not None:
        from lumiere_cli.video_io import write_sidecar

        write_sidecar(json_out, data, overwrite=True)
    if json:
        typer.echo(jsonlib.dumps(data, default=str))
        return
    from rich.table import Table

    caption = report.caption()
    if cascade is not None:
        size = ssr.config.out_size
        caption = (f"base {model.config.size}px: {report.grain_line()}; cascade {size}px: {cascade.grain_line()}\nedge width "
                   "(px at each stage's size; renders ~1): " + ", ".join(
                       f"{name} {report.splits[name]['edge_width']:.2f} -> {cascade.splits[name]['edge_width']:.2f}"
                       for name in report.splits))
    rows = [row for row in report.rows()]
    if cascade is not None:
        rows += [(f"{row[0]}, cascade {ssr.config.out_size}px", *row[1:]) for row in cascade.rows()]
    console = table_console()
    for title, columns, note in (("lumiere eval (strict)", eval_mod.RATE_COLUMNS, None),
                                 ("against the best-fitting render", eval_mod.MEASURE_COLUMNS, caption)):
        table = Table(title=title, caption=note)
        picked = [eval_mod.COLUMNS.index(c) for c in columns]
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(str(row[i]) for i in picked))
        console.print(table)
