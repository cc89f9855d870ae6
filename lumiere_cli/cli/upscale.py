"""`lumiere upscale`: the cascade's super-resolution stage alone, on any clip; and the options the
generation commands take for that stage (declared once here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lumiere_cli.choices import DisplayFilter
from lumiere_cli.cli import options as o
from lumiere_cli.cli.ui import UI, handle_errors

PANEL = "Generate and edit"
CASCADE = "Super-resolution"

BaseOnly = Annotated[bool, typer.Option(
    "--base-only", help="Skip the super-resolution stage: the base model's clip at its own size.",
    rich_help_panel=CASCADE)]
SsrSteps = Annotated[Optional[int], typer.Option(
    "--ssr-steps", help="Denoising steps of the super-resolution stage (default: its recommendation).",
    min=1, max=1000, rich_help_panel=CASCADE, show_default=False)]
SsrNoise = Annotated[Optional[float], typer.Option(
    "--ssr-noise", help="Noise added to the low-res clip before it is enlarged: higher repairs soft edges "
    "and grain, lower keeps closer to the input (default: the model's).",
    min=0.0, max=1.0, rich_help_panel=CASCADE, show_default=False)]

SsrTile = Annotated[Optional[int], typer.Option(
    "--ssr-tile", help="Enlarge frames larger than this many output pixels a side in overlapping tiles of "
    "that size, averaged at every step, so memory grows with the tile (default: 128 px tiles for frames over "
    "256 px); 0: whole frames.",
    min=0, max=4096, rich_help_panel=CASCADE, show_default=False)]


Prompt = Annotated[Optional[str], typer.Argument(help="What the clip shows (optional).", show_default=False)]
Video = Annotated[Optional[Path], typer.Option("--video", "-v", help="The clip to enlarge: mp4/mov/mkv/webm, gif, "
                                               "webp or a folder of PNGs.", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(handle_errors(upscale))


def upscale(
    prompt: Prompt = None,
    video: Video = None,
    seed: o.Seed = None,
    ssr_steps: SsrSteps = None,
    ssr_noise: SsrNoise = None,
    ssr_tile: SsrTile = None,
    size: Annotated[Optional[int], typer.Option(
        "--size", help="Fit the clip to this many pixels a side before enlarging it (default: the model's input "
        "size, 32 for the shipped one); larger frames than 256 px out are enlarged in tiles (--ssr-tile).",
        **o._range("upscale_size"), rich_help_panel=CASCADE, show_default=False)] = None,
    frames: Annotated[Optional[int], typer.Option(help="Enlarge at most this many frames (default: the whole clip).",
                                                  **o._range("frames"), rich_help_panel=o.SAMPLING,
                                                  show_default=False)] = None,
    stride: o.Stride = None,
    input_fps: o.InputFps = None,
    fps: o.Fps = None,
    output: o.Output = None,
    out_dir: o.OutDir = Path("."),
    format: o.FormatOpt = None,
    display_scale: o.DisplayScale = 0,
    display_filter: o.DisplayFilterOpt = DisplayFilter.nearest,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
    weights: o.Weights = None,
    device: o.DeviceOpt = o.Device.auto,
) -> None:
    """Enlarge a clip with the super-resolution model alone (4x for the shipped one: 32 -> 128).

    The video is read at the model's frame rate, centre-cropped to a square and resized to the
    model's input size (--size: another); PROMPT (optional) says what it shows. --weights: an SSR file, or a folder
    holding ssr.safetensors. Example: [bold]lumiere upscale --video small.mp4 "a red circle"[/]
    """
    from lumiere_cli.cascade.options import SSROptions
    from lumiere_cli.cascade.run import UpscaleJob, run_upscale
    from lumiere_cli.errors import UsageError
    from lumiere_cli.requests import OutputSpec

    if video is None:
        raise UsageError("upscale needs --video PATH")
    ui = UI(quiet=quiet, json_lines=json)
    job = UpscaleJob(video=video, prompt=" ".join((prompt or "").split()), seed=seed,
                     options=SSROptions(steps=ssr_steps, noise=ssr_noise, tile=ssr_tile), frames=frames, stride=stride,
                     input_fps=input_fps, fps=fps, size=size,
                     output=OutputSpec(path=output, out_dir=out_dir, format=format, overwrite=overwrite,
                                       display_scale=display_scale, display_filter=display_filter.value))
    with ui.session():
        outcome = run_upscale(job, weights=weights, device=device.value, listener=ui.listener(False))
        ui.status("done")
    if json:
        ui.emit(outcome.record())
