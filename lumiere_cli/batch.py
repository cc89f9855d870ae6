"""A batch: the prompt argument or a prompt file (plain lines or JSONL) as Requests, every line
checked before anything runs; and which items this process runs under torchrun.

Item i's seed is its own `seed`, else the command's --seed + i, else a random one (drawn once and
reported). Every bad line is reported with its line number (`Problems`, then one `BatchError`),
and then nothing is generated.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .choices import Task
from .errors import InputError, LumiereError, UsageError
from .requests import ITEM_KEYS, OutputSpec, Request, StyleSpec, build


class BatchError(LumiereError):
    """Several problems, one per line; exit 3 when all of them are the user's files, else 2."""

    def __init__(self, problems: list[LumiereError]):
        self.problems = problems
        self.exit_code = 3 if all(isinstance(p, InputError) for p in problems) else 2
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Problems:
    """Problems found so far, by batch position, so they are reported in file order."""

    found: list[tuple[int, LumiereError]] = field(default_factory=list)

    def add(self, index: int, error: LumiereError) -> None:
        self.found.append((index, error))

    def raise_any(self) -> None:
        if self.found:
            raise BatchError([e for _, e in sorted(self.found, key=lambda p: p[0])])


@dataclass(frozen=True)
class Line:
    index: int  # position among the batch's items (comments and blank lines do not count)
    where: str  # "file:lineno", or "" for the prompt argument
    fields: dict[str, Any]


def read_lines(prompt: str | None, prompts_file: Path | None, problems: Problems) -> list[Line]:
    """The prompt argument, or every item of a prompt file; bad lines go to `problems`."""
    if prompt is not None and prompts_file is not None:
        raise UsageError("give a PROMPT or --prompts FILE, not both")
    if prompts_file is None:
        if prompt is None:
            raise UsageError("missing PROMPT (or pass --prompts FILE; see --help)")
        return [Line(0, "", {"prompt": prompt})]
    text, name = _read_prompt_file(prompts_file)
    lines: list[Line] = []
    index = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{lineno}"
        try:
            fields = _jsonl_fields(line, where) if line.startswith(("{", "[", '"')) else {"prompt": line}
        except LumiereError as e:
            problems.add(index, e)
        else:
            lines.append(Line(index, where, fields))
        index += 1
    if not lines and not problems.found:
        raise InputError(f"{name} holds no prompts (one per line; blank and # lines are skipped)")
    return lines


def _read_prompt_file(path: Path) -> tuple[str, str]:
    if str(path) == "-":
        return sys.stdin.read(), "stdin"
    if not path.is_file():
        raise InputError(f"prompt file not found: {path} (check the path)")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read prompt file {path}: {e} (it must be UTF-8 text)") from e


def _jsonl_fields(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise UsageError(f"{where}: invalid JSON ({e.msg}); write one object per line, or a plain prompt") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: a JSON line must be an object with a \"prompt\" key")
    unknown = set(obj) - ITEM_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown keys {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(ITEM_KEYS))})")
    if not isinstance(obj.get("prompt"), str):
        raise UsageError(f'{where}: each JSON line needs a "prompt" string')
    return obj


def requests(task: Task | str, lines: list[Line], common: dict[str, Any], *, output: OutputSpec,
             problems: Problems, style: StyleSpec | None = None) -> list[Request]:
    """One validated Request per line: the command's values with the line's on top; bad lines go
    to `problems`."""
    if output.path is not None and len(lines) > 1:
        raise UsageError("-o/--output names one file; with several prompts use --out-dir")
    out: list[Request] = []
    for line in lines:
        fields = {**{k: v for k, v in common.items() if v is not None}, **line.fields}
        if "seed" not in line.fields and common.get("seed") is not None:
            fields["seed"] = common["seed"] + line.index
        try:
            out.append(build(task, fields, output=output, style=style, index=line.index, where=line.where,
                             item_output=bool(line.where)))
        except LumiereError as e:
            problems.add(line.index, e)
    return out


def rank_and_world() -> tuple[int, int]:
    """This process's share of a batch under torchrun (RANK/WORLD_SIZE); (0, 1) otherwise."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as e:
        raise UsageError("RANK and WORLD_SIZE must be integers") from e
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return rank, world


def mine(requests: list[Request], rank: int, world: int) -> list[Request]:
    # Round-robin by the item's index, so every rank gets a fair share of a sorted file.
    return [r for r in requests if r.index % world == rank]
