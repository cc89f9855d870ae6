"""Training, in the paper's stages (see TrainConfig):

1. "text": the text encoder, contrastively against a small clip encoder (open_clip's CLIP loss);
2. "t2i": the text-to-image U-Net (`unet.spatial`) on single frames;
3. "video": the inflated STUNet's temporal layers on clips, spatial weights frozen;
4. "video-unfrozen": optionally, every U-Net weight on clips, at a lower learning rate.

The text encoder is frozen after its own stage unless `text_lr` > 0, which fine-tunes it in a
diffusion stage at its own peak rate.

Each stage starts from the previous stage's weights (`init`: a weights file, its folder or the
previous run's folder) and writes `out_dir/weights/`; `model_overrides` changes what an existing
model can change (frames in a video stage, fps, schedule shifts, sampling defaults). Every
`log_every` steps it reports `progress("train", done, total, loss=..., lr=..., clips_per_s=...,
grad_norm=...)` and appends the same numbers to `out_dir/metrics.jsonl`. `train_plan` runs a list
of stages (a plan file: `load_plan`), skipping finished ones. The loop knows nothing about the
model: a stage module's forward returns the loss. Batches are a pure function
of (seed, rank, step), so a resumed run sees exactly the data it would have seen. Checkpoints are
safetensors too (model, EMA, optimizer state), never pickles.
Under `torchrun --nproc_per_node N` each process trains on its own data with DDP (gloo on CPU,
nccl on CUDA); rank 0 writes.
"""

from __future__ import annotations

import copy
import ctypes
import json
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .atomic import staged
from .choices import Sampler, Stage
from .config import ModelConfig, TrainConfig, dumps, from_dict, to_dict
from .devices import resolve_device
from .diffusion.denoiser import Denoiser
from .diffusion.schedule import sample_training_sigmas
from .errors import InputError, UsageError
from .masks import IMAGE_LAYOUTS, VIDEO_LAYOUTS, random_known_mask
from .model import LumiereModel
from .nn.layers import fast_autocast
from .nn.video_encoder import VideoEncoder
from .pixels import from_unit
from .progress import Progress, or_silent

STAGES = tuple(s.value for s in Stage)
VIDEO_STAGES = (Stage.video.value, Stage.video_unfrozen.value)  # stages that train on clips
# ModelConfig keys a stage may change on its init's weights: none of them shapes a tensor or
# changes what the network's output means. The frame count only in a video stage (the t2i stage
# trains on single frames, so it would record a clip length it never saw).
CHANGEABLE_ON_INIT = (
    "frames", "fps", "diffusion.schedule_shift", "diffusion.sample_shift", "diffusion.sample_guidance",
    "diffusion.sample_sampler",
)
# Below this noise level a 16-frame clip is pinned down by its noisy input: the posterior-mean
# target equals the clip drawn (measured: mean |difference| < 1e-3 at sigma 4.5), so no
# reference clips are drawn for it.
POSTERIOR_MIN_SIGMA = 5.0
CHECKPOINT = "checkpoint.safetensors"
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


def _setup(cfg: TrainConfig) -> Dist:
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


# ---------------------------------------------------------------------------------------------
# Stage modules: forward(**batch) -> scalar loss. Only their trainable parameters are optimised.


