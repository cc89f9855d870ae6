"""Weights across the device tool's file limits (16 MiB a file): fp16 shards, and back.

    python scripts/device_weights.py split runs/gpu/polish/weights/model.safetensors $OUT [--max-mib 15]
    python scripts/device_weights.py merge DIR_WITH_SHARDS runs/gpu-back/model.safetensors

split casts floating tensors to fp16 (what ships) and writes weights-00.safetensors, ... each with
the file's own header metadata (config, card) and its place ("shard": "k/n"); a tensor larger than
a shard is cut into rows. merge joins them into one file with that metadata, which `lumiere`'s
loaders read like any weights file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from lumiere_cli.atomic import staged  # noqa: E402
from lumiere_cli.errors import InputError  # noqa: E402
from lumiere_cli.weights import content_hash  # noqa: E402


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


# A tensor larger than a shard travels in rows: NAME + PIECE.format(i, n), joined again by merge.
PIECE = "@piece{}of{}"


def _pieces(name: str, tensor: torch.Tensor, limit: float) -> dict[str, torch.Tensor]:
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes <= limit or tensor.ndim == 0 or len(tensor) < 2:
        return {name: tensor}
    n = min(len(tensor), -(-int(nbytes) // int(limit)))
    return {name + PIECE.format(i, n): part for i, part in enumerate(tensor.tensor_split(n))}


def split(src: Path, out: Path, max_mib: float) -> list[Path]:
    tensors, meta = _read(src)
    limit = max_mib * 2**20
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    tensors = {k: v for name, t in tensors.items() for k, v in _pieces(name, t, limit).items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name].contiguous()
        size += nbytes
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, shard in enumerate(shards):
        path = out / f"weights-{k:02d}.safetensors"
        with staged(path) as tmp:
            save_file(shard, str(tmp), metadata={**meta, "shard": f"{k}/{len(shards)}"})
        paths.append(path)
    return paths


def merge(folder: Path, dst: Path) -> Path:
    paths = sorted(folder.glob("weights-*.safetensors"))
    if not paths:
        raise InputError(f"no weights-*.safetensors in {folder}")
    tensors, meta = {}, None
    for path in paths:
        part, part_meta = _read(path)
        k, n = map(int, part_meta.pop("shard").split("/"))
        if n != len(paths):
            raise InputError(f"{path.name} is shard {k} of {n}, but {len(paths)} shards are in {folder}")
        meta = meta or part_meta
        tensors |= part
    pieces: dict[str, dict[int, torch.Tensor]] = {}
    for key in [k for k in tensors if "@piece" in k]:
        name, rest = key.split("@piece")
        pieces.setdefault(name, {})[int(rest.split("of")[0])] = tensors.pop(key)
    tensors |= {name: torch.cat([parts[i] for i in sorted(parts)]) for name, parts in pieces.items()}
    meta["content_hash"] = content_hash(tensors)  # of the fp16 tensors now held, as the loaders check
    dst.parent.mkdir(parents=True, exist_ok=True)
    with staged(dst) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        tmp.chmod(0o644)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split")
    s.add_argument("src", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--max-mib", type=float, default=15.0)
    m = sub.add_parser("merge")
    m.add_argument("folder", type=Path)
    m.add_argument("dst", type=Path)
    args = ap.parse_args()
    try:
        if args.command == "split":
            for path in split(args.src, args.out, args.max_mib):
                print(path)
        else:
            print(merge(args.folder, args.dst))
    except InputError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
