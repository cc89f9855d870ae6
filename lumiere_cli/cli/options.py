"""Options shared by several commands, defined once as `Annotated` aliases.

Nothing heavy is imported here: `lumiere --help` builds every command's signature from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lumiere_cli.choices import Device, DisplayFilter, Format, LoopStyle, Sampler
from lumiere_cli.limits import LIMITS

SAMPLING = "Sampling"
OUTPUT = "Output"
BATCH = "Batch and scripting"
MODEL = "Model"


def _range(name: str) -> dict:
    """typer's min/max for a number, from the one limits table."""
    rule = LIMITS[name]
    return {"min": rule.lo, "max": rule.hi}


def _number(name: str, help: str, panel: str | None = None):
    """An optional number option whose range is the limits table's."""
    return Annotated[Optional[LIMITS[name].kind],
                     typer.Option(help=help, **_range(name), rich_help_panel=panel, show_default=False)]


# ------------------------------------------------------------------ arguments
Prompt = Annotated[
    Optional[str],
    typer.Argument(help="What the video shows. Leave out when using --prompts.", show_default=False),
]
ImagePath = Annotated[
    Optional[Path],
    typer.Option("--image", "-i", help="Still image, shown as a viewer shows it (EXIF orientation applied), "
                 "centre-cropped to a square, then resized. Required unless every --prompts item names one.",
                 show_default=False),
]
VideoPath = Annotated[
    Optional[Path],
    typer.Option("--video", "-v", help="Input video: mp4/mov/mkv/webm, gif, webp or a folder of PNGs. "
                 "Required unless every --prompts item names one.", show_default=False),
]
MaskPath = Annotated[
    Optional[Path],
    typer.Option(
        "--mask", "-m",
        help="White = generate, black = keep (or, for a mask drawn on transparency, opaque = generate). "
             "An image applies to every frame; a video gives one mask per frame.",
        show_default=False,
    ),
]
Stride = _number(
    "stride",
    "Use every Nth frame of the input video instead of sampling its timeline at the model's "
    "frame rate (1 = every frame: the clip plays slower than the input).",
)
InputFps = _number(
    "input_fps",
    "The input video's own frame rate, when its file gives none or a wrong one "
    "(a PNG folder: 8 unless its metadata says).",
)

Bf16 = Annotated[bool, typer.Option(
    "--bf16", help="Sample in bf16 where the hardware runs it natively (GPUs, CPUs with AMX or AVX512-BF16), "
    "else fp32 as without it: faster for batches there, the same clips up to rounding (recorded in the clip).",
    rich_help_panel=SAMPLING)]
Loop = Annotated[bool, typer.Option("--loop", help="A seamless loop: the last frame flows into the first (and "
                                    "gif/webp/mp4 play on repeat). See --loop-style.")]
LoopStyleOpt = Annotated[Optional[LoopStyle], typer.Option(
    "--loop-style", help="How the loop closes (implies --loop): pingpong plays the clip there and back, so the seam "
    "is a step of the clip itself; round wraps windows around the end, so the motion may carry on through it, but "
    "it can jump (README, Time). Default: pingpong, round with --prompt-at.", show_default=False)]
PromptAt = Annotated[
    Optional[list[str]],
    typer.Option("--prompt-at", metavar="FRAME:PROMPT", help="What the clip shows from FRAME on (repeatable), e.g. "
                 "--prompt-at 16:\"a red circle moving up\"; PROMPT holds from frame 0. Each span starts from the frame "
                 "before it.",
                 show_default=False),
]

# ------------------------------------------------------------------ sampling
Seed = _number("seed", "Random seed; random when left out and always reported. Batch item i uses seed+i.", SAMPLING)
Steps = _number("steps", "Denoising steps (default: the model's recommendation). At a step count the model has "
                "tuned noise levels for (`lumiere info`), those are used unless --schedule-shift is given.", SAMPLING)
