"""The one progress contract of the library: sampling, training and style learning alike.

`progress(phase, done, total, **metrics)` is called as work advances: `phase` names what runs
("encode", "denoise", "train", "style", ...), `done` of `total` units are finished, and `metrics`
carries numbers worth showing (loss, clips_per_s, lr, ...). The library never prints; a caller that
wants nothing passes None.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, phase: str, done: int, total: int, **metrics: float) -> None: ...


def silent(phase: str, done: int, total: int, **metrics: float) -> None:
    """The progress callback that reports nothing."""


def or_silent(progress: Progress | None) -> Progress:
    return silent if progress is None else progress
