"""`generate()`: one library entry point for every task, read top to bottom in phases.

Axis legend: b batch, c channels, t frames, h height, w width.
Inputs and outputs are uint8 `t h w c` arrays at the model's size (video_io resizes user files);
inside, pixels are float in [-1, 1], laid out (b, c, t, h, w).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from einops import rearrange, repeat

from . import limits, pixels
from .choices import LoopStyle, Sampler, Task
from .config import HIGH_NOISE_SIGMA, LOW_NOISE_SIGMA, SampleOptions
from .diffusion.samplers import SAMPLERS
from .diffusion.schedule import get_sigmas, sigmas_for_strength
from .diffusion.wrappers import CFGDenoiser, PasteKnown, TemporalWindows, WindowPasses
from .errors import InputError, UsageError
from .model import LumiereModel
from .nn.layers import fast_autocast

from .progress import Progress, or_silent

# The tasks one sampling run serves; stylize is text-to-video on a style-blended model (stylize.py).
TASKS = tuple(t.value for t in Task if t is not Task.stylize)
Schedule = list[tuple[int, str]]  # (first frame, prompt), in order: a prompt per span of the clip
Preview = Callable[[int, int, np.ndarray], None]  # (step, steps, the estimate of the clip as uint8 t h w c)


@dataclass
class Inputs:
    """What the user gave, decoded and fitted to the model's size by video_io."""

    image: np.ndarray | None = None  # uint8 (h, w, 3)
    video: np.ndarray | None = None  # uint8 (t, h, w, 3)
    # The user's mask: float (h, w) or (t, h, w) in [0, 1], 1 = generate, 0 = keep. Inside the
    # model the convention is the opposite (M = 1 where pixels are known): `known_from_region`.
    generate_region: np.ndarray | None = None
    strength: float | None = None  # edit: the fraction of the sampling schedule to run, in [0, 1]
    # Whole frames that are known, by index: uint8 (h, w, 3) each (i2v --last-image, --keyframe).
    keyframes: dict[int, np.ndarray] = field(default_factory=dict)
    backward: bool = False  # extend: continue the clip into the past instead of the future


@dataclass
class GenerateResult:
    frames: np.ndarray  # uint8 (t, h, w, 3)
    seed: int
    fps: int
    timings: dict[str, float] = field(default_factory=dict)
    unknown_words: list[str] = field(default_factory=list)
    ignored_words: list[str] = field(default_factory=list)  # past the text encoder's context


def unknown_words(prompt: str, vocabulary: tuple[str, ...]) -> list[str]:
    """Words of `prompt` that no training caption used (empty when the model lists no vocabulary)."""
    if not vocabulary:
        return []
    known = set(vocabulary)
    seen: list[str] = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        if word not in known and word not in seen:
            seen.append(word)
    return seen


def generate(
    model: LumiereModel,
    prompt: str,
    *,
    task: str = "t2v",
    inputs: Inputs | None = None,
    options: SampleOptions = SampleOptions(),
    seed: int,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    schedule: Schedule | None = None,
    preview: Preview | None = None,
    preview_every: int = 5,
) -> GenerateResult:
    """One clip for every task. Clips longer than the model's own length, and clips with a prompt
    schedule, are made coarse to fine (`options.coarse`; `timeline.long_clip`): the whole clip at
    the trained length first, its frames then kept as keyframes of the full-length clip, whose
    windows only fill in between, so the windows agree. Loops: `timeline.pingpong` and
    `timeline.round_loop` (`options.loop_style`, `choices.LoopStyle`).

    extend: the given video's end (or start, `inputs.backward`) is kept and `options.frames` new
    frames continue it; the result is the whole input plus the new frames.
    schedule: a prompt per span of frames; `prompt` is the first span's.
    preview(step, steps, frames): the denoiser's current estimate every `preview_every` steps.
    """
    cfg = model.config
    inputs = inputs or Inputs()
    options = resolve_options(cfg, options)
    progress = or_silent(progress)
    if task == "extend":
        return timeline.extend(model, prompt, inputs, options, seed, device, progress, preview, preview_every)
    frames = options.frames or cfg.frames
    composed = frames > cfg.frames or schedule
    if options.loop and task in timeline.LOOP_TASKS:
        style = LoopStyle.resolve(options.loop_style, scheduled=bool(schedule))
        if style is LoopStyle.pingpong:
            return timeline.pingpong(model, prompt, task, inputs, options, seed, device, progress, preview,
                                     preview_every)
    if options.coarse and task in timeline.COARSE_TASKS and composed and not (schedule and options.loop):
        return timeline.long_clip(model, prompt, task, inputs, options, seed, device, progress, schedule, preview,
                                  preview_every)
    if options.loop and task in timeline.LOOP_TASKS and not schedule and frames <= (options.window or cfg.frames):
        return timeline.round_loop(model, prompt, task, inputs, options, seed, device, progress, preview,
                                   preview_every)
    return run_once(model, prompt, task, inputs, options, seed, device, progress, schedule, preview, preview_every)


