"""The strict reading of a clip: an attribute is read only where renders of it lie.

`detect` names the nearest of a few templates, so a pinched square, a circle with a tail or a
checkerboard colour still reads as a square, a circle, a colour. `read_clip` fits the renderer
itself to every frame (`world.fit`) and accepts a value only inside the range that renders of
that value occupy, measured on renders as `lumiere` leaves them (uint8 frames in memory, and H.264
files at the default display scale read back at the model's size) with a margin for codec noise:

1. Background: the border's median within BACKGROUND_MAX_DIST (0-255 RGB) of a palette background.
2. Colour: the object's median colour within COLOUR_MAX_DIST of a palette colour.
3. Shape: the best-fitting shape's silhouette IoU at least SHAPE_MIN_IOU[shape].
   Below it the frame's shape is None ("none"): no render looks like it.
4. Motion: the fitted track follows one motion's path (`fit.motion_fits`) within PATH_MAX (RMS,
   frame widths) with that path's parameters inside the renderer's ranges, widened by the
   margins below; otherwise None.
Per-frame readings are voted over the clip with None as a vote, so a clip whose frames mostly
read as nothing reads as nothing. Consistent: one object in every frame and every frame's
colour and shape the clip's (none of them None).

The measurements beside the verdicts (`StrictReading`): silhouette IoU per frame, the pixel
residual against the fitted render, grain, the colour spread inside the object, shape
stability. scripts/calibrate_strict.py measures what renders score on every quantity (the
comments by the bounds quote it), and tests/test_eval.py checks that renders pass and that
pinched squares, tailed circles, textured colours and wobbling paths do not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import render as R
from .detect import as_frames
from .fit import (
    MotionFit,
    border_pixels,
    colour_spread,
    fit_frame,
    grain,
    silhouette_iou,
    motion_fits,
    nearest_palette,
    palette_render,
    warp_silhouette,
)
from .vocab import BACKGROUNDS, COLOURS

# ---------------------------------------------------------------------------- acceptance rules
# Each bound is the extreme that renders reach in scripts/calibrate_strict.py (renders of every
# split as uint8 frames and as H.264 files read back; the figures in the comments are its output
# on 150 clips at 32x32), plus a margin for codec noise: 0.02 for an IoU, a quarter pixel for a
# position or a size, one pixel over the clip for a drift, 10 levels for a colour. Never widened to
# let a model pass.
BACKGROUND_MAX_DIST = 10.0  # RGB distance of the border's median from the palette; renders 0
COLOUR_MAX_DIST = 13.5  # of the object's median colour; renders <= 3.5
SHAPE_MIN_IOU = {"circle": 0.945, "square": 0.94, "triangle": 0.925}  # renders' worst frames: 0.966, 0.960, 0.944
PATH_MAX = 0.011  # RMS distance of the centres from the path, frame widths; renders <= 0.003
SIZE_RESIDUAL_MAX = 0.05  # RMS of the sizes about a linear change, of the mean size; renders <= 0.011
# (a quarter pixel of the smallest object, 5.8 pixels, is 0.043)
DRIFT_MAX = 0.036  # across a translation, or of a growing, shrinking or bouncing centre; renders <= 0.0045
STEADY_SIZE = 1.055  # largest size ratio (either way) of a translation or bounce; renders 0.985-1.013
TRAVEL = (R.TRANSLATE_TRAVEL_MIN - 0.03, 1 - 2 * R.MARGIN - R.TRANSLATE_SIZE[0] + 0.03)  # renders 0.40-0.72
SCALE_RATIO = (R.SCALE_RATIO[0] - 0.1, R.SCALE_RATIO[1] + 0.1)  # end size over start size; renders 2.05-2.21
BOUNCE_DROP_MIN = R.BOUNCE_DROP_MIN - 0.03  # renders >= 0.352
BOUNCE_IMPACT = (R.BOUNCE_IMPACT[0] - 0.03, R.BOUNCE_IMPACT[1] + 0.03)  # renders 0.30-0.45 (fit grid 0.01)
BOUNCE_RESTITUTION = (R.BOUNCE_RESTITUTION[0] - 0.05, R.BOUNCE_RESTITUTION[1] + 0.05)  # renders 0.70-0.85 (grid 0.025)

_BG_NAMES, _BG_RGB = tuple(BACKGROUNDS), np.array(list(BACKGROUNDS.values()), dtype=np.float32)
_FG_NAMES, _FG_RGB = tuple(COLOURS), np.array(list(COLOURS.values()), dtype=np.float32)


@dataclass(frozen=True)
class StrictReading:
    """What `read_clip` reads from a clip. colour, shape, motion, background: None where no
    render looks like the clip. Per frame: `frame_shapes`, `frame_colours` (strict, None
    allowed), `iou` (the best-fitting render's silhouette IoU, 0 without an object), `residual`
    (RMS 0-255 against that render in the palette's colours). Per clip: `grain` (as
    `Detection.grain`), `spread` (colour spread inside the object, mean over frames), `stability`
    (IoU of consecutive silhouettes once the fitted motion is taken out, mean), `track` (fitted
    cx, cy, size per frame, NaN without an object), `frame_rgb` (the object's measured colour
    per frame), `motion_fit` (the accepted path's fit)."""

    colour: str | None
    shape: str | None
    motion: str | None
    background: str | None
    consistent: bool
    frame_colours: tuple[str | None, ...] = ()
    frame_shapes: tuple[str | None, ...] = ()
    iou: tuple[float, ...] = ()
    residual: tuple[float, ...] = ()
    grain: float = 0.0
    spread: float = 0.0
    stability: float = 1.0
    objects: tuple[int, ...] = ()
    frame_rgb: tuple[tuple[float, float, float] | None, ...] = field(default=(), repr=False)
    track: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)
    motion_fit: MotionFit | None = field(default=None, repr=False)

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.iou)) if self.iou else 0.0

    @property
    def mean_residual(self) -> float:
        return float(np.mean(self.residual)) if self.residual else 0.0

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
        return {
            "colour": self.colour,
            "shape": self.shape,
            "motion": self.motion,
            "background": self.background,
            "consistent": self.consistent,
            "frame_shapes": list(self.frame_shapes),
            "frame_colours": list(self.frame_colours),
            "objects": list(self.objects),
            "iou": [r(v) for v in self.iou],
            "mean_iou": r(self.mean_iou),
            "residual": r(self.mean_residual),
            "grain": r(self.grain),
            "spread": r(self.spread),
            "stability": r(self.stability),
            "motion_fit": None if self.motion_fit is None else {
                "motion": self.motion_fit.motion, "residual": r(self.motion_fit.residual),
                **{k: r(v) for k, v in self.motion_fit.params.items()}},
        }


