"""Which caption words does a model use? Its denoising loss on clips with their true caption against
captions with one word swapped.

A model that reads a word does worse when that word is wrong: the gap between the "true" row and a
swapped row is what the word is worth to it. Clips are translations, growing and shrinking (so the
opposite motion exists); "i2v" conditions on the first frame, where the motion word is the main
thing left to know.

    python scripts/probe_words.py [--weights DIR] [--layout t2v|i2v] [--clips 32]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace

import torch

from lumiere_cli.pixels import from_unit
from lumiere_cli.weights import load_model
from lumiere_cli.world.render import render_batch, sample_spec
from lumiere_cli.world.vocab import OPPOSITE_MOTION as OPPOSITE
from lumiere_cli.world.vocab import caption

SIGMAS = (2.0, 8.0, 30.0)


def swaps(spec):
    other_colour = "red" if spec.colour != "red" else "blue"
    return {
        "true": spec,
        "opposite motion": replace(spec, motion=OPPOSITE[spec.motion]),
        "bouncing instead": replace(spec, motion="bouncing"),
        "other colour": replace(spec, colour=other_colour),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--layout", choices=("t2v", "i2v"), default="i2v")
    ap.add_argument("--clips", type=int, default=32)
    args = ap.parse_args()
    model = load_model(args.weights, grow=True).eval()
    rng = random.Random(0)
    specs = []
    while len(specs) < args.clips:
        spec = sample_spec(rng, "train")
        if spec.motion in OPPOSITE:
            specs.append(spec)
    cfg = model.config
    x0 = from_unit(render_batch(specs, cfg.frames, cfg.size))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    known = torch.zeros(x0.shape[0], 1, *x0.shape[2:])
    if args.layout == "i2v":
        known[:, :, 0] = 1
    swapped = [swaps(s) for s in specs]
    captions = {name: [caption(row[name]) for row in swapped] for name in swapped[0]}
    captions["empty"] = [""] * len(specs)
    print(f"{args.layout}: mean denoising loss over {len(specs)} clips")
    print(f"{'caption':<17}" + "".join(f"{f'sigma {s:g}':>11}" for s in SIGMAS))
    with torch.no_grad():
        for name, caps in captions.items():
            text = model.text.encode(caps).as_kwargs()
            losses = [model.denoiser.loss(x0, torch.full((len(specs),), s), noise, cond_video=x0 * known,
                                          cond_mask=known, **text).mean().item() for s in SIGMAS]
            print(f"{name:<17}" + "".join(f"{v:>11.4f}" for v in losses), flush=True)


if __name__ == "__main__":
    main()