def run_once(model, prompt, task, inputs: Inputs, options: SampleOptions, seed, device, progress,
             schedule: Schedule | None, preview: Preview | None, preview_every: int,
             start: tuple[np.ndarray, float] | None = None,
             loop_starts: tuple[int, ...] | None = None) -> GenerateResult:
    """One sampling run. start = (clip, strength): begin from `clip` noised to `strength` of the
    schedule instead of from pure noise (SDEdit; edit's own input). loop_starts: a loop's windows'
    first frames (None: spread evenly round the circle)."""
    t_start = time.perf_counter()
    cfg = model.config

    # 1. check inputs: every problem is a one-line UsageError/InputError, before any work
    frames = check(model, prompt, task, inputs, options)
    if task == "edit" and inputs.strength == 0:  # nothing of the schedule to run: the input itself
        return GenerateResult(frames=inputs.video[:frames].copy(), seed=seed, fps=cfg.fps,
                              timings=_timings(t_start, t_start, t_start))
    schedule = check_schedule(schedule, prompt, frames)

    # 2. encode the prompts and the negative prompt (the unconditional branch of guidance)
    progress("encode", 0, 1)
    with torch.inference_mode():
        texts = {p: text_kwargs(model, [p], device) for p in dict.fromkeys(p for _, p in schedule)}
        uncond = text_kwargs(model, [options.negative], device) if guided(options) else None
    cond = dict(texts[schedule[0][1]])
    progress("encode", 1, 1)
    t_encoded = time.perf_counter()

    # 3. build <C, M> from the task: M = 1 where C is known
    known, known_mask = _conditioning(task, inputs, frames, cfg.size)
    if known is not None:
        known, known_mask = known.to(device), known_mask.to(device)
        cond.update(cond_video=known * known_mask, cond_mask=known_mask)

    # 4. noise levels (float64, cast at use); SDEdit runs only the last `strength` of the schedule
    if task == "edit":
        start = (inputs.video[:frames], float(inputs.strength))
    if start is not None:
        sigmas = sigmas_for_strength(options.steps, _sampling_config(cfg, options), start[1])
    else:
        sigmas = _sigmas(cfg, options)
    sigmas = sigmas.to(torch.float32).to(device)

    # 5. initial noise from an explicit generator, drawn on the CPU so a seed means the same clip anywhere
    generator = torch.Generator("cpu").manual_seed(seed)
    x = _initial_noise([generator], frames, cfg.size, device) * sigmas[0]
    if start is not None:
        x = x + _to_clip(start[0]).to(device)

    # 6. denoise
    passes = _span_passes(schedule, texts) if len(schedule) > 1 else None
    watch = _previewer(preview, preview_every, len(sigmas) - 1)
    x = _sample(model, x, sigmas, cond, uncond, options, [generator], progress, known=known is not None,
                device=device, window_passes=passes, preview=watch, loop_starts=loop_starts)
    t_denoised = time.perf_counter()

    # 7. frames as uint8 (t, h, w, c); known pixels are the user's bytes, exactly
    out = _to_uint8(x[0])
    if known is not None:
        keep = rearrange(known_mask[0, 0].cpu().numpy() > 0.5, "t h w -> t h w 1")
        out = np.where(keep, _to_uint8(known[0]), out)
    words = [w for _, p in schedule for w in unknown_words(p, cfg.vocabulary)]
    return GenerateResult(
        frames=out,
        seed=seed,
        fps=cfg.fps,
        timings=_timings(t_start, t_encoded, t_denoised),
        unknown_words=list(dict.fromkeys(words)),
        ignored_words=[w for _, p in schedule for w in model.text.ignored_words(p)],
    )


