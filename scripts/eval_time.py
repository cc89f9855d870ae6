"""The time commands measured with the world's detector, on the model's own clips.

- long: `--frames N` clips of a translation, made by independent averaged windows (`coarse=False`)
  and coarse to fine (the default): frames without exactly one object, backward jumps (a step of
  more than 0.03 frame widths against the caption's direction), the largest step against the
  largest a rendered trained-length clip takes, and whether every 16-frame chunk shows the asked
  colour and shape.
- loop: `--loop` clips of t2v, i2v and cinemagraph (the image: a render's first frame; the mask:
  the whole frame) in each loop style, played round. Seamless: the step from the last frame to the
  first no larger than the largest between neighbours, for the object's place, its size and the
  mean pixel change. Jumps: a move or change of size anywhere larger than the same seed's clip
  made without --loop takes (the seam moved, not closed). Both: seamless, no jump, one object in every frame.
- extend: whether the input comes back unchanged; the step across the join against the largest
  step inside the input and inside the new frames; the motion the new frames show.
- keyframes: whether the frames given to i2v come back exactly; backward jumps, the largest step
  and the motion between them.
- schedule: what the detector reads before and after a prompt change (a motion, then a colour), and
  the step at the change against the largest step elsewhere.

    .venv/bin/python scripts/eval_time.py [--weights W] [--seeds 1,2,3] [--frames 48]
"""

from __future__ import annotations

import argparse


import numpy as np

from lumiere_cli.eval_time import (extend_row, keyframes_row, long_clip_row, loop_row, render_max_step, rendered,
                                   schedule_row)
from lumiere_cli.pipeline import Inputs
from lumiere_cli.weights import load_model

