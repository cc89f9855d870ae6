"""Options shared by several commands, defined once as `Annotated` aliases.

Nothing heavy is imported here: `lumiere --help` builds every command's signature from this module.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

SAMPLING = "Sampling"
OUTPUT = "Output"
BATCH = "Batch and scripting"
MODEL = "Model"


class Sampler(str, Enum):
    ddim = "ddim"
    dpmpp_2m = "dpmpp-2m"


class Format(str, Enum):
    mp4 = "mp4"
    gif = "gif"
    webp = "webp"
    png = "png"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DisplayFilter(str, Enum):
    nearest = "nearest"
    lanczos = "lanczos"


# ------------------------------------------------------------------ arguments
Prompt = Annotated[
    Optional[str],
    typer.Argument(help="What the video shows. Leave out when using --prompts.", show_default=False),
]
ImagePath = Annotated[
    Path, typer.Option("--image", "-i", help="Still image (centre-cropped to a square, then resized).", show_default=False)
]
VideoPath = Annotated[Path, typer.Option("--video", "-v", help="Input video: mp4, gif, webp or a folder of PNGs.", show_default=False)]
MaskPath = Annotated[
    Path,
    typer.Option(
        "--mask", "-m",
        help="White = generate, black = keep. An image applies to every frame; a video gives one mask per frame.",
        show_default=False,
    ),
]

# ------------------------------------------------------------------ sampling
Seed = Annotated[
    Optional[int],
    typer.Option(help="Random seed; random when left out and always reported. Batch item i uses seed+i.",
                 min=0, max=2**63 - 1, rich_help_panel=SAMPLING, show_default=False),
]
Steps = Annotated[
    Optional[int],
    typer.Option(help="Denoising steps (default: the model's recommendation).", min=1, max=1000,
                 rich_help_panel=SAMPLING, show_default=False),
]
Guidance = Annotated[
    Optional[float],
    typer.Option(help="Classifier-free guidance scale; 1 turns it off (default: the model's).", min=0.0, max=50.0,
                 rich_help_panel=SAMPLING, show_default=False),
]
Negative = Annotated[str, typer.Option(help="What the video should not show.", rich_help_panel=SAMPLING)]
SamplerOpt = Annotated[
    Optional[Sampler], typer.Option("--sampler", help="Sampler (default: the model's, see `lumiere info`).", rich_help_panel=SAMPLING, show_default=False)
]
ScheduleShift = Annotated[
    Optional[float],
    typer.Option(help="Noise schedule shift: higher spends more steps at high noise (layout and motion), "
                      "lower more at low noise (edges) (default: the model's).",
                 min=0.05, max=20.0, rich_help_panel=SAMPLING, show_default=False),
]
Frames = Annotated[
    Optional[int],
    typer.Option(help="Frames to generate; a multiple of the model's temporal factor (default: the model's).",
                 min=1, max=4096, rich_help_panel=SAMPLING, show_default=False),
]
Fps = Annotated[
    Optional[float],
    typer.Option(help="Playback rate of the written file (default: the model's).", min=0.1, max=240.0,
                 rich_help_panel=SAMPLING, show_default=False),
]

# ------------------------------------------------------------------ model
Weights = Annotated[
    Optional[Path],
    typer.Option(help="Weights directory or .safetensors file (default: $LUMIERE_WEIGHTS or the shipped weights/).",
                 rich_help_panel=MODEL, show_default=False),
]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to run.", rich_help_panel=MODEL)]

# ------------------------------------------------------------------ output
Output = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Output file (one clip only). Its suffix picks the format unless --format is given.",
                 rich_help_panel=OUTPUT, show_default=False),
]
OutDir = Annotated[Path, typer.Option("--out-dir", help="Directory for default-named outputs.", rich_help_panel=OUTPUT)]
FormatOpt = Annotated[
    Optional[Format],
    typer.Option("--format", "-f", help="mp4 (H.264), gif, webp, or png (a folder of frames) (default: mp4).",
                 rich_help_panel=OUTPUT, show_default=False),
]
DisplayScale = Annotated[
    int,
    typer.Option(help="Enlarge the written clip by this integer factor for viewing; 0 = enough to reach 256 px (png frames: 1).",
                 min=0, max=64, rich_help_panel=OUTPUT),
]
DisplayFilterOpt = Annotated[
    DisplayFilter, typer.Option("--display-filter", help="How to enlarge: nearest keeps pixels crisp.", rich_help_panel=OUTPUT)
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.", rich_help_panel=OUTPUT)]

# ------------------------------------------------------------------ batch and scripting
Prompts = Annotated[
    Optional[Path],
    typer.Option("--prompts", help="File of prompts, one per line ('-' = stdin; blank and # lines skipped), "
                 "or JSONL with per-item overrides.", rich_help_panel=BATCH, show_default=False),
]
Json = Annotated[bool, typer.Option("--json", help="One JSON object per output on stdout; logs go to stderr.", rich_help_panel=BATCH)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.", rich_help_panel=BATCH)]
