"""Weights on disk: safetensors with the config and a content hash in the header.

A pickle (.pt, .ckpt, .bin, ...) is refused, never unpickled: loading one can run arbitrary code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig, dumps, loads
from .errors import WeightsError
from .model import LumiereModel

FORMAT = "lumiere-cli/1"
FILENAME = "model.safetensors"
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}
REPO_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def default_weights_path() -> Path:
    return Path(os.environ.get("LUMIERE_WEIGHTS") or REPO_WEIGHTS)


def resolve(path: str | os.PathLike | None) -> Path:
    """A weights directory or file -> the .safetensors file, with one-line errors for the rest."""
    p = Path(path) if path is not None else default_weights_path()
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(f"{p}: pickled weights are refused (they can run code); convert them to .safetensors")
    if p.is_dir():
        p = p / FILENAME
    if not p.exists():
        raise WeightsError(f"no weights at {p}: pass --weights DIR, or set LUMIERE_WEIGHTS")
    if p.suffix.lower() != ".safetensors":
        raise WeightsError(f"{p}: weights must be a .safetensors file")
    return p


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order: independent of file layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_model(
    model: LumiereModel,
    path: str | os.PathLike,
    *,
    card: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` (optionally cast to fp16/bf16) atomically; returns the file written."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path.mkdir(parents=True, exist_ok=True)
        path = path / FILENAME
    tensors = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in model.state_dict().items()}
    card = dict(model.card if card is None else card)
    digest = content_hash(tensors)
    metadata = {"format": FORMAT, "config": dumps(model.config), "card": json.dumps(card), "content_hash": digest}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors creates 0600; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    model.weights_hash = digest
    return path


def read_header(path: str | os.PathLike | None = None) -> dict[str, str]:
    """The safetensors metadata (format, config, card, content_hash) without loading tensors."""
    p = resolve(path)
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise WeightsError(f"{p}: not a readable safetensors file ({e})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{p}: not lumiere-cli weights (no '{FORMAT}' header)")
    return meta


def weights_hash(path: str | os.PathLike | None = None) -> str:
    return read_header(path)["content_hash"]


def load_model(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu", *, grow: bool = False
) -> LumiereModel:
    """Rebuild the model from the config in the header and check the content hash.

    grow: accept weights from an older architecture that lacks some of this code's parameters;
    those keep their fresh initialisation (new layers start as the identity), which is what a
    training stage wants from its `init`. Sampling never grows: it would run untrained layers.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = resolve(path)
    meta = read_header(p)
    try:
        config = loads(ModelConfig, meta["config"])
        card = json.loads(meta.get("card") or "{}")
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{p}: unreadable model config ({e})") from None
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{p}: corrupt weights file ({e})") from None
    if content_hash(tensors) != meta.get("content_hash"):
        raise WeightsError(f"{p}: content hash mismatch: the weights were modified or damaged; re-download them")
    model = LumiereModel(config, card=card)
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
    return model.to(device).eval()
