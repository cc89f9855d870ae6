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
from .choices import DisplayFilter, Format, LoopStyle, Sampler, Task
from .cascade.options import SSROptions
from .config import SampleOptions
from .errors import UsageError

# What each task needs from the user.
REQUIRED_INPUTS: dict[Task, tuple[str, ...]] = {
    Task.t2v: (), Task.stylize: (), Task.i2v: ("image",), Task.inpaint: ("video", "mask"),
    Task.cinemagraph: ("image", "mask"), Task.edit: ("video",), Task.extend: ("video",),
}
# What else each setting is for.
LOOP_TASKS = (Task.t2v, Task.i2v, Task.cinemagraph)
SCHEDULE_TASKS = (Task.t2v, Task.i2v)
DEFAULT_STRENGTH = 0.3  # edit: keeps the layout, takes the prompt (README, Inputs: scripts/edit_strength.py)


@dataclass(frozen=True)
class InputFiles:
    """The user's files, as paths: decoded only when the request runs."""

    image: Path | None = None
    video: Path | None = None
    mask: Path | None = None  # white = generate, black = keep
    strength: float | None = None  # edit: the fraction of the sampling schedule run, 0 keeps the input
    stride: int | None = None  # use every Nth input frame instead of sampling at the model's fps
    input_fps: float | None = None  # the input's own frame rate, when its file says none or a wrong one
    last_image: Path | None = None  # i2v: the clip's last frame
    keyframes: tuple[tuple[int, Path], ...] = ()  # i2v: (frame index, image); a negative index counts from the end
    backward: bool = False  # extend: new frames before the video instead of after it


@dataclass(frozen=True)
class OutputSpec:
    """Where the clip goes: an explicit `path`, or a default name in `out_dir`."""

    path: Path | None = None
    out_dir: Path = Path(".")
    format: Format | None = None  # None: the suffix of `path`, else mp4
    overwrite: bool = False
    display_scale: int = 0  # 0: enough to reach 256 px (PNG frames: 1)
    display_filter: str = "nearest"  # or "lanczos"
    preview: Path | None = None  # rewritten with the current estimate of the clip while it is sampled
    preview_every: int = 5  # steps between previews


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
    schedule: tuple[tuple[int, str], ...] = ()  # (first frame, prompt): what the clip shows from that frame on
    index: int = 0  # position in a batch: it decides the seed offset and the rank that runs it
    where: str = ""  # "items.jsonl:3" for messages about a batch line
    # The cascade's second stage, when the weights include one (cascade.options); base_only skips it.
    ssr: SSROptions = field(default_factory=SSROptions)
    base_only: bool = False

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
    limits.check_sample_numbers(o)
    _check_cascade(r)
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
    if (inputs.last_image is not None or inputs.keyframes) and task is not Task.i2v:
        raise UsageError(f"{task} takes no keyframes (--last-image and --keyframe are for i2v)")
    if inputs.backward and task is not Task.extend:
        raise UsageError(f"{task} takes no --backward (it is for extend)")
    if r.options.loop and task not in LOOP_TASKS:
        raise UsageError(f"{task} cannot loop (--loop is for {', '.join(map(str, LOOP_TASKS))})")
    options = r.options
    if options.loop:  # the style a loop is made in, named from here on (metadata, the cascade)
        options = replace(options, loop_style=str(LoopStyle.resolve(options.loop_style, scheduled=bool(r.schedule))))
    if r.schedule and task not in SCHEDULE_TASKS:
        raise UsageError(f"{task} takes no prompt schedule (--prompt-at is for {', '.join(map(str, SCHEDULE_TASKS))})")
    schedule = tuple(sorted((_frame_index(f, "prompt-at"), " ".join(str(p).split())) for f, p in r.schedule))
    if any(f < 0 for f, _ in schedule) or len({f for f, _ in schedule}) != len(schedule) or any(not p for _, p in schedule):
        raise UsageError("each --prompt-at needs its own frame (0 or more) and a prompt, e.g. 16:\"a red circle moving up\"")
    keyframes = tuple((_frame_index(i, "keyframe"), Path(p)) for i, p in inputs.keyframes)
    inputs = replace(inputs, keyframes=keyframes,
                     last_image=None if inputs.last_image is None else Path(inputs.last_image))
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
    if out.preview is not None:
        limits.check("preview_every", out.preview_every)
        out = replace(out, preview=Path(out.preview))
    return replace(r, task=task, prompt=prompt, inputs=inputs, options=options, output=out, seed=seed,
                   schedule=schedule)


def _frame_index(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what}: a frame index must be an integer, got {value!r}")
    return value


def parse_keyframe(text: str) -> tuple[int, Path]:
    """"PATH@INDEX" (the last @ splits, so paths may hold one) -> (index, path); -1 is the last frame."""
    path, at, index = str(text).rpartition("@")
    try:
        if not at or not path:
            raise ValueError
        return int(index), Path(path)
    except ValueError:
        raise UsageError(f"--keyframe wants PATH@INDEX (e.g. still.png@15, or @-1 for the last frame), got {text!r}") from None