class ContrastiveStage(nn.Module):
    """open_clip's CLIP loss over the batch, plus, per clip, a two-way choice between its caption
    and the caption with one attribute swapped (`negative_tokens`), weighted `hard_negatives`.
    The second term is local to each process, so it needs no gathering under DDP."""

    # The two-way choice runs at a fixed temperature: under the learned one (which grows towards
    # 100) a cosine gap of a few hundredths already wins it, and the features of "moving left" and
    # "moving right" crept back from 0.89 to 0.96 alike. The U-Nets need them far apart.
    HARD_NEGATIVE_SCALE = 10.0

    def __init__(self, model: LumiereModel, dist: Dist, cfg: TrainConfig):
        super().__init__()
        from open_clip.loss import ClipLoss

        self.text = model.text
        self.video = VideoEncoder(embed_dim=model.config.text.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.clip_loss = ClipLoss(rank=dist.rank, world_size=dist.world, gather_with_grad=dist.world > 1)
        self.hard_negatives = cfg.hard_negatives
        self.text_anchor = cfg.text_anchor
        # A frozen copy of the starting encoder (excluded from checkpoints: `init` rebuilds it).
        self._anchor = [copy.deepcopy(model.text).requires_grad_(False)] if cfg.text_anchor > 0 else []

    def forward(self, videos: torch.Tensor, tokens: torch.Tensor, negative_tokens: torch.Tensor | None = None,
                **_: Any) -> torch.Tensor:
        v = F.normalize(self.video(videos), dim=-1)
        text = self.text(tokens)
        t = F.normalize(text.pooled.float(), dim=-1)
        scale = self.logit_scale.exp().clamp(max=100)
        loss = self.clip_loss(v, t, scale)
        if self.hard_negatives > 0 and negative_tokens is not None:
            n = F.normalize(self.text(negative_tokens).pooled.float(), dim=-1)
            logits = self.HARD_NEGATIVE_SCALE * torch.stack([(v * t).sum(-1), (v * n).sum(-1)], dim=-1)  # (b, 2)
            loss = loss + self.hard_negatives * F.cross_entropy(logits, torch.zeros_like(logits[:, 0], dtype=torch.long))
        if self._anchor:
            anchor = self._anchor[0].to(tokens.device)
            with torch.no_grad():
                ref = anchor(tokens)
            mask = rearrange(text.mask.float(), "b l -> b l 1")
            drift = ((text.tokens.float() - ref.tokens.float()) ** 2 * mask).sum() / (mask.sum() * text.tokens.shape[-1])
            drift = drift + F.mse_loss(text.pooled.float(), ref.pooled.float())
            loss = loss + self.text_anchor * drift
        return loss


class DiffusionStage(nn.Module):
    """Denoising loss of `net` (the image U-Net or the STUNet) under the model's parameterisation,
    conditioned on the caption's tokens through the text encoder (trained here only if unfrozen)."""

    def __init__(self, net: nn.Module, model: LumiereModel):
        super().__init__()
        self.denoiser = Denoiser(net, model.config.diffusion)
        self.text = model.text

    def forward(self, x0, sigma, noise, cond_mask, tokens, target=None, **_: Any) -> torch.Tensor:
        trains_text = any(p.requires_grad for p in self.text.parameters())
        with torch.set_grad_enabled(trains_text and torch.is_grad_enabled()):
            text = self.text(tokens)
        return self.denoiser.loss(
            x0, sigma, noise, cond_video=x0 * cond_mask, cond_mask=cond_mask, target=target, **text.as_kwargs(),
        ).mean()


def _stage_module(cfg: TrainConfig, model: LumiereModel, dist: Dist) -> nn.Module:
    model.requires_grad_(False)
    if cfg.stage == "text":
        module = ContrastiveStage(model, dist, cfg)
        module.requires_grad_(True)
        return module
    if cfg.stage == "t2i":
        model.unet.spatial.requires_grad_(True)
        module = DiffusionStage(model.unet.spatial, model)
    else:
        model.unet.requires_grad_(True)
        model.unet.freeze_spatial(cfg.stage == "video")
        module = DiffusionStage(model.unet, model)
    model.text.requires_grad_(cfg.text_lr > 0)
    return module


def _param_groups(cfg: TrainConfig, module: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters; the text encoder's at `text_lr` (in the text stage only if set)."""
    text = {id(p) for p in module.text.parameters()} if cfg.stage != "text" or cfg.text_lr > 0 else set()
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in text], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in text], "lr_scale": cfg.text_lr / max(cfg.lr, 1e-12)},
    ]
    return [g for g in groups if g["params"]]


# ---------------------------------------------------------------------------------------------
# Data: a pure function of (seed, rank, step)


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, *, rank: int, start: int):
        self.cfg, self.model_cfg, self.rank, self.start = cfg, model_cfg, rank, start

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for step in range(self.start, self.cfg.steps):
            yield make_batch(self.cfg, self.model_cfg, rank=self.rank, step=step)


