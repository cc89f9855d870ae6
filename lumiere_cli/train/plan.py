"""Plans (the stages behind a model, as data) and the card's record of each stage."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..config import TrainConfig, from_dict
from ..errors import InputError, UsageError
from ..progress import Progress, or_silent


def load_plan(path: str | os.PathLike) -> list[TrainConfig]:
    """A plan file: {"defaults": {TrainConfig fields}, "stages": [{TrainConfig fields}, ...]}
    (other top-level keys, such as "description", are notes). Unknown fields are an error."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read plan {p}: {e.strerror or e}") from None
    except ValueError as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise InputError(f'{p}: a plan is a JSON object with a non-empty "stages" list')
    defaults = data.get("defaults") or {}
    stages = []
    for k, stage in enumerate(data["stages"], 1):
        if not isinstance(stage, dict):
            raise InputError(f"{p}: stage {k} is not a JSON object")
        try:
            stages.append(from_dict(TrainConfig, {**defaults, **stage}))
        except (TypeError, ValueError) as e:
            raise InputError(f"{p}: stage {k}: {e}") from None
    return stages


def steps_done(cfg: TrainConfig) -> int:
    """Steps of this stage already in `out_dir/weights` (0 when none were saved)."""
    from ..errors import WeightsError
    from ..weights_header import read_info

    try:
        card = read_info(cfg.out_dir).card
    except WeightsError:
        return 0
    records = [r for r in card.get("training", []) if r.get("out_dir") == cfg.out_dir]
    return int(records[-1]["steps"]) if records else 0


def plan_stages(plan: Sequence[TrainConfig]) -> list[TrainConfig]:
    """The plan as it runs: each stage after the first starts, unless it names an init, from the
    previous stage's run folder."""
    stages: list[TrainConfig] = []
    for cfg in plan:
        if stages and cfg.init is None:
            cfg = replace(cfg, init=stages[-1].out_dir)
        stages.append(cfg)
    out_dirs = [c.out_dir for c in stages]
    repeated = sorted({d for d in out_dirs if out_dirs.count(d) > 1})
    if repeated:
        raise UsageError(f"each stage of a plan needs its own out_dir; repeated: {', '.join(repeated)}")
    return stages


def train_plan(plan: Sequence[TrainConfig], *, progress: Progress | None = None) -> Path:
    """Run the stages in order (see plan_stages); a stage whose weights already hold all its steps
    is skipped, a partial one resumes from its checkpoint. Returns the last stage's weights file.

    Progress: `progress("stage", k, n)` before stage k (0-based) runs, `progress("skip", k, n)`
    when it is already complete, then the stage's own `progress("train", ...)` calls.
    """
    from ..weights_header import resolve
    from .loop import train

    progress = or_silent(progress)
    stages = plan_stages(plan)
    if not stages:
        raise UsageError("a plan needs at least one stage")
    path = Path(stages[-1].out_dir)
    for k, cfg in enumerate(stages):
        if steps_done(cfg) >= cfg.steps:
            progress("skip", k, len(stages))
            path = resolve(cfg.out_dir)
            continue
        progress("stage", k, len(stages))
        path = train(cfg, progress=progress, resume=True)
    return path


def stage_record(cfg: TrainConfig, *, steps: int, processes: int = 1, device: str = "cpu",
                 seconds: float = 0.0, samples: int | None = None, extra: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The stage's row in the card's training table: what ran, and the options that shaped it.
    `samples`: the clips actually seen (default: steps x batch x processes x accumulation);
    `extra`: more keys (the dataset and its skipped entries, validation losses)."""
    accum = getattr(cfg, "grad_accum", 1)
    return {
        "stage": str(cfg.stage), "steps": steps, "batch_size": cfg.batch_size, "processes": processes,
        "samples_seen": steps * cfg.batch_size * processes * accum if samples is None else samples,
        "lr": cfg.lr, "device": device,
        **({"grad_accum": accum} if accum > 1 else {}),
        **({"text_lr": cfg.text_lr} if cfg.text_lr > 0 else {}),
        **({"sigma_range": list(cfg.sigma_range)} if cfg.sigma_range is not None else {}),
        **({"reversed_pairs": cfg.reversed_pairs} if cfg.reversed_pairs > 0 else {}),
        **({"reference_clips": cfg.reference_clips} if cfg.reference_clips > 0 else {}),
        **({"motions": list(cfg.motions)} if cfg.motions is not None else {}),
        **({"layouts": cfg.layouts} if cfg.layouts != "standard" else {}),
        **({"schedule_shift": cfg.schedule_shift} if cfg.schedule_shift is not None else {}),
        **({"model_overrides": cfg.model_overrides} if cfg.model_overrides else {}),
        **({"hard_negatives": cfg.hard_negatives, "text_anchor": cfg.text_anchor} if cfg.stage == "text" else {}),
        **(extra or {}),
        "wall_minutes": round(seconds / 60, 1), "out_dir": cfg.out_dir,
    }


def card_with_record(card: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The model card with this stage's record (replacing an earlier record of the same run)."""
    history = [r for r in card.get("training", []) if r.get("out_dir") != record["out_dir"]]
    return {**card, "training": history + [record]}


__all__ = ["card_with_record", "load_plan", "plan_stages", "stage_record", "steps_done", "train_plan"]
