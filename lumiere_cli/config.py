"""Typed configuration, stored with the weights (as JSON in the safetensors header).

No torch here: the CLI imports this module to answer `--help` and `info` quickly.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class TextConfig:
    """open_clip text tower: causal transformer over BPE tokens.

    `width` is the token-feature size that cross-attention reads; `embed_dim` the pooled
    embedding added to the noise-level embedding. `openclip_model` names a real OpenCLIP
    architecture (e.g. "ViT-B-32") whose text tower is loaded from a user's local checkpoint
    instead of the small tower below.
    """

    context_length: int = 32
    vocab_size: int = 49408
    width: int = 128
    heads: int = 4
    layers: int = 3
    embed_dim: int = 128
    openclip_model: str | None = None


@dataclass(frozen=True)
class UNetConfig:
    """The text-to-image U-Net and its inflation into a Space-Time U-Net.

    Level i works at spatial size (size / patch) / 2**i with `channels[i]` channels. The first
    `temporal_levels` spatial downsamples are each followed by a temporal downsample, so the
    frame count must be divisible by 2**temporal_levels.
    """

    in_channels: int = 7  # <J (3), C (3), M (1)>
    out_channels: int = 3
    patch: int = 2  # pixel-unshuffle factor at the input, pixel-shuffle at the output
    channels: tuple[int, ...] = (32, 64, 128)  # ~4.6M params; ~10 clips/s training on 2 CPU cores
    res_blocks: int = 2
    attn_levels: tuple[bool, ...] = (False, True, True)  # spatial self + cross attention
    heads: int = 4
    context_dim: int = 128  # = TextConfig.width
    pooled_dim: int = 128  # = TextConfig.embed_dim
    # Width of the noise-level and pooled-text embedding; None: 4 x channels[0]. A model widened
    # from trained weights (nn.widen) keeps its init's, so every block reads the same embedding.
    emb_dim: int | None = None
    dropout: float = 0.0
    # Inflation (ignored by the image U-Net)
    temporal_levels: int = 2
    temporal_attn_blocks: int = 2
    # Then full space-time attention blocks (every frame and pixel of the coarsest level at once).
    spacetime_attn_blocks: int = 1
    # Rotary (frame, row, column) positions in those blocks: attention by offset, as motion is.
    spacetime_rope: bool = True
    temporal_kernel: int = 3

    @property
    def embedding_dim(self) -> int:
        return self.emb_dim if self.emb_dim is not None else 4 * self.channels[0]

    @property
    def frame_multiple(self) -> int:
        """Every frame count must be a multiple of this: each temporal level halves the frames."""
        return 2**self.temporal_levels

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this: the patch times every 2x spatial downsampling."""
        return self.patch * 2 ** (len(self.channels) - 1)

    def check_frames(self, frames: int) -> None:
        """Raise ValueError naming valid counts when `frames` cannot pass through the STUNet."""
        m = self.frame_multiple
        if frames <= 0 or frames % m:
            examples = ", ".join(str(f) for f in range(2 * m, 8 * m + 1, m))
            raise ValueError(f"frames must be a multiple of {m} (2**temporal_levels), e.g. {examples}; got {frames}")


DEFAULT_GUIDANCE = 5.0  # for models whose config recommends no scale of their own
DEFAULT_SAMPLER = "dpmpp-2m"  # likewise for the sampler
DEFAULT_STEPS = 25  # and for the number of sampling steps
# Below this noise level (log-SNR 0: as much signal as noise) sampling guides with the low-noise
# scale (`SampleOptions.guidance_low`): edges and colours are drawn there, layout and motion above.
LOW_NOISE_SIGMA = 1.0
# Above this noise level sampling guides with the high-noise scale (`SampleOptions.guidance_high`):
# the first, large steps decide the background, and a full scale there pushes gray to white or
# black when the steps are few (README, Performance).
HIGH_NOISE_SIGMA = 5.0


