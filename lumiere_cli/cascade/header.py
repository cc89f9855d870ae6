"""SSR weights on disk, without torch: find them beside the base weights, read their header.

An SSR file is a safetensors file like the base's, with its own format tag and an `SSRConfig`:
`ssr.safetensors` in the folder of the base's `model.safetensors` (the shipped weights, a
`--weights` folder, a training run's `weights/`) makes the cascade's resolution the default.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SSRConfig, loads
from ..errors import WeightsError
from ..weights_header import PICKLE_SUFFIXES, RUN_WEIGHTS, _read_json_header, resolve

SSR_FORMAT = "lumiere-cli-ssr/1"
SSR_FILENAME = "ssr.safetensors"


def ssr_beside(weights: str | os.PathLike | None) -> Path | None:
    """The SSR that goes with the base weights `weights` (as `resolve` finds them): the
    `ssr.safetensors` in the same folder, or None when there is none."""
    p = resolve(weights).parent / SSR_FILENAME
    return p if p.is_file() else None


def resolve_ssr(path: str | os.PathLike) -> Path:
    """An SSR weights file, a folder holding one, or a training run's folder -> the file."""
    p = Path(path)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(f"{p}: pickled weights are refused (they can run code); convert them to .safetensors")
    if p.is_dir():
        found = [f for f in (p / SSR_FILENAME, p / RUN_WEIGHTS / SSR_FILENAME) if f.is_file()]
        if not found:
            raise WeightsError(f"no super-resolution weights in {p} (no {SSR_FILENAME} there or in {RUN_WEIGHTS}/)")
        p = found[0]
    if not p.is_file():
        raise WeightsError(f"no super-resolution weights at {p}")
    if p.suffix.lower() != ".safetensors":
        raise WeightsError(f"{p}: weights must be a .safetensors file")
    return p


@dataclass(frozen=True)
class SSRInfo:
    """What the header of one SSR weights file says."""

    path: Path
    config: SSRConfig
    card: dict[str, Any]
    content_hash: str
    shapes: dict[str, tuple[int, ...]]

    @property
    def parameters(self) -> int:
        return self.parameters_under("")

    def parameters_under(self, prefix: str) -> int:
        return sum(math.prod(s) for name, s in self.shapes.items() if name.startswith(prefix))

    @property
    def size_multiple(self) -> int:
        """Input sides are multiples of this: the U-Net's multiple at the input's scale."""
        out = self.config.unet.size_multiple
        return out // math.gcd(out, self.config.factor)


def parse_ssr_metadata(p: Path, meta: dict[str, str]) -> tuple[SSRConfig, dict[str, Any]]:
    if meta.get("format") != SSR_FORMAT:
        raise WeightsError(f"{p}: not lumiere-cli super-resolution weights (no '{SSR_FORMAT}' header)")
    try:
        return loads(SSRConfig, meta["config"]), json.loads(meta.get("card") or "{}")
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{p}: unreadable super-resolution config ({e})") from None


def read_ssr_header(path: str | os.PathLike) -> dict[str, str]:
    p = resolve_ssr(path)
    meta = _read_json_header(p).get("__metadata__") or {}
    parse_ssr_metadata(p, meta)
    return meta


def read_ssr_info(path: str | os.PathLike) -> SSRInfo:
    """Config, card, hash and tensor shapes of an SSR weights file, from its header alone."""
    p = resolve_ssr(path)
    header = _read_json_header(p)
    meta = header.get("__metadata__") or {}
    config, card = parse_ssr_metadata(p, meta)
    try:
        shapes = {n: tuple(int(k) for k in e["shape"]) for n, e in header.items() if n != "__metadata__"}
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{p}: not a readable safetensors file (bad tensor entry: {e})") from None
    return SSRInfo(path=p, config=config, card=card, content_hash=meta.get("content_hash", ""), shapes=shapes)


__all__ = ["SSR_FILENAME", "SSR_FORMAT", "SSRInfo", "parse_ssr_metadata", "read_ssr_header", "read_ssr_info",
           "resolve_ssr", "ssr_beside"]
