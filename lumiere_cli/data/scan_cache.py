"""Scans remembered between runs, so that a training run restarted on a large dataset does not
open every file again before its first step.

A file's scan is reused while its resolved path, size and modification time (ns) and the entry's
span are what they were; anything else scans again, as `make` would. Captions are not part of a
scan: an entry keeps its current caption. One JSON file per dataset, under
$XDG_CACHE_HOME/lumiere-cli/scans (default ~/.cache/lumiere-cli/scans), written whole through
`atomic`, so concurrent runs lose at most each other's new scans, never the file. A cache that
cannot be read is ignored and one that cannot be written is skipped: the cache only ever saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .. import atomic
from ..errors import LumiereError
from ..user_cache import cache_dir
from .entries import Entry, Problem
from .media import Scanned

# Bumped whenever `media.scan_entry` changes what it finds, so that no scan outlives the rule that made it.
VERSION = 1
_FIELDS = ("kind", "width", "height", "fps", "frames", "start_s", "duration_s")


def _key(entry: Entry) -> str | None:
    """The entry's file and span as they are now; None when the file cannot be looked at."""
    try:
        path = entry.path.resolve()
        st = path.stat()
    except OSError:
        return None
    return json.dumps([str(path), st.st_size, st.st_mtime_ns, entry.start, entry.end])


class ScanCache:
    """The remembered scans of one dataset (`source`: its manifest or folder); `fresh` forgets
    them (every file is scanned again, and remembered anew)."""

    def __init__(self, source: str | os.PathLike, *, fresh: bool = False):
        name = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:24]
        self.path = cache_dir("scans") / f"{name}.json"
        self._old = {} if fresh else self._read()
        self._new: dict[str, dict] = {}
        self.reused = 0

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data["scans"] if data.get("version") == VERSION and isinstance(data.get("scans"), dict) else {}
        except (OSError, ValueError, AttributeError, KeyError):
            return {}

    def get(self, entry: Entry) -> Scanned | Problem | None:
        """The entry's remembered scan, if its file and span are unchanged."""
        key = _key(entry)
        found = self._old.get(key) if key else None
        result = _restore(entry, found) if isinstance(found, dict) else None
        if result is not None:
            self._new[key] = found
            self.reused += 1
        return result

    def put(self, entry: Entry, result: Scanned | Problem) -> None:
        key = _key(entry)  # a file not found has no key: it is looked for again next time
        if key:
            self._new[key] = ({"problem": result.reason} if isinstance(result, Problem)
                              else {f: getattr(result, f) for f in _FIELDS})

    def save(self) -> None:
        """Write this run's scans (those of entries no longer listed are dropped)."""
        if self._new == self._old:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(self.path, json.dumps({"version": VERSION, "scans": self._new}))
        except (OSError, LumiereError):
            pass


def _restore(entry: Entry, stored: dict) -> Scanned | Problem | None:
    if "problem" in stored:
        return Problem(entry.where, str(entry.path), str(stored["problem"]))
    try:
        return Scanned(entry, **{f: stored[f] for f in _FIELDS})
    except (KeyError, TypeError):
        return None
