"""Running requests, in phases:

1. check everything that needs no model, for every request at once: frame counts against the
   weights' header, input files exist and decode, masks fit their inputs, outputs are free and
   writable (and reserved, `outputs.reserve`); one BatchError lists every problem;
2. load the model once (and learn or reuse the style, for stylize);
3. per request: decode and fit its inputs, generate, write the clip and its sidecar.

The library never prints: what a user should see goes to a `Listener`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import outputs
from .batch import Problems
from .choices import Format, LoopStyle, Task
from .config import ModelConfig
from .errors import InputError, LumiereError, UsageError
from .outputs import Reservation
from .requests import Request

# Tasks on the user's video: the clip keeps the input's frame rate (edit and inpaint its sound too).
VIDEO_TASKS = (Task.edit, Task.inpaint, Task.extend)
SOUND_TASKS = (Task.edit, Task.inpaint)


class Listener:
    """What a run reports as it goes. Subclass and override what you want to show."""

    def status(self, message: str) -> None:
        """A passing note: loading the model, reusing a cached style, how an input was sampled."""

    def warn(self, message: str) -> None:
        """Something the user should know about the clip they get."""

    def clip_started(self, request: Request, label: str) -> None:
        """A request starts; progress("denoise", ...) follows."""

    def clip_finished(self, outcome: "Outcome") -> None:
        """A request ended, written or failed."""

    def progress(self, phase: str, done: int, total: int, **metrics: float) -> None:
        """The library's progress contract (lumiere_cli.progress)."""


@dataclass
class Outcome:
    """What became of one request."""

    request: Request
    path: Path | None = None
    sidecar: Path | None = None
    format: str | None = None
    frames: int = 0
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)
    timings: dict[str, float] = field(default_factory=dict)
    unknown_words: list[str] = field(default_factory=list)
    ignored_words: list[str] = field(default_factory=list)
    error: LumiereError | None = None

    def record(self) -> dict[str, Any]:
        """The JSON line `--json` prints for this request."""
        r = self.request
        if self.error is not None:
            return {"index": r.index, "prompt": r.prompt, "error": str(self.error), "exit_code": self.error.exit_code}
        return {"index": r.index, "path": str(self.path), "sidecar": str(self.sidecar), "seed": r.seed,
                "prompt": r.prompt, "task": str(r.task), "format": self.format, "frames": self.frames,
                "fps": self.fps, "size": list(self.size), "unknown_words": self.unknown_words,
                "ignored_words": self.ignored_words, "timings": self.timings}


@dataclass
class _Prepared:
    request: Request
    reservation: Reservation
    preview: Reservation | None = None

    def release(self) -> None:
        self.reservation.release()
        if self.preview is not None:
            self.preview.release()


# ----------------------------------------------------------------------------- phase 1: no model


def model_config(weights: str | Path | None) -> ModelConfig:
    """The config stored in the weights' header: enough to check requests without loading them."""
    from .weights_header import read_info

    return read_info(weights).config


def check(requests: list[Request], cfg: ModelConfig, problems: Problems | None = None) -> list[_Prepared]:
    """Phase 1 for every request; a BatchError lists every problem (with those already found),
    and nothing stays reserved."""
    problems = problems or Problems()
    prepared: list[_Prepared] = []
    taken: dict[Path, str] = {}
    outputs.raise_open_file_limit()
    for r in requests:
        try:
            _check_inputs(r, cfg)
            fmt = outputs.format_for(r.output.path, r.output.format)
            if r.output.path is not None:
                key = Path(r.output.path).absolute()
                if key in taken:
                    raise UsageError(f"output {r.output.path} is also the output of {taken[key]}")
                taken[key] = r.where or "the command line"
                reservation = outputs.reserve(r.output.path, fmt, overwrite=r.output.overwrite)
            else:
                stem = outputs.default_stem(r.prompt, r.seed)
                reservation = outputs.reserve_default(r.output.out_dir, stem, fmt, overwrite=r.output.overwrite)
            prepared.append(_Prepared(r, reservation, _reserve_preview(r, len(requests), reservation)))
        except LumiereError as e:
            problems.add(r.index, _located(e, r))
    if problems.found:
        for p in prepared:
            p.release()
        problems.raise_any()
    return prepared


