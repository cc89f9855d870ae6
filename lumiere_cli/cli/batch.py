"""Work items for a run: the prompt or a prompt file, per-item overrides, seeds, ranks, file names."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumiere_cli.errors import InputError, UsageError

# Keys a JSONL line may set for its own item; anything else is a typo worth reporting.
OVERRIDE_KEYS = {
    "prompt", "negative", "seed", "steps", "guidance", "sampler", "schedule_shift", "frames", "fps", "output",
    "image", "video", "mask", "strength",
}
SLUG_MAX = 48


@dataclass
class Item:
    index: int  # position in the whole batch: fixes the seed offset and the rank that runs it
    prompt: str
    overrides: dict[str, Any] = field(default_factory=dict)


def read_items(prompt: str | None, prompts_file: Path | None) -> list[Item]:
    """The prompt argument, or the lines of a prompt file (plain text or JSONL)."""
    if prompt is not None and prompts_file is not None:
        raise UsageError("give a PROMPT or --prompts FILE, not both")
    if prompts_file is None:
        if prompt is None:
            raise UsageError("missing PROMPT (or pass --prompts FILE; see --help)")
        return [Item(0, check_prompt(prompt))]
    if str(prompts_file) == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        if not prompts_file.is_file():
            raise InputError(f"prompt file not found: {prompts_file} (check the path)")
        try:
            text, name = prompts_file.read_text(encoding="utf-8"), str(prompts_file)
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read prompt file {prompts_file}: {e} (it must be UTF-8 text)") from e
    items: list[Item] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            items.append(_jsonl_item(len(items), line, f"{name}:{lineno}"))
        else:
            items.append(Item(len(items), check_prompt(line, where=f"{name}:{lineno}")))
    if not items:
        raise InputError(f"{name} holds no prompts (one per line; blank and # lines are skipped)")
    return items


def _jsonl_item(index: int, line: str, where: str) -> Item:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: invalid JSON ({e.msg}); write one object per line") from e
    if not isinstance(obj, dict) or "prompt" not in obj:
        raise InputError(f'{where}: each JSON line needs a "prompt" key')
    unknown = set(obj) - OVERRIDE_KEYS
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(OVERRIDE_KEYS))})")
    prompt = obj.pop("prompt")
    if not isinstance(prompt, str):
        raise InputError(f'{where}: "prompt" must be a string')
    return Item(index, check_prompt(prompt, where=where), obj)


def check_prompt(prompt: str, *, where: str | None = None) -> str:
    prompt = " ".join(prompt.split())
    if not prompt:
        at = f"{where}: " if where else ""
        raise UsageError(f"{at}empty prompt (describe the video, e.g. \"a red circle moving left\")")
    return prompt


def rank_and_world() -> tuple[int, int]:
    """This process's share of a batch under torchrun (RANK/WORLD_SIZE); (0, 1) otherwise."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as e:
        raise UsageError("RANK and WORLD_SIZE must be integers") from e
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return rank, world


def my_items(items: list[Item], rank: int, world: int) -> list[Item]:
    # Round-robin by the item's index, so every rank gets a fair share of a sorted file.
    return [it for it in items if it.index % world == rank]


def resolve_seed(base: int | None, item: Item) -> int:
    """Per-item seed: an explicit override, else base + index, else a fresh random one."""
    if "seed" in item.overrides:
        seed = item.overrides["seed"]
        if not isinstance(seed, int) or seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
        return seed
    if base is not None:
        return base + item.index
    return secrets.randbelow(2**31)


def slugify(text: str, max_len: int = SLUG_MAX) -> str:
    """Lower-case ASCII words joined by '-', cut at a word boundary within `max_len`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1].rfind("-")
        slug = slug[: cut if cut > 0 else max_len].strip("-")
    return slug or "clip"


def default_path(out_dir: Path, prompt: str, seed: int, fmt: str, *, overwrite: bool) -> Path:
    """`{slug}_{seed}.{ext}` (a png folder has no suffix). Without --overwrite an existing name gets
    -2, -3, ... so default names never collide with earlier outputs."""
    stem = f"{slugify(prompt)}_{seed}"
    suffix = "" if fmt == "png" else f".{fmt}"
    path = out_dir / f"{stem}{suffix}"
    n = 2
    while not overwrite and (path.exists() or path.with_name(path.name + ".json").exists()):
        path = out_dir / f"{stem}-{n}{suffix}"
        n += 1
    return path


def check_writable_dir(path: Path) -> None:
    """Fail before the model loads rather than after minutes of sampling."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"output directory {path} is a file (pass a directory to --out-dir)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output directory {path}: {e.strerror} (choose another --out-dir)") from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {path} is not writable (choose another --out-dir)")


def file_sha256(path: Path) -> str:
    """Content hash of an input file, or of a folder's files in name order."""
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