def parse_prompt_at(text: str) -> tuple[int, str]:
    """"FRAME:PROMPT" -> (frame, prompt)."""
    frame, colon, prompt = str(text).partition(":")
    try:
        if not colon or not prompt.strip():
            raise ValueError
        return int(frame), prompt
    except ValueError:
        raise UsageError(f"--prompt-at wants FRAME:PROMPT (e.g. 16:\"a red circle moving up\"), got {text!r}") from None


def _check_cascade(r: Request) -> None:
    if not isinstance(r.base_only, bool):
        raise UsageError(f"base_only must be true or false, got {r.base_only!r}")
    if r.ssr.steps is not None:
        limits.check("ssr_steps", r.ssr.steps)
    if r.ssr.noise is not None:
        limits.check("ssr_noise", r.ssr.noise)


def _tasks_taking(name: str) -> list[str]:
    return [str(t) for t, needs in REQUIRED_INPUTS.items() if name in needs]


# ----------------------------------------------------------------------------- flat fields

# Keys a JSONL line may set for its own item (the command line sets the same, as --long-options).
ITEM_KEYS = frozenset({
    "prompt", "negative", "seed", "steps", "guidance", "guidance_low", "guidance_high", "sampler", "schedule_shift", "frames",
    "fps", "output",
    "image", "video", "mask", "strength", "stride", "input_fps", "last_image", "keyframes", "backward", "loop",
    "loop_style", "schedule", "bf16",
})
_PATH_KEYS = ("image", "video", "mask", "last_image")
_TYPES = {"negative": (str,), "sampler": (str,), "loop_style": (str,), **{k: (str, os.PathLike) for k in ("output", *_PATH_KEYS)}}
# The cascade's second stage: --base-only, --ssr-steps, --ssr-noise.
CASCADE_KEYS = frozenset({"base_only", "ssr_steps", "ssr_noise"})
ITEM_KEYS = ITEM_KEYS | CASCADE_KEYS


def build(task: Task | str, fields: dict[str, Any], *, output: OutputSpec, style: StyleSpec | None = None,
          index: int = 0, where: str = "", item_output: bool = False) -> Request:
    """A validated Request from flat fields (command-line values with a JSONL item's on top).

    With `item_output` the `output` field is a batch item's name inside `output.out_dir`.
    """
    try:
        for key, kinds in _TYPES.items():
            if fields.get(key) is not None and not isinstance(fields[key], kinds):
                raise UsageError(f"{key} must be a string, got {fields[key]!r}")
        for key in ("seed", "steps", "guidance", "guidance_low", "guidance_high", "schedule_shift", "frames", "fps",
                    "strength", "stride", "input_fps"):
            if fields.get(key) is not None:
                limits.check(key, fields[key])
        spec = output
        if fields.get("output") is not None:
            from .outputs import inside

            path = inside(output.out_dir, fields["output"]) if item_output else Path(fields["output"])
            spec = replace(output, path=path)
        for key in ("backward", "loop", "bf16"):
            if not isinstance(fields.get(key, False), bool):
                raise UsageError(f"{key} must be true or false, got {fields[key]!r}")
        options = SampleOptions(
            steps=fields.get("steps"), guidance=fields.get("guidance"), guidance_low=fields.get("guidance_low"),
            guidance_high=fields.get("guidance_high"),
            sampler=fields.get("sampler"),
            negative=fields.get("negative") or "", frames=fields.get("frames"),
            schedule_shift=fields.get("schedule_shift"), bf16=fields.get("bf16", False),
            loop=fields.get("loop", False) or fields.get("loop_style") is not None,
            loop_style=None if fields.get("loop_style") is None else str(fields["loop_style"]),
        )
        inputs = InputFiles(
            **{k: Path(fields[k]) if fields.get(k) is not None else None for k in _PATH_KEYS},
            strength=fields.get("strength"), stride=fields.get("stride"), input_fps=fields.get("input_fps"),
            keyframes=_pairs(fields.get("keyframes"), "keyframes", parse_keyframe, (int, str)),
            backward=fields.get("backward", False),
        )
        schedule = _pairs(fields.get("schedule"), "schedule", parse_prompt_at, (int, str))
    except UsageError as e:
        raise UsageError(f"{where}: {e}" if where else str(e)) from None
    request = Request(prompt=fields.get("prompt") or "", task=Task.parse(task, "task"), inputs=inputs,
                      options=options, output=spec, seed=fields.get("seed"), fps=fields.get("fps"), style=style,
                      schedule=tuple((f, p) for f, p in schedule), index=index, where=where)
    cascade = {"ssr": SSROptions(steps=fields.get("ssr_steps"), noise=fields.get("ssr_noise"),
                                 bf16=fields.get("bf16", False)),
               "base_only": fields.get("base_only") or False}
    return replace(request, **cascade).validated()


def _pairs(value: Any, key: str, parse, kinds: tuple[type, type]) -> tuple:
    """A list of [a, b] pairs (JSONL) or of "text" to `parse` (the command line)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"{key} must be a list, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(parse(item))
        elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, k) for x, k in zip(item, kinds)):
            out.append(tuple(item) if key == "schedule" else (item[0], Path(item[1])))
        else:
            raise UsageError(f"{key}: each entry must be [{kinds[0].__name__}, {kinds[1].__name__}], got {item!r}")
    return tuple(out)
