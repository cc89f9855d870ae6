"""The time commands measured with the world's detector, on the model's own clips.

- long: `--frames N` clips of a translation, made by independent averaged windows (`coarse=False`)
  and coarse to fine (the default): frames without exactly one object, backward jumps (a step of
  more than 0.03 frame widths against the caption's direction), the largest step against the
  largest a rendered trained-length clip takes, and whether every 16-frame chunk shows the asked
  colour and shape.
- loop: the step from the last frame to the first against the largest step between neighbours.
- extend: the step across the join against the largest step inside the input.
- keyframes: frames given to i2v come back exactly.

    .venv/bin/python scripts/eval_time.py [--weights W] [--seeds 1,2,3] [--frames 48]
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from lumiere_cli.config import SampleOptions
from lumiere_cli.eval_time import long_clip_row, render_max_step, track
from lumiere_cli.pipeline import Inputs, generate
from lumiere_cli.weights import load_model
from lumiere_cli.world.detect import detect
from lumiere_cli.world.render import draw_spec, render
from lumiere_cli.world.vocab import caption

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--motions", default="moving right,moving left,moving up,moving down")
    ap.add_argument("--parts", default="long,loop,extend,keyframes")
    ap.add_argument("--modes", default="windows,coarse", help="long clips: independent windows, coarse to fine")
    args = ap.parse_args()
    parts = args.parts.split(",")
    model = load_model(args.weights)
    seeds = [int(s) for s in args.seeds.split(",")]

    if "long" in parts:
        long_clips(model, args.motions.split(","), seeds, args.frames, args.modes.split(","))
    if "loop" in parts:
        loops(model, seeds)
    if "extend" in parts or "keyframes" in parts:
        joins(model, seeds, parts)


def long_clips(model, motions: list[str], seeds: list[int], frames: int, modes: list[str]) -> None:
    print(f"## long clips ({frames} frames)")
    print("motion | mode | seed | frames without one object | backward jumps | max step (render max) | colour+shape held")
    print("---|---|---|---|---|---|---")
    for motion in motions:
        prompt = f"a green circle {motion} on a black background"
        limit = render_max_step(motion)
        for coarse in [mode == "coarse" for mode in modes]:
            for seed in seeds:
                row = long_clip_row(model, prompt, motion, seed, frames, coarse)
                print(f"{motion} | {'coarse-to-fine' if coarse else 'windows'} | {seed} | {row['not_one_object']} | "
                      f"{row['backward_jumps']} | {row['max_step']:.3f} ({limit:.3f}) | {row['held']}", flush=True)


def loops(model, seeds: list[int]) -> None:
    print("\n## loops (16 frames)")
    print("prompt | seed | last->first step | largest neighbour step")
    print("---|---|---|---")
    for prompt in ("a red circle bouncing on a black background", "a blue square moving right on a white background"):
        for seed in seeds:
            clip = generate(model, prompt, seed=seed, options=SampleOptions(loop=True)).frames
            pos = track(clip)
            inner = np.nanmax(np.abs(np.diff(pos, axis=0)))
            wrap = np.nanmax(np.abs(pos[0] - pos[-1]))
            print(f"{prompt} | {seed} | {wrap:.3f} | {inner:.3f}", flush=True)


def joins(model, seeds: list[int], parts: list[str]) -> None:
    rng = random.Random(0)
    if "extend" in parts:
        extends(model, seeds, rng)
    if "keyframes" in parts:
        keyframes(model, seeds, rng)


def extends(model, seeds: list[int], rng) -> None:
    print("\n## extend (16 new frames after a 16-frame clip)")
    print("seed | step across the join | largest step in the input | input unchanged | motion of the new frames")
    print("---|---|---|---|---")
    for seed in seeds:
        spec = draw_spec(rng, "yellow", "square", "moving right", "gray")
        given = (render(spec, 16, 32).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
        out = generate(model, caption(spec), task="extend", inputs=Inputs(video=given), seed=seed,
                       options=SampleOptions(frames=16)).frames
        pos = track(out)
        join = np.nanmax(np.abs(pos[16] - pos[15]))
        inner = np.nanmax(np.abs(np.diff(track(given), axis=0)))
        print(f"{seed} | {join:.3f} | {inner:.3f} | {np.array_equal(out[:16], given)} | {detect(out[16:]).motion}",
              flush=True)


def keyframes(model, seeds: list[int], rng) -> None:
    print("\n## keyframes (i2v, first and last frame given)")
    print("seed | frames given come back exactly | detector on the clip")
    print("---|---|---")
    for seed in seeds:
        spec = draw_spec(rng, "red", "triangle", "moving right", "black")
        ref = (render(spec, 16, 32).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
        out = generate(model, caption(spec), task="i2v", inputs=Inputs(image=ref[0], keyframes={15: ref[15]}),
                       seed=seed).frames
        d = detect(out)
        print(f"{seed} | {np.array_equal(out[0], ref[0]) and np.array_equal(out[15], ref[15])} | "
              f"{d.colour} {d.shape} {d.motion}", flush=True)


if __name__ == "__main__":
    main()
