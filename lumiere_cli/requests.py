"""One request per clip: what to make (task, prompt, inputs, options) and where to put it.

`Request` is what a Python caller builds and what the CLI builds from its arguments and from each
JSONL line alike, through `build`: one set of flat field names (the JSONL keys, the long option
names), one validation. No torch here; nothing is read or generated.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import limits
from .choices import DisplayFilter, Format, Sampler, Task
from .config import SampleOptions
from .errors import UsageError

# What each task needs from the user.
REQUIRED_INPUTS: dict[Task, tuple[str, ...]] = {
    Task.t2v: (), Task.stylize: (), Task.i2v: ("image",), Task.inpaint: ("video", "mask"),
    Task.cinemagraph: ("image", "mask"), Task.edit: ("video",),
}
DEFAULT_STRENGTH = 0.2  # edit: keeps the layout, takes the prompt (README, "Editing": scripts/edit_strength.py)


@dataclass(frozen=True)
class InputFiles:
    """The user's files, as paths: decoded only when the request runs."""

    image: Path | None = None
    video: Path | None = None
    mask: Path | None = None  # white = generate, black = keep
    strength: float | None = None  # edit: the fraction of the sampling schedule run, 0 keeps the input
    stride: int | None = None  # use every Nth input frame instead of sampling at the model's fps
    input_fps: float | None = None  # the input's own frame rate, when its file says none or a wrong one


@dataclass(frozen=True)
class OutputSpec:
    """Where the clip goes: an explicit `path`, or a default name in `out_dir`."""

    path: Path | None = None
    out_dir: Path = Path(".")
    format: Format | None = None  # None: the suffix of `path`, else mp4
    overwrite: bool = False
    display_scale: int = 0  # 0: enough to reach 256 px (PNG frames: 1)
    display_filter: str = "nearest"  # or "lanczos"


@dataclass(frozen=True)
class StyleSpec:
    """stylize: learn the look of `ref` (or reuse saved `weights`), blend it in at `alpha`."""

    ref: Path | None = None
    weights: Path | None = None
    alpha: float = 0.8
    steps: int = 100


@dataclass(frozen=True)
class Request:
    prompt: str
    task: Task = Task.t2v
    inputs: InputFiles = field(default_factory=InputFiles)
    options: SampleOptions = field(default_factory=SampleOptions)
    output: OutputSpec = field(default_factory=OutputSpec)
    seed: int | None = None  # None: a random one, drawn once and reported
    fps: float | None = None  # playback rate of the written file; None: the model's (edit/inpaint: the input's)
    style: StyleSpec | None = None
    index: int = 0  # position in a batch: it decides the seed offset and the rank that runs it
    where: str = ""  # "items.jsonl:3" for messages about a batch line

    def validated(self) -> "Request":
        """This request with its seed drawn, or a UsageError naming what is wrong."""
        try:
            return _validate(self)
        except UsageError as e:
            raise UsageError(f"{self.where}: {e}" if self.where else str(e)) from None


