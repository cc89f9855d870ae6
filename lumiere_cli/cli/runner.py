"""The shared body of every generation command: check, load, call `generate()`, write, report.

The heavy modules (torch, the model, the pipeline) are imported inside functions so that
`lumiere --help` never pays for them.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from lumiere_cli.cli import batch
from lumiere_cli.cli.ui import UI
from lumiere_cli.errors import InputError, LumiereError, UsageError

AI_NOTICE = (
    "This video is AI-generated: it was synthesised by lumiere-cli, a diffusion model, "
    "and does not show real events."
)
DISPLAY_TARGET = 256  # --display-scale 0 enlarges until the short side reaches this many pixels


@dataclass
class Common:
    """The options every generation command shares (see options.py)."""

    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    negative: str = ""
    sampler: Any = None
    schedule_shift: float | None = None
    frames: int | None = None
    fps: float | None = None
    weights: Path | None = None
    device: Any = "auto"
    output: Path | None = None
    out_dir: Path = Path(".")
    format: Any = None
    display_scale: int = 0
    display_filter: Any = "nearest"
    overwrite: bool = False
    prompts: Path | None = None
    json: bool = False
    quiet: bool = False

    @classmethod
    def pick(cls, values: dict[str, Any]) -> "Common":
        """The shared options out of a command's arguments (they use the same names)."""
        return cls(**{f.name: _plain(values[f.name]) for f in fields(cls) if f.name in values})


def _plain(value: Any) -> Any:
    """Enum choices as their plain strings: the library takes strings."""
    return value.value if isinstance(value, Enum) else value


@dataclass
class Task:
    """What a command asks for beyond the shared options."""

    name: str  # "t2v" | "i2v" | "inpaint" | "cinemagraph" | "edit" | "stylize"
    image: Path | None = None
    video: Path | None = None
    mask: Path | None = None
    strength: float | None = None
    # stylize only
    ref: Path | None = None
    alpha: float | None = None
    style_steps: int | None = None
    style_weights: Path | None = None


def run(task: Task, prompt: str | None, common: Common) -> None:
    """Generate every item this process owns; raise typer.Exit with the first failure's code."""
    import typer

    ui = UI(quiet=common.quiet, json_lines=common.json)
    items = batch.read_items(prompt, common.prompts)
    if common.output is not None and len(items) > 1:
        raise UsageError("-o/--output names one file; with several prompts use --out-dir")
    fmt = _output_format(common)
    out_dir = common.output.parent if common.output is not None else common.out_dir
    batch.check_writable_dir(out_dir)
    rank, world = batch.rank_and_world()
    mine = batch.my_items(items, rank, world)
    # Read shared input files before the (slow) model load, so a typo fails at once.
    shared = _read_inputs(task, {})

    with ui.session(batch_total=len(mine)):
        device = _resolve_device(common.device)
        ui.status(f"loading model on {device}")
        model, weights_info = _load(common.weights, device)
        if task.name == "stylize":
            model, style_info = _stylize_model(model, task, weights_info, ui, device)
        else:
            style_info = None
        first_failure = 0
        for n, item in enumerate(mine, 1):
            label = f"[{n}/{len(mine)}] {item.prompt}" if len(mine) > 1 else item.prompt
            try:
                record = _one(task, item, common, fmt, out_dir, model, weights_info, style_info,
                              shared, ui, device, label)
            except LumiereError as e:
                if len(items) == 1:
                    raise
                first_failure = first_failure or e.exit_code
                ui.error(f"item {item.index} ({item.prompt!r}): {e}")
                if common.json:
                    ui.emit({"index": item.index, "prompt": item.prompt, "error": str(e), "exit_code": e.exit_code})
            else:
                if common.json:
                    ui.emit(record)
            finally:
                ui.finish_clip()
        ui.status("done")
    if first_failure:
        raise typer.Exit(first_failure)


# ----------------------------------------------------------------------------- one item


