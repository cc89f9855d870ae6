"""Evaluation: does a generated clip show what its prompt asked for?

Prompts are canonical captions of random specs, drawn separately from the training split
("held_in") and from the held-out triples ("held_out", combinations of words never seen together in
training). Each prompt is generated and read back strictly (`world.strict.read_clip`: an attribute
is read only where renders of it lie, a shape no render looks like is "none" and wrong), and
compared with its spec: per-attribute accuracy (colour, shape, motion, background), the rate of
clips with all four right, and temporal consistency (one object of one colour and shape in every
frame). Beside them, how far the clips are from renders: silhouette IoU against the best-fitting
render, the pixel residual against it, background grain, the colour spread inside the object,
shape stability; and today's matched-filter reading (`world.detect`), whose all-correct rate is
kept as a column for comparison.

This module returns data; the CLI prints the table (`EvalReport.rows()`) or writes JSON
(`EvalReport.to_dict()`); `eval_report.write_report` draws contact sheets and an HTML page.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .world.detect import Detection, detect
from .world.render import ClipSpec, sample_spec
from .world.strict import StrictReading, read_clip
from .world.vocab import MOTIONS, caption

ATTRIBUTES = ("colour", "shape", "motion", "background")
SPLITS = {"held_in": "train", "held_out": "held_out"}  # report name -> sample_spec split
RATES = (*ATTRIBUTES, "all", "consistent")  # strict rates, in the table's order
MEASURES = ("iou", "residual", "grain", "spread", "stability")  # means over clips
COLUMNS = ("split", "clips", *ATTRIBUTES, "all correct", "consistent", "IoU", "residual", "grain", "spread",
           "stability", "all correct (matched filter)")
# The two tables `lumiere eval` prints (each fits a terminal): rates, then how far from renders.
RATE_COLUMNS = ("split", "clips", *ATTRIBUTES, "all correct", "consistent", "all correct (matched filter)")
MEASURE_COLUMNS = ("split", "IoU", "residual", "grain", "spread", "stability")

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


def evaluate_clips(clips: Iterable[Any], specs: Sequence[ClipSpec]) -> dict[str, Any]:
    """Read and score clips (uint8 (t, h, w, 3) or float (3, t, h, w) in [0, 1]) against their
    specs as `evaluate` does (`strict_score`), e.g. ground-truth renders to check the reading."""
    return score_split(list(clips), specs)


def read_clips(clips: Iterable[Any]) -> list[tuple[StrictReading, Detection]]:
    """The strict reading and the matched-filter detection of each clip."""
    return [(read_clip(c), detect(c)) for c in clips]


def strict_score(readings: Sequence[tuple[StrictReading, Detection]], specs: Sequence[ClipSpec]) -> dict[str, Any]:
    """Per split: the strict rates (`RATES`, in [0, 1]), the means of `MEASURES` over clips
    (iou: each clip's mean over frames), the matched filter's "matched_all", "matched_shape" and
    "matched_consistent", and "motion_read": for each motion asked, the rate read as it."""
    if len(readings) != len(specs):
        raise ValueError(f"{len(readings)} readings for {len(specs)} specs")
    result: dict[str, Any] = {"count": len(specs)}
    strict = score([r for r, _ in readings], specs)  # duck-typed: colour, shape, motion, background, consistent
    result.update({k: strict[k] for k in RATES})
    mean = lambda values: float(np.mean(values)) if len(values) else 0.0  # noqa: E731
    result["iou"] = mean([r.mean_iou for r, _ in readings])
    result["residual"] = mean([r.mean_residual for r, _ in readings])
    result["grain"] = mean([r.grain for r, _ in readings])
    result["spread"] = mean([r.spread for r, _ in readings])
    result["stability"] = mean([r.stability for r, _ in readings])
    matched = score([d for _, d in readings], specs)
    result.update(matched_all=matched["all"], matched_shape=matched["shape"], matched_consistent=matched["consistent"])
    result["motion_read"] = {
        m: mean([r.motion == m for (r, _), s in zip(readings, specs) if s.motion == m])
        for m in MOTIONS if any(s.motion == m for s in specs)
    }
    return result


def score_split(clips: Sequence[Any], specs: Sequence[ClipSpec]) -> dict[str, Any]:
    """`strict_score` of clips (uint8 (t, h, w, 3) or float (3, t, h, w)) against their specs."""
    return strict_score(read_clips(clips), specs)


def confusion(samples: Sequence[dict[str, Any]], attribute: str) -> dict[str, dict[str, int]]:
    """{asked: {read: count}} over per-clip records (`EvalReport.samples`); "none" where nothing
    was read."""
    table: dict[str, dict[str, int]] = {}
    for s in samples:
        asked, read = s["expected"][attribute], s["read"][attribute] or "none"
        row = table.setdefault(asked, {})
        row[read] = row.get(read, 0) + 1
    return table


@dataclass
class EvalReport:
    """Scores per split ("held_in", "held_out"), each as `strict_score` returns them (a report
    built by `score` alone, as the cascade's, has the rates and grain only), and the per-clip
    records (prompt, seed, spec attributes, strict reading "read", matched-filter "detected").
    `clips` holds the generated frames per split when `evaluate(keep_clips=True)`; it is not
    part of `to_dict`."""

    splits: dict[str, dict[str, Any]]
    n: int
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    clips: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "n": self.n,
            "seed": self.seed,
            "options": self.options,
            "splits": self.splits,
            "samples": self.samples,
        }
        if self.samples and "read" in self.samples[0]:
            data["confusion"] = {a: confusion(self.samples, a) for a in ("shape", "motion")}
        return data

    def rows(self) -> list[tuple[str, ...]]:
        """One row per split, matching COLUMNS: the split, the clip count, percentages, then the
        measures; "-" where the split lacks one."""
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        num = lambda v, digits: "-" if v is None else f"{v:.{digits}f}"  # noqa: E731
        digits = {"iou": 3, "residual": 1, "grain": 1, "spread": 1, "stability": 3}
        return [
            (name, str(s["count"]), *(pct(s.get(k)) for k in RATES),
             *(num(s.get(k), digits[k]) for k in MEASURES), pct(s.get("matched_all")))
            for name, s in self.splits.items()
        ]

    def grain_line(self) -> str:
        """The mean background noise per split, for under the table."""
        return "grain (background noise, 0-255; renders: 0): " + ", ".join(
            f"{name} {s.get('grain', 0.0):.1f}" for name, s in self.splits.items())

    def caption(self) -> str:
        """What the measures mean and what renders score on them, for under the table."""
        return ("strict reading: an attribute counts only inside the range renders of it occupy (a shape no "
                "render looks like is 'none'). IoU: silhouette against the best-fitting render (renders >= 0.97); "
                "residual: RMS 0-255 against that render (renders ~2); grain: background noise 0-255 (renders 0); "
                "spread: colour noise inside the object (renders 0); stability: silhouette change beyond the "
                "motion, as IoU (renders >= 0.97)")


def draw_specs(n: int, seed: int) -> dict[str, list[ClipSpec]]:
    """The specs `evaluate` uses: n per split, deterministic from the seed. Each split has its own
    stream, so the held-in prompts do not depend on the held-out ones."""
    drawn = {}
    for i, (name, split) in enumerate(SPLITS.items()):
        rng = random.Random(f"eval-{seed}-{i}")
        drawn[name] = [sample_spec(rng, split) for _ in range(n)]
    return drawn


def generate_clips(
    model: Any,
    specs: Sequence[ClipSpec],
    *,
    seed: int,
    options: Any = None,
    device: str = "cpu",
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[Any]:
    """The clips `evaluate` scores: clip k is the canonical caption of specs[k] generated with seed
    `seed + k`, `batch_size` clips per sampler run (the clips do not depend on it); uint8
    (t, h, w, 3) arrays. `on_batch(done)` is called after each batch."""
    from .config import SampleOptions
    from .pipeline import generate_batch

    options = SampleOptions() if options is None else options
    clips: list[Any] = []
    for first in range(0, len(specs), batch_size):
        chunk = specs[first:first + batch_size]
        seeds = [seed + k for k in range(first, first + len(chunk))]
        results = generate_batch(model, [caption(s) for s in chunk], seeds=seeds, options=options, device=device)
        clips.extend(r.frames for r in results)
        if on_batch is not None:
            on_batch(len(clips))
    return clips


def evaluate(
    model: Any,
    *,
    n: int,
    seed: int,
    options: Any = None,
    progress: Progress | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    keep_clips: bool = False,
) -> EvalReport:
    """Generate n clips from held-in prompts and n from held-out prompts, read them strictly and
    score them (`strict_score`).

    Clip k of a split is generated with seed `seed + k`, `batch_size` clips per sampler run (the
    clips do not depend on it). `progress(split, done, total)` is called after each batch.
    `options` is a SampleOptions (None: its defaults). `keep_clips` keeps the frames in the
    report (`EvalReport.clips`, for `eval_report.write_report`).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Lazy: the pipeline pulls in the network; importing eval (e.g. for `score`) should not.
    from .config import SampleOptions
    from .pipeline import resolve_options

    options = SampleOptions() if options is None else options
    specs = draw_specs(n, seed)
    clips: dict[str, list[Any]] = {}
    for name, split_specs in specs.items():
        def on_batch(done: int, name: str = name) -> None:
            if progress is not None:
                progress(name, done, n)

        clips[name] = generate_clips(model, split_specs, seed=seed, options=options, device=device,
                                     batch_size=batch_size, on_batch=on_batch)
    opts = asdict(resolve_options(model.config, options))  # the settings used, not "default"
    return report_from_clips(clips, specs, seed=seed, options=opts, keep_clips=keep_clips, progress=progress)


def report_from_clips(clips: dict[str, Sequence[Any]], specs: dict[str, Sequence[ClipSpec]], *, seed: int,
                      options: dict[str, Any] | None = None, keep_clips: bool = False,
                      progress: Progress | None = None) -> EvalReport:
    """Read and score clips made for `draw_specs(n, seed)` (clip k of a split from seed
    `seed + k`): the report `evaluate` returns, from clips generated before (scripts/eval_levers.py
    keeps them). `progress(f"{split}, reading", done, total)` after every 8 clips read."""
    splits: dict[str, dict[str, Any]] = {}
    samples: list[dict[str, Any]] = []
    for name, split_specs in specs.items():
        readings: list[tuple[StrictReading, Detection]] = []
        for k, (spec, clip) in enumerate(zip(split_specs, clips[name])):
            reading, det = read_clip(clip), detect(clip)
            readings.append((reading, det))
            expected = {a: getattr(spec, a) for a in ATTRIBUTES}
            correct = {a: getattr(reading, a) == v for a, v in expected.items()}
            samples.append({"split": name, "prompt": caption(spec), "seed": seed + k, "expected": expected,
                            "read": reading.to_dict(), "correct": correct, "all": all(correct.values()),
                            "detected": det.to_dict()})
            if progress is not None and ((k + 1) % 8 == 0 or k + 1 == len(split_specs)):
                progress(f"{name}, reading", k + 1, len(split_specs))
        splits[name] = strict_score(readings, split_specs)
    n = len(next(iter(specs.values()))) if specs else 0
    kept = {name: list(c) for name, c in clips.items()} if keep_clips else {}
    return EvalReport(splits=splits, n=n, seed=seed, options=options or {}, samples=samples, clips=kept)


def summary_markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A Markdown table of strict scores: {setting: {split: strict_score(...)}} -> one row per
    setting and split."""
    head = ("setting", *COLUMNS)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for setting, splits in results.items():
        report = EvalReport(splits=splits, n=0, seed=0)
        lines += [f"| {setting} | " + " | ".join(row) + " |" for row in report.rows()]
    return "\n".join(lines)


__all__ = [
    "ATTRIBUTES",
    "COLUMNS",
    "MEASURES",
    "MEASURE_COLUMNS",
    "RATES",
    "RATE_COLUMNS",
    "EvalReport",
    "confusion",
    "draw_specs",
    "evaluate",
    "evaluate_clips",
    "generate_clips",
    "read_clips",
    "report_from_clips",
    "score",
    "score_split",
    "strict_score",
    "summary_markdown",
]
