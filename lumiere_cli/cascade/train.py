"""Training the SSR, in the paper's order:

1. "frames": the image U-Net (`unet.spatial`) and the augmentation embedding on single frames;
2. "video": the temporal layers on clips of `SSRConfig.frames` frames, spatial weights frozen;
3. "video-unfrozen": optionally, every U-Net weight on clips, at a lower rate.

Data are pairs of renders of the same clip, at the low-res size and at `factor` times it, cut to
the same random crop on every frame (aligned to whole low-res pixels, so the two crops show the
same area). The text encoder is a frozen copy of the base model's (`text_from`, new SSRs only).
Batches are a pure function of (seed, step), so a resumed run continues exactly; checkpoints are
safetensors (model, EMA, optimiser), never pickles.

This is a trainer of its own while `lumiere_cli.train` becomes a package; it reuses that
trainer's conventions (progress contract, metrics.jsonl, warm-up + cosine rate, EMA, card
records) so it can join it as one more family of stages later.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..atomic import staged
from ..config import SSRConfig, dumps, from_dict
from ..errors import UsageError
from ..masks import random_known_mask
from ..nn.layers import fast_autocast
from ..pixels import from_unit
from ..progress import Progress, or_silent
from .model import SSRModel, condition
from .weights import load_ssr, save_ssr

STAGES = ("frames", "video", "video-unfrozen")
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
# Shares of the <C, M> layouts: mostly plain enlargement; known pixels are easy where given.
FRAME_LAYOUTS = {"none": 0.8, "inpaint": 0.2}
CLIP_LAYOUTS = {"none": 0.7, "first_frame": 0.1, "inpaint": 0.1, "cinemagraph": 0.1}
AUG_LOG_MIN = 0.01  # nonzero augmentation levels are log-uniform in [this, aug_sigma_max]


@dataclass(frozen=True)
class SSRTrainConfig:
    stage: str = "frames"
    out_dir: str = "runs/ssr"
    # SSR weights to continue from (a file, its folder or a run folder); None: a new SSR.
    init: str | None = None
    # A new SSR: its config (None: SSRConfig()) and the base weights whose text encoder it copies.
    model: SSRConfig | None = None
    text_from: str | None = None
    steps: int = 4000
    batch_size: int = 32  # frames per step in the frames stage, clips in the video stages
    lr: float = 5e-4
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    empty_prompt_prob: float = 0.2
    paraphrase_prob: float = 0.3
    bf16: bool = True
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 20
    device: str = "cpu"
    threads: int = 0  # torch threads in the training process; 0: torch's default
    # Restoration: this share of the clips gets, as its low-res input, the base model's own estimate
    # of the render (one denoising step from a noise level drawn log-uniformly in `restore_sigma`,
    # rounded to 8 bits) instead of the render: the grain and the shapes the base draws, paired with
    # the render they should have been, so the cascade enlarges what was meant, not what was drawn.
    restore: float = 0.0
    restore_from: str | None = None  # the base weights whose estimates these are (None: the default)
    restore_sigma: tuple[float, float] = (0.3, 3.0)
    extra: dict[str, Any] = field(default_factory=dict)  # notes for the card

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", from_dict(SSRConfig, self.model))
        object.__setattr__(self, "restore_sigma", tuple(self.restore_sigma))


# ---------------------------------------------------------------------------------------------
# Data


def make_batch(cfg: SSRTrainConfig, model_cfg: SSRConfig, *, step: int, base=None) -> dict[str, Any]:
    """One batch: high-res crops x0 (b, 3, [t,] H, W), the low-res input L at their size (noised
    and enlarged), noise levels, the augmentation levels, <C, M> and captions. `base`: the base
    model whose estimates replace a `cfg.restore` share of the low-res clips (needed then)."""
    from ..diffusion.schedule import sample_training_sigmas
    from ..world.render import render_batch, sample_batch

    g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) % 2**63)
    b, t, s, f = cfg.batch_size, model_cfg.frames, model_cfg.size, model_cfg.factor
    frames_stage = cfg.stage == "frames"
    low, captions, specs = sample_batch(b, t, s, g, split="train", paraphrase_prob=cfg.paraphrase_prob)
    high = from_unit(render_batch(specs, t, s * f), inplace=True)  # (b, 3, t, s f, s f)
    if frames_stage:  # one frame of each clip, kept as a clip of one until the crop is cut
        idx = torch.randint(0, t, (b,), generator=g)
        low, high = low[torch.arange(b), :, idx, None], high[torch.arange(b), :, idx, None]
    # 1. a share of the low-res clips as the base model draws them (on whole frames, as it does)
    if cfg.restore > 0:  # on draws of their own, so the rest of the batch stays as it was without
        low = restored(base, low, captions, cfg, torch.Generator().manual_seed(g.initial_seed() ^ 0x5EED))
    # 2. the same crop on every frame, on whole low-res pixels
    cl = model_cfg.crop // f
    offsets = torch.randint(0, s - cl + 1, (b, 2), generator=g).tolist()
    low = torch.stack([low[i, :, :, y:y + cl, x:x + cl] for i, (y, x) in enumerate(offsets)])
    high = torch.stack([high[i, :, :, y * f:(y + cl) * f, x * f:(x + cl) * f] for i, (y, x) in enumerate(offsets)])
    if frames_stage:
        low, high = low[:, :, 0], high[:, :, 0]  # (b, 3, h, w)
    # 3. the conditioning: noise augmentation at a random level, a share exactly clean
    lo, hi = math.log(AUG_LOG_MIN), math.log(model_cfg.aug_sigma_max)
    aug = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g))
    aug[torch.rand(b, generator=g) < model_cfg.aug_zero] = 0.0
    lowres = condition(low, aug, f, noise=torch.randn(low.shape, generator=g))
    # 4. known pixels, noise level, noise
    crop = model_cfg.crop
    if frames_stage:
        mask = random_known_mask(b, 1, crop, crop, generator=g, layouts=FRAME_LAYOUTS)[:, :, 0]
    else:
        mask = random_known_mask(b, t, crop, crop, generator=g, layouts=CLIP_LAYOUTS)
    sigma = sample_training_sigmas(b, cfg=model_cfg.diffusion, generator=g)
    noise = torch.randn(high.shape, generator=g)
    drop = (torch.rand(b, generator=g) < cfg.empty_prompt_prob).tolist()
    captions = ["" if d else c for c, d in zip(captions, drop)]
    return {"x0": high, "lowres": lowres, "aug_sigma": aug, "cond_mask": mask, "sigma": sigma, "noise": noise,
            "captions": captions}


def restored(base, low: torch.Tensor, captions: list[str], cfg: SSRTrainConfig, g: torch.Generator) -> torch.Tensor:
    """`low` (b, 3, t, h, w) in [-1, 1] with a `cfg.restore` share of its clips replaced by the
    base model's estimate of them: one denoising step, from noise at a level drawn log-uniformly in
    `cfg.restore_sigma`, under the clip's caption, rounded to the 8 bits the base's clips are
    written in. Single frames (t = 1) go through the image U-Net, clips through the STUNet."""
    from ..pixels import from_uint8, to_uint8

    b, t = low.shape[0], low.shape[2]
    chosen = (torch.rand(b, generator=g) < cfg.restore).nonzero().flatten()
    lo, hi = (math.log(v) for v in cfg.restore_sigma)
    sigma = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g))[chosen]
    noise = torch.randn(low.shape, generator=g)[chosen]
    if not len(chosen):
        return low
    clips = low[chosen]
    with torch.no_grad():
        text = base.text(base.text.tokenize([captions[i] for i in chosen.tolist()])).as_kwargs()
        x = clips + sigma.view(-1, 1, 1, 1, 1) * noise
        known = torch.zeros_like(clips[:, :1])
        if t == 1:
            est = base.image_denoiser(x[:, :, 0], sigma, cond_video=clips[:, :, 0] * known[:, :, 0],
                                      cond_mask=known[:, :, 0], **text)[:, :, None]
        else:
            est = base.denoiser(x, sigma, cond_video=clips * known, cond_mask=known, **text)
    out = low.clone()
    out[chosen] = from_uint8(to_uint8(est))
    return out


class _Batches(torch.utils.data.IterableDataset):
    def __init__(self, cfg: SSRTrainConfig, model_cfg: SSRConfig, start: int):
        self.cfg, self.model_cfg, self.start = cfg, model_cfg, start
        self.base = None
        if cfg.restore > 0:
            from ..weights import load_model

            self.base = load_model(cfg.restore_from).eval()
            if self.base.config.size != model_cfg.size:
                raise UsageError(f"restore_from draws {self.base.config.size}x{self.base.config.size} clips; "
                                 f"this SSR enlarges {model_cfg.size}x{model_cfg.size}")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for step in range(self.start, self.cfg.steps):
            yield make_batch(self.cfg, self.model_cfg, step=step, base=self.base)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# The stage: forward(**batch) -> loss


class SSRStage(nn.Module):
    def __init__(self, model: SSRModel):
        super().__init__()
        self.model = model

    def forward(self, x0, lowres, aug_sigma, cond_mask, sigma, noise, tokens, **_: Any) -> torch.Tensor:
        with torch.no_grad():
            text = self.model.text(tokens)
        return self.model.denoiser.loss(x0, sigma, noise, cond_video=x0 * cond_mask, cond_mask=cond_mask,
                                        lowres=lowres, aug_sigma=aug_sigma, **text.as_kwargs()).mean()


def _trainable(model: SSRModel, stage: str) -> None:
    model.requires_grad_(False)
    if stage == "frames":
        model.unet.spatial.requires_grad_(True)
        model.aug.requires_grad_(True)
    elif stage == "video":
        model.unet.temporal.requires_grad_(True)
    else:
        model.unet.requires_grad_(True)
        model.aug.requires_grad_(True)


def new_ssr(model_cfg: SSRConfig | None, text_from: str | None) -> SSRModel:
    """A fresh SSR; with `text_from`, its text encoder (and config, vocabulary, fps) from those base
    weights."""
    model_cfg = model_cfg or SSRConfig()
    text_state = None
    if text_from:
        from ..weights import load_model

        base = load_model(text_from)
        model_cfg = replace(model_cfg, text=base.config.text, vocabulary=base.config.vocabulary, fps=base.config.fps,
                            size=model_cfg.size or base.config.size)
        text_state = base.text.state_dict()
    torch.manual_seed(0)
    model = SSRModel(model_cfg, card={"name": "lumiere-cli shapes SSR", "training": []})
    if text_state is not None:
        model.text.load_state_dict(text_state)
    return model


def _check(cfg: SSRTrainConfig) -> None:
    if cfg.stage not in STAGES:
        raise UsageError(f"stage must be one of {', '.join(STAGES)}, got {cfg.stage!r}")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise UsageError("steps and batch size must be at least 1")
    if cfg.init and (cfg.model is not None or cfg.text_from):
        raise UsageError("init continues an SSR: give model and text_from only for a new one")
    lo, hi = cfg.restore_sigma
    if not 0 <= cfg.restore <= 1 or not 0 < lo <= hi:
        raise UsageError(f"restore must be a share in [0, 1] and restore_sigma LOW HIGH with 0 < LOW <= HIGH, "
                         f"got {cfg.restore:g} and {lo:g} {hi:g}")


def _lr(cfg: SSRTrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak (as lumiere_cli.train)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _save_checkpoint(path: Path, *, model, ema, opt, step: int, cfg: SSRTrainConfig, elapsed: float) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    state = opt.state_dict()
    for i, st in state["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"step": str(step), "elapsed": str(elapsed), "train": json.dumps(asdict(cfg), default=str),
            "model_config": dumps(model.config), "card": json.dumps(model.card),
            "param_groups": json.dumps(state["param_groups"])}
    with staged(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _load_checkpoint(path: Path, *, model, ema, opt) -> tuple[int, float]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    part = lambda p: {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}  # noqa: E731
    model.load_state_dict(part("model."))
    ema.load_state_dict(part("ema."))
    groups = json.loads(meta["param_groups"])
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in part("opt.").items():
        i, name = k.split(".", 1)
        opt_state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": opt_state, "param_groups": groups})
    model.card = json.loads(meta.get("card") or "{}")
    return int(meta["step"]), float(meta["elapsed"])


def stage_record(cfg: SSRTrainConfig, *, steps: int, seconds: float) -> dict[str, Any]:
    """The stage's row in the SSR card's training table."""
    return {"stage": cfg.stage, "steps": steps, "batch_size": cfg.batch_size, "processes": 1,
            "samples_seen": steps * cfg.batch_size, "lr": cfg.lr, "device": cfg.device,
            "wall_minutes": round(seconds / 60, 1), "out_dir": cfg.out_dir,
            **({"restore": cfg.restore, "restore_sigma": list(cfg.restore_sigma)} if cfg.restore else {}), **cfg.extra}


def train_ssr(cfg: SSRTrainConfig, *, progress: Progress | None = None, resume: bool = True) -> Path:
    """Run one SSR stage; returns the EMA weights written to `out_dir/weights/ssr.safetensors`."""
    _check(cfg)
    progress = or_silent(progress)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from ..train import tune_allocator

    tune_allocator()
    device = torch.device(cfg.device)
    model = load_ssr(cfg.init) if cfg.init else new_ssr(cfg.model, cfg.text_from)
    model.train()
    _trainable(model, cfg.stage)
    model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.99))
    module = SSRStage(model)

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    start, elapsed = 0, 0.0
    if resume and ckpt.exists():
        start, elapsed = _load_checkpoint(ckpt, model=model, ema=ema, opt=opt)
    loader = torch.utils.data.DataLoader(_Batches(cfg, model.config, start), batch_size=None, num_workers=1,
                                         worker_init_fn=_worker_init, persistent_workers=False)
    autocast = fast_autocast(device, cfg.bf16)
    t0 = time.perf_counter() - elapsed
    t_last, step_last, loss_sum = time.perf_counter(), start, 0.0
    path = out / "weights"
    history = [r for r in model.card.get("training", []) if r.get("out_dir") != cfg.out_dir]

    for step, batch in enumerate(loader, start=start):
        batch["tokens"] = model.text.tokenize(batch.pop("captions"))
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step)
        with autocast:
            loss = module(**batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            src, dst = dict(model.named_parameters()), dict(ema.named_parameters())
            for name in trainable:
                dst[name].lerp_(src[name].detach(), 1 - decay)
        loss_sum += loss.item()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            metrics = {"loss": loss_sum / (done - step_last), "lr": _lr(cfg, step),
                       "clips_per_s": cfg.batch_size * (done - step_last) / max(now - t_last, 1e-9),
                       "grad_norm": float(grad_norm)}
            t_last, step_last, loss_sum = now, done, 0.0
            with open(out / METRICS, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": done, **metrics, "elapsed_s": round(now - t0, 3)}) + "\n")
            progress("train", done, cfg.steps, **metrics)
        else:
            progress("train", done, cfg.steps)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            seconds = time.perf_counter() - t0
            card = {**model.card, "training": history + [stage_record(cfg, steps=done, seconds=seconds)]}
            model.card = card
            _save_checkpoint(ckpt, model=model, ema=ema, opt=opt, step=done, cfg=cfg, elapsed=seconds)
            ema.card = card
            path = save_ssr(ema, out / "weights", card=card)
    return path if path.suffix else path / "ssr.safetensors"


__all__ = ["SSRTrainConfig", "STAGES", "make_batch", "new_ssr", "stage_record", "train_ssr"]