def _reserve_preview(r: Request, count: int, clip: Reservation) -> Reservation | None:
    """The preview file, reserved like any output (it is rewritten while the clip is sampled)."""
    if r.output.preview is None:
        return None
    if count > 1:
        clip.release()
        raise UsageError("--preview follows one clip: leave it out with several prompts")
    path = Path(r.output.preview)
    if path.absolute() == clip.path.absolute():
        clip.release()
        raise UsageError("--preview must name another file than the output")
    try:
        return outputs.reserve(path, outputs.format_for(path, None), overwrite=r.output.overwrite)
    except LumiereError:
        clip.release()
        raise


def _located(e: LumiereError, r: Request) -> LumiereError:
    if not r.where or str(e).startswith(r.where):
        return e
    located = type(e)(f"{r.where}: {e}")
    located.exit_code = e.exit_code
    return located


def _frames(r: Request, cfg: ModelConfig) -> int:
    n = r.options.frames or cfg.frames
    try:
        cfg.unet.check_frames(n)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return n


def _check_inputs(r: Request, cfg: ModelConfig) -> None:
    """Frame count, and the input files: they decode, masks fit them, videos are long enough."""
    from . import video_io

    n = _frames(r, cfg)
    inputs = r.inputs
    infos = {name: video_io.probe(getattr(inputs, name)) for name in ("image", "video", "mask", "last_image")
             if getattr(inputs, name) is not None}
    for index, path in inputs.keyframes:
        video_io.probe(path)
        if not -n <= index < n:
            raise UsageError(f"keyframe {path}@{index} is outside the clip's {n} frames (0 to {n - 1}, or -1 for the last)")
    if r.schedule and max(f for f, _ in r.schedule) >= n:
        raise UsageError(f"--prompt-at {max(f for f, _ in r.schedule)} is past the clip's last frame ({n - 1})")
    for name in ("video", "mask") if r.task is not Task.extend else ():
        info = infos.get(name)
        if info is None or info.kind != "video" or info.frames is None:
            continue
        have = _frames_at_rate(info, cfg, inputs)
        if have < n:
            what = "the mask video" if name == "mask" else "the video"
            raise InputError(f"{what} {getattr(inputs, name)} gives {have} frames at the sampling rate but {n} are "
                             "needed (give a longer video, pass --frames with a count it covers, or --stride 1)")
    if "mask" in infos:
        base = infos.get("video") or infos.get("image")
        m = infos["mask"]
        if base is not None and (m.width, m.height) != (base.width, base.height):
            what = "video" if "video" in infos else "image"
            raise InputError(f"the mask is {m.width}x{m.height} but the {what} is {base.width}x{base.height} "
                             "(make the mask the same size)")


