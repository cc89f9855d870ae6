"""Where the tool keeps what it can make again (learned styles, dataset scans): one folder per
kind under $XDG_CACHE_HOME/lumiere-cli (default ~/.cache/lumiere-cli). No torch."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lumiere-cli" / kind