def make_batch(cfg: TrainConfig, model_cfg: ModelConfig, *, rank: int, step: int) -> dict[str, Any]:
    from .world.render import reversal_pairs, sample_batch
    from .world.vocab import as_random, swap_one

    g = torch.Generator().manual_seed(((cfg.seed * 1_000_003 + rank) * 1_000_003 + step) % 2**63)
    b, t, s = cfg.batch_size, model_cfg.frames, model_cfg.size
    clips = cfg.stage in ("video", "video-unfrozen")
    videos, captions, specs = sample_batch(b, t, s, g, split="train", paraphrase_prob=cfg.paraphrase_prob,
                                           reversed_pairs=cfg.reversed_pairs if clips else 0.0, motions=cfg.motions)
    if cfg.stage == "text":
        rng = as_random(g)
        return {"videos": videos, "captions": captions, "negatives": [swap_one(c, rng) for c in captions]}
    drop = (torch.rand(b, generator=g) < cfg.empty_prompt_prob).tolist()
    captions = ["" if d else c for c, d in zip(captions, drop)]
    if cfg.stage == "t2i":
        # One random frame of each clip: ~16x cheaper than clips, and it teaches colour and shape.
        idx = torch.randint(0, t, (b,), generator=g)
        x0 = videos[torch.arange(b), :, idx]  # (b, c, h, w)
        mask = random_known_mask(b, 1, s, s, generator=g, layouts=IMAGE_LAYOUTS)[:, :, 0]
    else:
        x0 = videos
        mask = random_known_mask(b, t, s, s, generator=g, layouts=VIDEO_LAYOUTS)
    if cfg.sigma_range is None:
        sigma = sample_training_sigmas(b, cfg=model_cfg.diffusion, generator=g)
    else:
        lo, hi = (math.log(v) for v in cfg.sigma_range)
        sigma = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g, dtype=torch.float64)).float()
    noise = torch.randn(x0.shape, generator=g)
    # A clip and its reversal get the same noise level, mask and noise (reversed), so the two
    # noisy inputs are each other played backwards and only the word tells which way time runs.
    pairs = torch.tensor(reversal_pairs(specs), dtype=torch.long).reshape(-1, 2)
    if len(pairs):
        first, second = pairs.unbind(1)
        sigma[second], mask[second] = sigma[first], mask[first]
        noise[second] = noise[first].flip(2)
    batch = {"x0": x0, "cond_mask": mask, "sigma": sigma, "noise": noise, "captions": captions}
    if clips and cfg.reference_clips > 0:
        batch["target"] = _posterior_targets(batch, cfg.reference_clips, as_random(g))
    return batch


def _posterior_targets(batch: dict[str, Any], k: int, rng: Any) -> torch.Tensor:
    """x0, or for clips with nothing known (text-to-video) E[x0 | x, caption] estimated from k
    more clips drawn from the caption's distribution (`diffusion.targets`)."""
    from .diffusion.targets import posterior_mean
    from .world.render import draw_like, render_batch

    x0, sigma, noise, mask = batch["x0"], batch["sigma"], batch["noise"], batch["cond_mask"]
    target = x0.clone()
    free = [i for i in range(len(x0)) if not mask[i].any() and sigma[i] > POSTERIOR_MIN_SIGMA]
    if not free:
        return target
    t, s = x0.shape[2], x0.shape[-1]
    specs = [spec for i in free for spec in draw_like(batch["captions"][i], k, rng)]
    drawn = rearrange(from_unit(render_batch(specs, t, s), inplace=True), "(b n) c t h w -> b n c t h w", n=k)
    candidates = torch.cat([x0[free, None], drawn], dim=1)
    x = x0[free] + sigma[free, None, None, None, None] * noise[free]
    target[free] = posterior_mean(x, sigma[free], candidates)
    return target


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# Checkpoints (safetensors: model, EMA, stage extras, optimizer state; step and configs in metadata)


