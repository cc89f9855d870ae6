"""The cascade in a run: the SSR that goes with the base weights, applied to a generated clip.

`jobs` calls `load_beside` once per run and `enlarge` after each base clip; what the metadata and
sidecars say of the second stage comes from `describe`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .options import SSROptions, check_tile


def load_beside(weights: str | Path | None, device: str = "cpu"):
    """The SSR model stored beside the base weights (`ssr.safetensors`), or None."""
    from .header import ssr_beside
    from .weights import load_ssr

    path = ssr_beside(weights)
    return None if path is None else load_ssr(path, device=device)


def describe(ssr, options: SSROptions | None, *, base_size: int, base_only: bool = False) -> dict[str, Any]:
    """The stages as metadata: which SSR ran and how, or that the clip is the base's alone (no SSR
    with the weights, or `base_only`)."""
    if base_only or ssr is None or options is None:
        return {"stages": ["base"], "base_size": base_size, "base_only": base_only}
    o = options.resolve(ssr)
    size = base_size * ssr.config.factor
    tiles = o.tiles_for(size, size)
    return {"stages": ["base", "ssr"], "base_size": base_size, "size": size,
            "ssr": {"path": str(getattr(ssr, "path", "")), "hash": ssr.weights_hash},
            "ssr_steps": o.steps, "ssr_noise": o.noise, "ssr_sampler": o.sampler, "ssr_guidance": o.guidance,
            "ssr_schedule_shift": o.schedule_shift, "window": o.window, "overlap": o.overlap,
            **({"tile": tiles.tile, "tile_overlap": tiles.tile_overlap} if 0 < tiles.tile < size else {})}


def enlarge(ssr, result, *, task: str, prompt: str, seed: int, options: SSROptions, inputs=None,
            device: str = "cpu", progress=None, pingpong: bool = False):
    """The base's `GenerateResult` enlarged by the SSR (frames at the output size; timings gain
    `ssr_s`). `inputs`: the user's files decoded at the output size (`pipeline.Inputs`), whose
    known pixels (i2v, inpaint, cinemagraph) come back unchanged where the mask keeps them; an
    edit at strength 0 returns the input itself at the output size. `pingpong`: the clip is a loop
    played there and back (`timeline.pingpong`); only the way there is enlarged and played back,
    so the loop stays exact at the output size."""
    from ..pipeline import _conditioning  # the one rule for <C, M> per task (DESIGN §2)
    from ..timeline import folded, there_and_back
    from .sample import upscale

    if pingpong:
        n = len(result.frames)
        there = enlarge(ssr, replace(result, frames=result.frames[:n // 2 + 1]), task=task, prompt=prompt, seed=seed,
                        options=options, inputs=None if inputs is None else folded(inputs, n), device=device,
                        progress=progress)
        return replace(there, frames=there_and_back(there.frames, n))

    t0 = time.perf_counter()
    frames = result.frames
    n = len(frames)
    if task == "edit" and inputs is not None and inputs.strength == 0:
        out = inputs.video[:n].copy()
        return replace(result, frames=out, timings={**result.timings, "ssr_s": time.perf_counter() - t0})
    known = known_mask = None
    if inputs is not None and task != "edit":  # what the task keeps (None when nothing is known)
        known, known_mask = _conditioning(task, inputs, n, ssr.config.out_size)
    up = upscale(ssr, frames, prompt, seed=seed, options=options, known=known, known_mask=known_mask,
                 device=device, progress=progress)
    return replace(result, frames=up.frames, timings={**result.timings, **up.timings,
                                                       "ssr_s": time.perf_counter() - t0})


def options_dict(options: SSROptions) -> dict[str, Any]:
    return asdict(options)


__all__ = ["describe", "enlarge", "load_beside", "options_dict"]


# ----------------------------------------------------------------------------- lumiere upscale


@dataclass
class UpscaleJob:
    """`lumiere upscale`: the SSR alone on the user's clip."""

    video: Path
    prompt: str = ""
    seed: int | None = None
    options: SSROptions = field(default_factory=SSROptions)
    frames: int | None = None  # at most this many frames (None: the whole clip)
    stride: int | None = None
    input_fps: float | None = None
    fps: float | None = None  # playback rate of the written file; None: the rate it was sampled at
    output: Any = None  # requests.OutputSpec
    size: int | None = None  # the side the clip is fit to before it is enlarged; None: the SSR's input size


@dataclass
class UpscaleOutcome:
    path: Path
    sidecar: Path
    seed: int
    frames: int
    fps: float
    size: tuple[int, int]
    timings: dict[str, float]

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "sidecar": str(self.sidecar), "seed": self.seed, "task": "upscale",
                "frames": self.frames, "fps": self.fps, "size": list(self.size), "timings": self.timings}


