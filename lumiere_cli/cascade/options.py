"""How to run the SSR (no torch: requests and the CLI build these)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Frames up to WHOLE_UP_TO output pixels a side go through the SSR whole (the shipped cascade's 128
# among them), larger ones in tiles of TILE: at 512 px out, 25 tiles of 128 took 12.0 s and 1.1 GB
# against 15.8 s and 2.4 GB whole and 20.6 s and 1.5 GB in tiles of 256; at 256 px out, tiles of 128
# took 4.0 s against 2.3 s whole (README, Resolution).
WHOLE_UP_TO = 256
TILE = 128


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
    # Spatial tiles of this many output pixels a side, overlapping by tile_overlap and averaged at
    # every step, for frames larger than one tile: memory then grows with the tile, not the frame.
    # None: whole up to WHOLE_UP_TO, else TILE (`tiles_for`); 0: the whole frame, whatever its size.
    tile: int | None = None
    tile_overlap: int | None = None  # None: a quarter of the tile
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

    def tiles_for(self, height: int, width: int) -> SSROptions:
        """These options with the tile (0: the whole frame) and its overlap chosen for frames of
        this output size."""
        tile = self.tile if self.tile is not None else TILE if max(height, width) > WHOLE_UP_TO else 0
        return replace(self, tile=tile, tile_overlap=tile // 4 if self.tile_overlap is None else self.tile_overlap)


def check_tile(options: SSROptions, multiple: int) -> None:
    """A one-line UsageError unless the tile of `tiles_for`'s options (if any) fits a U-Net of this
    pixel multiple."""
    from ..errors import UsageError

    o = options
    if o.tile and (o.tile % multiple or not 0 <= o.tile_overlap < o.tile):
        raise UsageError(f"an SSR tile must be a multiple of {multiple} px (e.g. {4 * multiple}, {8 * multiple}, "
                         f"{16 * multiple}), overlapping its neighbour by less than itself; got {o.tile} px, "
                         f"overlap {o.tile_overlap}")


__all__ = ["SSROptions", "TILE", "WHOLE_UP_TO", "check_tile"]
