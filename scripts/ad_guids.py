#!/usr/bin/env python3
"""Regenerate lookups/ad_guids.csv: the Active Directory schema and extended-right GUIDs that Windows writes
raw into 4661/4662/5136 events (`%{19195a5b-...}`, `{1131f6ad-...}`), with their names.

    python scripts/ad_guids.py [--setup /usr/share/samba/setup]

The source is Samba's copy of the MS-ADTS schema (Debian package samba-common: ad-schema/*.ldf for classes
and attributes, schemaIDGUID; extended-rights.ldif for control access rights, property sets and validated
writes, rightsGuid). The newest schema file of each kind wins; older files only add what it lacks.
"""

from __future__ import annotations

import argparse
import base64
import csv
import re
import uuid
from pathlib import Path
from typing import Dict, Iterator, Tuple

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "lookups" / "ad_guids.csv"
# validAccesses of an extended right: what it is (MS-ADTS 5.1.3.2.1)
RIGHT_KINDS = {"256": "extended_right", "48": "property_set", "8": "validated_write"}
SCHEMA_FILES = {  # newest first
    "class": ("AD_DS_Classes__Windows_Server_2016.ldf", "AD_DS_Classes__Windows_Server_2012_R2.ldf",
              "Classes_for_AD_DS__Windows_Server_2012.ldf", "Classes_for_AD_DS__Windows_Server_2008_R2.ldf"),
    "attribute": ("AD_DS_Attributes__Windows_Server_2016.ldf", "AD_DS_Attributes__Windows_Server_2012_R2.ldf",
                  "Attributes_for_AD_DS__Windows_Server_2012.ldf", "Attributes_for_AD_DS__Windows_Server_2008_R2.ldf"),
}


def entries(path: Path) -> Iterator[Dict[str, list]]:
    """LDIF entries (blank-line separated, continuation lines joined) as attribute -> values."""
    text = re.sub(r"\r?\n ", "", path.read_text(encoding="utf-8", errors="replace"))
    for block in re.split(r"\n\s*\n", text):
        entry: Dict[str, list] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            if value.startswith(":"):
                value = base64.b64decode(value[1:].strip()).hex()
                name += "::"
            entry.setdefault(name.strip(), []).append(value.strip())
        if entry:
            yield entry


def schema(setup: Path) -> Dict[str, Tuple[str, str, str]]:
    found: Dict[str, Tuple[str, str, str]] = {}
    for kind, files in SCHEMA_FILES.items():
        for name in files:
            for entry in entries(setup / "ad-schema" / name):
                guid, ldap = entry.get("schemaIDGUID::"), entry.get("lDAPDisplayName")
                if guid and ldap:
                    key = str(uuid.UUID(bytes_le=bytes.fromhex(guid[0])))
                    found.setdefault(key, (ldap[0], kind, entry.get("cn", [""])[0]))
    return found


def rights(setup: Path) -> Dict[str, Tuple[str, str, str]]:
    found: Dict[str, Tuple[str, str, str]] = {}
    for entry in entries(setup / "extended-rights.ldif"):
        guid, dn = entry.get("rightsGuid"), entry.get("dn")
        if guid and dn:
            cn = dn[0].split(",", 1)[0].split("=", 1)[1]
            kind = RIGHT_KINDS.get(entry.get("validAccesses", [""])[0], "extended_right")
            found[guid[0].lower()] = (cn, kind, entry.get("displayName", [""])[0])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", type=Path, default=Path("/usr/share/samba/setup"))
    args = parser.parse_args()
    table = rights(args.setup)
    table.update(schema(args.setup))  # three validated writes and property sets share their attribute's GUID
    with open(OUT, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["guid", "name", "kind", "display_name"])
        for guid, (name, kind, display) in sorted(table.items(), key=lambda item: (item[1][1], item[1][0].lower())):
            out.writerow([guid, name, kind, display])
    print(f"{OUT.relative_to(ROOT)}: {len(table)} GUIDs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