Guidance = _number("guidance", "Classifier-free guidance scale; 1 turns it off (default: the model's).", SAMPLING)
GuidanceLow = _number(
    "guidance_low",
    "Guidance scale at low noise (sigma below 1), where edges and colours are drawn (default: the model's "
    "with its default --guidance, else --guidance).",
    SAMPLING,
)
GuidanceHigh = _number(
    "guidance_high",
    "Guidance scale at high noise (sigma above 5), the first steps, where the background is decided "
    "(default: the model's with its default --guidance, else --guidance).",
    SAMPLING,
)
Negative = Annotated[str, typer.Option(help="What the video should not show.", rich_help_panel=SAMPLING)]
SamplerOpt = Annotated[
    Optional[Sampler], typer.Option("--sampler", help="Sampler (default: the model's, see `lumiere info`).", rich_help_panel=SAMPLING, show_default=False)
]
ScheduleShift = _number(
    "schedule_shift",
    "Noise schedule shift: higher spends more steps at high noise (layout and motion), "
    "lower more at low noise (edges) (default: the model's; given, it replaces the model's tuned levels).",
    SAMPLING,
)
Frames = _number(
    "frames",
    "Frames to generate; a multiple of the model's temporal factor (default: the model's).",
    SAMPLING,
)
Fps = _number(
    "fps",
    "Playback rate of the written file (default: the model's; edit and inpaint: the rate the "
    "input was sampled at).",
    SAMPLING,
)

# ------------------------------------------------------------------ model
Weights = Annotated[
    Optional[Path],
    typer.Option(help="Weights: a .safetensors file, its folder, or a training run's folder "
                      "(default: $LUMIERE_WEIGHTS, else the shipped weights).",
                 rich_help_panel=MODEL, show_default=False),
]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to run.", rich_help_panel=MODEL)]

# ------------------------------------------------------------------ output
Output = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Output file (one clip only): .mp4, .gif or .webp, or no suffix for a folder "
                 "of PNG frames. Never replaces anything without --overwrite.",
                 rich_help_panel=OUTPUT, show_default=False),
]
OutDir = Annotated[Path, typer.Option("--out-dir", help="Directory for default-named outputs.", rich_help_panel=OUTPUT)]
FormatOpt = Annotated[
    Optional[Format],
    typer.Option("--format", "-f", help="mp4 (H.264), gif, webp, or png (a folder of frames) for default names "
                 "(default: mp4); with -o it must agree with the name's suffix.",
                 rich_help_panel=OUTPUT, show_default=False),
]
DisplayScale = Annotated[
    int,
    typer.Option(help="Enlarge the written clip by this integer factor for viewing; 0 = enough to reach 256 px (png frames: 1).",
                 **_range("display_scale"), rich_help_panel=OUTPUT),
]
DisplayFilterOpt = Annotated[
    DisplayFilter, typer.Option("--display-filter", help="How to enlarge: nearest keeps pixels crisp.", rich_help_panel=OUTPUT)
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an existing output, but only a clip this tool wrote "
                 "(a file of the output's format, or its own frame folder); anything else is refused.",
                 rich_help_panel=OUTPUT),
]

Preview = Annotated[
    Optional[Path],
    typer.Option("--preview", help="Rewrite this file (.mp4/.gif/.webp, or a folder) with the current estimate of "
                 "the clip while it is sampled, so a long run can be stopped early.", rich_help_panel=OUTPUT,
                 show_default=False),
]
PreviewEvery = Annotated[int, typer.Option(help="Steps between previews.", **_range("preview_every"), rich_help_panel=OUTPUT)]

# ------------------------------------------------------------------ batch and scripting
Prompts = Annotated[
    Optional[Path],
    typer.Option("--prompts", help="File of prompts, one per line ('-' = stdin; blank and # lines skipped), "
                 "or JSON lines with per-item settings; every line is checked before anything is generated.",
                 rich_help_panel=BATCH, show_default=False),
]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per output on stdout; logs go to stderr.", rich_help_panel=BATCH)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.", rich_help_panel=BATCH)]
