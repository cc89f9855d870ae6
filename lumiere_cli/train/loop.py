"""The training loop of one stage, on one process or under torchrun on many (DDP).

The loop knows a dataset only as "the batch of (step, rank, micro-batch)" (`train.data`) and a
stage only as a module whose forward returns the loss (`train.stages`). Each optimiser step sums
`grad_accum` micro-batches (DDP synchronises gradients on the last one only).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..choices import Stage
from ..config import ModelConfig, TrainConfig
from ..devices import resolve_device
from ..errors import UsageError
from ..masks import LAYOUT_SETS
from ..nn.layers import fast_autocast
from ..progress import Progress, or_silent
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .data import StageData, ValSet, check_data_options, check_world_options, loader, open_data
from .plan import card_with_record, stage_record
from .stages import (VIDEO_STAGES, DiffusionStage, initial_model, param_groups, stage_model_config, stage_module,
                     stage_net)

METRICS = "metrics.jsonl"


def tune_allocator() -> None:
    """Keep freed blocks instead of returning them to the kernel every step (glibc only).

    Measured here: default malloc mapped and unmapped the big activations each step; this took fp32
    training from ~2.5 to ~5.5 clips/s.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap for large blocks
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: never trim the heap
    except (OSError, AttributeError):
        pass


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shared(self, fn: Callable[[], Any]) -> Any:
        """fn() run on rank 0 only, its result (or its error) handed to every process."""
        if self.world == 1:
            return fn()
        box: list[Any] = [None]
        if self.main:
            try:
                box[0] = ("ok", fn())
            except Exception as e:  # noqa: BLE001 - raised again on every rank below
                box[0] = ("error", e)
        torch.distributed.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def merged(self, found: dict[str, str]) -> dict[str, str]:
        """The union of every process's dict (entries found unreadable)."""
        if self.world == 1:
            return found
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, found)
        out: dict[str, str] = {}
        for part in parts:
            out |= {k: v for k, v in part.items() if k not in out}
        return out


def setup(cfg: TrainConfig) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(resolve_device(cfg.device))
    if device.type == "cuda":
        if device.index is None:  # "cuda" outside torchrun: the current GPU (DDP wants an index)
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, device)


def check(cfg: TrainConfig) -> ModelConfig:
    """One-line errors for a stage's settings; returns the config its model will have."""
    Stage.parse(cfg.stage, "stage")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise UsageError("steps and batch size must be at least 1")
    if cfg.log_every < 1 or cfg.checkpoint_every < 1:
        raise UsageError("log_every and checkpoint_every must be at least 1")
    if cfg.sigma_range is not None and not 0 < cfg.sigma_range[0] < cfg.sigma_range[1]:
        raise UsageError(f"sigma_range must be (low, high) with 0 < low < high, got {cfg.sigma_range}")
    if not 0 <= cfg.reversed_pairs <= 1 or cfg.reference_clips < 0:
        raise UsageError("reversed_pairs must be in [0, 1] and reference_clips at least 0")
    if cfg.layouts not in LAYOUT_SETS:
        raise UsageError(f"layouts must be one of {', '.join(LAYOUT_SETS)}, got {cfg.layouts!r}")
    if cfg.layouts != "standard" and cfg.stage not in VIDEO_STAGES:
        raise UsageError(f"--layouts {cfg.layouts} is for the video stages (clips with known frames); "
                         f"the {cfg.stage} stage trains on {'captions' if cfg.stage == 'text' else 'single frames'}")
    check_world_options(cfg)
    model_cfg = stage_model_config(cfg)
    check_data_options(cfg, model_cfg)
    return model_cfg


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, trainable: list[str], decay: float) -> None:
    src = dict(model.named_parameters())
    dst = dict(ema.named_parameters())
    for name in trainable:
        dst[name].lerp_(src[name].detach(), 1 - decay)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    """One line per logged step, appended in one write (earlier lines are never rewritten)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


@torch.no_grad()
def validate(module: nn.Module, val: ValSet, tokenize: Callable, dist: Dist, *, batch_size: int,
             autocast: Any) -> tuple[dict[str, float], int]:
    """The mean denoising loss (text-to-video: nothing known) of the validation clips per noise
    band, over every process's share, and how many clips that was."""
    sums = torch.zeros(len(val.bands) + 1, dtype=torch.float64, device=dist.device)
    for group in val.groups:
        tokens = tokenize(group["captions"]).to(dist.device)
        n = len(group["captions"])
        for j in range(len(val.bands)):
            for a in range(0, n, batch_size):
                x0 = group["x0"][a:a + batch_size].to(dist.device)
                with autocast:
                    loss = module(x0=x0, sigma=group["sigmas"][j][a:a + batch_size].to(dist.device),
                                  noise=group["noises"][j][a:a + batch_size].to(dist.device),
                                  cond_mask=torch.zeros_like(x0[:, :1]), tokens=tokens[a:a + batch_size])
                sums[j] += loss.double() * len(x0)
        sums[-1] += n
    if dist.world > 1:
        torch.distributed.all_reduce(sums)
    count = int(sums[-1])
    return ({band: float(sums[j]) / count for j, band in enumerate(val.bands)} if count else {}), count


