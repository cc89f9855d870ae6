"""Spatial MultiDiffusion: a frame too large for one call, denoised in overlapping tiles averaged
at every step (Bar-Tal et al. 2023), so that memory grows with the tile, not with the frame.

Axis legend: b batch, c channels, t frames, h height, w width, n tiles.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .wrappers import _batch_sigma, stacked_kwargs, window_starts

__all__ = ["SpatialTiles", "tile_starts"]


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """First pixel of each tile along one side: the fewest tiles of `tile` pixels covering `length`
    with at least `overlap` shared by neighbours, on a grid of `multiple` pixels (where the
    network's downsampling lines up, so a tile sees the same pixel grid the whole frame would)."""
    if tile % multiple or length % multiple or overlap < 0:
        raise ValueError(f"tile ({tile}) and side ({length}) must be multiples of {multiple}, overlap >= 0")
    cells = -(-overlap // multiple)  # the overlap in grid cells, rounded up
    if tile // multiple <= cells:
        raise ValueError(f"a tile of {tile} px cannot overlap its neighbour by {overlap} px")
    return [s * multiple for s in window_starts(length // multiple, tile // multiple, cells)]


class SpatialTiles(nn.Module):
    """The denoiser on overlapping `tile` x `tile` squares of the frame, averaged where they
    overlap; a frame no larger than one tile goes through in one call, unchanged.

    `space_kwargs` name the tensor kwargs laid out like x, (b, c, t, h, w) at x's size, cut with it
    (known pixels, the enlarged low-res clip); other batch-sized tensors are repeated per tile.
    `chunk` tiles go through the model per call (stacked along the batch): memory grows with
    chunk * tile**2, whatever the frame's size.
    """

    def __init__(self, model: nn.Module, tile: int, overlap: int, space_kwargs: tuple[str, ...] = (),
                 *, multiple: int = 1, chunk: int = 1):
        super().__init__()
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 tile, got {chunk}")
        self.model, self.tile, self.overlap = model, tile, overlap
        self.space_kwargs, self.multiple, self.chunk = tuple(space_kwargs), multiple, chunk

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **kwargs) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"SpatialTiles needs videos (b, c, t, h, w), got shape {tuple(x.shape)}")
        b, height, width = x.shape[0], x.shape[3], x.shape[4]
        if self.tile >= height and self.tile >= width:
            return self.model(x, sigma, **kwargs)
        sigma = _batch_sigma(sigma, x)
        rows = tile_starts(height, min(self.tile, height), self.overlap, self.multiple)
        cols = tile_starts(width, min(self.tile, width), self.overlap, self.multiple)
        th, tw = min(self.tile, height), min(self.tile, width)
        tiles = [(y, x0) for y in rows for x0 in cols]
        total = torch.zeros_like(x)
        count = x.new_zeros(height, width)
        for first in range(0, len(tiles), self.chunk):
            group = tiles[first:first + self.chunk]
            n = len(group)

            # 1. cut the tiles and stack them along the batch, tile-major: row k * b + i
            def cut(v: torch.Tensor) -> torch.Tensor:
                return torch.cat([v[..., y:y + th, x0:x0 + tw] for y, x0 in group])

            tile_kwargs = stacked_kwargs(kwargs, self.space_kwargs, cut, b, n)
            # 2. denoise them in one call, 3. add each estimate where its tile lies
            d = rearrange(self.model(cut(x), sigma.repeat(n), **tile_kwargs), "(n b) c t h w -> n b c t h w", n=n)
            for k, (y, x0) in enumerate(group):
                total[..., y:y + th, x0:x0 + tw] += d[k]
                count[y:y + th, x0:x0 + tw] += 1
        return total / count