def check_schedule(schedule: Schedule | None, prompt: str, frames: int) -> Schedule:
    """The prompt schedule, starting at frame 0 with `prompt`, each start inside the clip and later
    than the one before."""
    if not schedule:
        return [(0, prompt)]
    schedule = sorted((int(start), text) for start, text in schedule)
    if schedule[0][0] != 0:
        schedule = [(0, prompt), *schedule]
    starts = [start for start, _ in schedule]
    if len(set(starts)) != len(starts) or not all(0 <= s < frames for s in starts):
        raise UsageError(f"prompt schedule starts must be distinct frames in 0-{frames - 1}, got {starts}")
    for _, text in schedule:
        if not text.strip():
            raise UsageError("empty prompt in the schedule")
    return schedule


def _span_of(schedule: Schedule, frame: int) -> int:
    """The index of the schedule's span that holds `frame`."""
    return sum(start <= frame for start, _ in schedule) - 1


# In a window that holds frames of several spans, each span's prompt runs over the whole window and
# counts OTHER_SPAN_WEIGHT in the other spans' frames: small, so each frame shows its own span's
# prompt, not 0, so a frame no pass of its own span covers is still drawn. Between the noise levels
# SPAN_BLEND_SIGMAS, where the object's place is decided (above them its motion, below them its
# colour and edges), that weight rises to 1 - d / SPAN_BLEND_FRAMES at d frames from the span, so
# both prompts agree on one object where the span changes (README, Time, has the measurements).
OTHER_SPAN_WEIGHT = 1e-3
SPAN_BLEND_SIGMAS = (2.5, 10.0)
SPAN_BLEND_FRAMES = 10


def _span_passes(schedule: Schedule, texts: dict[str, dict]) -> WindowPasses:
    """For a window (its frame indices) at a noise level: one pass per span it touches, with that
    span's text, 1 in the span's frames and the weights above elsewhere."""
    def passes(idx: torch.Tensor, sigma: float) -> list[tuple[dict, torch.Tensor]]:
        spans = torch.tensor([_span_of(schedule, int(i)) for i in idx])
        blend = SPAN_BLEND_SIGMAS[0] < sigma <= SPAN_BLEND_SIGMAS[1]
        out = []
        for k in spans.unique().tolist():
            own = (spans == k).nonzero().flatten()
            distance = (torch.arange(len(idx))[:, None] - own[None]).abs().min(1).values.float()
            other = (1 - distance / SPAN_BLEND_FRAMES) if blend else torch.zeros_like(distance)
            out.append((texts[schedule[k][1]], torch.where(distance == 0, 1.0, other.clamp(min=OTHER_SPAN_WEIGHT))))
        return out

    return passes


def _previewer(preview: Preview | None, every: int, steps: int):
    """The sampler callback that hands the current x0 estimate to `preview` every `every` steps."""
    if preview is None:
        return None

    def watch(info: dict) -> None:
        step = info["i"] + 1
        if step % max(1, every) == 0 or step == steps:
            preview(step, steps, _to_uint8(info["denoised"][0]))

    return watch


