"""Reading a clip back into the world's attributes, written from the renderer's definition.

`detect(clip)` tells the object's colour, shape, motion and background, and whether the clip is
temporally consistent (one object, the same colour and shape, in every frame). It is meant for
*generated* clips, so every rule has a margin and every clip-level answer is a vote over frames:
a few stray pixels or one bad frame do not change the verdict.

The rules (docs/WORLD.md has the numbers):
1. Background: per frame, the median of the border pixels; its nearest background colour, voted.
2. Object mask: pixels farther than OBJECT_THRESHOLD (0-255 RGB distance) from that frame's border
   median. Connected components (8-neighbour); a component is an object if it has at least
   MIN_OBJECT_FRAC of the frame's pixels and at least STRAY_FRAC of the largest one's.
3. Colour: the median RGB of the largest component's confident pixels (distance from the
   background at least CONFIDENT of its 90th percentile, i.e. not the anti-aliased fringe),
   nearest palette colour, voted.
4. Shape: a matched filter. Each shape is rendered (by the renderer's own coverage function) at the
   object's centre of mass with the object's area, at a few scales, and compared with the
   object's unclipped soft coverage (each pixel's position between background and object colour)
   over a window around it; the least squared difference wins. Zero-mean pixel noise adds about
   the same error to every candidate, where a fill ratio built from per-column maxima read every
   noisy square as a circle. Voted over frames.
5. Motion from the coverage-weighted centroid and area per frame: area ratio (last quarter over
   first quarter) above 2 or below 1/2: growing / shrinking; else a vertical fall followed by a
   rise, each at least BOUNCE_MIN: bouncing; else the dominant net displacement, if at least
   MOVE_MIN, names left / right / up / down.
6. Consistent: exactly one object in every frame, each frame's colour and shape equal to the
   clip's.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .render import shape_coverage
from .vocab import BACKGROUNDS, COLOURS, SHAPES

OBJECT_THRESHOLD = 50.0  # palette colours are >= ~108 from every background
MIN_OBJECT_FRAC = 0.005  # the smallest rendered object covers ~1.6% of the frame
STRAY_FRAC = 0.1
CONFIDENT = 0.8
TRIANGLE_SKEW = -0.25  # vertical skewness of the mass: up-triangle -0.57, circle and square 0
SCALE_RATIO = 2.0  # rendered growing/shrinking change the area >= 4x
BOUNCE_MIN = 0.06  # fraction of the frame; rendered rebounds rise >= ~0.15
MOVE_MIN = 0.1  # fraction of the frame; rendered translations cover >= 0.4

_BG_NAMES = tuple(BACKGROUNDS)
_BG_RGB = np.array([BACKGROUNDS[n] for n in _BG_NAMES], dtype=np.float32)
_FG_NAMES = tuple(COLOURS)
_FG_RGB = np.array([COLOURS[n] for n in _FG_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Detection:
    """What `detect` read from a clip. An attribute is None when it could not be told (no object
    in any frame, no clear motion). `objects` counts objects per frame; `track` holds the object's
    (x, y, size) per frame in normalised units (y downwards, size = sqrt of the covered fraction),
    NaN on frames without one. `grain` is the background's noise: the RMS distance (0-255 RGB)
    of the frame border's pixels from their median colour, averaged over frames; 0 for a render
    (black and white backgrounds clip part of it away)."""

    colour: str | None
    shape: str | None
    motion: str | None
    background: str | None
    consistent: bool
    objects: tuple[int, ...] = ()
    track: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)
    grain: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "colour": self.colour,
            "shape": self.shape,
            "motion": self.motion,
            "background": self.background,
            "consistent": self.consistent,
            "objects": list(self.objects),
            "grain": round(self.grain, 2),
        }


def as_frames(clip: Any) -> np.ndarray:
    """float32 (t, h, w, 3) in 0-255 from uint8 (t, h, w, 3) (numpy or torch), or from a float
    torch/numpy video (3, t, h, w) in [0, 1] (the renderer's output)."""
    if isinstance(clip, torch.Tensor):
        clip = clip.detach().cpu()
        clip = clip.float().numpy() if clip.dtype == torch.bfloat16 else clip.numpy()
    clip = np.asarray(clip)
    if clip.ndim != 4:
        raise ValueError(f"expected a clip (t, h, w, 3) uint8 or (3, t, h, w) float, got shape {clip.shape}")
    if clip.dtype == np.uint8:
        if clip.shape[-1] != 3:
            raise ValueError(f"uint8 clips are (t, h, w, 3), got shape {clip.shape}")
        return clip.astype(np.float32)
    if clip.shape[0] != 3:
        raise ValueError(f"float clips are (3, t, h, w) in [0, 1], got shape {clip.shape}")
    return np.ascontiguousarray(np.clip(clip.transpose(1, 2, 3, 0), 0, 1) * 255, dtype=np.float32)


def _run_max(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every pixel of each horizontal run of mask (rows of labels (n, w)) the run's largest
    label, with two running maxima instead of one pass per pixel of run length.

    Runs (and background pixels, one each) are numbered along the flattened rows. Adding
    run * big to the labels (big > every label) makes a forward running maximum restart at each
    run; numbering the runs in reverse does the same for the backward one."""
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    starts |= ~mask
    starts[:, 0] = True  # runs never continue onto the next row
    big = int(labels.max()) + 1
    run = np.cumsum(starts.ravel()) * big
    back = (run[-1] + big) - run
    flat = labels.ravel()
    prefix = np.maximum.accumulate(run + flat) - run
    suffix = np.maximum.accumulate((back + flat)[::-1])[::-1] - back
    return (np.maximum(prefix, suffix) * mask.ravel()).reshape(labels.shape)


def grow(mask: np.ndarray) -> np.ndarray:
    """3x3 dilation of the last two axes of a boolean or numeric array (max over neighbours)."""
    pad = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)])
    h, w = mask.shape[-2:]
    out = mask.copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(out, pad[..., dy : dy + h, dx : dx + w], out=out)
    return out


def _label(mask: np.ndarray) -> np.ndarray:
    """8-neighbour connected components of each frame of mask (t, h, w): int labels, 0 = none.

    Label propagation: every pixel takes the largest label along its row's run, then its
    column's run, then in its 3x3 neighbourhood (for diagonal links), until nothing changes. A
    convex object settles in two or three passes; any shape settles eventually (labels only grow).
    """
    t, h, w = mask.shape
    labels = np.arange(1, t * h * w + 1, dtype=np.int64).reshape(t, h, w) * mask
    cols_mask = np.ascontiguousarray(mask.transpose(0, 2, 1)).reshape(t * w, h)
    while True:
        new = _run_max(labels.reshape(t * h, w), mask.reshape(t * h, w)).reshape(t, h, w)
        new_t = np.ascontiguousarray(new.transpose(0, 2, 1)).reshape(t * w, h)
        new = _run_max(new_t, cols_mask).reshape(t, w, h).transpose(0, 2, 1)
        new = grow(new) * mask
        if np.array_equal(new, labels):
            return labels
        labels = new


def _nearest(rgb: np.ndarray, table: np.ndarray) -> int:
    return int(np.argmin(((table - rgb) ** 2).sum(-1)))


def _vote(values: list) -> Any:
    values = [v for v in values if v is not None]
    return Counter(values).most_common(1)[0][0] if values else None


# Candidate sizes around the one whose area matches the object's: generated edges are soft.
_TEMPLATE_SCALES = (0.9, 1.0, 1.1)
# A shape's area as a fraction of its bounding box (side s): s^2, pi s^2 / 4, s^2 / 2.
_BOX_FILL = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}


def _shape(coverage: np.ndarray, window: np.ndarray) -> str:
    """Shape from unclipped coverage (h, w) of one object, over the window (h, w, bool) around it.

    Each shape is rendered at the object's centre with the area of the object (the triangle's
    centre of mass sits a sixth of its height below its box's centre), at a few scales, and
    the one with the least squared difference wins: a matched filter, so zero-mean pixel noise
    adds the same error to every candidate instead of biasing a ratio of maxima towards circles.
    """
    a = np.where(window, coverage, 0.0)
    mass = a.clip(0, 1)
    area = max(float(mass.sum()), 1e-6)
    h, w = a.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    cx, cy = (mass * xs).sum() / area, (mass * ys).sum() / area
    # An up-pointing triangle's mass leans towards its base; this holds on blurred blobs too.
    var = max(float((mass * (ys - cy) ** 2).sum()) / area, 1e-6)
    if (mass * (ys - cy) ** 3).sum() / area / var**1.5 <= TRIANGLE_SKEW:
        return "triangle"
    best, best_err = SHAPES[0], float("inf")
    target = torch.from_numpy(a)
    m = torch.from_numpy(window)
    px, py = torch.from_numpy(xs - cx), torch.from_numpy(ys - cy)
    for shape in SHAPES:
        half = math.sqrt(area / _BOX_FILL[shape]) / 2
        for k in _TEMPLATE_SCALES:
            dy = k * half / 3 if shape == "triangle" else 0.0
            tpl = shape_coverage(shape, px, py + dy, torch.tensor(k * half, dtype=px.dtype))
            err = float(((tpl * m - target) ** 2).sum())
            if err < best_err:
                best, best_err = shape, err
    return best


def _motion(xs: np.ndarray, ys: np.ndarray, sizes: np.ndarray) -> str | None:
    """Motion from a track (frames without an object already dropped)."""
    n = len(xs)
    if n < 2:
        return None
    q = max(1, n // 4)
    area = sizes**2
    ratio = area[-q:].mean() / max(area[:q].mean(), 1e-9)
    if ratio > SCALE_RATIO:
        return "growing"
    if ratio < 1 / SCALE_RATIO:
        return "shrinking"
    # Down-then-up: a frame that is well below (larger y) some earlier frame and some later one.
    fall = ys - np.minimum.accumulate(ys)
    rise = ys - np.minimum.accumulate(ys[::-1])[::-1]
    dx = xs[-q:].mean() - xs[:q].mean()
    if np.max(np.minimum(fall, rise)) >= BOUNCE_MIN and abs(dx) < MOVE_MIN:
        return "bouncing"
    dy = ys[-q:].mean() - ys[:q].mean()
    if max(abs(dx), abs(dy)) < MOVE_MIN:
        return None
    if abs(dx) >= abs(dy):
        return "moving right" if dx > 0 else "moving left"
    return "moving down" if dy > 0 else "moving up"


def detect(clip: Any) -> Detection:
    """Detect the attributes of a clip: uint8 (t, h, w, 3), or float (3, t, h, w) in [0, 1]."""
    frames = as_frames(clip)
    t, h, w, _ = frames.shape
    border = np.concatenate(
        [frames[:, 0], frames[:, -1], frames[:, 1:-1, 0], frames[:, 1:-1, -1]], axis=1
    )  # (t, 2h + 2w - 4, 3)
    bg_ref = np.median(border, axis=1)  # (t, 3)
    background = _vote([_BG_NAMES[_nearest(c, _BG_RGB)] for c in bg_ref])
    # Objects keep a margin from every edge, so the border is background: its spread is noise.
    grain = float(np.sqrt(((border - bg_ref[:, None, :]) ** 2).sum(-1).mean(1)).mean())

    diff = frames - bg_ref[:, None, None, :]
    dist = np.sqrt((diff**2).sum(-1))  # (t, h, w)
    labels = _label(dist > OBJECT_THRESHOLD)
    ys_grid, xs_grid = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w

    counts, colours, shapes, track = [], [], [], []
    for i in range(t):
        ids, areas = np.unique(labels[i][labels[i] > 0], return_counts=True)
        big = areas.max() if len(areas) else 0
        objects = int(((areas >= MIN_OBJECT_FRAC * h * w) & (areas >= STRAY_FRAC * big)).sum())
        counts.append(objects)
        if objects == 0:
            colours.append(None)
            shapes.append(None)
            track.append((float("nan"),) * 3)
            continue
        comp = labels[i] == ids[np.argmax(areas)]
        d = dist[i][comp]
        confident = comp & (dist[i] >= CONFIDENT * np.quantile(d, 0.9))
        rgb = np.median(frames[i][confident], axis=0)
        colours.append(_FG_NAMES[_nearest(rgb, _FG_RGB)])

        # Soft coverage over the component grown by one pixel, so its anti-aliased fringe counts.
        grown = grow(comp)
        axis = rgb - bg_ref[i]
        proj = (diff[i] @ axis) / max(float(axis @ axis), 1e-6)
        alpha = np.clip(proj, 0, 1) * grown
        area = alpha.sum()
        shapes.append(_shape(proj, grow(grow(grown))))
        cx = (alpha.sum(0) * xs_grid).sum() / area
        cy = (alpha.sum(1) * ys_grid).sum() / area
        track.append((float(cx), float(cy), float(np.sqrt(area / (h * w)))))

    colour, shape = _vote(colours), _vote(shapes)
    arr = np.array(track, dtype=np.float64)
    found = ~np.isnan(arr[:, 0])
    motion = _motion(arr[found, 0], arr[found, 1], arr[found, 2])
    consistent = all(c == 1 for c in counts) and all(c == colour for c in colours) and all(s == shape for s in shapes)
    return Detection(colour, shape, motion, background, consistent, tuple(counts), tuple(track), grain)


__all__ = ["Detection", "as_frames", "detect", "grow"]
