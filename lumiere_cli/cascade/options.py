"""How to run the SSR (no torch: requests and the CLI build these)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class SSROptions:
    """How to run the SSR. None means the SSR's own recommendation (`resolve`)."""

    steps: int | None = None  # None: SSRConfig.diffusion.sample_steps
    noise: float | None = None  # the conditioning's augmentation level; None: SSRConfig.sample_aug_sigma
    sampler: str | None = None  # None: the SSR's (DiffusionConfig.sample_sampler)
    guidance: float | None = None  # None: the SSR's (1: no guidance)
    schedule_shift: float | None = None  # None: the SSR's sampling shift
    window: int | None = None  # temporal window; None: the trained length
    overlap: int | None = None  # None: SSRConfig.overlap (Lumiere: 2)
    chunk: int | None = None  # windows per network call; None: all at once
    average: bool = True  # False: paste windows without MultiDiffusion's average (for measuring)
    bf16: bool = False  # bf16 autocast where the hardware runs it natively (fp32 otherwise)

    def resolve(self, ssr: Any) -> SSROptions:
        """Every None replaced by the SSR's recommendation (`ssr.config`)."""
        cfg, d = ssr.config, ssr.config.diffusion
        return replace(
            self,
            steps=d.sampling_steps if self.steps is None else self.steps,
            noise=cfg.sample_aug_sigma if self.noise is None else self.noise,
            sampler=d.sampling_sampler if self.sampler is None else self.sampler,
            guidance=d.sampling_guidance if self.guidance is None else self.guidance,
            schedule_shift=d.sampling_schedule_shift if self.schedule_shift is None else self.schedule_shift,
            window=cfg.frames if self.window is None else self.window,
            overlap=cfg.overlap if self.overlap is None else self.overlap,
        )


__all__ = ["SSROptions"]