@dataclass(frozen=True)
class DiffusionConfig:
    """Parameterisation: v-prediction on a cosine VP schedule, written in EDM's sigma form."""

    prediction: str = "v"  # "v" | "eps" | "x0"
    sigma_data: float = 1.0  # v-prediction with sigma_data = 1 is the VP v-parameterisation
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    # sigma = shift * tan(pi t / 2) in training and sampling: log-SNR shifted by -2 log(shift).
    # Sixteen frames show one object sixteen times, so a clip keeps its content (and its motion)
    # visible at noise levels where a frame has lost it; the shift moves work to those levels
    # (Hoogeboom et al. 2023's resolution shift, applied along time).
    schedule_shift: float = 1.0
    # The shift sampling uses by default; None: schedule_shift. Training at a high shift teaches the
    # motion; sampling at a lower one leaves more of the steps for edges and removes stray blobs.
    sample_shift: float | None = None
    # The classifier-free guidance scale sampling uses by default; None: DEFAULT_GUIDANCE. Chosen
    # per model by eval: past the scale a model needs, guidance only adds grain and flicker.
    sample_guidance: float | None = None
    # The guidance scale below LOW_NOISE_SIGMA when sampling on the default scale; None: the same
    # scale throughout. Chosen per model by eval: a small model's low-noise estimates need little.
    sample_guidance_low: float | None = None
    # The guidance scale above HIGH_NOISE_SIGMA when sampling on the default scale; None: the same.
    sample_guidance_high: float | None = None
    # The sampler used by default; None: DEFAULT_SAMPLER. Chosen per model by eval too: a small
    # model's low-noise estimates carry grain that a second-order solver extrapolates.
    sample_sampler: str | None = None
    # The number of sampling steps used by default; None: DEFAULT_STEPS.
    sample_steps: int | None = None
    # Noise levels tuned for this model (sigma_max first, 0 appended at sampling): sampling in
    # len(sample_sigmas) steps on the model's own shift uses them instead of the shifted cosine.
    # Found by scripts/tune_schedule.py, which matches the model's clips at many steps from the
    # same noise: where the few steps fall matters more than the schedule's formula.
    sample_sigmas: tuple[float, ...] | None = None

    @property
    def sampling_steps(self) -> int:
        """The number of steps sampling takes when the caller names none."""
        return DEFAULT_STEPS if self.sample_steps is None else self.sample_steps

    @property
    def sampling_schedule_shift(self) -> float:
        """The shift sampling uses when the caller names none."""
        return self.schedule_shift if self.sample_shift is None else self.sample_shift

    @property
    def sampling_guidance(self) -> float:
        """The guidance scale sampling uses when the caller names none."""
        return DEFAULT_GUIDANCE if self.sample_guidance is None else self.sample_guidance

    def sampling_guidance_low(self, guidance: float | None = None) -> float:
        """The scale below LOW_NOISE_SIGMA when the caller names none: the model's with its own
        default scale, else the caller's `guidance` throughout (one scale asked is one scale given)."""
        return self._band_scale(self.sample_guidance_low, guidance)

    def sampling_guidance_high(self, guidance: float | None = None) -> float:
        """The scale above HIGH_NOISE_SIGMA when the caller names none, by the same rule."""
        return self._band_scale(self.sample_guidance_high, guidance)

    def _band_scale(self, recommended: float | None, guidance: float | None) -> float:
        if guidance is not None and guidance != self.sampling_guidance:
            return guidance
        return self.sampling_guidance if recommended is None else recommended

    def tuned_sigmas(self, steps: int) -> tuple[float, ...] | None:
        """The model's tuned noise levels for sampling in `steps` steps, if it has them."""
        return self.sample_sigmas if self.sample_sigmas and len(self.sample_sigmas) == steps else None

    @property
    def sampling_sampler(self) -> str:
        """The sampler used when the caller names none."""
        return DEFAULT_SAMPLER if self.sample_sampler is None else self.sample_sampler


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and to sample from it."""

    text: TextConfig = field(default_factory=TextConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    frames: int = 16
    size: int = 32
    fps: int = 8
    vocabulary: tuple[str, ...] = ()  # words seen in training captions, for `info` and warnings


def _ssr_unet() -> UNetConfig:
    # <J (3), C (3), M (1), the low-res clip resized (3)>; patch 4: one token per low-res pixel.
    # No temporal down/upsampling: the base decided the motion; inflated, the SSR is exactly the
    # frames stage's image U-Net on every frame, and any window length passes through it.
    # 64 channels at the first level: its tokens carry 4x4 pixels of four inputs (160 numbers).
    return UNetConfig(in_channels=10, patch=4, channels=(64, 96, 128), attn_levels=(False, False, True),
                      temporal_levels=0, temporal_attn_blocks=1, spacetime_attn_blocks=0)


def _ssr_diffusion() -> DiffusionConfig:
    # The SSR diffuses the residual from the enlarged low-res clip (cascade.model.ResidualDenoiser):
    # a few hundredths of a frame's variance, so a smaller data scale, a schedule shifted to low
    # noise and a lower top level (at sigma 5 the residual is long gone). It predicts the residual
    # itself (x0): the v-network had to carry every pixel's noise through its first level to its
    # output and left grain on flat backgrounds that grew with the steps (SSIM 0.65 at 4 steps,
    # 0.91 at 1, Lanczos 0.97), where the residual of a flat region is simply zero.
    return DiffusionConfig(prediction="x0", sigma_data=0.25, sigma_max=5.0, schedule_shift=0.25,
                           sample_guidance=1.0, sample_sampler="ddim", sample_steps=4)


@dataclass(frozen=True)
class SSRConfig:
    """The cascade's spatial super-resolution STUNet (DESIGN.md §3), stored in its own weights.

    It enlarges clips `factor` times: the noisy high-res clip is concatenated with the low-res clip
    resized to the output size (and <C, M>, so known pixels work at high resolution). It trains on
    `crop`-pixel crops of `frames`-frame clips and runs on whole frames, over temporal windows of
    `frames` frames with `overlap` (temporal MultiDiffusion) for longer clips. The low-res clip is
    noised to a level given to the network as an embedding: drawn in [0, aug_sigma_max] in
    training (a share `aug_zero` at exactly 0), `sample_aug_sigma` by default at sampling.
    """

    text: TextConfig = field(default_factory=TextConfig)
    unet: UNetConfig = field(default_factory=_ssr_unet)
    diffusion: DiffusionConfig = field(default_factory=_ssr_diffusion)
    factor: int = 4
    size: int = 32  # the low-res side it was trained on; the output side is size * factor
    frames: int = 8  # the temporal window it was trained on
    overlap: int = 2  # frames shared by neighbouring windows (Lumiere: 2)
    crop: int = 64  # training crops, output pixels (the same crop on every frame of a clip)
    aug_sigma_max: float = 0.5
    aug_zero: float = 0.25
    sample_aug_sigma: float = 0.0
    fps: int = 8
    vocabulary: tuple[str, ...] = ()

    @property
    def out_size(self) -> int:
        return self.size * self.factor


@dataclass(frozen=True)
class SampleOptions:
    """How to sample. None means the model's recommendation (see `pipeline.resolve_options`)."""

    steps: int | None = None  # None: the model's (DiffusionConfig.sample_steps)
    guidance: float | None = None  # None: the model's (DiffusionConfig.sample_guidance)
    # The scale below LOW_NOISE_SIGMA; None: the model's (DiffusionConfig.sampling_guidance_low).
    guidance_low: float | None = None
    # The scale above HIGH_NOISE_SIGMA; None: the model's (DiffusionConfig.sampling_guidance_high).
    guidance_high: float | None = None
    sampler: str | None = None  # "ddim" | "dpmpp-2m"; None: the model's (DiffusionConfig.sample_sampler)
    eta: float = 0.0
    negative: str = ""
    frames: int | None = None  # None: the model's frame count
    window: int | None = None  # temporal MultiDiffusion window; None: the whole clip at once
    overlap: int = 4
    bf16: bool = False
    # A clip longer than the model's own length: first the whole clip at that length, then its frames
    # kept as keyframes while windows fill in between (False: independent windows, averaged).
    coarse: bool = True
    loop: bool = False  # the last frame flows into the first
    # How the loop closes: "pingpong" | "round" (choices.LoopStyle); None: pingpong, round with a
    # prompt schedule.
    loop_style: str | None = None
    # The sampling schedule's shift; None: the model's (DiffusionConfig.sample_shift).
    schedule_shift: float | None = None
    # The noise levels themselves, sigma_max first (0 is appended): `steps` is their count and the
    # shift is not used. None: the model's tuned levels at its step count on its own shift
    # (DiffusionConfig.sample_sigmas), else the shifted cosine.
    sigmas: tuple[float, ...] | None = None


