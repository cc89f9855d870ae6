"""Generation and editing commands: parse, build requests, call `jobs.run`, render.

Every command takes its own inputs plus the shared options of `_shared`, added to its signature by
`generation_command`, so each option is declared once and reaches the command as one `Shared`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer

from lumiere_cli.choices import Device, DisplayFilter, Format, Sampler, Task
from lumiere_cli.cli import options as o
from lumiere_cli.cli.ui import UI, handle_errors
from lumiere_cli.cli.upscale import BaseOnly, SsrNoise, SsrSteps

PANEL = "Generate and edit"


@dataclass(frozen=True)
class Shared:
    """The options every generation command takes (declared in `_shared`)."""

    seed: int | None
    steps: int | None
    guidance: float | None
    guidance_low: float | None
    guidance_high: float | None
    negative: str
    sampler: Sampler | None
    schedule_shift: float | None
    frames: int | None
    fps: float | None
    output: Path | None
    out_dir: Path
    format: Format | None
    display_scale: int
    display_filter: DisplayFilter
    overwrite: bool
    preview: Path | None
    preview_every: int
    prompts: Path | None
    json: bool
    quiet: bool
    weights: Path | None
    device: Device
    base_only: bool
    ssr_steps: int | None
    ssr_noise: float | None
    bf16: bool


def _shared(
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, guidance_low: o.GuidanceLow = None,
    guidance_high: o.GuidanceHigh = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = DisplayFilter.nearest,
    overwrite: o.Overwrite = False, preview: o.Preview = None, preview_every: o.PreviewEvery = 5,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = Device.auto,
    base_only: BaseOnly = False, ssr_steps: SsrSteps = None, ssr_noise: SsrNoise = None, bf16: o.Bf16 = False,
) -> None:
    """The signature the shared options are declared in."""


_SHARED = inspect.signature(_shared, eval_str=True).parameters


def generation_command(fn):
    """`fn(shared: Shared, **own)` as a command whose options are its own, then the shared ones."""
    own = [p for name, p in inspect.signature(fn, eval_str=True).parameters.items() if name != "shared"]

    @wraps(fn)
    def command(**kwargs):
        shared = Shared(**{name: kwargs.pop(name) for name in _SHARED})
        return fn(shared, **kwargs)

    command.__signature__ = inspect.Signature([*own, *_SHARED.values()])
    return command


def register(app: typer.Typer) -> None:
    for fn in (t2v, i2v, inpaint, cinemagraph, stylize, edit, extend):
        app.command(rich_help_panel=PANEL)(handle_errors(generation_command(fn)))


def _run(task: Task, s: Shared, prompt: str | None, inputs: dict, style=None) -> None:
    """Build the requests from the command line (and --prompts), run them, report each clip."""
    from lumiere_cli import batch, jobs
    from lumiere_cli.requests import OutputSpec

    ui = UI(quiet=s.quiet, json_lines=s.json)
    common = {"negative": s.negative or None, "seed": s.seed, "steps": s.steps, "guidance": s.guidance,
              "guidance_low": s.guidance_low, "guidance_high": s.guidance_high,
              "sampler": s.sampler.value if s.sampler else None, "schedule_shift": s.schedule_shift,
              "frames": s.frames, "fps": s.fps, "base_only": s.base_only or None, "ssr_steps": s.ssr_steps,
              "ssr_noise": s.ssr_noise, "bf16": s.bf16 or None, **inputs}
    output = OutputSpec(path=s.output, out_dir=s.out_dir, format=s.format, overwrite=s.overwrite,
                        display_scale=s.display_scale, display_filter=s.display_filter.value,
                        preview=s.preview, preview_every=s.preview_every)
    if prompt is None and inputs.get("schedule"):  # --prompt-at 0:... names the first span's prompt
        first = [p for p in inputs["schedule"] if p.split(":", 1)[0].strip() == "0"]
        prompt = first[0].split(":", 1)[1] if first else None
    problems = batch.Problems()
    lines = batch.read_lines(prompt, s.prompts, problems)
    requests = batch.requests(task, lines, common, output=output, style=style, problems=problems)
    rank, world = batch.rank_and_world()
    mine = batch.mine(requests, rank, world)
    with ui.session(batch_total=len(mine)):
        outcomes = jobs.run(mine, weights=s.weights, device=s.device.value, listener=ui.listener(s.json),
                            problems=problems)
        ui.status("done")
    failures = [out.error for out in outcomes if out.error is not None]
    if failures and len(lines) == 1 and not s.prompts:
        raise failures[0]
    if failures:
        raise typer.Exit(failures[0].exit_code)


def t2v(shared: Shared, prompt: o.Prompt = None, loop: o.Loop = False, loop_style: o.LoopStyleOpt = None,
        prompt_at: o.PromptAt = None) -> None:
    """Text to video: a short clip of what PROMPT describes.

    Longer clips (--frames beyond the model's own length) are made coarse to fine: the whole clip at
    the model's length first, then the frames between. Examples:
    [bold]lumiere t2v "a red circle moving left on a black background" --seed 0[/]
    [bold]lumiere t2v "a blue square moving up" --frames 48 --loop[/]
    """
    _run(Task.t2v, shared, prompt, {"loop": loop or None, "loop_style": loop_style, "schedule": prompt_at})


def i2v(
    shared: Shared,
    prompt: o.Prompt = None,
    image: o.ImagePath = None,
    last_image: Annotated[Optional[Path], typer.Option(help="The clip's last frame: it moves from --image to this.",
                                                       show_default=False)] = None,
    keyframe: Annotated[Optional[list[str]], typer.Option(
        metavar="PATH@INDEX", help="An image the clip shows exactly at frame INDEX (repeatable; -1 = the last).",
        show_default=False)] = None,
    loop: o.Loop = False,
    loop_style: o.LoopStyleOpt = None,
    prompt_at: o.PromptAt = None,
) -> None:
    """Image to video: animate a still. Frame 0 is the image, centre-cropped to a square and resized
    (Lanczos) to the model's size; --last-image and --keyframe fix other frames too.

    Example: [bold]lumiere i2v "the circle moves right" --image still.png --last-image end.png[/]
    """
    _run(Task.i2v, shared, prompt, {"image": image, "last_image": last_image, "keyframes": keyframe,
                                    "loop": loop or None, "loop_style": loop_style, "schedule": prompt_at})


def inpaint(shared: Shared, prompt: o.Prompt = None, video: o.VideoPath = None, mask: o.MaskPath = None,
            stride: o.Stride = None, input_fps: o.InputFps = None) -> None:
    """Regenerate the masked region of a video; pixels outside the mask come back unchanged.

    The input is sampled at the model's frame rate (see --stride); the mask must be the video's
    size: white = generate, black = keep. Example:
    [bold]lumiere inpaint "a blue square" --video in.mp4 --mask mask.png[/]
    """
    _run(Task.inpaint, shared, prompt, {"video": video, "mask": mask, "stride": stride, "input_fps": input_fps})


def cinemagraph(shared: Shared, prompt: o.Prompt = None, image: o.ImagePath = None, mask: o.MaskPath = None,
                loop: o.Loop = False, loop_style: o.LoopStyleOpt = None) -> None:
    """Animate only the masked region of a still; the rest stays frozen.

    Example: [bold]lumiere cinemagraph "a circle bouncing" --image still.png --mask region.png --loop[/]
    """
    _run(Task.cinemagraph, shared, prompt, {"image": image, "mask": mask, "loop": loop or None,
                                            "loop_style": loop_style})


def stylize(
    shared: Shared,
    prompt: o.Prompt = None,
    ref: Annotated[Optional[Path], typer.Option(help="Reference image whose style to learn.", show_default=False)] = None,
    alpha: Annotated[float, typer.Option(help="Style strength: W = a*W_style + (1-a)*W_orig on spatial weights.",
                                         **o._range("alpha"))] = 0.8,
    style_steps: Annotated[int, typer.Option(help="Fine-tuning steps on the reference (cached by image hash).",
                                             **o._range("style_steps"))] = 100,
    style_weights: Annotated[Optional[Path], typer.Option(help="Reuse saved style weights (.safetensors) instead of --ref.",
                                                          show_default=False)] = None,
) -> None:
    """Stylized generation: learn the look of --ref on the spatial layers, then generate with it.

    The learned weights are cached under $XDG_CACHE_HOME/lumiere-cli/styles, keyed by the image's
    hash. Example: [bold]lumiere stylize "a red circle moving left" --ref painting.png --alpha 0.7[/]
    """
    from lumiere_cli.requests import StyleSpec

    _run(Task.stylize, shared, prompt, {},
         style=StyleSpec(ref=ref, weights=style_weights, alpha=alpha, steps=style_steps))


def edit(
    shared: Shared,
    prompt: o.Prompt = None,
    video: o.VideoPath = None,
    strength: Annotated[Optional[float], typer.Option(
        help="How much of the sampling schedule to run from the noised input: 0 returns it unchanged, "
             "1 ignores it (default 0.3: keeps the layout, takes the prompt).", **o._range("strength"),
        show_default=False)] = None,
    stride: o.Stride = None,
    input_fps: o.InputFps = None,
) -> None:
    """Video-to-video editing (SDEdit): noise the input to --strength and denoise it with PROMPT.

    Example: [bold]lumiere edit "a green triangle moving left" --video in.mp4 --strength 0.3[/]
    """
    _run(Task.edit, shared, prompt, {"video": video, "strength": strength, "stride": stride, "input_fps": input_fps})


def extend(
    shared: Shared,
    prompt: o.Prompt = None,
    video: o.VideoPath = None,
    backward: Annotated[bool, typer.Option("--backward", help="Add the new frames before the video instead of after it.")] = False,
    stride: o.Stride = None,
    input_fps: o.InputFps = None,
) -> None:
    """Continue a clip: its last frames (or first, --backward) are kept and --frames new ones follow
    (default: the model's length). The input comes back unchanged, sampled at the model's rate.

    Example: [bold]lumiere extend "a red circle moving left" --video clip.mp4 --frames 16[/]
    """
    _run(Task.extend, shared, prompt, {"video": video, "backward": backward or None, "stride": stride,
                                       "input_fps": input_fps})