def _frames_at_rate(info, cfg: ModelConfig, inputs) -> int:
    """How many frames reading the input at the request's sampling rate will give."""
    source_fps = inputs.input_fps or info.fps or cfg.fps
    step = inputs.stride if inputs.stride is not None else max(source_fps / cfg.fps, 1e-9)
    return int((info.frames - 1) // step) + 1 if info.frames else 0


# ----------------------------------------------------------------------------- the run


def run(requests: list[Request], *, weights: str | Path | None = None, device: str = "auto",
        listener: Listener | None = None, problems: Problems | None = None) -> list[Outcome]:
    """Make every request's clip. Problems found before the model loads (with any the caller
    found reading the batch, `problems`) raise one BatchError and generate nothing; a request that
    fails later is an Outcome with `error`, and the rest go on."""
    from .devices import resolve_device

    listener = listener or Listener()
    requests = [r.validated() for r in requests]
    prepared = check(requests, model_config(weights), problems)
    try:
        device = resolve_device(device)
        listener.status(f"loading model on {device}")
        model, weights_info = _load(weights, device)
        style = _style(model, requests, weights_info, listener) if any(r.task is Task.stylize for r in requests) else None
        styled = style[0] if style else None
        state = _RunState()
        if any(not r.base_only for r in requests):
            from .cascade.run import load_beside

            state.ssr, state.hires = load_beside(weights, device=device), _RunState()
        results = []
        for n, p in enumerate(prepared, 1):
            label = f"[{n}/{len(prepared)}] {p.request.prompt}" if len(prepared) > 1 else p.request.prompt
            m, style_info = (styled, style[1]) if p.request.task is Task.stylize else (model, None)
            try:
                outcome = _one(m, p, device, weights_info, style_info, state, listener, label)
            except LumiereError as e:
                outcome = Outcome(p.request, error=_located(e, p.request))
            listener.clip_finished(outcome)
            results.append(outcome)
        return results
    finally:
        for p in prepared:
            p.release()


@dataclass
class _RunState:
    """What a run keeps between requests: decoded inputs, and the words it has warned about."""

    decoded: dict[tuple, Any] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    ssr: Any = None  # the cascade's super-resolution model, when the weights include one
    hires: Any = None  # a _RunState of its own for inputs decoded at the SSR's size


def _load(weights, device):
    from .weights import load_model
    from .weights_header import resolve

    model = load_model(weights, device=device)
    return model, {"path": str(resolve(weights)), "hash": model.weights_hash}


def _style(model, requests: list[Request], weights_info: dict, listener: Listener):
    """stylize: the style-blended model and what the metadata says of the style."""
    from . import stylize, video_io

    spec = next(r.style for r in requests if r.task is Task.stylize)
    info: dict[str, Any] = {"alpha": spec.alpha}
    if spec.weights is not None:
        state = stylize.load_style(spec.weights)
        info["style_weights"] = str(spec.weights)
    else:
        image = video_io.fit_to_model(video_io.read_image(spec.ref), model.config.size)
        ref_hash = file_sha256(spec.ref)
        cache = stylize.cache_path(ref_hash, weights_info.get("hash"), spec.steps)
        info.update(ref={"path": str(spec.ref), "sha256": ref_hash}, style_steps=spec.steps, style_weights=str(cache))
        if cache.is_file():
            listener.status(f"reusing cached style {cache.name}")
            state = stylize.load_style(cache)
        else:
            listener.status(f"learning the style of {spec.ref} ({spec.steps} steps)")
            state = stylize.train_style(model, image, steps=spec.steps, seed=0, progress=listener.progress)
            stylize.save_style(state, cache)
            listener.status(f"style cached at {cache}")
    return stylize.blend_style(model, state, spec.alpha), info


def _one(model, p: _Prepared, device, weights_info, style_info, state: _RunState, listener: Listener,
         label: str) -> Outcome:
    from .pipeline import generate, resolve_options

    r = p.request
    cfg = model.config
    options = resolve_options(cfg, r.options)  # concrete from here on: the metadata records what was used
    n = options.frames or cfg.frames
    decoded = _decode(r, cfg, n, state, listener)
    listener.clip_started(r, label)
    t0 = time.perf_counter()
    result = generate(model, r.prompt, task="t2v" if r.task is Task.stylize else str(r.task),
                      inputs=decoded.inputs, options=options, seed=r.seed, device=device, progress=listener.progress,
                      schedule=list(r.schedule) or None, preview=_previewer(p, cfg, listener),
                      preview_every=r.output.preview_every)
    t_generate = time.perf_counter() - t0
    _warn_words(result, state, listener)
    result, cascade = _enlarge(r, result, cfg, n, state, device, listener)

    fps = r.fps or (decoded.fps if r.task in VIDEO_TASKS and decoded.fps else float(cfg.fps))
    size = tuple(result.frames.shape[1:3])
    fmt = p.reservation.format
    scale = outputs.display_scale(r.output.display_scale, fmt, size)
    audio = decoded.audio if r.task in SOUND_TASKS else None
    if audio is not None and (r.fps is not None or fmt is not Format.mp4):
        why = "--fps changes the clip's timing" if r.fps is not None else f"{fmt} has no audio track"
        listener.warn(f"the input's audio was dropped: {why} (write an .mp4 at the input's rate to keep it)")
        audio = None
    meta = outputs.metadata(
        task=str(r.task), prompt=r.prompt, seed=r.seed, options=options, fps=fps, frames=int(result.frames.shape[0]),
        size=size, scale=scale, display_filter=r.output.display_filter, weights=weights_info,
        inputs=decoded.info, strength=decoded.inputs.strength if decoded.inputs else None, style=style_info,
        schedule=list(r.schedule) or None,
    )
    meta["cascade"] = cascade
    listener.status(f"encoding {fmt}")
    timings = {**result.timings, "generate_s": t_generate}
    path, side = outputs.write(p.reservation, result.frames, fps=fps, meta=meta, scale=scale,
                               display_filter=r.output.display_filter, timings=timings, audio=audio)
    listener.status(f"wrote {path} (seed {r.seed})")
    return Outcome(r, path=path, sidecar=side, format=str(fmt), frames=int(result.frames.shape[0]), fps=fps,
                   size=size, timings={k: round(float(v), 4) for k, v in timings.items()},
                   unknown_words=list(result.unknown_words), ignored_words=list(result.ignored_words))


def _warn_words(result, state: _RunState, listener: Listener) -> None:
    # Once per word over the whole batch: a prompt file repeats the same words a lot.
    new = [w for w in result.unknown_words if w not in state.warned]
    if new:
        state.warned.update(new)
        listener.warn(f"the model never saw: {', '.join(new)}; generating anyway (see `lumiere info` for its vocabulary)")
    if result.ignored_words:
        n = len(result.ignored_words)
        listener.warn(f"the prompt is longer than the text encoder reads: the last {n} word{'s' * (n > 1)} "
                      f"({' '.join(result.ignored_words)!r}) were ignored")


def _enlarge(r: Request, result, cfg: ModelConfig, n: int, state: _RunState, device, listener: Listener):
    """The cascade's second stage on the base's clip (cascade.run), unless --base-only or no SSR
    ships with the weights; the user's inputs are decoded again at the SSR's size, so the pixels a
    task keeps are theirs at the output resolution. Returns the result and what the metadata says."""
    from .cascade import run as cascade

    ssr = state.ssr
    if ssr is None or r.base_only:
        return result, cascade.describe(ssr, None, base_size=cfg.size, base_only=r.base_only)
    hires = None
    if r.task not in (Task.t2v, Task.stylize):
        hires = _decode(r, replace(cfg, size=ssr.config.out_size), n, state.hires, Listener()).inputs
    listener.status(f"enlarging {cfg.size} -> {ssr.config.out_size} px")
    task = "t2v" if r.task is Task.stylize else str(r.task)
    pingpong = r.options.loop and r.options.loop_style == LoopStyle.pingpong  # named by requests
    result = cascade.enlarge(ssr, result, task=task, prompt=r.prompt, seed=r.seed, options=r.ssr, inputs=hires,
                             device=device, progress=listener.progress, pingpong=pingpong)
    return result, cascade.describe(ssr, r.ssr, base_size=cfg.size)


# ----------------------------------------------------------------------------- inputs


@dataclass
class _Decoded:
    inputs: Any  # pipeline.Inputs, or None for text-to-video
    info: dict[str, Any]  # per input: path and sha256, for the metadata
    fps: float | None = None  # the rate the video's frames were sampled at
    audio: Any = None  # video_io.AudioSpan of the input's audio for the span used, if it has audio


def _decode(r: Request, cfg: ModelConfig, n: int, state: _RunState, listener: Listener) -> _Decoded:
    """Read the request's files (once per batch), trim to the clip, fit to the model's size."""
    from . import video_io
    from .pipeline import Inputs

    if r.task in (Task.t2v, Task.stylize):
        return _Decoded(None, {})
    inputs = r.inputs
    # extend keeps the whole input: every frame of it at the sampling rate
    sampling = {"frames": n if r.task is not Task.extend else None, "stride": inputs.stride,
                "source_fps": inputs.input_fps, "fps": None if inputs.stride is not None else float(cfg.fps)}
    info, fps, audio = {}, None, None
    image = video = region = None
    if inputs.image is not None:
        image = _still(state, inputs.image, cfg)
        info["image"] = _file_info(state, inputs.image)
    given = [*inputs.keyframes, *([(-1, inputs.last_image)] if inputs.last_image is not None else [])]
    keyframes = {index % n: _still(state, path, cfg) for index, path in given}
    for k, (_, path) in enumerate(given):
        info[f"keyframe_{k}"] = _file_info(state, path)
    if inputs.video is not None:
        clip = _cached(state, ("video", inputs.video, tuple(sampling.items())),
                       lambda: video_io.read_video(inputs.video, **sampling))
        listener.status(clip.describe())
        if r.task is Task.extend:
            n = len(clip.frames)
        if len(clip.frames) < n:
            raise InputError(f"the video {inputs.video} gives {len(clip.frames)} frames at the sampling rate but {n} "
                             "are needed (give a longer video, pass --frames with a count it covers, or --stride 1)")
        video = _cached(state, ("video-fit", inputs.video, tuple(sampling.items())),
                        lambda: video_io.fit_to_model(clip.frames[:n], cfg.size))
        fps = clip.fps
        if clip.has_audio:
            audio = video_io.AudioSpan(Path(inputs.video), clip.start_s, n / clip.fps)
        info["video"] = _file_info(state, inputs.video)
    if inputs.mask is not None:
        mask = _cached(state, ("mask", inputs.mask, tuple(sampling.items())),
                       lambda: video_io.read_mask(inputs.mask, **sampling))
        if mask.ndim == 3:
            if len(mask) < n:
                raise InputError(f"the mask video has {len(mask)} frames but {n} are needed "
                                 "(give one mask frame per video frame, or a single mask image)")
            mask = mask[:n]
        region = video_io.fit_to_model(mask, cfg.size)
        info["mask"] = _file_info(state, inputs.mask)
    strength = inputs.strength if r.task is Task.edit else None
    return _Decoded(Inputs(image=image, video=video, generate_region=region, strength=strength, keyframes=keyframes,
                           backward=inputs.backward), info, fps, audio)


def _still(state: _RunState, path: Path, cfg: ModelConfig):
    from . import video_io

    return _cached(state, ("image", path), lambda: video_io.fit_to_model(video_io.read_image(path), cfg.size))


def _previewer(p: _Prepared, cfg: ModelConfig, listener: Listener):
    """Rewrite the reserved preview file with each estimate the sampler hands over."""
    if p.preview is None:
        return None
    from . import video_io

    fps = p.request.fps or float(cfg.fps)

    def preview(step: int, steps: int, frames) -> None:
        scale = outputs.display_scale(p.request.output.display_scale, p.preview.format, frames.shape[1:3])
        video_io.write_clip(p.preview.path, frames, fps=fps, format=str(p.preview.format), display_scale=scale,
                            metadata={"ai_generated": True, "preview": f"step {step} of {steps}"}, overwrite=True)
        listener.status(f"preview at step {step}/{steps}: {p.preview.path}")

    return preview


def _cached(state: _RunState, key: tuple, make):
    if key not in state.decoded:
        state.decoded[key] = make()
    return state.decoded[key]


def _file_info(state: _RunState, path: Path) -> dict[str, str]:
    return _cached(state, ("sha256", path), lambda: {"path": str(path), "sha256": file_sha256(path)})


def file_sha256(path: Path) -> str:
    """Content hash of an input file, or of a folder's files in name order."""
    import hashlib

    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
