"""A small clip encoder, used only to train the text encoder contrastively (training stage "text").

Axis legend: b batch, c channels, t frames, h height, w width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn


class VideoEncoder(nn.Module):
    """3D conv stack over the clip and its (t, y, x) coordinates -> one embedding.

    It must see where things are and when, or the words for them learn nothing: with a global
    average over space and time (the first version) "moving left" and "moving right" looked alike
    to it, and the text encoder kept their features 99% alike. So coordinates go in as channels and
    a coarse grid of cells is flattened, not averaged away.
    """

    GRID = (2, 4, 4)  # (t, h, w) cells kept at the end, whatever the clip size

    def __init__(self, *, embed_dim: int, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv3d(3 + 3, w, 3, padding=1), nn.SiLU(),
            nn.Conv3d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.proj = nn.Linear(4 * w * self.GRID[0] * self.GRID[1] * self.GRID[2], embed_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (b, c, t, h, w) -> (b, d)
        # Half the frames and pixels still show every motion clearly; Conv3d is slow on CPU.
        video = F.avg_pool3d(video, 2) if min(video.shape[2:]) >= 8 else video
        b, _, t, h, w = video.shape
        axes = [torch.linspace(-1, 1, n, device=video.device, dtype=video.dtype) for n in (t, h, w)]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, t, h, w)
        video = torch.cat([video, repeat(coords, "c t h w -> b c t h w", b=b)], dim=1)
        cells = F.adaptive_avg_pool3d(self.net(video), self.GRID)
        return self.proj(rearrange(cells, "b c t h w -> b (c t h w)"))
