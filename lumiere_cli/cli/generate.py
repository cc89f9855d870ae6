"""Generation and editing commands. Each one only gathers its arguments and hands them to runner.run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lumiere_cli.cli import options as o
from lumiere_cli.cli.ui import handle_errors

PANEL = "Generate and edit"


def register(app: typer.Typer) -> None:
    for fn in (t2v, i2v, inpaint, cinemagraph, stylize, edit):
        app.command(rich_help_panel=PANEL)(handle_errors(fn))


def _run(task, prompt, values):
    from lumiere_cli.cli.runner import Common, run

    run(task, prompt, Common.pick(values))


def t2v(
    prompt: o.Prompt = None,
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = o.DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Text to video: a short clip of what PROMPT describes.

    Example: [bold]lumiere t2v "a red circle moving left on a black background" --seed 0[/]
    """
    from lumiere_cli.cli.runner import Task

    _run(Task("t2v"), prompt, locals())


def i2v(
    prompt: o.Prompt = None,
    image: o.ImagePath = ...,
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = o.DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Image to video: animate a still. Frame 0 is the image, centre-cropped to a square and resized
    (Lanczos) to the model's size.

    Example: [bold]lumiere i2v "the circle moves right" --image still.png[/]
    """
    from lumiere_cli.cli.runner import Task

    _run(Task("i2v", image=image), prompt, locals())


def inpaint(
    prompt: o.Prompt = None,
    video: o.VideoPath = ..., mask: o.MaskPath = ...,
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = o.DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Regenerate the masked region of a video; pixels outside the mask come back unchanged.

    The mask must be the video's size: white = generate, black = keep. Example:
    [bold]lumiere inpaint "a blue square" --video in.mp4 --mask mask.png[/]
    """
    from lumiere_cli.cli.runner import Task

    _run(Task("inpaint", video=video, mask=mask), prompt, locals())


def cinemagraph(
    prompt: o.Prompt = None,
    image: o.ImagePath = ..., mask: o.MaskPath = ...,
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = o.DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Animate only the masked region of a still; the rest stays frozen.

    Example: [bold]lumiere cinemagraph "a circle bouncing" --image still.png --mask region.png[/]
    """
    from lumiere_cli.cli.runner import Task

    _run(Task("cinemagraph", image=image, mask=mask), prompt, locals())


def stylize(
    prompt: o.Prompt = None,
    ref: Annotated[Optional[Path], typer.Option(help="Reference image whose style to learn.", show_default=False)] = None,
    alpha: Annotated[float, typer.Option(help="Style strength: W = a*W_style + (1-a)*W_orig on spatial weights.",
                                         min=0.0, max=1.0)] = 0.8,
    style_steps: Annotated[int, typer.Option(help="Fine-tuning steps on the reference (cached by image hash).",
                                             min=1, max=100_000)] = 100,
    style_weights: Annotated[Optional[Path], typer.Option(help="Reuse saved style weights (.safetensors) instead of --ref.",
                                                          show_default=False)] = None,
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = o.DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Stylized generation: learn the look of --ref on the spatial layers, then generate with it.

    The learned weights are cached under $XDG_CACHE_HOME/lumiere-cli/styles, keyed by the image's
    hash. Example: [bold]lumiere stylize "a red circle moving left" --ref painting.png --alpha 0.7[/]
    """
    from lumiere_cli.cli.runner import Task
    from lumiere_cli.errors import UsageError

    if (ref is None) == (style_weights is None):
        raise UsageError("give exactly one of --ref IMAGE or --style-weights FILE")
    _run(Task("stylize", ref=ref, alpha=alpha, style_steps=style_steps, style_weights=style_weights),
         prompt, locals())


def edit(
    prompt: o.Prompt = None,
    video: o.VideoPath = ...,
    strength: Annotated[float, typer.Option(help="How far to move from the input: 0 keeps it, 1 ignores it.",
                                            min=0.0, max=1.0)] = 0.6,
    seed: o.Seed = None, steps: o.Steps = None, guidance: o.Guidance = None, negative: o.Negative = "",
    sampler: o.SamplerOpt = None, schedule_shift: o.ScheduleShift = None, frames: o.Frames = None,
    fps: o.Fps = None,
    output: o.Output = None, out_dir: o.OutDir = Path("."), format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0, display_filter: o.DisplayFilterOpt = o.DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    prompts: o.Prompts = None, json: o.Json = False, quiet: o.Quiet = False,
    weights: o.Weights = None, device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Video-to-video editing (SDEdit): noise the input to --strength and denoise it with PROMPT.

    Example: [bold]lumiere edit "a green triangle moving left" --video in.mp4 --strength 0.6[/]
    """
    from lumiere_cli.cli.runner import Task

    _run(Task("edit", video=video, strength=strength), prompt, locals())
