"""The range of every number a user can give, in one table (no torch: --help reads it).

The CLI's options take their `min`/`max` from here, and `check` applies the same rule to values
that arrive another way (a JSONL item, a Python caller), so a number means the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    kind: type = float  # int or float

    def describe(self) -> str:
        return f"between {self.lo:g} and {self.hi:g}" if self.kind is float else f"an integer from {self.lo} to {self.hi}"


LIMITS: dict[str, Range] = {
    "seed": Range(0, 2**63 - 1, int),
    "steps": Range(1, 1000, int),
    "guidance": Range(0.0, 50.0),
    "guidance_low": Range(0.0, 50.0),
    "guidance_high": Range(0.0, 50.0),
    "schedule_shift": Range(0.05, 20.0),
    "frames": Range(1, 4096, int),
    "fps": Range(0.1, 240.0),
    "input_fps": Range(0.1, 240.0),
    "stride": Range(1, 1000, int),
    "strength": Range(0.0, 1.0),
    "ssr_steps": Range(1, 1000, int),
    "ssr_noise": Range(0.0, 1.0),
    "upscale_size": Range(4, 1024, int),
    "alpha": Range(0.0, 1.0),
    "style_steps": Range(1, 100_000, int),
    "display_scale": Range(0, 64, int),
    "eta": Range(0.0, 10.0),
    "preview_every": Range(1, 1000, int),
}


def check(name: str, value: object) -> int | float:
    """`value` as the named number's type, or a one-line UsageError saying what is allowed."""
    rule = LIMITS[name]
    label = name.replace("_", " ")
    number_like = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number_like or not math.isfinite(value) or (rule.kind is int and not float(value).is_integer()):
        raise UsageError(f"{label} must be {rule.describe()}, got {value!r}")
    value = rule.kind(value)
    if not rule.lo <= value <= rule.hi:
        raise UsageError(f"{label} must be {rule.describe()}, got {value:g}")
    return value


# The numbers of a SampleOptions (config.py) that the table above bounds.
SAMPLE_NUMBERS = ("steps", "guidance", "guidance_low", "guidance_high", "schedule_shift", "frames", "eta")


def check_sample_numbers(options: object) -> None:
    """Every number a SampleOptions sets, against its range (None is the model's, and unchecked)."""
    for name in SAMPLE_NUMBERS:
        value = getattr(options, name)
        if value is not None:
            check(name, value)


def check_sigmas(values: object, sigma_max: float, name: str = "noise levels") -> tuple[float, ...]:
    """Noise levels a sampler runs through (it appends 0): at least one, each finite, positive and
    at most the model's sigma_max, strictly decreasing; as floats, or a one-line UsageError."""
    try:
        out = tuple(float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a list of numbers, got {values!r}") from None
    ok = out and all(math.isfinite(v) and 0 < v <= sigma_max for v in out)
    if not ok or any(a <= b for a, b in zip(out, out[1:])):
        raise UsageError(f"{name} must decrease strictly, each in (0, {sigma_max:g}]; got {list(values)}")
    return out
