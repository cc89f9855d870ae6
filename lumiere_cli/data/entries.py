"""Listing a dataset: a manifest (CSV or JSONL) or a folder of captioned media, as entries.

Manifest columns (keys of a JSONL object), case-insensitive: the file under `path` (or `video`,
`video_path`, `file`), its caption under `text` (or `caption`, `prompt`), optionally `start` and
`end` in seconds (the part of the video clips are drawn from). Paths are relative to the manifest's
folder. A folder is searched recursively (hidden names skipped, names in order); every video or
image in it needs a caption in a .txt file of the same stem beside it (`cat.mp4` + `cat.txt`).

Nothing is opened but the manifest and the caption files: an entry whose row is already unusable
(no path, an empty caption, a bad start) is a `Problem`, the rest are `Entry`s for `media.scan`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..video_io.decode import IMAGE_SUFFIXES, VIDEO_SUFFIXES

WORLD = "shapes"  # the procedural world, the default training data
PATH_KEYS = ("path", "video", "video_path", "file")
TEXT_KEYS = ("text", "caption", "prompt")
MANIFESTS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES


@dataclass(frozen=True)
class Entry:
    """One captioned video or image. `where` names it for the user (`clips.csv:3`, `cats/a.mp4`);
    `start`/`end` bound the span clips are drawn from (None: the whole video)."""

    where: str
    path: Path
    text: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Problem:
    """An entry that cannot be used, and why (one short clause)."""

    where: str
    path: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.where, "path": self.path, "reason": self.reason}


@dataclass
class Listing:
    """A dataset's entries in order; `problems` are those unusable before any file is opened."""

    source: Path
    kind: str  # "csv" | "jsonl" | "folder"
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.entries) + len(self.problems)


def is_world(data: str | os.PathLike | None) -> bool:
    """Whether `data` names the procedural world rather than a path."""
    return data is None or str(data) == WORLD


def read_entries(data: str | os.PathLike) -> Listing:
    """The entries of a manifest or a folder. InputError for a missing path, a file that is not a
    manifest, or a manifest without a path or caption column; a bad row is a Problem, not an error."""
    path = Path(data)
    if not path.exists():
        raise InputError(f"data not found: {path} (give a CSV/JSONL manifest, a folder of captioned "
                         f"videos, or '{WORLD}')")
    if path.is_dir():
        return _folder(path)
    kind = MANIFESTS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path} is not a manifest: give a .csv or .jsonl file (columns path and text) "
                         "or a folder of videos with .txt captions")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read manifest {path}: {getattr(e, 'strerror', None) or e}") from None
    rows = _csv_rows(path, text) if kind == "csv" else _jsonl_rows(path, text)
    listing = Listing(path, kind)
    for where, row in rows:
        item = row if isinstance(row, Problem) else _entry(path.parent, where, row)
        (listing.problems if isinstance(item, Problem) else listing.entries).append(item)
    return listing


def _csv_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any] | Problem]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise InputError(f"manifest {path} is empty (its first line names the columns: path,text)")
    _columns(path, [str(n) for n in reader.fieldnames])
    rows: list[tuple[str, dict[str, Any] | Problem]] = []
    for row in reader:
        where = f"{path.name}:{reader.line_num}"
        rows.append((where, {str(k).strip().lower(): v for k, v in row.items() if k is not None}))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any] | Problem]]:
    rows: list[tuple[str, dict[str, Any] | Problem]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            row = json.loads(line)
        except ValueError as e:
            rows.append((where, Problem(where, None, f"not valid JSON ({e})")))
            continue
        if not isinstance(row, dict):
            rows.append((where, Problem(where, None, "not a JSON object")))
            continue
        rows.append((where, {str(k).strip().lower(): v for k, v in row.items()}))
    keys = {k for _, row in rows if isinstance(row, dict) for k in row}
    if rows and any(isinstance(r, dict) for _, r in rows):
        _columns(path, sorted(keys))
    return rows


def _columns(path: Path, names: list[str]) -> None:
    """A manifest must have a path column and a caption column (under any of their names)."""
    lowered = {n.strip().lower() for n in names}
    for what, keys in (("path", PATH_KEYS), ("caption", TEXT_KEYS)):
        if not lowered & set(keys):
            raise InputError(f"manifest {path} has no {what} column: name it one of {', '.join(keys)} "
                             f"(found {', '.join(sorted(lowered)) or 'none'})")


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if k in row), None)


def _seconds(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{key} must be a number of seconds of at least 0, got {value!r}")
    return seconds


def _entry(folder: Path, where: str, row: dict[str, Any]) -> Entry | Problem:
    raw_path, text = _first(row, PATH_KEYS), _first(row, TEXT_KEYS)
    if raw_path is None or not str(raw_path).strip():
        return Problem(where, None, "no path")
    path = folder / str(raw_path).strip()
    if text is not None and not isinstance(text, str):
        return Problem(where, str(path), f"the caption is not text ({type(text).__name__})")
    if text is None or not text.strip():
        return Problem(where, str(path), "empty caption")
    try:
        start, end = _seconds(row, "start"), _seconds(row, "end")
    except ValueError as e:
        return Problem(where, str(path), str(e))
    if start is not None and end is not None and end <= start:
        return Problem(where, str(path), f"end ({end:g} s) is not after start ({start:g} s)")
    return Entry(where, path, " ".join(text.split()), start, end)


def _folder(root: Path) -> Listing:
    listing = Listing(root, "folder")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in MEDIA_SUFFIXES:
                continue
            where = path.relative_to(root).as_posix()
            caption = path.with_suffix(".txt")
            if not caption.is_file():
                listing.problems.append(Problem(where, str(path), f"no caption: add {caption.name} beside it"))
                continue
            try:
                text = caption.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                listing.problems.append(Problem(where, str(path), f"cannot read {caption.name}: "
                                                                  f"{getattr(e, 'strerror', None) or e}"))
                continue
            if not text.strip():
                listing.problems.append(Problem(where, str(path), f"empty caption ({caption.name})"))
                continue
            listing.entries.append(Entry(where, path, " ".join(text.split())))
    if not listing.count:
        raise InputError(f"folder {root} holds no videos or images ({', '.join(sorted(MEDIA_SUFFIXES))})")
    listing.entries.sort(key=lambda e: e.where)  # in path order, subfolders among the files
    listing.problems.sort(key=lambda e: e.where)
    return listing


__all__ = ["Entry", "Listing", "PATH_KEYS", "Problem", "TEXT_KEYS", "WORLD", "is_world", "read_entries"]
