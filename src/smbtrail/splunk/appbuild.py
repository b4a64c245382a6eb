"""Build-time helpers for package.sh: lookup definitions for the lookups/*.csv present, the Windows
sources and event codes smbtrailfuse reads (from lookups/windows_events.csv), version stamping.

Usage: python -m smbtrail.splunk.appbuild STAGE_DIR VERSION
(stdlib only: it runs before the vendored libraries exist).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from .. import lookups

# automatic lookups: csv stem -> (sourcetype, columns the CSV must have, LOOKUP- clause)
AUTOMATIC = {
    "rpc_operations": ("smbtrail:network", {"interface", "opnum", "action"},
                       "interface AS rpc_interface opnum AS opnum OUTPUTNEW action AS rpc_action"),
}


def lookup_stanzas(lookup_dir: Path) -> Tuple[str, List[str]]:
    """transforms.conf text for every CSV, and the props LOOKUP- lines whose CSV has the columns."""
    stanzas, autos = [], []
    for path in sorted(lookup_dir.glob("*.csv")):
        columns = lookups.header(path)
        stanzas.append(f"[smbtrail_{path.stem}]\nfilename = {path.name}\ncase_sensitive_match = false\n")
        if path.stem in AUTOMATIC and AUTOMATIC[path.stem][1] <= set(columns):
            sourcetype, _, clause = AUTOMATIC[path.stem]
            autos.append((sourcetype, f"LOOKUP-smbtrail_{path.stem} = smbtrail_{path.stem} {clause}"))
    return "\n".join(stanzas), autos


# channels of lookups/windows_events.csv that are not Windows event logs (Samba's own audit logs)
NOT_WINDOWS_CHANNELS = {"Samba"}


def windows_macros(lookup_dir: Path) -> str:
    """macros.conf text of the Windows side smbtrailfuse reads, from the events the engine covers:
    their channels (XML or classic rendering, local or forwarded) and their event codes."""
    events = [r for r in lookups.rows("windows_events.csv", lookup_dir / "windows_events.csv")
              if r["channel"] not in NOT_WINDOWS_CHANNELS]
    channels = sorted({r["channel"] for r in events}) + ["ForwardedEvents"]
    sources = ", ".join(f'"{kind}:{c}"' for c in channels for kind in ("XmlWinEventLog", "WinEventLog"))
    codes = ", ".join(str(c) for c in sorted({int(r["event_id"]) for r in events}))
    return (f"[smbtrail_winevent_sources]\ndefinition = source IN ({sources})\n"
            "description = Windows event sources smbtrailfuse reads: the channels of lookups/windows_events.csv, "
            "XML or classic rendering, local or forwarded (generated at build time)\n\n"
            f"[smbtrail_fusion_events]\ndefinition = EventCode IN ({codes})\n"
            "description = The Windows events the engine reads (lookups/windows_events.csv, generated at build time)\n")


def add_to_stanza(text: str, stanza: str, line: str) -> str:
    """Insert `line` at the end of `[stanza]` in conf text (the stanza must exist)."""
    header = f"[{stanza}]"
    start = text.index(header)
    following = re.search(r"^\[", text[start + len(header):], flags=re.M)
    end = start + len(header) + following.start() if following else len(text)
    body = text[:end].rstrip("\n") + "\n" + line + "\n"
    return body + ("\n" + text[end:] if following else "")


def stamp_version(stage: Path, version: str) -> None:
    app_conf = stage / "default" / "app.conf"
    app_conf.write_text(re.sub(r"(?m)^version = .*$", f"version = {version}", app_conf.read_text()))
    manifest_path = stage / "app.manifest"
    manifest: Dict = json.loads(manifest_path.read_text())
    manifest["info"]["id"]["version"] = version
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: List[str]) -> int:
    stage, version = Path(argv[1]), argv[2]
    stamp_version(stage, version)
    transforms, autos = lookup_stanzas(stage / "lookups")
    with (stage / "default" / "transforms.conf").open("a", encoding="utf-8") as handle:
        handle.write("\n" + transforms)
    props_path = stage / "default" / "props.conf"
    props = props_path.read_text()
    for sourcetype, line in autos:
        props = add_to_stanza(props, sourcetype, line)
    props_path.write_text(props)
    with (stage / "default" / "macros.conf").open("a", encoding="utf-8") as handle:
        handle.write("\n" + windows_macros(stage / "lookups"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
