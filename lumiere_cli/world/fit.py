"""Fitting the renderer to a clip: the render (shape, position, size; then motion) that best
explains each frame, and how far the clip is from it.

Axis legend: t frames, h height, w width, c candidates.

Per frame, the object's soft silhouette is each pixel's position between the frame's background
(the border's median) and the object's colour (the median of its confident pixels, as
`detect` reads them), clipped to [0, 1]; the object's colour is then read again as the median of
the pixels the best fit covers fully. Every shape is fitted to it by least squares over centre
and size (a coarse then a fine grid around the silhouette's moments), with the renderer's own
coverage function, so a render is fitted exactly. From the fit:

- `iou`: the silhouettes' intersection over union, the fitted render's coverage against the
  frame's soft silhouette (`silhouette_iou`), per shape;
- `residual`: the RMS distance (0-255 RGB) of the frame from the fitted render drawn in the
  palette's colours, every pixel;
- `spread`: the RMS distance of the object's inner pixels (fully covered, one pixel in from the
  edge) from their median colour;
- `stability`: each frame's silhouette moved and scaled onto the next frame's fitted centre and
  size, then compared with it (IoU): what changes beyond the motion itself.

The track (fitted centre and size per frame) is then fitted by each motion's own path, the
renderer's: a straight line at constant speed and size for a translation, a size changing
linearly about a fixed centre for growing and shrinking, and a drop from rest with rebounds about
a fixed x for a bounce (`motion_fits`). `world.strict` decides which fits a render would pass.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .detect import grow
from .render import _bounce_height, shape_coverage
from .vocab import BACKGROUNDS, COLOURS, SHAPES

# Pixels of the border, per frame, are background: renders keep a margin around the object.
_BOX_FILL = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}
_COARSE_OFFSETS = torch.linspace(-1.5, 1.5, 7)  # pixels
_COARSE_SCALES = torch.linspace(0.8, 1.2, 9)
_FINE_OFFSETS = torch.linspace(-0.25, 0.25, 5)
_FINE_SCALES = torch.linspace(0.975, 1.025, 5)
_CONFIDENT = 0.8  # as detect: object pixels at least this fraction of its 90th-percentile distance
_MIN_PIXELS = 2.0  # a frame whose silhouette holds less than this many pixels shows no object

_BG_RGB = np.array(list(BACKGROUNDS.values()), dtype=np.float32)
_FG_RGB = np.array(list(COLOURS.values()), dtype=np.float32)


@dataclass(frozen=True)
class FrameFit:
    """The best render of each shape for one frame. `params[shape]` = (cx, cy, size) in
    normalised units (the box centre, y downwards, size = the box side as a fraction of the
    frame); `iou[shape]` its silhouette IoU. `background_rgb` and `object_rgb` are the measured
    colours (0-255), `object_rgb` None when the frame shows no object."""

    params: dict[str, tuple[float, float, float]]
    iou: dict[str, float]
    background_rgb: tuple[float, float, float]
    object_rgb: tuple[float, float, float] | None

    @property
    def best_shape(self) -> str | None:
        return max(self.iou, key=self.iou.get) if self.object_rgb is not None else None


def border_pixels(frames: np.ndarray) -> np.ndarray:
    """The frame border's pixels, (t, 2h + 2w - 4, 3)."""
    return np.concatenate([frames[:, 0], frames[:, -1], frames[:, 1:-1, 0], frames[:, 1:-1, -1]], axis=1)


def grain(frames: np.ndarray) -> float:
    """RMS distance (0-255 RGB) of the border's pixels from their per-frame median, mean over
    frames: the same number as `Detection.grain`."""
    border = border_pixels(frames)
    ref = np.median(border, axis=1)
    return float(np.sqrt(((border - ref[:, None, :]) ** 2).sum(-1).mean(1)).mean())


def _object_colour(frame: np.ndarray, bg: np.ndarray) -> np.ndarray | None:
    """The median colour of the pixels farthest from the background (as `detect` reads it), or
    None when nothing stands out from the background."""
    dist = np.sqrt(((frame - bg) ** 2).sum(-1))
    far = dist > 50.0
    if far.sum() < _MIN_PIXELS:
        return None
    confident = far & (dist >= _CONFIDENT * np.quantile(dist[far], 0.9))
    return np.median(frame[confident], axis=0)


