"""Measuring the time commands with the world's detector (scripts/eval_time.py prints the tables).

A clip's track is the object's centre per frame, read by `world.detect` on 16-frame chunks (the
length it is calibrated on); frames without exactly one object are NaN.
"""

from __future__ import annotations

import random

import numpy as np

from .config import SampleOptions
from .pipeline import Inputs, generate
from .world.detect import detect
from .world.render import draw_spec, render
from .world.vocab import caption, parse_caption

AXIS = {"moving right": (0, 1), "moving left": (0, -1), "moving down": (1, 1), "moving up": (1, -1)}
BACKWARD = 0.03  # frame widths against the asked direction in one frame step


def track(clip: np.ndarray) -> np.ndarray:
    """(t, 2) object centres per frame (NaN without exactly one object), from 16-frame chunks."""
    return track_sizes(clip)[:, :2]


def track_sizes(clip: np.ndarray) -> np.ndarray:
    """(t, 3) the object's centre and size (the square root of the frame share it covers) per
    frame, NaN without exactly one object, from 16-frame chunks."""
    out = []
    for start in range(0, len(clip), 16):
        d = detect(clip[start:start + 16])
        pos = np.asarray(d.track, dtype=float) if d.track else np.full((len(clip[start:start + 16]), 3), np.nan)
        pos[np.asarray(d.objects) != 1] = np.nan
        out.append(pos)
    return np.concatenate(out)