def _save_checkpoint(path: Path, *, model, ema, module, opt, step: int, cfg: TrainConfig, elapsed: float) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    tensors |= {f"stage.{k}": v for k, v in module.state_dict().items() if not k.startswith(("text.", "denoiser."))}
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {
        "step": str(step), "elapsed": str(elapsed), "train": json.dumps(to_dict(cfg)),
        "model_config": dumps(model.config), "card": json.dumps(model.card),
        "param_groups": json.dumps(opt_state["param_groups"]),
    }
    with staged(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _load_checkpoint(path: Path, *, model, ema, module, opt, device) -> tuple[int, float]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    part = lambda p: {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}  # noqa: E731
    model.load_state_dict(part("model."))
    ema.load_state_dict(part("ema."))
    module.load_state_dict(part("stage."), strict=False)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in part("opt.").items():
        i, name = k.split(".", 1)
        state.setdefault(int(i), {})[name] = v.to(device) if name != "step" else v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"]), float(meta["elapsed"])


# ---------------------------------------------------------------------------------------------


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"diffusion": {"sample_shift": 2}} -> {"diffusion.sample_shift": 2}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def _check_model_config(cfg: ModelConfig) -> None:
    """One-line errors for the values a stage can set on any model."""
    if not isinstance(cfg.frames, int) or isinstance(cfg.frames, bool):
        raise UsageError(f"frames must be an integer, got {cfg.frames!r}")
    try:
        cfg.unet.check_frames(cfg.frames)
    except ValueError as e:
        raise UsageError(str(e)) from None
    d = cfg.diffusion
    numbers = {"fps": cfg.fps, "diffusion.schedule_shift": d.schedule_shift, "diffusion.sample_shift": d.sample_shift,
               "diffusion.sample_guidance": d.sample_guidance}
    for name, value in numbers.items():
        ok = value is None and name not in ("fps", "diffusion.schedule_shift")
        ok = ok or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0)
        if not ok:
            raise UsageError(f"{name} must be a positive number, got {value!r}")
    if d.sample_sampler is not None:
        Sampler.parse(d.sample_sampler, "diffusion.sample_sampler")


def stage_model_config(cfg: TrainConfig) -> ModelConfig:
    """The config the stage's model has: the init's (read from its header) or `cfg.model`, with
    `model_overrides` and `schedule_shift` applied. On init weights, a key outside
    CHANGEABLE_ON_INIT, or the frame count outside a video stage, is a one-line UsageError."""
    from .weights_header import read_info

    if cfg.init and cfg.model is not None:
        raise UsageError("model is the config of a new model; with init the stage continues the init's config "
                         "(name the changes in model_overrides)")
    base = read_info(cfg.init).config if cfg.init else cfg.model or ModelConfig()
    overrides = dict(cfg.model_overrides or {})
    if cfg.schedule_shift is not None:
        asked = overrides.get("diffusion", {}).get("schedule_shift", cfg.schedule_shift)
        if asked != cfg.schedule_shift:
            raise UsageError(f"schedule_shift {cfg.schedule_shift:g} and model_overrides' diffusion.schedule_shift "
                             f"{asked!r} disagree: give one")
        overrides = _merge(overrides, {"diffusion": {"schedule_shift": cfg.schedule_shift}})
    try:
        model_cfg = from_dict(ModelConfig, _merge(to_dict(base), overrides))
    except (TypeError, ValueError) as e:
        raise UsageError(f"bad model config override: {e}") from None
    if cfg.init:
        was, now = _flat(to_dict(base)), _flat(to_dict(model_cfg))
        changed = [k for k in now if now[k] != was.get(k)]
        fixed = [k for k in changed if k not in CHANGEABLE_ON_INIT]
        if fixed:
            raise UsageError(f"{', '.join(fixed)} cannot change on --init weights (the weights fix "
                             f"{'them' if len(fixed) > 1 else 'it'}); a stage can change {', '.join(CHANGEABLE_ON_INIT)}")
        if "frames" in changed and cfg.stage not in VIDEO_STAGES:
            raise UsageError(f"frames can change on --init weights only in a video stage ({', '.join(VIDEO_STAGES)}): "
                             f"a {cfg.stage} stage does not train on clips of {model_cfg.frames} frames")
    _check_model_config(model_cfg)
    return model_cfg


def _initial_model(cfg: TrainConfig, model_cfg: ModelConfig) -> LumiereModel:
    from .weights import load_model

    if cfg.init:
        # Layers added to the code since the init was saved start as the identity. None of the
        # keys model_cfg may differ in is read when the modules are built, so setting it suffices.
        model = load_model(cfg.init, grow=True)
        model.config = model_cfg
        return model
    if not model_cfg.vocabulary:
        from .world.vocab import vocabulary

        model_cfg = replace(model_cfg, vocabulary=tuple(vocabulary()))
    return LumiereModel(model_cfg, card={"name": "lumiere-cli shapes model", "training": []})


def _lr(cfg: TrainConfig, step: int) -> float:
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