def find_ssr(weights: str | Path | None) -> Path:
    """The SSR for `lumiere upscale --weights`: an SSR file or a folder holding one, else the SSR
    beside the base weights `weights` would load (the shipped ones by default)."""
    from ..errors import WeightsError
    from .header import SSR_FILENAME, read_ssr_header, resolve_ssr, ssr_beside

    if weights is not None:
        try:
            path = resolve_ssr(weights)
            read_ssr_header(path)
            return path
        except WeightsError:
            pass
    found = ssr_beside(weights)
    if found is None:
        where = weights if weights is not None else "the default weights' folder"
        raise WeightsError(f"no super-resolution weights ({SSR_FILENAME}) in {where}: pass --weights an SSR file "
                           "or a folder holding one")
    return found


def _check_size(size: int, info) -> int:
    """The input side `lumiere upscale --size` asks for, if the SSR can take it (its U-Net's multiple)."""
    from .. import limits
    from ..errors import UsageError

    size = limits.check("upscale_size", size)
    multiple = info.size_multiple
    if size % multiple:
        examples = ", ".join(str(multiple * k) for k in (8, 16, 32, 64))
        raise UsageError(f"--size must be a multiple of {multiple} for this SSR (e.g. {examples}), got {size}")
    return size


def run_upscale(job: UpscaleJob, *, weights: str | Path | None = None, device: str = "auto",
                listener=None) -> UpscaleOutcome:
    """Check the job (input, options, output: reserved before the model loads), load the SSR, read
    the clip at the SSR's frame rate and size (centre crop, Lanczos), enlarge it, write it."""
    import secrets

    from .. import limits, outputs, video_io
    from ..config import SampleOptions
    from ..devices import resolve_device
    from ..errors import UsageError
    from ..jobs import Listener, file_sha256
    from .header import read_ssr_info
    from .sample import upscale
    from .weights import load_ssr

    listener = listener or Listener()
    # 1. everything that needs no model
    seed = secrets.randbelow(2**31) if job.seed is None else limits.check("seed", job.seed)
    o = job.options
    if o.steps is not None:
        limits.check("steps", o.steps)
    if o.noise is not None and not 0 <= o.noise <= 1:
        raise UsageError(f"ssr noise must be between 0 and 1, got {o.noise:g}")
    for name in ("frames", "stride", "input_fps", "fps"):
        if getattr(job, name) is not None:
            limits.check(name, getattr(job, name))
    ssr_path = find_ssr(weights)
    info = read_ssr_info(ssr_path)
    side = info.config.size if job.size is None else _check_size(job.size, info)
    out_side = side * info.config.factor
    check_tile(o.tiles_for(out_side, out_side), info.config.unet.size_multiple)
    video_io.probe(job.video)
    out = job.output
    fmt = outputs.format_for(out.path, out.format)
    stem = outputs.default_stem(job.prompt or f"{Path(job.video).stem} upscaled", seed)
    reservation = (outputs.reserve(out.path, fmt, overwrite=out.overwrite) if out.path is not None
                   else outputs.reserve_default(out.out_dir, stem, fmt, overwrite=out.overwrite))
    try:
        # 2. the model, 3. the clip
        device = resolve_device(device)
        listener.status(f"loading the super-resolution model on {device}")
        ssr = load_ssr(ssr_path, device=device)
        cfg = info.config
        clip = video_io.read_video(job.video, frames=job.frames, stride=job.stride, source_fps=job.input_fps,
                                   fps=None if job.stride is not None else float(cfg.fps))
        listener.status(clip.describe())
        low = video_io.fit_to_model(clip.frames, side)
        # 4. enlarge
        listener.status(f"enlarging {len(low)} frames {side} -> {side * cfg.factor}")
        result = upscale(ssr, low, job.prompt, seed=seed, options=o, device=device, progress=listener.progress)
        # 5. write, with what made it
        fps = job.fps or clip.fps
        size = tuple(result.frames.shape[1:3])
        scale = outputs.display_scale(out.display_scale, fmt, size)
        r = result.options
        meta = outputs.metadata(
            task="upscale", prompt=job.prompt, seed=seed,
            options=SampleOptions(steps=r.steps, guidance=r.guidance, sampler=r.sampler,
                                  schedule_shift=r.schedule_shift),
            fps=fps, frames=len(result.frames), size=size, scale=scale, display_filter=out.display_filter,
            weights={"path": str(ssr_path), "hash": info.content_hash},
            inputs={"video": {"path": str(job.video), "sha256": file_sha256(Path(job.video))}},
            strength=None, style=None)
        meta["cascade"] = describe(ssr, o, base_size=side) | {"stages": ["ssr"]}
        path, side = outputs.write(reservation, result.frames, fps=fps, meta=meta, scale=scale,
                                   display_filter=out.display_filter, timings=result.timings)
    finally:
        reservation.release()
    listener.status(f"wrote {path} (seed {seed})")
    return UpscaleOutcome(path=path, sidecar=side, seed=seed, frames=len(result.frames), fps=fps, size=size,
                          timings={k: round(float(v), 4) for k, v in result.timings.items()})