def _named(rgb: np.ndarray, names: tuple[str, ...], table: np.ndarray, max_dist: float) -> str | None:
    d = np.sqrt(((table - rgb) ** 2).sum(-1))
    i = int(np.argmin(d))
    return names[i] if d[i] <= max_dist else None


def _vote(values: list) -> Any:
    """The most common value, None counting as one (ties: the first seen)."""
    return Counter(values).most_common(1)[0][0] if values else None


def _within(v: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= v <= bounds[1]


def accepts(fit: MotionFit) -> bool:
    """Whether a fitted path lies where renders of its motion lie."""
    p = fit.params
    if fit.residual > PATH_MAX or p["size_residual"] > SIZE_RESIDUAL_MAX:
        return False
    if fit.motion.startswith("moving"):
        return (_within(p["travel"], TRAVEL) and p["drift"] <= DRIFT_MAX
                and _within(p["size_ratio"], (1 / STEADY_SIZE, STEADY_SIZE)))
    if fit.motion in ("growing", "shrinking"):
        return _within(p["size_ratio"], SCALE_RATIO) and p["drift"] <= DRIFT_MAX
    return (p["drop"] >= BOUNCE_DROP_MIN and _within(p["impact"], BOUNCE_IMPACT)
            and _within(p["restitution"], BOUNCE_RESTITUTION) and p["drift"] <= DRIFT_MAX
            and _within(p["size_ratio"], (1 / STEADY_SIZE, STEADY_SIZE)))


def read_motion(fits: list[MotionFit]) -> MotionFit | None:
    """The accepted path with the least residual, or None."""
    passing = [f for f in fits if accepts(f)]
    return min(passing, key=lambda f: f.residual) if passing else None


def read_clip(clip: Any) -> StrictReading:
    """The strict reading of a clip: uint8 (t, h, w, 3), or float (3, t, h, w) in [0, 1]."""
    frames = as_frames(clip)
    t, h, w, _ = frames.shape
    bg_ref = np.median(border_pixels(frames), axis=1)  # (t, 3)
    fits = [fit_frame(frames[i], bg_ref[i]) for i in range(t)]
    background = _vote([_named(c, _BG_NAMES, _BG_RGB, BACKGROUND_MAX_DIST) for c in bg_ref])
    frame_colours = tuple(None if f.object_rgb is None else _named(np.array(f.object_rgb), _FG_NAMES, _FG_RGB,
                                                                    COLOUR_MAX_DIST) for f, _ in fits)
    best = [f.best_shape for f, _ in fits]
    frame_shapes = tuple(s if s is not None and f.iou[s] >= SHAPE_MIN_IOU[s] else None for s, (f, _) in zip(best, fits))
    colour, shape = _vote(list(frame_colours)), _vote(list(frame_shapes))

    # The track follows the clip's shape (or each frame's best when the clip has none).
    track_shape = shape if shape is not None else _vote([s for s in best if s is not None])
    track = [f.params[track_shape] if f.object_rgb is not None else (np.nan,) * 3 for f, _ in fits]
    known = np.array([(i, *p) for i, p in enumerate(track) if not np.isnan(p[0])], dtype=np.float64).reshape(-1, 4)
    motion_fit = read_motion(motion_fits(known, t))

    iou, residual, spreads = [], [], []
    for i, (f, _) in enumerate(fits):
        s = f.best_shape
        bg_pal = nearest_palette(bg_ref[i], _BG_RGB)
        if s is None:
            iou.append(0.0)
            residual.append(float(np.sqrt(((frames[i] - bg_pal) ** 2).sum(-1).mean())))
            continue
        fg_pal = nearest_palette(np.array(f.object_rgb), _FG_RGB)
        ideal, cov = palette_render(s, f.params[s], fg_pal, bg_pal, h, w)
        iou.append(f.iou[s])
        residual.append(float(np.sqrt(((frames[i] - ideal) ** 2).sum(-1).mean())))
        spread = colour_spread(frames[i], cov)
        if spread is not None:
            spreads.append(spread)

    stability = _stability(fits, track, track_shape, h, w)
    objects = _object_counts(frames, bg_ref)
    consistent = (all(c == 1 for c in objects) and colour is not None and shape is not None
                  and all(c == colour for c in frame_colours) and all(s == shape for s in frame_shapes))
    return StrictReading(
        colour=colour, shape=shape, motion=None if motion_fit is None else motion_fit.motion,
        background=background, consistent=consistent, frame_colours=frame_colours, frame_shapes=frame_shapes,
        iou=tuple(iou), residual=tuple(residual), grain=grain(frames),
        spread=float(np.mean(spreads)) if spreads else 0.0, stability=stability, objects=objects,
        frame_rgb=tuple(f.object_rgb for f, _ in fits),
        track=tuple(tuple(float(v) for v in p) for p in track), motion_fit=motion_fit,
    )


def _stability(fits: list, track: list, shape: str | None, h: int, w: int) -> float:
    """How much the silhouette changes beyond the motion: each frame's departure from its fitted
    render, moved and scaled onto the next frame's fit and added to that frame's render, against
    the next frame's silhouette (IoU), mean over consecutive pairs. A steady deformation (the
    same pinch on every frame) is stable; a shape that wobbles or grows a tail is not. Pairs
    with a frame without an object score 0."""
    if shape is None:
        return 0.0
    scores = []
    for (_, alpha_a), (_, alpha_b), pa, pb in zip(fits, fits[1:], track, track[1:]):
        if alpha_a is None or alpha_b is None or np.isnan(pa[0]) or np.isnan(pb[0]):
            scores.append(0.0)
            continue
        render_a = palette_render(shape, pa, np.ones(1), np.zeros(1), h, w)[1]
        render_b = palette_render(shape, pb, np.ones(1), np.zeros(1), h, w)[1]
        predicted = np.clip(render_b + warp_silhouette(alpha_a - render_a, pa, pb), 0, 1)
        scores.append(silhouette_iou(predicted, alpha_b))
    return float(np.mean(scores)) if scores else 1.0


def _object_counts(frames: np.ndarray, bg_ref: np.ndarray) -> tuple[int, ...]:
    """Objects per frame, counted as `detect` counts them (its components and size rules)."""
    from .detect import MIN_OBJECT_FRAC, OBJECT_THRESHOLD, STRAY_FRAC, _label

    t, h, w, _ = frames.shape
    dist = np.sqrt(((frames - bg_ref[:, None, None, :]) ** 2).sum(-1))
    labels = _label(dist > OBJECT_THRESHOLD)
    counts = []
    for i in range(t):
        _, areas = np.unique(labels[i][labels[i] > 0], return_counts=True)
        big = areas.max() if len(areas) else 0
        counts.append(int(((areas >= MIN_OBJECT_FRAC * h * w) & (areas >= STRAY_FRAC * big)).sum()))
    return tuple(counts)


__all__ = ["StrictReading", "accepts", "read_clip", "read_motion"]