def _check(cfg: TrainConfig) -> ModelConfig:
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
    from .world.render import split_triples

    try:
        split_triples("train", cfg.motions)
    except ValueError as e:
        raise UsageError(str(e)) from e
    return stage_model_config(cfg)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    """One line per logged step, appended in one write (earlier lines are never rewritten)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig, *, progress: Progress | None = None, resume: bool = True) -> Path:
    """Run one stage; returns the EMA weights file written to `out_dir/weights/`.

    Calls `progress("train", done, total)` after every step, with loss (the mean since the last
    log), lr, clips_per_s and grad_norm every `log_every` steps; rank 0 appends those to
    `out_dir/metrics.jsonl` (with step and elapsed_s), also when resuming.
    """
    model_cfg = _check(cfg)
    from .weights import save_model

    tune_allocator()
    progress = or_silent(progress)
    dist = _setup(cfg)
    torch.manual_seed(cfg.seed)  # the stage's new modules (clip encoder) start the same everywhere
    model = _initial_model(cfg, model_cfg)
    module = _stage_module(cfg, model, dist).to(dist.device)
    model.to(dist.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(_param_groups(cfg, module), lr=cfg.lr,
                            betas=(0.9, 0.99), weight_decay=cfg.weight_decay)

    out = Path(cfg.out_dir)
    ckpt = out / CHECKPOINT
    start, elapsed = 0, 0.0
    if resume and ckpt.exists():
        start, elapsed = _load_checkpoint(ckpt, model=model, ema=ema, module=module, opt=opt, device=dist.device)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)

    runner: nn.Module = module
    if dist.world > 1:
        runner = nn.parallel.DistributedDataParallel(
            module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    loader = torch.utils.data.DataLoader(
        Batches(cfg, model.config, rank=dist.rank, start=start), batch_size=None,
        num_workers=1, worker_init_fn=_worker_init, persistent_workers=False,
        pin_memory=dist.device.type == "cuda",
    )
    autocast = fast_autocast(dist.device, cfg.bf16)
    items = cfg.batch_size * dist.world
    t_last, step_last = time.perf_counter(), start
    t0 = time.perf_counter() - elapsed
    loss_sum = 0.0  # since the last log

    def save(step: int) -> Path:
        _save_checkpoint(ckpt, model=model, ema=ema, module=module, opt=opt, step=step, cfg=cfg,
                         elapsed=time.perf_counter() - t0)
        card = _card(model.card, cfg, step=step, world=dist.world, device=dist.device,
                     seconds=time.perf_counter() - t0)
        ema.card = card
        return save_model(ema, out / "weights", card=card)

    path = out / "weights"
    for step, batch in enumerate(loader, start=start):
        batch["tokens"] = model.text.tokenize(batch.pop("captions"))
        if "negatives" in batch:
            batch["negative_tokens"] = model.text.tokenize(batch.pop("negatives"))
        batch = {k: v.to(dist.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step) * group.get("lr_scale", 1.0)
        with autocast:
            loss = runner(**batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        opt.step()
        _ema_update(ema, model, trainable, min(cfg.ema_decay, (1 + step) / (10 + step)))

        loss_sum += loss.item()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            metrics = {"loss": loss_sum / (done - step_last), "lr": _lr(cfg, step),
                       "clips_per_s": items * (done - step_last) / max(now - t_last, 1e-9),
                       "grad_norm": float(grad_norm)}
            t_last, step_last, loss_sum = now, done, 0.0
            if dist.main:
                _append_metrics(out / METRICS, {"step": done, **{k: _finite(v) for k, v in metrics.items()},
                                                "elapsed_s": round(now - t0, 3)})
            progress("train", done, cfg.steps, **metrics)
        else:
            progress("train", done, cfg.steps)
        if dist.main and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            path = save(done)
    if dist.world > 1:
        torch.distributed.barrier()
    return path if path.suffix else path / "model.safetensors"


# ---------------------------------------------------------------------------------------------
# Plans: the stages behind a model, as data


def load_plan(path: str | os.PathLike) -> list[TrainConfig]:
    """A plan file: {"defaults": {TrainConfig fields}, "stages": [{TrainConfig fields}, ...]}
    (other top-level keys, such as "description", are notes). Unknown fields are an error."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read plan {p}: {e.strerror or e}") from None
    except ValueError as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise InputError(f'{p}: a plan is a JSON object with a non-empty "stages" list')
    defaults = data.get("defaults") or {}
    stages = []
    for k, stage in enumerate(data["stages"], 1):
        if not isinstance(stage, dict):
            raise InputError(f"{p}: stage {k} is not a JSON object")
        try:
            stages.append(from_dict(TrainConfig, {**defaults, **stage}))
        except (TypeError, ValueError) as e:
            raise InputError(f"{p}: stage {k}: {e}") from None
    return stages


