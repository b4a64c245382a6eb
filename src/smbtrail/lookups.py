"""Where the shared knowledge tables (lookups/*.csv) live: in a checkout, or in the Splunk app."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SMBTRAIL_LOOKUPS"


class LookupMissing(FileNotFoundError):
    environment_fault = True  # an installation without lookups/: no input is to blame


def lookups_dir() -> Path:
    """$SMBTRAIL_LOOKUPS, else the nearest ancestor's lookups/ (checkout: <root>/src/smbtrail/;
    Splunk app: <app>/bin/lib/smbtrail/)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "lookups"
        if (candidate / "rpc_operations.csv").is_file():
            return candidate
    raise LookupMissing(f"lookups/rpc_operations.csv not found; set {ENV}")


def lookup_path(name: str) -> Path:
    path = lookups_dir() / name
    if not path.is_file():
        raise LookupMissing(f"lookup {path} not found (an incomplete installation)")
    return path