def to_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) config dataclass; unknown keys are an error, tuples come back as tuples."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif isinstance(value, list) and _is_tuple(hint):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _is_tuple(hint: Any) -> bool:
    """Whether a field's type is a tuple, or an optional one (`tuple[float, ...] | None`)."""
    if typing.get_origin(hint) is tuple:
        return True
    return any(typing.get_origin(h) is tuple for h in typing.get_args(hint))


def dumps(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def loads(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))


@dataclass(frozen=True)
class TrainConfig:
    """One training stage. Stages follow the paper: text encoder, then the text-to-image U-Net on
    single frames, then inflation and the temporal layers on clips with the spatial weights frozen,
    optionally a short unfrozen phase."""

    stage: str = "t2i"  # "text" | "t2i" | "video" | "video-unfrozen" (choices.Stage)
    out_dir: str = "runs/default"
    # Weights to start from: a .safetensors file, its folder, or the previous stage's run folder.
    init: str | None = None
    # A new model's config (None: ModelConfig()). Must be None with `init`: the stage continues
    # the init's config, changed only through `model_overrides`.
    model: ModelConfig | None = None
    # ModelConfig keys to change, nested as in its JSON ({"frames": 8, "diffusion": {...}}). On a
    # new model anything; on `init` weights only what no tensor depends on (train.CHANGEABLE_ON_INIT).
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 10_000
    batch_size: int = 32
    lr: float = 3e-4
    # Diffusion stages: > 0 also fine-tunes the text encoder at this peak rate. A short contrastive
    # stage leaves words it barely needed (directions) almost identical; the denoising loss tells it
    # which words change the clip.
    text_lr: float = 0.0
    # Stage "text": weight of the loss that tells each clip's caption from the same caption with
    # one attribute changed (vocab.swap_one); 0 trains on random batches alone. With `init` and
    # `text_lr` it fine-tunes a trained encoder (the clip encoder at `lr`, the text at `text_lr`).
    hard_negatives: float = 1.0
    # Stage "text" with `init`: weight of a penalty on moving the token features and pooled
    # embedding away from the initial encoder's, so that U-Nets trained on it still read it.
    text_anchor: float = 0.0
    # Set the model's DiffusionConfig.schedule_shift from this stage on (training, and sampling
    # unless its sample_shift says otherwise).
    schedule_shift: float | None = None
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    empty_prompt_prob: float = 0.1
    # Video stages: the probability that clip i + b/2 of a batch is clip i played backwards (the
    # opposite motion word), with the same noise reversed. Sampled independently, a direction
    # word's share of the gradient is buried under colour, shape, position and noise; in a pair
    # those are shared, and the difference between the two is the word and the arrow of time.
    reversed_pairs: float = 0.0
    # Video stages: > 0 regresses text-to-video clips on E[x0 | noisy clip, caption] estimated
    # from this many more clips drawn for the same caption (Stable Target Field, Xu et al. 2023)
    # instead of on the one clip drawn. Needs data that can be drawn per caption (the procedural
    # world); the minimiser is the same, the noise in the target far smaller at high noise.
    reference_clips: int = 0
    # Diffusion stages: draw the noise levels log-uniformly in [low, high] instead of from the
    # schedule. (10, 80) spends a stage on what only high noise decides: where the object goes,
    # which way it moves. Follow it with a stage on the schedule.
    sigma_range: tuple[float, float] | None = None
    # Train only on clips of these motions (None: all). A stage on the four translations alone
    # spends every clip on the words whose sign only high noise decides; follow it with a stage
    # on every motion so the rest is not forgotten.
    motions: tuple[str, ...] | None = None
    # Video stages: which <C, M> layouts clips are trained with (masks.LAYOUT_SETS): "standard"
    # (none, first frame, inpaint, cinemagraph), or "time", which adds whole known frames anywhere
    # (keyframes, a prefix, a suffix, both ends) for extend, keyframes and long clips.
    layouts: str = "standard"
    paraphrase_prob: float = 0.3
    # What the stage trains on: "shapes" (the procedural world), a CSV/JSONL manifest, or a folder
    # of videos and images with same-stem .txt captions (lumiere_cli.data). reversed_pairs,
    # reference_clips, motions, paraphrase_prob and the text stage's hard negatives are world-only.
    data: str = "shapes"
    # Validation on a dataset of its own, or on this fraction of `data`'s entries held out: the
    # loss per noise-level band every `val_every` steps on at most `val_clips` clips.
    val_data: str | None = None
    val_fraction: float = 0.0
    val_every: int = 500
    val_clips: int = 64
    # The (frames, size) shapes trained, one per batch (data.buckets); None: the model's own clip.
    buckets: tuple[tuple[int, int], ...] | None = None
    # Micro-batches of batch_size clips (per process) summed into each optimiser step.
    grad_accum: int = 1
    # Data-loading processes (each opens its own files) and the batches each keeps ready.
    workers: int = 2
    prefetch: int = 2
    bf16: bool = True
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 20
    device: str = "auto"

    def __post_init__(self) -> None:
        # Rebuilt from JSON (a plan file, a checkpoint), nested configs and pairs arrive as dicts
        # and lists; from_dict converts plain fields only.
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", from_dict(ModelConfig, self.model))
        for name in ("sigma_range", "motions"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.buckets, list):
            object.__setattr__(self, "buckets", tuple(tuple(b) if isinstance(b, list) else b for b in self.buckets))
