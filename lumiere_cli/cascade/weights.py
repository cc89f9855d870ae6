"""SSR weights: safetensors with the `SSRConfig`, the card and a content hash in the header."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import staged
from ..config import dumps
from ..errors import WeightsError
from ..nn.layers import skipped_init
from ..weights import content_hash
from .header import SSR_FILENAME, SSR_FORMAT, parse_ssr_metadata, read_ssr_header, resolve_ssr
from .model import SSRModel


def save_ssr(model: SSRModel, path: str | os.PathLike, *, card: dict[str, Any] | None = None,
             dtype: torch.dtype | None = None) -> Path:
    """Write `model` (optionally cast to fp16/bf16) atomically; a folder gets `ssr.safetensors`."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path.mkdir(parents=True, exist_ok=True)
        path = path / SSR_FILENAME
    tensors = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in model.state_dict().items()}
    card = dict(model.card if card is None else card)
    digest = content_hash(tensors)
    meta = {"format": SSR_FORMAT, "config": dumps(model.config), "card": json.dumps(card), "content_hash": digest}
    with staged(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)
    model.weights_hash = digest
    return path


def load_ssr(path: str | os.PathLike, device: str | torch.device = "cpu", *, grow: bool = False) -> SSRModel:
    """Rebuild the SSR from its header and check the content hash. `grow`: accept weights that lack
    some parameters (a frames-stage file starting the temporal stage: those start as the identity)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = resolve_ssr(path)
    meta = read_ssr_header(p)
    config, card = parse_ssr_metadata(p, meta)
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{p}: corrupt weights file ({e})") from None
    if content_hash(tensors) != meta.get("content_hash"):
        raise WeightsError(f"{p}: content hash mismatch: the weights were modified or damaged; re-download them")
    # A strict load overwrites every parameter, so drawing initial weights would be wasted work.
    with contextlib.nullcontext() if grow else skipped_init():
        model = SSRModel(config, card=card)
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if unexpected or (missing and not grow):
        names = ", ".join((unexpected or missing)[:3]) + (" ..." if len(unexpected or missing) > 3 else "")
        raise WeightsError(f"{p}: weights do not match their config ({'unexpected' if unexpected else 'missing'} "
                           f"tensors: {names})")
    try:
        model.load_state_dict(state, strict=not grow)
    except RuntimeError as e:
        raise WeightsError(f"{p}: weights do not match their config ({str(e).splitlines()[-1].strip()})") from None
    model.weights_hash = meta["content_hash"]
    model.path = p
    return model.to(device).eval()


__all__ = ["load_ssr", "save_ssr"]
