"""Where the shared knowledge tables (lookups/*.csv) live: in a checkout, or in the Splunk app."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SMBTRAIL_LOOKUPS"
# The Splunk package also carries a copy next to the engine: a forwarder package cut from it (slim
# partition) keeps bin/ but not lookups/. The app's own lookups/ (which an admin may edit) comes first.
PACKAGED = Path(__file__).resolve().parent / "packaged_lookups"


class LookupMissing(FileNotFoundError):
    environment_fault = True  # an installation without lookups/: no input is to blame


def lookups_dir() -> Path:
    """$SMBTRAIL_LOOKUPS, else the nearest ancestor's lookups/ (checkout: <root>/src/smbtrail/;
    Splunk app: <app>/bin/lib/smbtrail/), else the copy packaged with the engine."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    for candidate in [parent / "lookups" for parent in Path(__file__).resolve().parents] + [PACKAGED]:
        if (candidate / "rpc_operations.csv").is_file():
            return candidate
    raise LookupMissing(f"lookups/rpc_operations.csv not found; set {ENV}")


def lookup_path(name: str) -> Path:
    path = lookups_dir() / name
    if not path.is_file():
        raise LookupMissing(f"lookup {path} not found (an incomplete installation)")
    return path
