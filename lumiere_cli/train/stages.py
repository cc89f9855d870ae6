"""What a stage trains: its model config, its first weights, and the module whose forward is the
loss (only the trainable parameters of that module are optimised)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .. import limits
from ..choices import Sampler, Stage
from ..config import ModelConfig, TrainConfig, from_dict, to_dict
from ..diffusion.denoiser import Denoiser
from ..errors import UsageError
from ..model import LumiereModel
from ..nn.video_encoder import VideoEncoder
from ..nn.widen import widened, widened_config

STAGES = tuple(s.value for s in Stage)
VIDEO_STAGES = (Stage.video.value, Stage.video_unfrozen.value)  # stages that train on clips
# ModelConfig keys a stage may change on its init's weights: none of them changes what the
# network's output means. Channels only by doubling a level without attention (nn.widen: the
# wider network computes what its init did, its embedding keeps the init's width). The frame
# count only in a video stage (the t2i stage trains on single frames, so it would record a clip
# length it never saw).
CHANGEABLE_ON_INIT = (
    "unet.channels", "frames", "fps", "diffusion.schedule_shift", "diffusion.sample_shift",
    "diffusion.sample_guidance", "diffusion.sample_guidance_low", "diffusion.sample_guidance_high",
    "diffusion.sample_sampler", "diffusion.sample_steps", "diffusion.sample_sigmas",
)


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

    def __init__(self, model: LumiereModel, dist: Any, cfg: TrainConfig):
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


def stage_net(stage: str, model: LumiereModel) -> nn.Module:
    """The network a diffusion stage trains: the image U-Net (t2i) or the whole STUNet."""
    return model.unet.spatial if stage == Stage.t2i.value else model.unet


def stage_module(cfg: TrainConfig, model: LumiereModel, dist: Any) -> nn.Module:
    """The stage's loss module, with exactly the stage's parameters trainable."""
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


def param_groups(cfg: TrainConfig, module: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters; the text encoder's at `text_lr` (in the text stage only if set)."""
    text = {id(p) for p in module.text.parameters()} if cfg.stage != "text" or cfg.text_lr > 0 else set()
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in text], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in text], "lr_scale": cfg.text_lr / max(cfg.lr, 1e-12)},
    ]
    return [g for g in groups if g["params"]]


# ---------------------------------------------------------------------------------------------
# The stage's model config and its first weights


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
               "diffusion.sample_guidance": d.sample_guidance, "diffusion.sample_guidance_low": d.sample_guidance_low,
               "diffusion.sample_guidance_high": d.sample_guidance_high}
    for name, value in numbers.items():
        ok = value is None and name not in ("fps", "diffusion.schedule_shift")
        ok = ok or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0)
        if not ok:
            raise UsageError(f"{name} must be a positive number, got {value!r}")
    if d.sample_sampler is not None:
        Sampler.parse(d.sample_sampler, "diffusion.sample_sampler")
    if d.sample_steps is not None:
        if not isinstance(d.sample_steps, int) or isinstance(d.sample_steps, bool):
            raise UsageError(f"diffusion.sample_steps must be an integer, got {d.sample_steps!r}")
        limits.check("steps", d.sample_steps)
    if d.sample_sigmas is not None:
        limits.check_sigmas(d.sample_sigmas, d.sigma_max, "diffusion.sample_sigmas")


def stage_model_config(cfg: TrainConfig) -> ModelConfig:
    """The config the stage's model has: the init's (read from its header) or `cfg.model`, with
    `model_overrides` and `schedule_shift` applied. On init weights, a key outside
    CHANGEABLE_ON_INIT, or the frame count outside a video stage, is a one-line UsageError."""
    from ..weights_header import read_info

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
        if model_cfg.unet.channels != base.unet.channels:
            if model_cfg.unet.emb_dim not in (None, base.unet.embedding_dim):
                raise UsageError(f"unet.emb_dim stays {base.unet.embedding_dim} when the channels widen")
            try:
                model_cfg = replace(model_cfg, unet=widened_config(base.unet, model_cfg.unet.channels))
            except ValueError as e:
                raise UsageError(f"unet.channels: {e}") from None
        was, now = _flat(to_dict(base)), _flat(to_dict(model_cfg))
        changed = [k for k in now if now[k] != was.get(k)]
        if model_cfg.unet.embedding_dim == base.unet.embedding_dim:
            changed = [k for k in changed if k != "unet.emb_dim"]  # the same width, now written down
        fixed = [k for k in changed if k not in CHANGEABLE_ON_INIT]
        if fixed:
            raise UsageError(f"{', '.join(fixed)} cannot change on --init weights (the weights fix "
                             f"{'them' if len(fixed) > 1 else 'it'}); a stage can change {', '.join(CHANGEABLE_ON_INIT)}")
        if "frames" in changed and cfg.stage not in VIDEO_STAGES:
            raise UsageError(f"frames can change on --init weights only in a video stage ({', '.join(VIDEO_STAGES)}): "
                             f"a {cfg.stage} stage does not train on clips of {model_cfg.frames} frames")
    _check_model_config(model_cfg)
    return model_cfg


def initial_model(cfg: TrainConfig, model_cfg: ModelConfig, *, vocabulary: tuple[str, ...], name: str) -> LumiereModel:
    """The stage's starting model: the init's weights with `model_cfg` (and `vocabulary` added to
    a recorded one), or a new model named `name` whose vocabulary is `vocabulary` when its config
    lists none."""
    from ..weights import load_model

    if cfg.init:
        # Layers added to the code since the init was saved start as the identity. Of the keys
        # model_cfg may differ in, only the channels are read when the modules are built: the
        # weights are widened to them; setting the config suffices for the rest.
        model = load_model(cfg.init, grow=True)
        if model_cfg.unet.channels != model.config.unet.channels:
            try:
                model.unet = widened(model.unet, model_cfg.unet.channels, seed=cfg.seed)
            except ValueError as e:
                raise UsageError(str(e)) from None
        if model_cfg.vocabulary and not set(vocabulary) <= set(model_cfg.vocabulary):
            model_cfg = replace(model_cfg, vocabulary=tuple(sorted(set(model_cfg.vocabulary) | set(vocabulary))))
        model.config = model_cfg
        return model
    if not model_cfg.vocabulary:
        model_cfg = replace(model_cfg, vocabulary=tuple(vocabulary))
    return LumiereModel(model_cfg, card={"name": name, "training": []})


__all__ = [
    "CHANGEABLE_ON_INIT", "STAGES", "VIDEO_STAGES", "ContrastiveStage", "DiffusionStage", "initial_model",
    "param_groups", "stage_model_config", "stage_module", "stage_net",
]
