"""scripts/tune_schedule.py: the coordinate descent finds a known optimum, keeps the levels strictly
decreasing above sigma_min, and starts from the shifted cosine, not from a model's tuned levels."""

from __future__ import annotations

import dataclasses
import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tune_schedule.py"


def test_descent_reaches_a_known_optimum_and_keeps_the_levels_ordered():
    tune = runpy.run_path(str(SCRIPT))
    target = [80.0, 20.0, 5.0, 1.0, 0.1]
    error = lambda levels: sum((math.log(a) - math.log(b)) ** 2 for a, b in zip(levels, target))
    calls = []
    best, e = tune["descend"](lambda lv: calls.append(list(lv)) or error(lv), [80.0, 10.0, 4.0, 2.0, 0.01],
                              [0.3, 0.1, 0.03], 0.002, log=lambda line: None)
    assert e < 0.01 and best[0] == 80.0 and all(abs(math.log(a / b)) < 0.1 for a, b in zip(best, target))
    assert all(all(a > b for a, b in zip(lv, lv[1:])) and lv[-1] >= 0.002 for lv in calls)


def test_the_search_starts_from_the_shifted_cosine(tiny_model):
    tune = runpy.run_path(str(SCRIPT))
    cosine = tune["cosine_levels"](tiny_model, 4)
    tuned = dataclasses.replace(tiny_model.config.diffusion, sample_sigmas=(80.0, 20.0, 4.0, 0.5))
    model = dataclasses.replace(tiny_model.config, diffusion=tuned)
    holder = type("M", (), {"config": model})()
    assert len(cosine) == 4 and cosine[0] == tiny_model.config.diffusion.sigma_max
    assert tune["cosine_levels"](holder, 4) == cosine