def _one(task, item, common, fmt, out_dir, model, weights_info, style_info, shared, ui, device, label):
    from lumiere_cli import video_io
    from lumiere_cli.config import SampleOptions
    from lumiere_cli.pipeline import Inputs, generate, resolve_options

    ov = item.overrides
    cfg = model.config
    seed = batch.resolve_seed(common.seed, item)
    defaults = SampleOptions()
    options = resolve_options(cfg, SampleOptions(
        steps=_pick_num(ov, "steps", common.steps, defaults.steps, int, 1, 1000),
        guidance=_pick_num(ov, "guidance", common.guidance, None, float, 0.0, 50.0),
        sampler=_pick_choice(ov, "sampler", common.sampler, defaults.sampler, ("ddim", "dpmpp-2m")),
        negative=str(ov.get("negative", common.negative)),
        frames=_pick_num(ov, "frames", common.frames, None, int, 1, 4096),
        schedule_shift=_pick_num(ov, "schedule_shift", common.schedule_shift, None, float, 0.05, 20.0),
    ))  # concrete from here on: the sidecar records the settings used, not "the model's"
    fps = _pick_num(ov, "fps", common.fps, float(cfg.fps), float, 0.1, 240.0)
    n_frames = options.frames or cfg.frames
    files = _read_inputs(task, ov) if set(ov) & {"image", "video", "mask"} else shared
    inputs = _prepare_inputs(task, files, n_frames, cfg.size, ov)
    task_name = "t2v" if task.name == "stylize" else task.name

    ui.start_clip(label, options.steps)
    if not ui.bars:  # with bars the clip's own row says this
        ui.log(f"generating {item.prompt!r} (seed {seed})")
    t0 = time.perf_counter()
    result = generate(model, item.prompt, task=task_name, inputs=inputs, options=options, seed=seed,
                      device=device, progress=ui.library_progress(label))
    t_generate = time.perf_counter() - t0
    # Warn once per word over the whole batch: a prompt file repeats the same words a lot.
    new_words = [w for w in result.unknown_words or [] if w not in ui.warned_words]
    if new_words:
        ui.warned_words.update(new_words)
        ui.warn(f"the model never saw: {', '.join(new_words)}; generating anyway "
                "(see `lumiere info` for its vocabulary)")

    frames = result.frames
    size = list(frames.shape[1:3])
    scale = common.display_scale or (1 if fmt == "png" else max(1, math.ceil(DISPLAY_TARGET / min(size))))
    if common.output is not None:
        path = common.output if "output" not in ov else Path(ov["output"])
    elif "output" in ov:
        path = out_dir / ov["output"]
    else:
        path = batch.default_path(out_dir, item.prompt, seed, fmt, overwrite=common.overwrite)
    meta = {
        "notice": AI_NOTICE,
        "ai_generated": True,
        "task": task.name,
        "prompt": item.prompt,
        "negative": options.negative,
        "seed": seed,
        "sampler": options.sampler,
        "schedule_shift": options.schedule_shift,
        "steps": options.steps,
        "guidance": options.guidance,
        "frames": int(frames.shape[0]),
        "fps": fps,
        "size": size,
        "display_scale": scale,
        "display_filter": _plain(common.display_filter),
        "weights": weights_info,
        "inputs": {k: v["info"] for k, v in files.items()},
        "strength": inputs.strength if inputs is not None else None,
        "style": style_info,
        "versions": _versions(),
        "timings": {**{k: round(float(v), 4) for k, v in (result.timings or {}).items()},
                    "generate_s": round(t_generate, 4)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    ui.status(f"encoding {fmt}")
    t1 = time.perf_counter()
    video_io.write_clip(path, frames, fps=fps, format=fmt, metadata=meta, display_scale=scale,
                        display_filter=_plain(common.display_filter), overwrite=common.overwrite)
    meta["timings"]["encode_s"] = round(time.perf_counter() - t1, 4)
    sidecar = video_io.write_sidecar(video_io.sidecar_path(path), meta, overwrite=True)
    ui.log(f"wrote {path} (seed {seed})")
    return {"index": item.index, "path": str(path), "sidecar": str(sidecar), "seed": seed,
            "prompt": item.prompt, "task": task.name, "format": fmt, "frames": meta["frames"],
            "fps": fps, "size": size, "unknown_words": list(result.unknown_words or []),
            "timings": meta["timings"]}


def _pick_num(ov, key, cli_value, default, kind, lo, hi):
    value = ov.get(key, cli_value)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise UsageError(f"{key} must be a number, got {value!r}")
    value = kind(value)
    if not lo <= value <= hi:
        raise UsageError(f"{key} must be between {lo} and {hi}, got {value}")
    return value


def _pick_choice(ov, key, cli_value, default, choices):
    value = ov.get(key, cli_value)
    if value is None:
        return default
    if value not in choices:
        raise UsageError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _output_format(common: Common) -> str:
    if common.format is not None:
        return common.format
    if common.output is not None:
        suffix = common.output.suffix.lower().lstrip(".")
        if suffix in ("mp4", "gif", "webp"):
            return suffix
        if suffix:
            raise UsageError(f"cannot tell the format from {common.output.name!r}: use .mp4/.gif/.webp or pass --format")
        return "png"  # a name without suffix is a folder of frames
    return "mp4"


# ----------------------------------------------------------------------------- inputs


def _read_inputs(task: Task, ov: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Read the task's input files: {"image": {"data": array, "info": {path, sha256}}, ...}."""
    from lumiere_cli import video_io

    out: dict[str, dict[str, Any]] = {}
    for key, reader in (("image", video_io.read_image), ("video", None), ("mask", video_io.read_mask)):
        path = ov.get(key, getattr(task, key))
        if path is None:
            continue
        path = Path(path)
        if key == "video":
            data, fps = video_io.read_video(path)
        else:
            data = reader(path)
        out[key] = {"data": data, "info": {"path": str(path), "sha256": batch.file_sha256(path)}}
    return out


def _prepare_inputs(task: Task, files: dict, n_frames: int, size: int, ov: dict):
    """Check sizes against each other, trim to the clip length, fit to the model's size."""
    from lumiere_cli.pipeline import Inputs
    from lumiere_cli.video_io import fit_to_model

    name = task.name
    if name in ("t2v", "stylize"):
        return None
    image = files.get("image", {}).get("data")
    video = files.get("video", {}).get("data")
    mask = files.get("mask", {}).get("data")
    strength = ov.get("strength", task.strength)
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1):
        raise UsageError(f"strength must be in (0, 1], got {strength!r}")
    if video is not None:
        if len(video) < n_frames:
            raise InputError(f"the video has {len(video)} frames but {n_frames} are needed "
                             f"(give a longer video or pass --frames with a count it covers)")
        video = video[:n_frames]
    base = video if video is not None else image
    if mask is not None and base is not None:
        want = base.shape[-3:-1]
        if mask.shape[-2:] != want:
            what = "video" if video is not None else "image"
            raise InputError(f"the mask is {mask.shape[-1]}x{mask.shape[-2]} but the {what} is {want[1]}x{want[0]} "
                             f"(make the mask the same size)")
        if mask.ndim == 3:
            if len(mask) < n_frames:
                raise InputError(f"the mask video has {len(mask)} frames but {n_frames} are needed "
                                 f"(give one mask frame per video frame, or a single mask image)")
            mask = mask[:n_frames]
    return Inputs(
        image=fit_to_model(image, size) if image is not None else None,
        video=fit_to_model(video, size) if video is not None else None,
        mask=fit_to_model(mask, size) if mask is not None else None,
        strength=float(strength) if strength is not None else None,
    )


# ----------------------------------------------------------------------------- model


def _resolve_device(choice: str) -> str:
    import torch

    local = os.environ.get("LOCAL_RANK")
    if choice == "cpu":
        return "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA GPU is visible (use --device cpu or auto)")
    if torch.cuda.is_available():
        return f"cuda:{local}" if local is not None else "cuda"
    return "cpu"


def _load(weights: Path | None, device: str):
    from lumiere_cli import weights as weights_mod

    model = weights_mod.load_model(weights, device=device)
    resolve = getattr(weights_mod, "resolve", None)
    info: dict[str, Any] = {"path": str(resolve(weights) if resolve else weights)}
    digest = getattr(model, "weights_hash", None) or (model.card or {}).get("weights_hash")
    if digest is None:
        try:
            digest = weights_mod.weights_hash(weights) if weights is not None else None
        except (LumiereError, OSError, TypeError):
            digest = None
    info["hash"] = digest
    return model, info


def _style_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lumiere-cli" / "styles"


def _stylize_model(model, task: Task, weights_info: dict, ui: UI, device: str):
    """Train (or reuse) the style's spatial weights, then blend them into the model."""
    from lumiere_cli import stylize, video_io

    info: dict[str, Any] = {"alpha": task.alpha}
    if task.style_weights is not None:
        state = _load_style(task.style_weights)
        info["style_weights"] = str(task.style_weights)
    else:
        image = video_io.fit_to_model(video_io.read_image(task.ref), model.config.size)
        ref_hash = batch.file_sha256(task.ref)
        whash = (weights_info.get("hash") or "unknown")[:12]
        cache = _style_cache_dir() / f"{ref_hash}_{whash}_{task.style_steps}.safetensors"
        info.update(ref={"path": str(task.ref), "sha256": ref_hash}, style_steps=task.style_steps,
                    style_weights=str(cache))
        if cache.is_file():
            ui.status(f"reusing cached style {cache.name}")
            state = _load_style(cache)
        else:
            ui.start_clip("learning the style", task.style_steps)

            def progress(phase: str, done: int, total: int) -> None:
                ui.step(done, total)

            if not ui.bars:
                ui.log(f"learning the style of {task.ref} ({task.style_steps} steps)")
            state = stylize.train_style(model, image, steps=task.style_steps, seed=0, progress=progress)
            _save_style(state, cache)
            ui.log(f"style cached at {cache}")
    return stylize.blend_style(model, state, task.alpha), info


def _load_style(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise InputError(f"style weights not found: {path} (check the path, or use --ref to learn a style)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"cannot read style weights {path}: {e} (they must be a .safetensors file)") from e


def _save_style(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _versions() -> dict[str, str]:
    import torch

    from lumiere_cli import __version__

    return {"lumiere_cli": __version__, "torch": torch.__version__, "python": platform.python_version()}