def generate_batch(
    model: LumiereModel,
    prompts: list[str],
    *,
    seeds: list[int],
    options: SampleOptions = SampleOptions(),
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> list[GenerateResult]:
    """Text-to-video for several prompts in one batched run of the sampler.

    Clip k is the clip `generate(model, prompts[k], seed=seeds[k])` makes: the same initial noise
    and, for stochastic samplers, the same noise stream per clip (batched kernels may round the
    last bits differently). Bigger batches keep the cores busier, so each clip costs less. Timings
    are the batch's.
    """
    t_start = time.perf_counter()
    cfg = model.config
    progress = or_silent(progress)
    if len(prompts) != len(seeds):
        raise UsageError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
    if not prompts:
        return []
    options = resolve_options(cfg, options)
    for prompt in prompts:
        frames = check(model, prompt, "t2v", Inputs(), options)

    progress("encode", 0, 1)
    with torch.inference_mode():
        cond = text_kwargs(model, list(prompts), device)
        uncond = text_kwargs(model, [options.negative], device) if guided(options) else None
    progress("encode", 1, 1)
    t_encoded = time.perf_counter()

    sigmas = _sigmas(cfg, options).to(torch.float32).to(device)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    x = _initial_noise(generators, frames, cfg.size, device) * sigmas[0]
    x = _sample(model, x, sigmas, cond, uncond, options, generators, progress, device=device)
    t_denoised = time.perf_counter()

    timings = _timings(t_start, t_encoded, t_denoised)
    return [
        GenerateResult(frames=_to_uint8(clip), seed=seed, fps=cfg.fps, timings=dict(timings),
                       unknown_words=unknown_words(prompt, cfg.vocabulary),
                       ignored_words=model.text.ignored_words(prompt))
        for clip, seed, prompt in zip(x, seeds, prompts)
    ]


def _sampling_config(cfg, options: SampleOptions):
    """The diffusion config sampling runs on: the model's, with the sampling schedule shift."""
    return replace(cfg.diffusion, schedule_shift=sampling_shift(cfg, options))


def _sigmas(cfg, options: SampleOptions) -> torch.Tensor:
    """The sampling noise levels (float64): the options' own, else the shifted cosine on the
    options' shift (else the model's sampling shift)."""
    if options.sigmas is not None:
        return torch.tensor([*options.sigmas, 0.0], dtype=torch.float64)
    return get_sigmas(options.steps, _sampling_config(cfg, options))


def sampling_shift(cfg, options: SampleOptions) -> float:
    """The schedule shift a sampler runs on: the options', else the model's recommendation."""
    return cfg.diffusion.sampling_schedule_shift if options.schedule_shift is None else options.schedule_shift


def resolve_options(cfg, options: SampleOptions) -> SampleOptions:
    """The options with every "the model's" setting (None) replaced by the model's recommendation.
    Named noise levels are checked here, where they are read (a one-line UsageError)."""
    d = cfg.diffusion
    sigmas = None if options.sigmas is None else limits.check_sigmas(options.sigmas, d.sigma_max)
    steps = options.steps if options.steps is not None else len(sigmas) if sigmas else d.sampling_steps
    if sigmas is not None and steps != len(sigmas):
        raise UsageError(f"{len(sigmas)} noise levels are {len(sigmas)} steps, not {steps}")
    if sigmas is None and options.schedule_shift is None:
        sigmas = d.tuned_sigmas(steps)
    return replace(
        options,
        steps=steps,
        sigmas=sigmas,
        guidance=d.sampling_guidance if options.guidance is None else options.guidance,
        guidance_low=d.sampling_guidance_low(options.guidance) if options.guidance_low is None else options.guidance_low,
        guidance_high=(d.sampling_guidance_high(options.guidance) if options.guidance_high is None
                       else options.guidance_high),
        schedule_shift=sampling_shift(cfg, options),
        sampler=Sampler.parse(d.sampling_sampler if options.sampler is None else options.sampler, "sampler").value,
    )


def guided(options: SampleOptions) -> bool:
    """Whether resolved options guide at any noise level (then the negative prompt is encoded)."""
    return options.guidance != 1 or options.guidance_low not in (None, 1) or options.guidance_high not in (None, 1)


def guidance_low(options: SampleOptions) -> tuple[float, float] | None:
    """CFGDenoiser's `low`: the low-noise scale of resolved options (None: one scale throughout)."""
    return None if options.guidance_low is None else (LOW_NOISE_SIGMA, options.guidance_low)


def guidance_high(options: SampleOptions) -> tuple[float, float] | None:
    """CFGDenoiser's `high`: the high-noise scale of resolved options (None: one scale throughout)."""
    return None if options.guidance_high is None else (HIGH_NOISE_SIGMA, options.guidance_high)


def _timings(t_start: float, t_encoded: float, t_denoised: float) -> dict[str, float]:
    return {"encode_s": t_encoded - t_start, "denoise_s": t_denoised - t_encoded,
            "total_s": time.perf_counter() - t_start}


def _initial_noise(generators: list[torch.Generator], frames: int, size: int, device) -> torch.Tensor:
    """Unit noise (b, 3, t, h, w), one CPU generator per clip: a seed means the same clip anywhere."""
    rows = [torch.randn((1, 3, frames, size, size), generator=g, dtype=torch.float32) for g in generators]
    return torch.cat(rows).to(device)


def _sample(model, x, sigmas, cond, uncond, options, generators, progress, *, known: bool = False,
            device="cpu", window_passes=None, preview=None, loop_starts=None) -> torch.Tensor:
    """Run the sampler over windows(cfg(paste(denoiser))): each wrapper has the denoiser's signature,
    and guidance and pasting work on whichever slice of time a window hands them."""
    cfg = model.config
    frames = x.shape[2]
    denoiser = model.denoiser
    if known:
        denoiser = PasteKnown(denoiser)  # the call's cond_video/cond_mask, sliced per window
    if uncond is not None:
        denoiser = CFGDenoiser(denoiser, options.guidance, uncond, low=guidance_low(options),
                               high=guidance_high(options))
    window = options.window or min(cfg.frames, frames)
    if window < frames or options.loop or window_passes is not None:
        denoiser = TemporalWindows(denoiser, window, min(options.overlap, window - 1), loop=options.loop,
                                   window_passes=window_passes, starts=loop_starts)
    sampler = SAMPLERS[options.sampler]
    extra = {"eta": options.eta} if options.sampler == Sampler.ddim else {}
    steps = len(sigmas) - 1
    progress("denoise", 0, steps)

    def callback(info: dict) -> None:
        progress("denoise", info["i"] + 1, steps)
        if preview is not None:
            preview(info)

    with torch.inference_mode(), fast_autocast(device, options.bf16):
        return sampler(denoiser, x, sigmas, extra_args=cond, generator=generators, callback=callback, **extra)


def check(model: LumiereModel, prompt: str, task: str, inputs: Inputs, options: SampleOptions) -> int:
    cfg = model.config
    if not prompt or not prompt.strip():
        raise UsageError("empty prompt: describe the clip, e.g. \"a red circle moving left on a black background\"")
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    limits.check_sample_numbers(options)
    frames = options.frames or cfg.frames
    try:
        model.unet.check_input(frames, cfg.size, cfg.size)
        if options.window:
            model.unet.check_input(options.window, cfg.size, cfg.size)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if options.window and not 0 <= options.overlap < options.window:
        raise UsageError(f"overlap must be between 0 and window - 1 ({options.window - 1}); got {options.overlap}")

    needs = {"i2v": ("image",), "inpaint": ("video", "generate_region"), "cinemagraph": ("image", "generate_region"),
             "edit": ("video",)}
    for name in needs.get(task, ()):
        if getattr(inputs, name) is None:
            raise UsageError(f"{task} needs --{'mask' if name == 'generate_region' else name}")
    if task == "edit":
        if inputs.strength is None:
            raise UsageError("edit needs a strength in [0, 1]")
        limits.check("strength", inputs.strength)
    size = (cfg.size, cfg.size)
    if inputs.image is not None and inputs.image.shape != (*size, 3):
        raise InputError(f"image is {inputs.image.shape}, expected {(*size, 3)}: fit it with video_io.fit_to_model")
    if inputs.video is not None:
        if inputs.video.shape[1:] != (*size, 3):
            raise InputError(f"video frames are {inputs.video.shape[1:]}, expected {(*size, 3)}")
        if task in ("inpaint", "edit") and len(inputs.video) < frames:
            raise InputError(f"video has {len(inputs.video)} frames; {task} needs at least {frames} (or pass --frames)")
    if inputs.generate_region is not None:
        m = inputs.generate_region
        if m.shape[-2:] != size or m.ndim not in (2, 3):
            raise InputError(f"mask is {m.shape[-2:]}, the video is {size}: make the mask the video's size")
        if m.ndim == 3 and len(m) < frames:
            raise InputError(f"mask video has {len(m)} frames; it needs {frames} (or use a single image mask)")
    for i, frame in inputs.keyframes.items():
        if not 0 <= i < frames:
            raise UsageError(f"keyframe index {i} is outside the clip's {frames} frames (0-{frames - 1})")
        if frame.shape != (*size, 3):
            raise InputError(f"keyframe {i} is {frame.shape}, expected {(*size, 3)}: fit it with video_io.fit_to_model")
    return frames


def text_kwargs(model: LumiereModel, prompts: list[str], device) -> dict[str, torch.Tensor]:
    """The denoiser's text arguments for a batch of prompts (one negative prompt broadcasts)."""
    return {k: v.to(device) for k, v in model.text.encode(prompts).as_kwargs().items()}


def _to_clip(video: np.ndarray) -> torch.Tensor:
    """uint8 (t, h, w, c) -> float (1, c, t, h, w) in [-1, 1]."""
    return rearrange(pixels.from_uint8(video), "t h w c -> 1 c t h w")


def _to_uint8(clip: torch.Tensor) -> np.ndarray:
    """float (c, t, h, w) in [-1, 1] -> uint8 (t, h, w, c)."""
    return rearrange(pixels.to_uint8(clip), "c t h w -> t h w c").cpu().numpy()


def known_from_region(generate_region: np.ndarray, frames: int) -> torch.Tensor:
    """The user's mask (1 = generate) as the model's M (1 = known), (1, 1, t, h, w): the one place
    the two conventions meet. A single image mask applies to every frame."""
    region = torch.from_numpy(np.asarray(generate_region, dtype=np.float32))
    region = (repeat(region, "h w -> t h w", t=frames) if region.ndim == 2 else region[:frames]) > 0.5
    return rearrange((~region).float(), "t h w -> 1 1 t h w")


def _conditioning(task: str, inputs: Inputs, frames: int, size: int):
    """The known clip and M (1 = known) of docs/DESIGN.md §2, or (None, None) when nothing is known."""
    if task == "edit":
        return None, None
    known = torch.zeros(1, 3, frames, size, size)
    known_mask = torch.zeros(1, 1, frames, size, size)
    if task == "i2v":
        known[:, :, 0] = _to_clip(inputs.image[None])[:, :, 0]
        known_mask[:, :, 0] = 1
    elif task == "inpaint":
        known, known_mask = _to_clip(inputs.video[:frames]), known_from_region(inputs.generate_region, frames)
    elif task == "cinemagraph":
        # the still on every frame; all of frame 0 and the outside of the region are known
        known = repeat(_to_clip(inputs.image[None]), "b c 1 h w -> b c t h w", t=frames).clone()
        known_mask = known_from_region(inputs.generate_region, frames)
        known_mask[:, :, 0] = 1
    for i, frame in inputs.keyframes.items():
        known[:, :, i] = _to_clip(frame[None])[:, :, 0]
        known_mask[:, :, i] = 1
    if not known_mask.any():
        return None, None
    return known, known_mask


# The compositions of runs (long clips, schedules, loops, extend) call back into this module.
from . import timeline  # noqa: E402