def soft_silhouette(frame: np.ndarray, bg: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Each pixel's position between bg and fg (projection on the colour axis), in [0, 1]."""
    axis = fg - bg
    return np.clip(((frame - bg) @ axis) / max(float(axis @ axis), 1e-6), 0.0, 1.0)


def _grid(h: int, w: int, top: int = 0, left: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (h, w) of a window whose corner is pixel (top, left)."""
    ys, xs = torch.meshgrid(torch.arange(top, top + h, dtype=torch.float32) + 0.5,
                            torch.arange(left, left + w, dtype=torch.float32) + 0.5, indexing="ij")
    return xs, ys


def _coverage(shape: str, cx: torch.Tensor, cy: torch.Tensor, half: torch.Tensor, h: int, w: int,
              top: int = 0, left: int = 0) -> torch.Tensor:
    """Render coverage (c, h, w) of candidates with centres and half sizes (c,) in pixels, over
    the window of h x w pixels at (top, left)."""
    xs, ys = _grid(h, w, top, left)
    px = xs[None] - cx[:, None, None]
    py = ys[None] - cy[:, None, None]
    return shape_coverage(shape, px, py, half[:, None, None])


def _search(shape: str, alpha: torch.Tensor, corner: tuple[int, int], cx: float, cy: float, half: float,
            offsets: torch.Tensor, scales: torch.Tensor) -> tuple[float, float, float]:
    """The least-squares (cx, cy, half) in pixels among a grid around the given one, over the
    window `alpha` whose corner is pixel `corner` (top, left)."""
    h, w = alpha.shape
    dx, dy, k = torch.meshgrid(offsets, offsets, scales, indexing="ij")
    cxs, cys, halves = cx + dx.flatten(), cy + dy.flatten(), half * k.flatten()
    err = ((_coverage(shape, cxs, cys, halves, h, w, *corner) - alpha[None]) ** 2).sum((1, 2))
    i = int(torch.argmin(err))
    return float(cxs[i]), float(cys[i]), float(halves[i])


def _window(alpha: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns around the silhouette, wide enough for every candidate of the search
    (the silhouette's box grown by 3 pixels and a third of its side)."""
    rows, cols = np.nonzero(alpha > 0.5)
    if len(rows) == 0:
        return slice(0, alpha.shape[0]), slice(0, alpha.shape[1])
    pad = 3 + (max(np.ptp(rows), np.ptp(cols)) + 1) // 3
    return (slice(max(0, rows.min() - pad), rows.max() + pad + 1),
            slice(max(0, cols.min() - pad), cols.max() + pad + 1))


def fit_shape(shape: str, alpha: np.ndarray) -> tuple[float, float, float]:
    """The render of `shape` closest (least squares) to a soft silhouette (h, w): its box centre
    and half side, in pixels. Pixels far from the silhouette (outside `_window`) are left out:
    every candidate covers none of them."""
    rows, cols = _window(alpha)
    a = torch.from_numpy(alpha[rows, cols].astype(np.float32))
    corner = (rows.start, cols.start)
    h, w = a.shape
    mass = a * (a > 0.5)
    area = max(float(mass.sum()), 1e-6)
    xs, ys = _grid(h, w, *corner)
    cx, cy = float((mass * xs).sum()) / area, float((mass * ys).sum()) / area
    half = math.sqrt(area / _BOX_FILL[shape]) / 2
    if shape == "triangle":  # its centre of mass lies a third of the half side below the box's centre
        cy -= half / 3
    cx, cy, half = _search(shape, a, corner, cx, cy, half, _COARSE_OFFSETS, _COARSE_SCALES)
    return _search(shape, a, corner, cx, cy, half, _FINE_OFFSETS, _FINE_SCALES)


def render_coverage(shape: str, cx: float, cy: float, half: float, h: int, w: int) -> np.ndarray:
    """The renderer's coverage (h, w) of one shape at a centre and half side in pixels."""
    return _coverage(shape, torch.tensor([cx]), torch.tensor([cy]), torch.tensor([half]), h, w)[0].numpy()


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Soft IoU of two coverages (h, w) in [0, 1]: sum of minima over sum of maxima, over the
    pixels within one pixel of where either is more than half covered. Anti-aliased edges count
    by their coverage (a hard 0.5 cut flips on the codec's rounding); a tail or a second blob
    counts in full; faint background noise away from both shapes is grain, measured apart. 0
    when both are empty."""
    region = grow((a > 0.5) | (b > 0.5))
    union = float(np.maximum(a, b)[region].sum())
    return float(np.minimum(a, b)[region].sum()) / union if union > 0 else 0.0


def fit_frame(frame: np.ndarray, bg: np.ndarray) -> tuple[FrameFit, np.ndarray | None]:
    """The best render of each shape for one frame (h, w, 3) float 0-255 on background colour bg;
    also the frame's soft silhouette (None when the frame shows no object)."""
    h, w, _ = frame.shape
    fg = _object_colour(frame, bg)
    bg_t = tuple(float(v) for v in bg)
    if fg is None:
        return FrameFit({}, {s: 0.0 for s in SHAPES}, bg_t, None), None
    alpha = soft_silhouette(frame, bg, fg)
    params, iou = {}, {}
    for shape in SHAPES:
        cx, cy, half = fit_shape(shape, alpha)
        iou[shape] = silhouette_iou(render_coverage(shape, cx, cy, half, h, w), alpha)
        params[shape] = (cx / w, cy / h, 2 * half / w)
    # The object's colour, read again inside the best fit: the median of the pixels it covers
    # fully (a small object's confident pixels are mostly its anti-aliased edge).
    best = max(iou, key=iou.get)
    cx, cy, size = params[best]
    inside = render_coverage(best, cx * w, cy * h, size * w / 2, h, w) >= 0.999
    if inside.any():
        fg = np.median(frame[inside], axis=0)
    return FrameFit(params, iou, bg_t, tuple(float(v) for v in fg)), alpha


def nearest_palette(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[int(np.argmin(((table - rgb) ** 2).sum(-1)))]


def palette_render(shape: str, params: tuple[float, float, float], fg: np.ndarray, bg: np.ndarray,
                   h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame (h, w, 3) float 0-255 that the renderer draws for a fit, and its coverage."""
    cx, cy, size = params
    cov = render_coverage(shape, cx * w, cy * h, size * w / 2, h, w)
    return bg + cov[..., None] * (fg - bg), cov


def _erode(mask: np.ndarray) -> np.ndarray:
    pad = np.pad(mask, 1)
    h, w = mask.shape
    out = mask.copy()
    for dy in range(3):
        for dx in range(3):
            out &= pad[dy:dy + h, dx:dx + w]
    return out


def colour_spread(frame: np.ndarray, coverage: np.ndarray) -> float | None:
    """RMS distance (0-255) of the object's inner pixels (covered fully, one pixel in from the
    edge, or all fully covered ones when that leaves fewer than 4) from their median colour."""
    full = coverage >= 0.999
    inner = _erode(full)
    pixels = frame[inner] if inner.sum() >= 4 else frame[full]
    if len(pixels) == 0:
        return None
    return float(np.sqrt(((pixels - np.median(pixels, axis=0)) ** 2).sum(-1).mean()))


def warp_silhouette(alpha: np.ndarray, src: tuple[float, float, float], dst: tuple[float, float, float]) -> np.ndarray:
    """The soft silhouette `alpha` (h, w) moved and scaled so the fit `src` (cx, cy, size,
    normalised) lands on `dst`: bilinear, zero outside the frame."""
    h, w = alpha.shape
    xs, ys = _grid(h, w)
    scale = src[2] / max(dst[2], 1e-6)
    sx = (src[0] * w + (xs - dst[0] * w) * scale) / w * 2 - 1  # grid_sample's [-1, 1], corners outside
    sy = (src[1] * h + (ys - dst[1] * h) * scale) / h * 2 - 1
    grid = torch.stack([sx, sy], -1)[None]
    img = torch.from_numpy(alpha.astype(np.float32))[None, None]
    return torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)[0, 0].numpy()


# ----------------------------------------------------------------------------- motion paths


@dataclass(frozen=True)
class MotionFit:
    """One motion's path fitted to a track: `residual` the RMS distance (frame widths) of the
    track's centres from the path (and, scaled by the mean size, of its sizes); `params` the path's
    parameters, named as the renderer's ClipSpec names them where it has them."""

    motion: str
    residual: float
    params: dict[str, float]


def _line(tau: np.ndarray, v: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares v = a + b tau: (a, b, residuals)."""
    b, a = np.polyfit(tau, v, 1)
    return float(a), float(b), v - (a + b * tau)


def _rms(*parts: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.concatenate([p.ravel() ** 2 for p in parts]))))


def fit_translation(tau: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray) -> MotionFit:
    """A straight path at constant speed and size: travel along the dominant axis (signed),
    drift across it, the size ratio (last over first)."""
    x0, vx, rx = _line(tau, x)
    y0, vy, ry = _line(tau, y)
    s0, vs, rs = _line(tau, s)
    along, across = (vx, vy) if abs(vx) >= abs(vy) else (vy, vx)
    motion = ("moving right" if vx > 0 else "moving left") if abs(vx) >= abs(vy) else (
        "moving down" if vy > 0 else "moving up")
    ratio = (s0 + vs) / max(s0, 1e-6)
    mean_s = max(float(s.mean()), 1e-6)
    return MotionFit(motion, _rms(rx, ry), {"travel": abs(along), "drift": abs(across), "size_ratio": ratio,
                                            "size_residual": _rms(rs) / mean_s})


def fit_scaling(tau: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray) -> MotionFit:
    """A fixed centre and a size changing linearly: the ratio of the last size to the first."""
    s0, vs, rs = _line(tau, s)
    ratio = (s0 + vs) / max(s0, 1e-6)
    mean_s = max(float(s.mean()), 1e-6)
    drift = float(max(np.ptp(x), np.ptp(y)))
    motion = "growing" if ratio >= 1 else "shrinking"
    return MotionFit(motion, _rms(x - x.mean(), y - y.mean()),
                     {"size_ratio": max(ratio, 1 / max(ratio, 1e-6)), "drift": drift,
                      "size_residual": _rms(rs) / mean_s, "start_size": s0, "end_size": s0 + vs})


_IMPACTS = np.linspace(0.2, 0.55, 36)
_RESTITUTIONS = np.linspace(0.55, 1.0, 19)


@functools.lru_cache(maxsize=8)
def _unit_bounces(tau: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Heights (g, n) of a unit drop for every (impact, restitution) of the grid (g, 2)."""
    grid = np.array([(i, e) for i in _IMPACTS for e in _RESTITUTIONS])
    col = lambda v: torch.tensor(v, dtype=torch.float64)[:, None]  # noqa: E731
    heights = _bounce_height(torch.tensor(tau, dtype=torch.float64)[None], col(np.ones(len(grid))),
                             col(grid[:, 0]), col(grid[:, 1]))
    return heights.numpy(), grid


def fit_bounce(tau: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray) -> MotionFit:
    """A drop from rest onto a floor with rebounds (the renderer's `_bounce_height`), at fixed x
    and size: y = floor - drop * h(tau; impact, restitution) with (floor, drop) solved by least
    squares for each (impact, restitution) on a grid."""
    unit, grid = _unit_bounces(tuple(float(v) for v in tau))  # (g, n)
    # Least squares of y = floor - drop * u per grid row, in closed form.
    u_mean, y_mean = unit.mean(1, keepdims=True), y.mean()
    du, dy = unit - u_mean, y - y_mean
    drop = -(du * dy).sum(1) / np.maximum((du**2).sum(1), 1e-12)
    floor = y_mean + drop * u_mean[:, 0]
    err = np.sqrt(np.mean((y[None] - (floor[:, None] - drop[:, None] * unit)) ** 2, axis=1))
    k = int(np.argmin(err))
    mean_s = max(float(s.mean()), 1e-6)
    s0, vs, rs = _line(tau, s)
    params = {"impact": float(grid[k, 0]), "restitution": float(grid[k, 1]), "drop": float(drop[k]),
              "floor": float(floor[k]), "drift": float(np.ptp(x)), "size_ratio": (s0 + vs) / max(s0, 1e-6),
              "size_residual": _rms(rs) / mean_s}
    return MotionFit("bouncing", _rms(np.array([err[k]]), x - x.mean()), params)


def motion_fits(track: np.ndarray, frames: int) -> list[MotionFit]:
    """The three kinds of path fitted to a track (n, 4): frame index, cx, cy, size (normalised),
    frames without an object left out; [] when fewer than 4 frames remain."""
    if len(track) < 4:
        return []
    tau = track[:, 0] / max(frames - 1, 1)
    x, y, s = track[:, 1], track[:, 2], track[:, 3]
    return [fit_translation(tau, x, y, s), fit_scaling(tau, x, y, s), fit_bounce(tau, x, y, s)]


__all__ = [
    "FrameFit",
    "MotionFit",
    "border_pixels",
    "colour_spread",
    "fit_bounce",
    "fit_frame",
    "fit_scaling",
    "fit_shape",
    "fit_translation",
    "grain",
    "silhouette_iou",
    "motion_fits",
    "nearest_palette",
    "palette_render",
    "render_coverage",
    "soft_silhouette",
    "warp_silhouette",
]
