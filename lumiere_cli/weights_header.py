"""Where the weights are and what their safetensors header says, without torch.

A safetensors file starts with 8 bytes (little-endian header length) and a JSON header naming
every tensor's dtype and shape, plus `__metadata__` (here: format, config, card, content_hash).
Reading that JSON is enough for `lumiere info`: the config, the card, the hash and the parameter
count (the sum of the tensor shapes' products), in milliseconds and without importing torch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ModelConfig, loads
from .errors import WeightsError

FORMAT = "lumiere-cli/1"
FILENAME = "model.safetensors"
RUN_WEIGHTS = "weights"  # a training run's folder keeps its weights here (train.py)
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}
# The shipped model travels inside the package, so a plain `pip install` finds it too.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "shipped"
MAX_HEADER_BYTES = 100_000_000


def default_weights_path() -> Path:
    return Path(os.environ.get("LUMIERE_WEIGHTS") or SHIPPED_WEIGHTS)


def resolve(path: str | os.PathLike | None) -> Path:
    """A weights file, a folder holding one, or a training run's folder (its `weights/`) -> the
    .safetensors file, with one-line errors for the rest."""
    p = Path(path) if path is not None else default_weights_path()
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(f"{p}: pickled weights are refused (they can run code); convert them to .safetensors")
    if p.is_dir():
        found = [f for f in (p / FILENAME, p / RUN_WEIGHTS / FILENAME) if f.is_file()]
        if not found:
            raise WeightsError(f"no weights in {p} (no {FILENAME} there or in {RUN_WEIGHTS}/): pass --weights "
                               "a weights file, its folder or a training run's folder, or set LUMIERE_WEIGHTS")
        p = found[0]
    if not p.exists():
        raise WeightsError(f"no weights at {p}: pass --weights a weights file, its folder or a training run's "
                           "folder, or set LUMIERE_WEIGHTS")
    if p.suffix.lower() != ".safetensors":
        raise WeightsError(f"{p}: weights must be a .safetensors file")
    return p


def _read_json_header(p: Path) -> dict[str, Any]:
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < MAX_HEADER_BYTES:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError) as e:
        raise WeightsError(f"{p}: not a readable safetensors file ({e})") from None
    return header


def _metadata(p: Path, header: dict[str, Any]) -> dict[str, str]:
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{p}: not lumiere-cli weights (no '{FORMAT}' header)")
    return meta


def read_header(path: str | os.PathLike | None = None) -> dict[str, str]:
    """The safetensors metadata (format, config, card, content_hash) without loading tensors."""
    p = resolve(path)
    return _metadata(p, _read_json_header(p))


def weights_hash(path: str | os.PathLike | None = None) -> str:
    return read_header(path)["content_hash"]


@dataclass(frozen=True)
class WeightsInfo:
    """What the header of one weights file says."""

    path: Path
    config: ModelConfig
    card: dict[str, Any]
    content_hash: str
    shapes: dict[str, tuple[int, ...]]  # every stored tensor's shape, by name

    @property
    def parameters(self) -> int:
        """The model's parameter count: elements over every stored tensor."""
        return self.parameters_under("")

    def parameters_under(self, prefix: str) -> int:
        """Elements of the tensors whose names start with `prefix` ("text.", "unet.spatial.")."""
        return sum(math.prod(shape) for name, shape in self.shapes.items() if name.startswith(prefix))


def parse_metadata(p: Path, meta: dict[str, str]) -> tuple[ModelConfig, dict[str, Any]]:
    """The model config and card from a header's metadata; one-line WeightsError otherwise."""
    try:
        config = loads(ModelConfig, meta["config"])
        card = json.loads(meta.get("card") or "{}")
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{p}: unreadable model config ({e})") from None
    return config, card


def read_info(path: str | os.PathLike | None = None) -> WeightsInfo:
    """Config, card, hash and parameter count of a weights file, from its header alone."""
    p = resolve(path)
    header = _read_json_header(p)
    meta = _metadata(p, header)
    config, card = parse_metadata(p, meta)
    try:
        shapes = {name: tuple(int(n) for n in entry["shape"]) for name, entry in header.items()
                  if name != "__metadata__"}
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{p}: not a readable safetensors file (bad tensor entry: {e})") from None
    return WeightsInfo(path=p, config=config, card=card, content_hash=meta.get("content_hash", ""), shapes=shapes)


__all__ = [
    "FILENAME", "FORMAT", "PICKLE_SUFFIXES", "SHIPPED_WEIGHTS", "RUN_WEIGHTS", "WeightsInfo", "default_weights_path",
    "parse_metadata", "read_header", "read_info", "resolve", "weights_hash",
]