def _validate(r: Request) -> Request:
    task = Task.parse(r.task, "task")
    prompt = " ".join(str(r.prompt).split())
    if not prompt:
        raise UsageError('empty prompt (describe the video, e.g. "a red circle moving left")')
    o = r.options
    for name in ("steps", "guidance", "schedule_shift", "frames"):
        if getattr(o, name) is not None:
            limits.check(name, getattr(o, name))
    limits.check("eta", o.eta)
    if o.sampler is not None:
        Sampler.parse(o.sampler, "sampler")
    if r.fps is not None:
        limits.check("fps", r.fps)
    inputs = r.inputs
    for name in REQUIRED_INPUTS[task]:
        if getattr(inputs, name) is None:
            raise UsageError(f"{task} needs --{name}")
    for name in ("image", "video", "mask"):
        if getattr(inputs, name) is not None and name not in REQUIRED_INPUTS[task]:
            raise UsageError(f"{task} takes no {name} (it is for {', '.join(_tasks_taking(name))})")
    if task is Task.edit:
        strength = DEFAULT_STRENGTH if inputs.strength is None else limits.check("strength", inputs.strength)
        inputs = replace(inputs, strength=strength)
    elif inputs.strength is not None:
        raise UsageError(f"{task} takes no strength (it is for edit)")
    if inputs.stride is not None:
        limits.check("stride", inputs.stride)
    if inputs.input_fps is not None:
        limits.check("input_fps", inputs.input_fps)
    inputs = replace(inputs, **{k: Path(getattr(inputs, k)) for k in _PATH_KEYS if getattr(inputs, k) is not None})
    out = replace(r.output, path=None if r.output.path is None else Path(r.output.path), out_dir=Path(r.output.out_dir),
                  format=None if r.output.format is None else Format.parse(r.output.format, "format"))
    limits.check("display_scale", out.display_scale)
    out = replace(out, display_filter=DisplayFilter.parse(out.display_filter, "display filter").value)
    if r.style is not None:
        if (r.style.ref is None) == (r.style.weights is None):
            raise UsageError("give exactly one of --ref IMAGE or --style-weights FILE")
        limits.check("alpha", r.style.alpha)
        limits.check("style_steps", r.style.steps)
    elif task is Task.stylize:
        raise UsageError("stylize needs --ref IMAGE or --style-weights FILE")
    seed = secrets.randbelow(2**31) if r.seed is None else limits.check("seed", r.seed)
    return replace(r, task=task, prompt=prompt, inputs=inputs, output=out, seed=seed)


def _tasks_taking(name: str) -> list[str]:
    return [str(t) for t, needs in REQUIRED_INPUTS.items() if name in needs]


# ----------------------------------------------------------------------------- flat fields

# Keys a JSONL line may set for its own item (the command line sets the same, as --long-options).
ITEM_KEYS = frozenset({
    "prompt", "negative", "seed", "steps", "guidance", "sampler", "schedule_shift", "frames", "fps", "output",
    "image", "video", "mask", "strength", "stride", "input_fps",
})
_PATH_KEYS = ("image", "video", "mask")
_TYPES = {"negative": (str,), "sampler": (str,), **{k: (str, os.PathLike) for k in ("output", *_PATH_KEYS)}}


def build(task: Task | str, fields: dict[str, Any], *, output: OutputSpec, style: StyleSpec | None = None,
          index: int = 0, where: str = "", item_output: bool = False) -> Request:
    """A validated Request from flat fields (command-line values with a JSONL item's on top).

    With `item_output` the `output` field is a batch item's name inside `output.out_dir`.
    """
    try:
        for key, kinds in _TYPES.items():
            if fields.get(key) is not None and not isinstance(fields[key], kinds):
                raise UsageError(f"{key} must be a string, got {fields[key]!r}")
        for key in ("seed", "steps", "guidance", "schedule_shift", "frames", "fps", "strength", "stride", "input_fps"):
            if fields.get(key) is not None:
                limits.check(key, fields[key])
        spec = output
        if fields.get("output") is not None:
            from .outputs import inside

            path = inside(output.out_dir, fields["output"]) if item_output else Path(fields["output"])
            spec = replace(output, path=path)
        options = SampleOptions(
            steps=fields.get("steps"), guidance=fields.get("guidance"), sampler=fields.get("sampler"),
            negative=fields.get("negative") or "", frames=fields.get("frames"),
            schedule_shift=fields.get("schedule_shift"),
        )
        inputs = InputFiles(
            **{k: Path(fields[k]) if fields.get(k) is not None else None for k in _PATH_KEYS},
            strength=fields.get("strength"), stride=fields.get("stride"), input_fps=fields.get("input_fps"),
        )
    except UsageError as e:
        raise UsageError(f"{where}: {e}" if where else str(e)) from None
    request = Request(prompt=fields.get("prompt") or "", task=Task.parse(task, "task"), inputs=inputs,
                      options=options, output=spec, seed=fields.get("seed"), fps=fields.get("fps"), style=style,
                      index=index, where=where)
    return request.validated()
