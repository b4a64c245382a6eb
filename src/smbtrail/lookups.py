"""Where the shared knowledge tables (lookups/*.csv) live: in a checkout, or in the Splunk app."""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).resolve()
# checkout: <root>/src/smbtrail/lookups.py; Splunk app: <app>/bin/lib/smbtrail/lookups.py
_CANDIDATES = (_HERE.parents[2] / "lookups", _HERE.parents[3] / "lookups")


def lookups_dir() -> Path:
    if os.environ.get("SMBTRAIL_LOOKUPS"):
        return Path(os.environ["SMBTRAIL_LOOKUPS"])
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    return _CANDIDATES[0]


def lookup_path(name: str) -> Path:
    return lookups_dir() / name
