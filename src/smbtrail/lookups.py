"""The shared knowledge tables (lookups/*.csv): where they live (a checkout or the Splunk app) and the one
reader every module uses. Each table is also a Splunk lookup (package.sh defines one per CSV).

Which table holds what:
    rpc_interfaces.csv      interface UUID -> name, spec, usual pipe, other names (`aliases`: the short names
                            rules use, Zeek's spelling); also DCOM classes and transfer syntaxes (`kind`)
    rpc_operations.csv      (UUID, opnum) -> operation, action verb, Wireshark's name
    zeek_dce_rpc.csv        Zeek's names where they differ from the two above
    arguments.csv           the argument names records carry, and which lists each belongs to (`roles`)
    access_rights.csv       file and pipe access mask bits -> the names both sides write
    command_signatures.csv  network command rules; size_templates.csv, rpc_size_fingerprints.csv and
                            inference_calibration.csv the same under encryption; host_commands.csv and
                            command_lines.csv the host-side rules; suspicion.csv the trail scores
    windows_events.csv, windows_messages.csv, ad_guids.csv, status_codes.csv, well_known_sids.csv
                            Windows' own codes and names; assets.csv the site's address book
"""

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
    """The arguments that play `role` (lookups/arguments.csv `roles`, e.g. `key`, `carried`), in the order of
    that role's list: a role written `carried:3` is third; a bare role keeps the table's order."""
    ranked = []
    for position, row in enumerate(rows("arguments.csv")):
        for entry in row["roles"].split():
            name, _, rank = entry.partition(":")
            if name == role:
                ranked.append((int(rank) if rank else position, position, row["name"]))
    return tuple(name for _, _, name in sorted(ranked))


@cache
def access_rights(side: str) -> Tuple[Tuple[int, str], ...]:
    """(mask bit, name) of the file and pipe rights a side reports (`host` or `network`), in bit order."""
    table = [(int(row["mask"], 16), row["name"]) for row in rows("access_rights.csv")
             if side in row["reported_by"].split("|")]
    return tuple(sorted(table))


def access_names(mask: int, side: str) -> List[str]:
    return [name for bit, name in access_rights(side) if mask & bit]
