"""SSR weights: safetensors with the `SSRConfig`, the card and a content hash in the header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..weights import read_weights, write_weights
from .header import SSR_FILENAME, SSR_FORMAT, parse_ssr_metadata, read_ssr_header, resolve_ssr
from .model import SSRModel


def save_ssr(model: SSRModel, path: str | os.PathLike, *, card: dict[str, Any] | None = None,
             dtype: torch.dtype | None = None) -> Path:
    """Write `model` (optionally cast to fp16/bf16) atomically; a folder gets `ssr.safetensors`."""
    return write_weights(model, path, filename=SSR_FILENAME, format=SSR_FORMAT, card=card, dtype=dtype)


def load_ssr(path: str | os.PathLike, device: str | torch.device = "cpu", *, grow: bool = False) -> SSRModel:
    """Rebuild the SSR from its header and check the content hash. `grow`: accept weights that lack
    some parameters (a frames-stage file starting the temporal stage: those start as the identity)."""
    p = resolve_ssr(path)
    meta = read_ssr_header(p)
    config, card = parse_ssr_metadata(p, meta)
    model = read_weights(p, meta, lambda: SSRModel(config, card=card), grow=grow)
    model.path = p
    return model.to(device).eval()


__all__ = ["load_ssr", "save_ssr"]
