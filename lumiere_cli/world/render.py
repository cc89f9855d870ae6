"""Rendering the world: one flat-coloured, anti-aliased object moving on a plain background.

Axis legend: b batch, c channels (RGB), t frames, h height, w width.

Geometry is defined in normalised coordinates, independent of resolution and frame count:
x to the right and y *downwards* in [0, 1] (the frame), time tau = i / (frames - 1) in [0, 1]
(the whole clip). So 16 or 32 frames, 32 or 64 pixels all show the same motion. `size` is the
side of the object's bounding box as a fraction of the frame side (a circle's diameter, a square's
side, a triangle's base and height; the triangle points up).

Anti-aliasing is analytic: each pixel's coverage is `clamp(0.5 - d, 0, 1)` with d the signed
distance (in pixels) from the pixel centre to the shape's edge, exact for straight edges far from
corners and close enough elsewhere. The whole batch is rendered at once, so `sample_batch`
is cheap enough to call on every training step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from ..pixels import from_unit
from .vocab import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_TRIPLES,
    MOTIONS,
    OPPOSITE_MOTION,
    SHAPES,
    TRAIN_TRIPLES,
    ALL_TRIPLES,
    as_random,
    caption,
    paraphrase,
    parse_caption,
)

# The object's bounding box stays at least this far (fraction of the frame) from every edge, so
# that even the anti-aliased fringe is inside the frame.
MARGIN = 0.04

# Sizes (fractions of the frame side) and motion parameters; docs/WORLD.md lists them too.
TRANSLATE_SIZE = (0.20, 0.36)
TRANSLATE_TRAVEL_MIN = 0.40  # translations cover at least 40% of the frame
SCALE_SMALL = (0.18, 0.21)  # growing starts / shrinking ends at this size ...
SCALE_RATIO = (2.05, 2.2)  # ... and the other end is this many times bigger
BOUNCE_SIZE = (0.20, 0.32)
BOUNCE_DROP_MIN = 0.35  # height of the first fall, fraction of the frame
BOUNCE_IMPACT = (0.30, 0.45)  # time of the first floor contact, fraction of the clip
BOUNCE_RESTITUTION = (0.70, 0.85)  # rebound speed / impact speed
_MAX_BOUNCES = 8  # more than fit in one clip with the ranges above

SPLITS = ("train", "held_out", "all")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that defines a clip, in normalised units (see the module docstring).

    x, y: the object's centre on the first frame. size: its size on the first frame;
    end_size: on the last (differs only when growing or shrinking). travel: the distance covered
    by a translation over the clip (its speed, in frame widths per clip). impact, restitution:
    a bounce's first floor contact (fraction of the clip) and rebound factor; the object starts at
    rest at y and falls under constant gravity onto the floor (the frame's bottom margin).
    """

    colour: str
    shape: str
    motion: str
    background: str
    x: float = 0.5
    y: float = 0.5
    size: float = 0.3
    end_size: float = 0.3
    travel: float = 0.0
    impact: float = 0.4
    restitution: float = 0.8

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.colour, self.shape, self.motion)

    @property
    def caption(self) -> str:
        return caption(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_spec(rng: Any, split: str = "train", motions: tuple[str, ...] | None = None) -> ClipSpec:
    """A random spec. `rng`: random.Random, int seed or torch.Generator (see `vocab.as_random`).
    split "train" never yields a HELD_OUT triple, "held_out" only yields them, "all" either;
    `motions`, when given, keeps only those motions."""
    rng = as_random(rng)
    return _draw(rng, split_triples(split, motions))


def _draw(rng: Any, triples: tuple[tuple[str, str, str], ...]) -> ClipSpec:
    colour, shape, motion = rng.choice(triples)
    background = rng.choice(tuple(BACKGROUNDS))
    return draw_spec(rng, colour, shape, motion, background)


def draw_spec(rng: Any, colour: str, shape: str, motion: str, background: str) -> ClipSpec:
    """A random clip of the named attributes: position, size, path and timing drawn as in
    `sample_spec`. Clips drawn this way are samples of p(clip | caption)."""
    rng = as_random(rng)
    u = rng.uniform

    def place(s: float) -> float:  # a centre coordinate keeping a box of side s in frame
        return u(MARGIN + s / 2, 1 - MARGIN - s / 2)

    fields: dict[str, float]
    if motion.startswith("moving"):
        s = u(*TRANSLATE_SIZE)
        travel = u(TRANSLATE_TRAVEL_MIN, 1 - 2 * MARGIN - s)
        lo, hi = MARGIN + s / 2, 1 - MARGIN - s / 2
        along = u(lo, hi - travel)  # the smaller coordinate of the two ends of the path
        direction = motion.split()[1]
        start = along + travel if direction in ("left", "up") else along
        x, y = (start, place(s)) if direction in ("left", "right") else (place(s), start)
        fields = dict(x=x, y=y, size=s, end_size=s, travel=travel)
    elif motion in ("growing", "shrinking"):
        small = u(*SCALE_SMALL)
        big = small * u(*SCALE_RATIO)
        a, b = (small, big) if motion == "growing" else (big, small)
        fields = dict(x=place(big), y=place(big), size=a, end_size=b)
    elif motion == "bouncing":
        s = u(*BOUNCE_SIZE)
        floor = 1 - MARGIN - s / 2
        drop = u(BOUNCE_DROP_MIN, floor - (MARGIN + s / 2))
        fields = dict(
            x=place(s),
            y=floor - drop,
            size=s,
            end_size=s,
            impact=u(*BOUNCE_IMPACT),
            restitution=u(*BOUNCE_RESTITUTION),
        )
    else:  # pragma: no cover - MOTIONS and this function change together
        raise AssertionError(motion)
    return ClipSpec(colour, shape, motion, background, **fields)


def draw_like(text: str, n: int, rng: Any, split: str = "train") -> list[ClipSpec]:
    """n clips drawn from p(clip | text) in the split: what the caption names is kept, the rest
    (a background a paraphrase left out, everything for an empty prompt) is drawn at random."""
    rng = as_random(rng)
    named = parse_caption(text) or {}
    keys = ("colour", "shape", "motion")
    triples = [t for t in split_triples(split) if all(named.get(k, v) == v for k, v in zip(keys, t))]
    if not triples:
        raise ValueError(f"no clip of the {split} split matches {text!r}")
    backgrounds = (named["background"],) if "background" in named else tuple(BACKGROUNDS)
    return [draw_spec(rng, *rng.choice(triples), rng.choice(backgrounds)) for _ in range(n)]


def split_triples(split: str, motions: tuple[str, ...] | None = None) -> tuple[tuple[str, str, str], ...]:
    """The (colour, shape, motion) triples of a split, only those of `motions` when given;
    ValueError names a bad split or motion."""
    triples = {"train": TRAIN_TRIPLES, "held_out": HELD_OUT_TRIPLES, "all": ALL_TRIPLES}.get(split)
    if triples is None:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if motions is not None:
        unknown = sorted(set(motions) - set(MOTIONS))
        if unknown or not motions:
            raise ValueError(f"motions must be some of {', '.join(MOTIONS)}; got {', '.join(unknown) or 'none'}")
        triples = tuple(t for t in triples if t[2] in motions)
    return triples


def reversed_spec(spec: ClipSpec) -> ClipSpec | None:
    """The spec whose clip is `spec`'s played backwards: the opposite motion word along the same
    path (left from A to B backwards is right from B to A; growing backwards is shrinking). None
    for a bounce, which backwards is not a bounce."""
    motion = OPPOSITE_MOTION.get(spec.motion)
    if motion is None:
        return None
    if spec.motion.startswith("moving"):
        axis = "x" if spec.motion.endswith(("left", "right")) else "y"
        sign = 1.0 if spec.motion.endswith(("right", "down")) else -1.0
        end = getattr(spec, axis) + sign * spec.travel
        return replace(spec, motion=motion, **{axis: end})
    return replace(spec, motion=motion, size=spec.end_size, end_size=spec.size)


def _bounce_height(tau: torch.Tensor, drop: torch.Tensor, impact: torch.Tensor, e: torch.Tensor):
    """Height above the floor of a ball dropped from rest at `drop`, first landing at `impact`,
    each rebound leaving at `e` times the landing speed. All (b, 1) except tau (1, t)."""
    g = 2 * drop / impact**2
    height = drop - 0.5 * g * tau**2  # the first fall
    t_land, v = impact, g * impact  # time and speed of the k-th landing
    for _ in range(_MAX_BOUNCES):
        v = e * v
        since = tau - t_land
        arc = v * since - 0.5 * g * since**2
        height = torch.where(since >= 0, arc, height)
        t_land = t_land + 2 * v / g
    return height.clamp(min=0)


def trajectories(specs: list[ClipSpec], frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre x, centre y and size of each spec's object on each frame, each (b, t), normalised."""
    f = lambda name: torch.tensor([getattr(s, name) for s in specs], dtype=torch.float32)[:, None]
    x, y, size, end_size, travel = f("x"), f("y"), f("size"), f("end_size"), f("travel")
    tau = torch.linspace(0, 1, frames)[None, :] if frames > 1 else torch.zeros(1, 1)
    sign = lambda word: torch.tensor([float(word in s.motion) for s in specs])[:, None]
    # Translations: constant speed along the named direction (y grows downwards).
    cx = x + (sign("right") - sign("left")) * travel * tau
    cy = y + (sign("down") - sign("up")) * travel * tau
    sizes = size + (end_size - size) * tau
    bouncing = sign("bouncing").bool()
    if bouncing.any():
        floor = 1 - MARGIN - size / 2
        drop = (floor - y).clamp(min=1e-3)
        height = _bounce_height(tau, drop, f("impact"), f("restitution"))
        cy = torch.where(bouncing, floor - height, cy)
    return cx.expand(-1, max(frames, 1)), cy.expand(-1, max(frames, 1)), sizes.expand(-1, max(frames, 1))


def shape_coverage(shape: str, px: torch.Tensor, py: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of `shape` centred at the origin, at offsets (px, py) from
    its centre, with half its size `half`; all three in pixels (any broadcastable shapes)."""
    if shape == "circle":
        sdf = torch.sqrt(px**2 + py**2) - half
    elif shape == "square":
        sdf = torch.maximum(px.abs(), py.abs()) - half
    elif shape == "triangle":
        # Apex at (0, -half), base corners at (+-half, +half). The slanted edges have outward
        # normals (+-2, -1)/sqrt(5) through the apex; the base is y = +half.
        slant = (2 * px.abs() - (py + half)) / math.sqrt(5)
        sdf = torch.maximum(slant, py - half)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    return (0.5 - sdf).clamp_(0, 1)


def coverage(
    shape_ids: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, sizes: torch.Tensor, size: int
) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1], (b, t, h, w), of shapes (b,) (indices into SHAPES) with
    centres and sizes (b, t) in normalised units, on a size x size grid."""
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    alpha = torch.empty(cx.shape[0], cx.shape[1], size, size)
    # Each shape's distance is computed only for the clips that show it (3x less work than
    # computing all three and selecting).
    for sid, shape in enumerate(SHAPES):
        idx = (shape_ids == sid).nonzero().flatten()
        if idx.numel() == 0:
            continue
        px = (grid[None, None, None, :] - cx[idx][..., None, None]) * size  # (b, t, 1, w)
        py = (grid[None, None, :, None] - cy[idx][..., None, None]) * size  # (b, t, h, 1)
        alpha[idx] = shape_coverage(shape, px, py, (sizes[idx] / 2)[..., None, None] * size)
    return alpha


def render_batch(specs: list[ClipSpec], frames: int = 16, size: int = 32) -> torch.Tensor:
    """Render specs to float videos (b, 3, t, h, w) in [0, 1]."""
    if frames < 1 or size < 4:
        raise ValueError(f"need frames >= 1 and size >= 4, got frames={frames}, size={size}")
    cx, cy, sizes = trajectories(specs, frames)
    shape_ids = torch.tensor([SHAPES.index(s.shape) for s in specs])
    alpha = coverage(shape_ids, cx, cy, sizes, size)[:, None]  # (b, 1, t, h, w)
    rgb = lambda table, key: torch.tensor([table[getattr(s, key)] for s in specs], dtype=torch.float32) / 255
    fg = rgb(COLOURS, "colour")[:, :, None, None, None]  # (b, 3, 1, 1, 1)
    bg = rgb(BACKGROUNDS, "background")[:, :, None, None, None]
    return torch.addcmul(bg, alpha, fg - bg)  # one fused op: 7x faster than bg + a * (fg - bg)


def render(spec: ClipSpec, frames: int = 16, size: int = 32) -> torch.Tensor:
    """Render one spec to a float video (3, t, h, w) in [0, 1]."""
    return render_batch([spec], frames, size)[0]


def sample_batch(
    batch: int,
    frames: int,
    size: int,
    generator: torch.Generator,
    split: str = "train",
    paraphrase_prob: float = 0.0,
    reversed_pairs: float = 0.0,
    motions: tuple[str, ...] | None = None,
) -> tuple[torch.Tensor, list[str], list[ClipSpec]]:
    """A training batch: videos (b, 3, t, h, w) float in [-1, 1], captions, specs.

    Deterministic given the generator's state (which advances by one draw). Each caption is a
    paraphrase with probability `paraphrase_prob`, else canonical. With `reversed_pairs` > 0,
    clip i + b // 2 is, with that probability, clip i played backwards (`reversed_spec`) when
    that spec is in the split; `reversal_pairs` finds them. `motions` keeps only those motions.
    """
    rng = as_random(generator)
    triples = split_triples(split, motions)
    specs = [_draw(rng, triples) for _ in range(batch)]
    half = batch // 2
    for i in range(half if reversed_pairs > 0 else 0):
        twin = reversed_spec(specs[i])
        if rng.random() < reversed_pairs and twin is not None and twin.triple in triples:
            specs[half + i] = twin
    captions = [paraphrase(s, rng) if rng.random() < paraphrase_prob else caption(s) for s in specs]
    videos = from_unit(render_batch(specs, frames, size), inplace=True)  # in place: no second 6 MB buffer
    return videos, captions, specs


def reversal_pairs(specs: list[ClipSpec]) -> list[tuple[int, int]]:
    """(i, j) for each clip j of a `sample_batch` batch that is clip i played backwards."""
    half = len(specs) // 2
    return [(i, half + i) for i in range(half) if specs[half + i] == reversed_spec(specs[i])]


__all__ = [
    "ClipSpec",
    "MARGIN",
    "coverage",
    "draw_like",
    "draw_spec",
    "render",
    "render_batch",
    "reversal_pairs",
    "reversed_spec",
    "sample_batch",
    "sample_spec",
    "split_triples",
    "trajectories",
]
