"""Evaluation: does a generated clip show what its prompt asked for?

Prompts are canonical captions of random specs, drawn separately from the training split
("held_in") and from the held-out triples ("held_out", combinations of words never seen together in
training). Each prompt is generated, read back with the world's detector, and compared with its
spec: per-attribute accuracy (colour, shape, motion, background), the rate of clips with all four
right, and temporal consistency (one object of one colour and shape in every frame).

This module returns data; the CLI prints the table (`EvalReport.rows()`) or writes JSON
(`EvalReport.to_dict()`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .world.detect import Detection, detect
from .world.render import ClipSpec, sample_spec
from .world.vocab import caption

ATTRIBUTES = ("colour", "shape", "motion", "background")
SPLITS = {"held_in": "train", "held_out": "held_out"}  # report name -> sample_spec split
COLUMNS = ("split", "clips", *ATTRIBUTES, "all correct", "consistent")

Progress = Callable[[str, int, int], None]


def score(detections: Sequence[Detection], specs: Sequence[ClipSpec]) -> dict[str, float | int]:
    """Rates in [0, 1] over pairs of detections and specs: one per attribute, "all" (every
    attribute right), "consistent"; plus "count" and "grain" (the mean background noise, 0-255,
    `Detection.grain`). Rates are 0.0 when there are no clips."""
    if len(detections) != len(specs):
        raise ValueError(f"{len(detections)} detections for {len(specs)} specs")
    n = len(specs)
    rate = lambda hits: sum(hits) / n if n else 0.0
    right = [{a: getattr(d, a) == getattr(s, a) for a in ATTRIBUTES} for d, s in zip(detections, specs)]
    result: dict[str, float | int] = {"count": n}
    for a in ATTRIBUTES:
        result[a] = rate(r[a] for r in right)
    result["all"] = rate(all(r.values()) for r in right)
    result["consistent"] = rate(d.consistent for d in detections)
    result["grain"] = rate(d.grain for d in detections)
    return result


def evaluate_clips(clips: Iterable[Any], specs: Sequence[ClipSpec]) -> dict[str, float | int]:
    """Detect and score clips (uint8 (t, h, w, 3) or float (3, t, h, w) in [0, 1]) against
    their specs, e.g. ground-truth renders to check the detector itself."""
    return score([detect(c) for c in clips], specs)


@dataclass
class EvalReport:
    """Scores per split ("held_in", "held_out"), each as `score` returns them, and the per-clip
    records (prompt, seed, spec attributes, detection)."""

    splits: dict[str, dict[str, float | int]]
    n: int
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "seed": self.seed,
            "options": self.options,
            "splits": self.splits,
            "samples": self.samples,
        }

    def rows(self) -> list[tuple[str, ...]]:
        """One row per split, matching COLUMNS: the split, the clip count, then percentages."""
        pct = lambda v: f"{100 * v:.1f}%"
        return [
            (name, str(s["count"]), *(pct(s[k]) for k in (*ATTRIBUTES, "all", "consistent")))
            for name, s in self.splits.items()
        ]

    def grain_line(self) -> str:
        """The mean background noise per split, for under the table."""
        return "grain (background noise, 0-255; renders: 0): " + ", ".join(
            f"{name} {s.get('grain', 0.0):.1f}" for name, s in self.splits.items())


def draw_specs(n: int, seed: int) -> dict[str, list[ClipSpec]]:
    """The specs `evaluate` uses: n per split, deterministic from the seed. Each split has its own
    stream, so the held-in prompts do not depend on the held-out ones."""
    drawn = {}
    for i, (name, split) in enumerate(SPLITS.items()):
        rng = random.Random(f"eval-{seed}-{i}")
        drawn[name] = [sample_spec(rng, split) for _ in range(n)]
    return drawn


def evaluate(
    model: Any,
    *,
    n: int,
    seed: int,
    options: Any = None,
    progress: Progress | None = None,
    device: str = "cpu",
    batch_size: int = 8,
) -> EvalReport:
    """Generate n clips from held-in prompts and n from held-out prompts, detect and score them.

    Clip k of a split is generated with seed `seed + k`, `batch_size` clips per sampler run (the
    clips do not depend on it). `progress(split, done, total)` is called after each batch.
    `options` is a SampleOptions (None: its defaults).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Lazy: the pipeline pulls in the network; importing eval (e.g. for `score`) should not.
    from .config import SampleOptions
    from .pipeline import generate_batch, resolve_options

    options = SampleOptions() if options is None else options
    splits: dict[str, dict[str, float | int]] = {}
    samples: list[dict[str, Any]] = []
    for name, specs in draw_specs(n, seed).items():
        detections = []
        for first in range(0, n, batch_size):
            chunk = specs[first:first + batch_size]
            prompts = [caption(spec) for spec in chunk]
            seeds = [seed + k for k in range(first, first + len(chunk))]
            results = generate_batch(model, prompts, seeds=seeds, options=options, device=device)
            for spec, prompt, clip_seed, result in zip(chunk, prompts, seeds, results):
                det = detect(result.frames)
                detections.append(det)
                samples.append(
                    {
                        "split": name,
                        "prompt": prompt,
                        "seed": clip_seed,
                        "expected": {a: getattr(spec, a) for a in ATTRIBUTES},
                        "detected": det.to_dict(),
                    }
                )
            if progress is not None:
                progress(name, len(detections), n)
        splits[name] = score(detections, specs)
    opts = asdict(resolve_options(model.config, options))  # the settings used, not "default"
    return EvalReport(splits=splits, n=n, seed=seed, options=opts, samples=samples)


__all__ = ["ATTRIBUTES", "COLUMNS", "EvalReport", "draw_specs", "evaluate", "evaluate_clips", "score"]
