"""A PNG contact sheet: one row per prompt, the clip's frames left to right (for eyeballing a model).

    python scripts/preview.py --weights runs/shapes/video/weights --out preview.png [--steps 25]
"""

from __future__ import annotations

import argparse

import numpy as np
from einops import rearrange
from PIL import Image

from lumiere_cli.config import SampleOptions
from lumiere_cli.pipeline import generate
from lumiere_cli.weights import load_model

PROMPTS = [
    "a red circle moving left on a black background",
    "a blue square moving up on a white background",
    "a green triangle growing on a gray background",
    "a yellow circle bouncing on a black background",
    "a purple square shrinking on a white background",
    "an orange triangle moving right on a gray background",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", default="preview.png")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--scale", type=int, default=3)
    args = ap.parse_args()
    model = load_model(args.weights, grow=True)  # a t2i-stage output may predate newer temporal layers
    rows = []
    for i, prompt in enumerate(PROMPTS):
        res = generate(model, prompt, options=SampleOptions(steps=args.steps, guidance=args.guidance), seed=i)
        rows.append(res.frames)
    sheet = rearrange(np.stack(rows), "p t h w c -> (p h) (t w) c")
    Image.fromarray(sheet).resize((sheet.shape[1] * args.scale, sheet.shape[0] * args.scale), Image.NEAREST).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
