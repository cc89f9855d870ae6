"""Weights on disk: safetensors with the config and a content hash in the header.

This is the torch half (save, load, hash the tensors); finding the file and reading its header
live in `weights_header`, which `lumiere info` uses without importing torch.

A pickle (.pt, .ckpt, .bin, ...) is refused, never unpickled: loading one can run arbitrary code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .atomic import staged
from .config import dumps
from .errors import WeightsError
from .model import LumiereModel
from .nn.layers import skipped_init
from .weights_header import (  # noqa: F401 - the header half, re-exported for callers that load anyway
    FILENAME, FORMAT, PICKLE_SUFFIXES, SHIPPED_WEIGHTS, RUN_WEIGHTS, WeightsInfo, default_weights_path,
    parse_metadata, read_header, read_info, resolve, weights_hash,
)


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order: independent of file layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_weights(model: nn.Module, path: str | os.PathLike, *, filename: str, format: str,
                  card: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write `model.state_dict()` (optionally cast to fp16/bf16) atomically as safetensors, with
    `format`, the model's typed config, its card and the content hash in the header; a folder gets
    `filename`. Returns the file written. The base model and the SSR both store themselves so."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path.mkdir(parents=True, exist_ok=True)
        path = path / filename
    tensors = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in model.state_dict().items()}
    card = dict(model.card if card is None else card)
    digest = content_hash(tensors)
    metadata = {"format": format, "config": dumps(model.config), "card": json.dumps(card), "content_hash": digest}
    with staged(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors creates 0600; weights are meant to be shared
    model.weights_hash = digest
    return path


# Models read before the command that needs them (`lumiere serve` reads the default weights before
# it forks): each is taken by the first read of the same, unchanged file, once, so that a process
# that reads a file twice still gets two models.
_READ_AHEAD: dict[tuple, nn.Module] = {}


def _file_key(p: Path, grow: bool) -> tuple:
    info = os.stat(p)
    return (str(Path(p).resolve()), info.st_ino, info.st_size, info.st_mtime_ns, grow)


def read_ahead(p: Path, model: nn.Module, *, grow: bool = False) -> None:
    """Keep `model`, read from `p`, for the next `read_weights` of that file (unchanged)."""
    _READ_AHEAD[_file_key(p, grow)] = model


def read_weights(p: Path, meta: dict[str, str], build: Callable[[], nn.Module], *, grow: bool = False) -> nn.Module:
    """The model `build()` makes, holding the tensors of the file `p` (whose header is `meta`),
    after checking the content hash and that the tensors match the model (`grow`: some may be
    missing, and keep their fresh initialisation). A model `read_ahead` of the unchanged file is
    that model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if _READ_AHEAD:
        key = _file_key(p, grow)
        ahead = _READ_AHEAD.pop(key, None)
        for stale in [k for k in _READ_AHEAD if k[0] == key[0]]:  # the same path, since changed
            del _READ_AHEAD[stale]
        if ahead is not None:
            return ahead

    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{p}: corrupt weights file ({e})") from None
    if content_hash(tensors) != meta.get("content_hash"):
        raise WeightsError(f"{p}: content hash mismatch: the weights were modified or damaged; re-download them")
    # A strict load overwrites every parameter, so drawing initial weights would be wasted work.
    with contextlib.nullcontext() if grow else skipped_init():
        model = build()
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if unexpected or (missing and not grow):
        names = ", ".join((unexpected or missing)[:3]) + (" ..." if len(unexpected or missing) > 3 else "")
        what = "unexpected" if unexpected else "missing"
        raise WeightsError(f"{p}: weights do not match their config ({what} tensors: {names})")
    try:
        model.load_state_dict(state, strict=not grow)
    except RuntimeError as e:  # shape mismatches
        raise WeightsError(f"{p}: weights do not match their config ({str(e).splitlines()[-1].strip()})") from None
    model.weights_hash = meta["content_hash"]
    return model


def save_model(
    model: LumiereModel,
    path: str | os.PathLike,
    *,
    card: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` (optionally cast to fp16/bf16) atomically; returns the file written."""
    return write_weights(model, path, filename=FILENAME, format=FORMAT, card=card, dtype=dtype)


def load_model(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu", *, grow: bool = False
) -> LumiereModel:
    """Rebuild the model from the config in the header and check the content hash.

    grow: accept weights from an older architecture that lacks some of this code's parameters;
    those keep their fresh initialisation (new layers start as the identity), which is what a
    training stage wants from its `init`. Sampling never grows: it would run untrained layers.
    """
    p = resolve(path)
    meta = read_header(p)
    config, card = parse_metadata(p, meta)
    model = read_weights(p, meta, lambda: LumiereModel(config, card=card), grow=grow)
    return model.to(device).eval()