# README's loop prompts: (motion, colour, shape, background).
LOOP_PROMPTS = (("bouncing", "red", "circle", "black"), ("growing", "green", "square", "gray"),
                ("moving up", "blue", "triangle", "white"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--motions", default="moving right,moving left,moving up,moving down")
    ap.add_argument("--parts", default="long,loop,extend,keyframes,schedule")
    ap.add_argument("--modes", default="windows,coarse", help="long clips: independent windows, coarse to fine")
    ap.add_argument("--loop-tasks", default="t2v,i2v,cinemagraph")
    ap.add_argument("--loop-styles", default="pingpong,round")
    args = ap.parse_args()
    parts = args.parts.split(",")
    model = load_model(args.weights)
    seeds = [int(s) for s in args.seeds.split(",")]

    if "long" in parts:
        long_clips(model, args.motions.split(","), seeds, args.frames, args.modes.split(","))
    if "loop" in parts:
        loops(model, seeds, args.loop_tasks.split(","), args.loop_styles.split(","))
    if {"extend", "keyframes", "schedule"} & set(parts):
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


def loops(model, seeds: list[int], tasks: list[str], styles: list[str]) -> None:
    print("\n## loops (16 frames, played round)")
    print("task | style | prompt | seed | last->first step (largest inner) | size | pixels | largest step (without "
          "--loop) | largest size change (without --loop) | frames without one object | seamless | jumps")
    print("---|---|---|---|---|---|---|---|---|---|---|---")
    for task in tasks:
        for style in styles:
            seamless = jumps = both = 0
            for motion, colour, shape, background in LOOP_PROMPTS:
                for seed in seeds:
                    prompt, ref = rendered(motion, seed, colour, shape, background)
                    inputs = None if task == "t2v" else Inputs(
                        image=ref[0], generate_region=np.ones(ref.shape[1:3], np.float32) if task == "cinemagraph" else None)
                    r = loop_row(model, prompt, seed, task=task, inputs=inputs, style=style)
                    seamless, jumps = seamless + r["seamless"], jumps + r["jumps"]
                    both += r["seamless"] and not r["jumps"] and r["not_one_object"] == 0
                    print(f"{task} | {style} | {motion} | {seed} | {r['wrap']:.3f} ({r['inner']:.3f}) | "
                          f"{r['wrap_size']:.3f} ({r['inner_size']:.3f}) | {r['wrap_px']:.1f} ({r['inner_px']:.1f}) | "
                          f"{r['largest']:.3f} ({r['plain_step']:.3f}) | {r['largest_size']:.3f} ({r['plain_size']:.3f}) | "
                          f"{r['not_one_object']} | {r['seamless']} | "
                          f"{r['jumps']}", flush=True)
            n = len(LOOP_PROMPTS) * len(seeds)
            print(f"**{task} {style}: seamless {seamless}/{n}, with a jump {jumps}/{n}, seamless without a jump "
                  f"and one object throughout {both}/{n}**", flush=True)


def joins(model, seeds: list[int], parts: list[str]) -> None:
    if "extend" in parts:
        extends(model, seeds)
    if "keyframes" in parts:
        keyframes(model, seeds)
    if "schedule" in parts:
        schedules(model, seeds)


def extends(model, seeds: list[int]) -> None:
    print("\n## extend (16 new frames beside the first or last half of a rendered 'moving right', 16 frames)")
    print("direction | seed | input unchanged | step across the join | largest step in the input | "
          "largest step in the new frames | frames without one object | motion of the new frames")
    print("---|---|---|---|---|---|---|---")
    for seed in seeds:
        prompt, full = rendered("moving right", seed, length=32)
        for backward in (False, True):
            r = extend_row(model, prompt, full[16:] if backward else full[:16], seed, backward=backward)
            print(f"{'backward' if backward else 'forward'} | {seed} | {r['unchanged']} | {r['join']:.3f} | "
                  f"{r['input_max']:.3f} | {r['new_max']:.3f} | {r['not_one_object']} | {r['motion']}", flush=True)


def keyframes(model, seeds: list[int]) -> None:
    print("\n## keyframes (i2v, the first and last frame of a rendered 'a red triangle moving right' given)")
    print("seed | given frames back exactly | backward jumps | largest step (render max) | "
          "frames without one object | motion read")
    print("---|---|---|---|---|---")
    limit = render_max_step("moving right")
    for seed in seeds:
        prompt, ref = rendered("moving right", seed, "red", "triangle", "black")
        r = keyframes_row(model, prompt, ref, seed)
        print(f"{seed} | {r['exact']} | {r['backward_jumps']} | {r['max_step']:.3f} ({limit:.3f}) | "
              f"{r['not_one_object']} | {r['motion']}", flush=True)


SCHEDULES = [("a red circle moving left on a black background", "a red circle moving up on a black background"),
             ("a red circle moving right on a black background", "a blue circle moving right on a black background")]


def schedules(model, seeds: list[int]) -> None:
    print("\n## prompt schedules (32 frames, the second prompt from frame 16)")
    print("prompts | seed | read on 0-15 | read on 16-31 | step at the change | largest step elsewhere | "
          "frames without one object")
    print("---|---|---|---|---|---|---")
    totals = {}
    for first, then in SCHEDULES:
        name = ' / '.join(p.split(' on ')[0] for p in (first, then))
        rows = []
        for seed in seeds:
            r = schedule_row(model, first, then, 16, seed)
            rows.append(r)
            print(f"{name} | {seed} | {' '.join(map(str, r['before']))} | "
                  f"{' '.join(map(str, r['after']))} | {r['change_step']:.3f} | {r['other_max']:.3f} | "
                  f"{r['not_one_object']}", flush=True)
        totals[name] = rows
    print("\nprompts | both spans read right | step at the change <= the largest elsewhere | "
          "frames without one object | all three")
    print("---|---|---|---|---")
    for name, rows in totals.items():
        n = len(rows)
        print(f"{name} | {sum(r['read_right'] for r in rows)} of {n} | {sum(r['continuous'] for r in rows)} of {n} | "
              f"{sum(r['not_one_object'] for r in rows)}, in {sum(r['not_one_object'] > 0 for r in rows)} clips | "
              f"{sum(r['all_three'] for r in rows)} of {n}")


if __name__ == "__main__":
    main()
