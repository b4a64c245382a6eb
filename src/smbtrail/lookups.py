"""The shared knowledge tables (lookups/*.csv, described in lookups/README.md): where they live (a checkout or
the Splunk app) and the one reader every module uses."""

from __future__ import annotations

import csv
import os
from functools import cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

ENV = "SMBTRAIL_LOOKUPS"
# The Splunk package also carries a copy next to the engine: a forwarder package cut from it (slim
# partition) keeps bin/ but not lookups/. The app's own lookups/ (which an admin may edit) comes first.
PACKAGED = Path(__file__).resolve().parent / "packaged_lookups"

Row = Dict[str, str]


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


def rows(name: str, path: Optional[Union[str, Path]] = None) -> List[Row]:
    """The rows of lookups/<name> (or of `path`, a copy of that table elsewhere), header names as keys.
    Read on every call: callers cache what they derive."""
    with open(path or lookup_path(name), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def header(path: Union[str, Path]) -> List[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def cells(text: Optional[str]) -> List[str]:
    """A multi-valued cell (`a|b|c`) as its values, blanks dropped."""
    return [part.strip() for part in (text or "").split("|") if part.strip()]


@cache
def argument_names(role: str) -> Tuple[str, ...]:
    """The arguments that play `role` (lookups/arguments.csv `roles`: `identifies`, `carried`, ...), in the order
    of that role's list: an entry `carried:3` is third; a role written without ranks keeps the table's order."""
    ranked = []
    for position, row in enumerate(rows("arguments.csv")):
        for entry in cells(row["roles"]):
            name, _, rank = entry.partition(":")
            if name == role:
                ranked.append((int(rank) if rank else position, position, row["name"]))
    return tuple(name for _, _, name in sorted(ranked))


@cache
def access_rights(side: str) -> Tuple[Tuple[int, str], ...]:
    """(mask bit, name) of the file and pipe rights a side reports (`host` or `network`), in bit order."""
    table = [(int(row["mask"], 16), row["name"]) for row in rows("access_rights.csv")
             if side in cells(row["reported_by"])]
    return tuple(sorted(table))


def access_names(mask: int, side: str) -> List[str]:
    return [name for bit, name in access_rights(side) if mask & bit]