def train(cfg: TrainConfig, *, progress: Progress | None = None, resume: bool = True) -> Path:
    """Run one stage; returns the EMA weights file written to `out_dir/weights/`.

    Calls `progress("train", done, total)` after every step, with loss (the mean since the last
    log), lr, clips_per_s and grad_norm (and, on a dataset, `skipped`: entries left out or found
    unreadable so far) every `log_every` steps; rank 0 appends those to `out_dir/metrics.jsonl`
    (with step and elapsed_s), also when resuming. With validation, every `val_every` steps
    `progress("val", done, total, **{band: loss})` and a metrics line {"step", "val_loss": {band:
    loss}, "val_clips", "elapsed_s"}.
    """
    model_cfg = check(cfg)
    from ..weights import save_model

    tune_allocator()
    progress = or_silent(progress)
    dist = setup(cfg)
    data: StageData = open_data(cfg, model_cfg, shared=dist.shared)
    torch.manual_seed(cfg.seed)  # the stage's new modules (clip encoder) start the same everywhere
    model = initial_model(cfg, model_cfg, vocabulary=data.vocabulary(), name=data.model_name())
    module = stage_module(cfg, model, dist).to(dist.device)
    model.to(dist.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(cfg, module), lr=cfg.lr,
                            betas=(0.9, 0.99), weight_decay=cfg.weight_decay)

    out = Path(cfg.out_dir)
    ckpt = out / CHECKPOINT
    start, elapsed, state = 0, 0.0, {}
    if resume and ckpt.exists():
        start, elapsed, state = load_checkpoint(ckpt, model=model, ema=ema, module=module, opt=opt,
                                                device=dist.device)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)

    runner: nn.Module = module
    if dist.world > 1:
        runner = nn.parallel.DistributedDataParallel(
            module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    source = data.batches(world=dist.world, start=start, state=state)
    batches = iter(loader(source, cfg, rank=dist.rank, start=start, pin=dist.device.type == "cuda"))
    val = data.val_set(rank=dist.rank, world=dist.world)
    val_module = DiffusionStage(stage_net(cfg.stage, ema), ema).eval() if val is not None else None
    autocast = fast_autocast(dist.device, cfg.bf16)
    accum = cfg.grad_accum
    items = cfg.batch_size * dist.world * accum
    skipped: dict[str, str] = dict(state.get("skipped", {}))  # entry -> why it could not be read
    samples = int(state.get("samples", start * items))
    last_val: dict[str, float] | None = state.get("val_loss")
    t_last, step_last = time.perf_counter(), start
    t0 = time.perf_counter() - elapsed
    loss_sum = 0.0  # since the last log

    def save(step: int) -> Path:
        save_checkpoint(ckpt, model=model, ema=ema, module=module, opt=opt, step=step, cfg=cfg,
                        elapsed=time.perf_counter() - t0,
                        data={**source.state(step), "skipped": skipped, "samples": samples, "val_loss": last_val})
        extra = data.record(skipped) | ({"val_loss": last_val} if last_val else {})
        record = stage_record(cfg, steps=step, processes=dist.world, device=str(dist.device.type),
                              seconds=time.perf_counter() - t0, samples=samples, extra=extra)
        card = card_with_record(model.card, record)
        ema.card = card
        return save_model(ema, out / "weights", card=card)

    path = out / "weights"
    for step in range(start, cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step) * group.get("lr_scale", 1.0)
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for micro in range(accum):
            batch = next(batches)
            if (batch.pop("step"), batch.pop("micro")) != (step, micro):
                raise RuntimeError("the data loader handed out micro-batches out of order")
            for where, reason in batch.pop("skipped", []):
                skipped.setdefault(where, reason)
            batch["tokens"] = model.text.tokenize(batch.pop("captions"))
            if "negatives" in batch:
                batch["negative_tokens"] = model.text.tokenize(batch.pop("negatives"))
            batch = {k: v.to(dist.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            # Under DDP gradients are averaged over processes once, on the step's last micro-batch.
            sync = runner.no_sync() if dist.world > 1 and micro < accum - 1 else contextlib.nullcontext()
            with sync:
                with autocast:
                    loss = runner(**batch)
                (loss / accum if accum > 1 else loss).backward()
            step_loss += loss.item() / accum if accum > 1 else loss.item()
        grad_norm = nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        opt.step()
        _ema_update(ema, model, trainable, min(cfg.ema_decay, (1 + step) / (10 + step)))

        samples += items
        loss_sum += step_loss
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            metrics = {"loss": loss_sum / (done - step_last), "lr": lr_at(cfg, step),
                       "clips_per_s": items * (done - step_last) / max(now - t_last, 1e-9),
                       "grad_norm": float(grad_norm)}
            if not data.world:
                skipped = dist.merged(skipped)
                metrics["skipped"] = data.unusable() + len(skipped)
            t_last, step_last, loss_sum = now, done, 0.0
            if dist.main:
                _append_metrics(out / METRICS, {"step": done, **{k: _finite(v) for k, v in metrics.items()},
                                                "elapsed_s": round(now - t0, 3)})
            progress("train", done, cfg.steps, **metrics)
        else:
            progress("train", done, cfg.steps)
        if val is not None and (done % cfg.val_every == 0 or done == cfg.steps):
            t_val = time.perf_counter()
            last_val, val_clips = validate(val_module, val, model.text.tokenize, dist, batch_size=cfg.batch_size,
                                           autocast=autocast)
            t_last += time.perf_counter() - t_val  # clips/s counts training time only
            if dist.main:
                _append_metrics(out / METRICS, {"step": done, "val_loss": {k: _finite(v) for k, v in last_val.items()},
                                                "val_clips": val_clips,
                                                "elapsed_s": round(time.perf_counter() - t0, 3)})
            progress("val", done, cfg.steps, **last_val)
        if dist.main and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            path = save(done)
    if dist.world > 1:
        torch.distributed.barrier()
    return path if path.suffix else path / "model.safetensors"


__all__ = ["METRICS", "Dist", "check", "lr_at", "setup", "train", "tune_allocator", "validate"]