def steps_done(cfg: TrainConfig) -> int:
    """Steps of this stage already in `out_dir/weights` (0 when none were saved)."""
    from .errors import WeightsError
    from .weights_header import read_info

    try:
        card = read_info(cfg.out_dir).card
    except WeightsError:
        return 0
    records = [r for r in card.get("training", []) if r.get("out_dir") == cfg.out_dir]
    return int(records[-1]["steps"]) if records else 0


def plan_stages(plan: Sequence[TrainConfig]) -> list[TrainConfig]:
    """The plan as it runs: each stage after the first starts, unless it names an init, from the
    previous stage's run folder."""
    stages: list[TrainConfig] = []
    for cfg in plan:
        if stages and cfg.init is None:
            cfg = replace(cfg, init=stages[-1].out_dir)
        stages.append(cfg)
    out_dirs = [c.out_dir for c in stages]
    repeated = sorted({d for d in out_dirs if out_dirs.count(d) > 1})
    if repeated:
        raise UsageError(f"each stage of a plan needs its own out_dir; repeated: {', '.join(repeated)}")
    return stages


def train_plan(plan: Sequence[TrainConfig], *, progress: Progress | None = None) -> Path:
    """Run the stages in order (see plan_stages); a stage whose weights already hold all its steps
    is skipped, a partial one resumes from its checkpoint. Returns the last stage's weights file.

    Progress: `progress("stage", k, n)` before stage k (0-based) runs, `progress("skip", k, n)`
    when it is already complete, then the stage's own `progress("train", ...)` calls.
    """
    from .weights_header import resolve

    progress = or_silent(progress)
    stages = plan_stages(plan)
    if not stages:
        raise UsageError("a plan needs at least one stage")
    path = Path(stages[-1].out_dir)
    for k, cfg in enumerate(stages):
        if steps_done(cfg) >= cfg.steps:
            progress("skip", k, len(stages))
            path = resolve(cfg.out_dir)
            continue
        progress("stage", k, len(stages))
        path = train(cfg, progress=progress, resume=True)
    return path


def stage_record(cfg: TrainConfig, *, steps: int, processes: int = 1, device: str = "cpu",
                 seconds: float = 0.0) -> dict[str, Any]:
    """The stage's row in the card's training table: what ran, and the options that shaped it."""
    return {
        "stage": str(cfg.stage), "steps": steps, "batch_size": cfg.batch_size, "processes": processes,
        "samples_seen": steps * cfg.batch_size * processes, "lr": cfg.lr, "device": device,
        **({"text_lr": cfg.text_lr} if cfg.text_lr > 0 else {}),
        **({"sigma_range": list(cfg.sigma_range)} if cfg.sigma_range is not None else {}),
        **({"reversed_pairs": cfg.reversed_pairs} if cfg.reversed_pairs > 0 else {}),
        **({"reference_clips": cfg.reference_clips} if cfg.reference_clips > 0 else {}),
        **({"motions": list(cfg.motions)} if cfg.motions is not None else {}),
        **({"schedule_shift": cfg.schedule_shift} if cfg.schedule_shift is not None else {}),
        **({"model_overrides": cfg.model_overrides} if cfg.model_overrides else {}),
        **({"hard_negatives": cfg.hard_negatives, "text_anchor": cfg.text_anchor} if cfg.stage == "text" else {}),
        "wall_minutes": round(seconds / 60, 1), "out_dir": cfg.out_dir,
    }


def _card(card: dict[str, Any], cfg: TrainConfig, *, step: int, world: int, device, seconds: float) -> dict:
    """The model card with this stage's record (replacing an earlier record of the same run)."""
    record = stage_record(cfg, steps=step, processes=world, device=str(device.type), seconds=seconds)
    history = [r for r in card.get("training", []) if r.get("out_dir") != cfg.out_dir]
    return {**card, "training": history + [record]}