def render_max_step(motion: str, n: int = 64) -> float:
    rng = random.Random(0)
    steps = []
    for _ in range(n):
        spec = draw_spec(rng, "red", "circle", motion, "black")
        clip = (render(spec, 16, 32).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
        steps.append(np.nanmax(np.abs(np.diff(track(clip), axis=0))))
    return float(np.max(steps))


def long_clip_row(model, prompt: str, motion: str, seed: int, frames: int, coarse: bool) -> dict:
    clip = generate(model, prompt, seed=seed, options=SampleOptions(frames=frames, coarse=coarse)).frames
    pos = track(clip)
    axis, sign = AXIS[motion]
    steps = np.diff(pos, axis=0)
    along = sign * steps[:, axis]
    chunks = [detect(clip[s:s + 16]) for s in range(0, frames, 16)]
    colour, shape = prompt.split()[1:3]
    return {
        "not_one_object": int(np.isnan(pos[:, 0]).sum()),
        "backward_jumps": int(np.nansum(along < -BACKWARD)),
        "max_step": float(np.nanmax(np.abs(steps))) if np.isfinite(steps).any() else float("nan"),
        "held": all(c.colour == colour and c.shape == shape for c in chunks),
    }


def largest_steps(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of neighbouring frames (t - 1,): the object's step (the larger of its x and y moves,
    in frame widths; NaN where a frame shows no single object) and the mean absolute pixel change."""
    steps, _, pixels = _steps(clip)
    return steps, pixels


def loop_row(model, prompt: str, seed: int, *, task: str = "t2v", inputs: Inputs | None = None,
             steps: int | None = None, frames: int | None = None, style: str | None = None) -> dict:
    """A `--loop` clip played round (`loop_measure`), and the largest step of the same clip made
    without --loop (`plain_step`, `plain_size`, `plain_px`). `jumps`: the loop moves or changes
    size somewhere faster than that clip does, so its seam moved rather than closed (the pixels are
    left out: a frame sampled anew changes its grain)."""
    loop = generate(model, prompt, task=task, inputs=inputs, seed=seed,
                    options=SampleOptions(loop=True, loop_style=style, steps=steps, frames=frames)).frames
    plain = generate(model, prompt, task=task, inputs=inputs, seed=seed,
                     options=SampleOptions(steps=steps, frames=frames)).frames
    row = loop_measure(loop)
    steps_, sizes, pixels = _steps(plain)
    row.update(plain_step=_nanmax(steps_), plain_size=_nanmax(sizes), plain_px=float(pixels.max()))
    row["jumps"] = bool(row["largest"] > row["plain_step"] or row["largest_size"] > row["plain_size"])
    return row


def loop_measure(clip: np.ndarray) -> dict:
    """A loop played round: the step from its last frame to its first (`wrap`) against the largest
    step between neighbours inside it (`inner`), for the object's place, its size and the pixels.
    Seamless: the wrap is no larger than the largest inner step on all three."""
    steps, sizes, pixels = _steps(np.concatenate([clip, clip[:1]]))  # the last pair is the seam
    row = {
        "wrap": float(steps[-1]), "inner": _nanmax(steps[:-1]),
        "wrap_size": float(sizes[-1]), "inner_size": _nanmax(sizes[:-1]),
        "wrap_px": float(pixels[-1]), "inner_px": float(pixels[:-1].max()),
        "largest": _nanmax(steps), "largest_size": _nanmax(sizes), "largest_px": float(pixels.max()),
        "not_one_object": int(np.isnan(track(clip)[:, 0]).sum()),
    }
    row["seamless"] = bool(row["wrap"] <= row["inner"] and row["wrap_size"] <= row["inner_size"]
                           and row["wrap_px"] <= row["inner_px"])
    return row


def _steps(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`largest_steps` and, between them, the object's change in size per pair of frames."""
    moves = np.abs(np.diff(track_sizes(clip), axis=0))
    pixels = np.abs(np.diff(clip.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))
    return moves[:, :2].max(axis=1), moves[:, 2], pixels


def _nanmax(values: np.ndarray) -> float:
    return float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")


def rendered(motion: str, seed: int, colour: str = "yellow", shape: str = "square", background: str = "gray",
             *, length: int = 16) -> tuple[str, np.ndarray]:
    """(caption, uint8 (length, 32, 32, 3)): a rendered clip of the world, drawn from `seed`, its
    path over `length` frames (32: a translation half as fast, so its first half leaves room)."""
    spec = draw_spec(random.Random(seed), colour, shape, motion, background)
    clip = (render(spec, length, 32).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
    return caption(spec), clip


def extend_row(model, prompt: str, given: np.ndarray, seed: int, *, frames: int = 16, backward: bool = False,
               steps: int | None = None) -> dict:
    """`lumiere extend` on `given`: whether the input comes back unchanged, the object's step across
    the join against the largest step inside the input and inside the new frames, and the motion
    the detector reads in the new frames."""
    out = generate(model, prompt, task="extend", inputs=Inputs(video=given, backward=backward), seed=seed,
                   options=SampleOptions(frames=frames, steps=steps)).frames
    n = len(given)
    kept, new = (out[:n], out[n:]) if not backward else (out[frames:], out[:frames])
    steps_, _ = largest_steps(out)
    join = n - 1 if not backward else frames - 1  # the pair (join, join + 1) straddles old and new
    new_steps = steps_[n:] if not backward else steps_[:frames - 1]
    return {
        "unchanged": bool(np.array_equal(kept, given)),
        "join": float(steps_[join]),
        "input_max": float(np.nanmax(largest_steps(given)[0])),
        "new_max": float(np.nanmax(new_steps)) if np.isfinite(new_steps).any() else float("nan"),
        "not_one_object": int(np.isnan(track(out)[:, 0]).sum()),
        "motion": detect(new[:16]).motion,
    }


def keyframes_row(model, prompt: str, ref: np.ndarray, seed: int, *, steps: int | None = None) -> dict:
    """i2v with the first and the last frame of `ref` given: whether both come back exactly, and
    how the clip moves between them (backward jumps against the reference's direction, the largest
    step, where the object ends up against the reference's last frame, the motion read)."""
    out = generate(model, prompt, task="i2v", inputs=Inputs(image=ref[0], keyframes={len(ref) - 1: ref[-1]}),
                   seed=seed, options=SampleOptions(steps=steps)).frames
    pos, goal = track(out), track(ref)
    direction = np.sign(goal[-1] - goal[0])  # (x, y) signs of the reference's travel
    along = np.diff(pos, axis=0) * direction
    axis = int(np.argmax(np.abs(goal[-1] - goal[0])))
    return {
        "exact": bool(np.array_equal(out[0], ref[0]) and np.array_equal(out[-1], ref[-1])),
        "backward_jumps": int(np.nansum(along[:, axis] < -BACKWARD)),
        "max_step": float(np.nanmax(np.abs(np.diff(pos, axis=0)))),
        "not_one_object": int(np.isnan(pos[:, 0]).sum()),
        "motion": detect(out).motion,
    }


def schedule_row(model, first: str, then: str, at: int, seed: int, *, frames: int = 32,
                 steps: int | None = None) -> dict:
    """A prompt schedule: `first` from frame 0, `then` from frame `at`. What the detector reads on
    the frames before and after the change, the object's step at the change against the largest
    step elsewhere, and the verdicts: both spans read as their prompts name them (`read_right`), no
    jump at the change (`continuous`), and those two with one object in every frame (`all_three`)."""
    out = generate(model, first, seed=seed, options=SampleOptions(frames=frames, steps=steps),
                   schedule=[(at, then)]).frames
    steps_, _ = largest_steps(out)
    before, after = detect(out[max(0, at - 16):at]), detect(out[at:at + 16])
    others = np.delete(steps_, at - 1)
    row = {
        "before": (before.colour, before.shape, before.motion),
        "after": (after.colour, after.shape, after.motion),
        "change_step": float(steps_[at - 1]),
        "other_max": float(np.nanmax(others)) if np.isfinite(others).any() else float("nan"),
        "not_one_object": int(np.isnan(track(out)[:, 0]).sum()),
    }
    named = [tuple(parse_caption(p)[a] for a in ("colour", "shape", "motion")) for p in (first, then)]
    row["read_right"] = (row["before"], row["after"]) == tuple(named)
    row["continuous"] = row["change_step"] <= row["other_max"]
    row["all_three"] = row["read_right"] and row["continuous"] and row["not_one_object"] == 0
    return row
