"""Measuring the time commands with the world's detector (scripts/eval_time.py prints the tables).

A clip's track is the object's centre per frame, read by `world.detect` on 16-frame chunks (the
length it is calibrated on); frames without exactly one object are NaN.
"""

from __future__ import annotations

import random

import numpy as np

from .config import SampleOptions
from .pipeline import generate
from .world.detect import detect
from .world.render import draw_spec, render

AXIS = {"moving right": (0, 1), "moving left": (0, -1), "moving down": (1, 1), "moving up": (1, -1)}
BACKWARD = 0.03  # frame widths against the asked direction in one frame step


def track(clip: np.ndarray) -> np.ndarray:
    """(t, 2) object centres per frame (NaN without exactly one object), from 16-frame chunks."""
    out = []
    for start in range(0, len(clip), 16):
        d = detect(clip[start:start + 16])
        pos = np.asarray(d.track, dtype=float)[:, :2] if d.track else np.full((len(clip[start:start + 16]), 2), np.nan)
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
