"""A dataset surveyed for a stage: which entries train in which bucket, and why the rest cannot.

`survey` is what training runs before its first step and what `lumiere data check` shows
(`DataReport`): entries, how many decode, histograms of durations, sizes and rates, clips per
bucket, and every unusable entry with its reason. It reads headers and seeks; it never decodes a
whole file.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..config import ModelConfig
from .buckets import Bucket, fit, stage_buckets
from .entries import Listing, Problem, read_entries
from .media import Scanned, scan
from .scan_cache import ScanCache

DURATION_BINS = ((1, "<1 s"), (2, "1-2 s"), (5, "2-5 s"), (10, "5-10 s"), (30, "10-30 s"), (60, "30-60 s"),
                 (300, "1-5 min"), (float("inf"), ">=5 min"))
TOP_SIZES = 8  # the commonest sizes, by name; the rest as "other"


@dataclass
class Survey:
    """A dataset for one stage: `items[i]` trains in `buckets[bucket_of[i]]`; `problems` are the
    entries that cannot (their reasons); `scanned` every entry whose file opened."""

    listing: Listing
    stage: str
    fps: float
    buckets: list[Bucket]
    items: list[Scanned] = field(default_factory=list)
    bucket_of: list[int] = field(default_factory=list)
    scanned: list[Scanned] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    reused: int = 0  # entries whose remembered scan was used (`scan_cache`)

    @property
    def entries(self) -> int:
        return self.listing.count

    def reasons(self) -> dict[str, int]:
        """How many entries were left out for each kind of reason (its first words)."""
        return dict(Counter(_reason_kind(p.reason) for p in self.problems))

    def words(self) -> tuple[str, ...]:
        """The words of the usable captions, for the model's vocabulary."""
        return tuple(sorted({w.strip(".,;:!?\"'()").lower() for it in self.items for w in it.entry.text.split()} - {""}))


def _reason_kind(reason: str) -> str:
    for kind in ("too short", "empty caption", "no caption", "file not found", "not readable", "cannot read",
                 "no frame", "an image"):
        if reason.startswith(kind):
            return kind
    return reason.split(":")[0].split("(")[0].strip()


def survey(data: str | os.PathLike, *, model: ModelConfig, stage: str,
           buckets: Sequence[Sequence[int]] | None = None, threads: int = 4, rescan: bool = False) -> Survey:
    """List, scan and bucket a dataset for `stage` of a model with config `model`. Files scanned
    before and unchanged since are not opened again (`scan_cache`) unless `rescan`. InputError for
    a path that is no dataset; UsageError for buckets the model cannot take."""
    chosen = stage_buckets(model, stage, buckets)
    listing = read_entries(data)
    out = Survey(listing, stage, float(model.fps), chosen, problems=list(listing.problems))
    cache = ScanCache(data, fresh=rescan)
    results = scan(listing.entries, threads=threads, cache=cache)
    cache.save()
    out.reused = cache.reused
    for result in results:
        if isinstance(result, Problem):
            out.problems.append(result)
            continue
        out.scanned.append(result)
        bucket = fit(result, chosen, out.fps)
        if isinstance(bucket, str):
            out.problems.append(Problem(result.entry.where, str(result.entry.path), bucket))
        else:
            out.items.append(result)
            out.bucket_of.append(chosen.index(bucket))
    order = {e.where: i for i, e in enumerate(listing.entries)} | {p.where: -1 for p in listing.problems}
    out.problems.sort(key=lambda p: order.get(p.where, 0))
    return out


def _duration_bin(seconds: float) -> str:
    return next(name for edge, name in DURATION_BINS if seconds < edge)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _rate(fps: float) -> str:
    return f"{fps:.3g}" if fps < 100 else f"{fps:.0f}"


@dataclass
class DataReport:
    """What `lumiere data check` prints (`lines`) or emits as JSON (`to_dict`)."""

    survey: Survey
    model: ModelConfig

    def to_dict(self) -> dict[str, Any]:
        s = self.survey
        videos = [x for x in s.scanned if x.kind == "video"]
        sizes = Counter(f"{x.width}x{x.height}" for x in s.scanned)
        top = dict(sizes.most_common(TOP_SIZES))
        if len(sizes) > TOP_SIZES:
            top["other"] = sum(sizes.values()) - sum(top.values())
        durations = Counter(_duration_bin(x.duration_s or 0) for x in videos)
        rates = Counter(_rate(x.fps or 0) for x in videos)
        per_bucket = Counter(s.bucket_of)
        return {
            "data": str(s.listing.source), "kind": s.listing.kind, "stage": s.stage,
            "model": {"frames": self.model.frames, "size": self.model.size, "fps": self.model.fps},
            "entries": s.entries, "decoded": len(s.scanned), "usable": len(s.items), "scans_reused": s.reused,
            "videos": len(videos), "images": len(s.scanned) - len(videos),
            "durations": {name: durations[name] for _, name in DURATION_BINS if durations[name]},
            "sizes": top,
            "fps": dict(sorted(rates.items(), key=lambda kv: float(kv[0]))),
            "buckets": {b.key: per_bucket.get(i, 0) for i, b in enumerate(s.buckets)},
            "unusable": [p.to_dict() for p in s.problems],
            "unusable_by_reason": s.reasons(),
        }

    def lines(self) -> list[str]:
        d = self.to_dict()
        hist = lambda h: " | ".join(f"{k} {v}" for k, v in h.items()) or "-"  # noqa: E731
        stage = "single frames" if d["stage"] == "t2i" else f"{d['model']['fps']} fps clips"
        lines = [
            f"{d['data']}: {d['entries']} entries ({d['kind']}), {d['decoded']} decode "
            f"({_count(d['videos'], 'video')}, {_count(d['images'], 'image')}), {d['usable']} usable for the {d['stage']} stage "
            f"({stage})",
            f"durations: {hist(d['durations'])}",
            f"sizes: {hist(d['sizes'])}",
            f"fps: {hist(d['fps'])}",
            "clips per bucket (frames x size): " + hist(d["buckets"]),
        ]
        if d["scans_reused"]:
            lines.append(f"{_count(d['scans_reused'], 'file')} not opened again: unchanged since an earlier scan "
                         "(--rescan opens every file)")
        if d["unusable"]:
            lines.append(f"unusable ({len(d['unusable'])}):")
            lines += [f"  {p['entry']}: {p['reason']}" for p in d["unusable"]]
        return lines


def model_config(init: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """The config a stage's model would have: the init's (read from its header) or a new
    model's, with `overrides` (nested ModelConfig keys) merged in. Training checks which keys may
    change on init weights; this only reads."""
    from ..config import from_dict, to_dict
    from ..errors import UsageError
    from ..weights_header import read_info

    def merge(base: dict, extra: dict) -> dict:
        out = dict(base)
        for k, v in extra.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    base = read_info(init).config if init else ModelConfig()
    try:
        return from_dict(ModelConfig, merge(to_dict(base), overrides or {}))
    except (TypeError, ValueError) as e:
        raise UsageError(f"bad model config override: {e}") from None


def check_data(data: str | os.PathLike, *, model: ModelConfig, stage: str = "video",
               buckets: Sequence[Sequence[int]] | None = None, threads: int = 4, rescan: bool = False) -> DataReport:
    """The report `lumiere data check` shows for training `stage` of a model with config `model`."""
    return DataReport(survey(data, model=model, stage=stage, buckets=buckets, threads=threads, rescan=rescan), model)


__all__ = ["DURATION_BINS", "DataReport", "Survey", "check_data", "model_config", "survey"]
