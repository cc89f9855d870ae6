"""A small clip encoder, used only to train the text encoder contrastively (training stage "text").

Axis legend: b batch, c channels, t frames, h height, w width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VideoEncoder(nn.Module):
    """3D conv stack -> pooled embedding. It must see motion, or motion words learn nothing."""

    def __init__(self, *, embed_dim: int, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv3d(3, w, 3, padding=1), nn.SiLU(),
            nn.Conv3d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.proj = nn.Linear(4 * w, embed_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (b, c, t, h, w) -> (b, d)
        # Half the frames and pixels still show every motion clearly; Conv3d is slow on CPU.
        video = F.avg_pool3d(video, 2) if min(video.shape[2:]) >= 8 else video
        return self.proj(self.net(video).mean(dim=(2, 3, 4)))
