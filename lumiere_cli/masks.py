"""Random <C, M> layouts for training, so one model serves every command (docs/DESIGN.md §2).

Axis legend: b batch, t frames, h height, w width. M = 1 where the conditioning video is known.
"""

from __future__ import annotations

import torch
from einops import rearrange

# Shares of each layout during video training: none (text-to-video), first frame (image-to-video),
# a box regenerated on every frame (inpainting), frame 0 plus the outside of a box (cinemagraph).
VIDEO_LAYOUTS = {"none": 0.4, "first_frame": 0.2, "inpaint": 0.2, "cinemagraph": 0.2}
# Single frames: only "none" and "inpaint" mean anything without time.
IMAGE_LAYOUTS = {"none": 0.6, "inpaint": 0.4}
# Layouts along time too, for what the time commands ask of a model: some whole frames known and the
# rest generated. "keyframes": every k-th frame (k = 2-5) and the last (a long clip's fine pass, and
# --keyframe); "prefix"/"suffix": the first/last 2-t/2 frames (extend forward/backward); "ends": the
# first and the last frame (i2v --last-image); "ring": the first and last 1-t/4 frames, half the
# time with one frame between them known too (a loop's seam window: the kept frames at its ends,
# an i2v loop's image in its middle).
TIME_LAYOUTS = {"none": 0.3, "first_frame": 0.1, "inpaint": 0.1, "cinemagraph": 0.1, "keyframes": 0.1,
                "prefix": 0.075, "suffix": 0.075, "ends": 0.05, "ring": 0.1}
LAYOUT_SETS = {"standard": VIDEO_LAYOUTS, "time": TIME_LAYOUTS}  # TrainConfig.layouts


def _boxes(b: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """(b, h, w) bool, True inside one random box covering 15-70% of each side."""
    sizes = torch.rand(b, 2, generator=generator) * 0.55 + 0.15
    starts = torch.rand(b, 2, generator=generator) * (1 - sizes)
    ys = (torch.arange(h) + 0.5) / h
    xs = (torch.arange(w) + 0.5) / w
    inside_y = (ys[None] >= starts[:, :1]) & (ys[None] < starts[:, :1] + sizes[:, :1])
    inside_x = (xs[None] >= starts[:, 1:]) & (xs[None] < starts[:, 1:] + sizes[:, 1:])
    return rearrange(inside_y, "b h -> b h 1") & rearrange(inside_x, "b w -> b 1 w")


def random_known_mask(
    b: int, t: int, h: int, w: int, *, generator: torch.Generator, layouts: dict[str, float] = VIDEO_LAYOUTS
) -> torch.Tensor:
    """(b, 1, t, h, w) float: M for each sample, its layout drawn from `layouts`."""
    names = list(layouts)
    probs = torch.tensor([layouts[n] for n in names], dtype=torch.float)
    kinds = torch.multinomial(probs, b, replacement=True, generator=generator)
    region = _boxes(b, h, w, generator)  # (b, h, w): where to generate
    mask = torch.zeros(b, 1, t, h, w)
    # Per sample: a spacing or a length, and a phase (drawn only for time layouts, so that batches
    # of the other layouts stay as they were).
    draws = torch.rand(b, 2, generator=generator) if any(n in TIME_KINDS for n in names) else None
    for i, k in enumerate(kinds.tolist()):
        kind = names[k]
        if kind in TIME_KINDS:
            mask[i, :, known_frames(kind, t, *draws[i].tolist())] = 1
        elif kind == "first_frame":
            mask[i, :, 0] = 1
        elif kind == "inpaint":
            mask[i, :] = (~region[i]).float()
        elif kind == "cinemagraph":
            mask[i, :] = (~region[i]).float()
            mask[i, :, 0] = 1
    return mask


TIME_KINDS = ("keyframes", "prefix", "suffix", "ends", "ring")


def known_frames(kind: str, t: int, u: float, v: float) -> list[int]:
    """The whole frames a time layout knows, from two uniform draws u, v in [0, 1)."""
    if kind == "ends":
        return [0, t - 1]
    if kind == "keyframes":
        k = 2 + int(u * 4)  # every 2nd to 5th frame
        phase = int(v * k)
        return sorted({*range(phase, t, k), t - 1})
    if kind == "ring":
        n = 1 + int(u * max(1, t // 4))  # 1 to t/4 frames at each end
        inner = [n + int(2 * v * (t - 2 * n))] if v < 0.5 and t > 2 * n else []
        return sorted({*range(n), *inner, *range(t - n, t)})
    n = 2 + int(u * max(1, t // 2 - 1))  # 2 to t/2 frames
    return list(range(n)) if kind == "prefix" else list(range(t - n, t))
