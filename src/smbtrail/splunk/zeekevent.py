"""Zeek events already in Splunk -> the network records the Zeek log reader gives for the same lines.

The Splunk Add-on for Zeek (aka Bro) indexes Zeek's JSON logs under one sourcetype per log,
`bro:<log>:json` (bro:dce_rpc:json, bro:smb_files:json, bro:smb_mapping:json, bro:files:json,
bro:ntlm:json, bro:kerberos:json, bro:conn:json), split from `bro:json` by the `_path` key; its search-
time fields keep Zeek's names (`ts`, `uid`, `id.orig_h`, `endpoint`, `operation`, ...). Older and other
add-ons name the same logs `bro_<log>`, `zeek:<log>` or `corelight_<log>`; some pipelines flatten
`id.orig_h` to `id_orig_h`. Where `_raw` holds the JSON line, it is read as written (exact, as
`winevent` reads the event XML); else the row's fields are, with the CIM aliases (src_ip, src_port,
dest_ip, dest_port) where Zeek's own are absent. Rows of logs smbtrail does not use are not Zeek input.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from ..records import Record
from ..zeek import rows
from ..zeek.logs import USED, log_of_fields

SOURCETYPE = re.compile(r"^(?:bro|zeek|corelight)[:_]([a-z0-9_]+?)(?::json)?$", re.IGNORECASE)
CIM = {"id.orig_h": "src_ip", "id.orig_p": "src_port", "id.resp_h": "dest_ip", "id.resp_p": "dest_port"}


def zeek_log(row: Mapping[str, Any]) -> Optional[str]:
    """The Zeek log a Splunk row came from (dce_rpc, ntlm, ...), or None when it is no Zeek event."""
    match = SOURCETYPE.match(str(row.get("sourcetype") or ""))
    if match and match.group(1).lower() != "json":
        return match.group(1).lower()
    if row.get("_path"):
        return str(row["_path"])
    if "uid" in row and ("id.orig_h" in row or "id_orig_h" in row):
        return log_of_fields(dict(row))
    return None


def is_zeek_event(row: Mapping[str, Any]) -> bool:
    return zeek_log(row) in USED


def row_records(row: Mapping[str, Any]) -> List[Record]:
    """The records of one Zeek event (ValueError when it cannot be read: attacker-shaped, never a crash)."""
    log = zeek_log(row) or ""
    source = str(row.get("source") or row.get("sourcetype") or "splunk")
    try:
        return rows.row_records(log, _fields(row), source)
    except (TypeError, ValueError) as exc:  # RowError is a ValueError
        raise ValueError(f"unreadable Zeek event: {exc.__class__.__name__}") from None


def _fields(row: Mapping[str, Any]) -> Dict[str, Any]:
    raw = str(row.get("_raw") or "").lstrip()
    if raw.startswith("{"):
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if isinstance(event, dict):
            return _flat(event)
    fields = {k.replace("id_orig_", "id.orig_").replace("id_resp_", "id.resp_"): v for k, v in row.items()
              if not k.startswith("__mv_")}
    for zeek, cim in CIM.items():
        if zeek not in fields and row.get(cim) not in (None, ""):
            fields[zeek] = row[cim]
    if "ts" not in fields and row.get("_time") not in (None, ""):
        fields["ts"] = row["_time"]
    return fields


def _flat(event: Dict[str, Any]) -> Dict[str, Any]:
    for key in [k for k, v in event.items() if isinstance(v, dict)]:
        for sub, value in event.pop(key).items():
            event[f"{key}.{sub}"] = value
    return event


def network_records(records: Iterable[Record], others: Sequence[Record] = ()) -> Iterator[Record]:
    """The records of a search's Zeek events, completed per connection (account, shares) and recognized
    into commands, as the CLI does with Zeek's files. Those the search's smbtrail:network records
    (`others`) already hold are dropped; the capture's record notes that Zeek saw it too."""
    from ..recognize import recognize
    from ..zeek import merged_with_captures
    from ..zeek.connections import complete
    from ..zeek.overlap import is_zeek

    zeek: Iterable[Record] = complete(sorted(records, key=lambda r: r.time))
    captured = [r for r in others if "network" in r.evidence and not is_zeek(r)]
    if captured:
        zeek = (r for r in merged_with_captures(captured, zeek) if is_zeek(r))
    return recognize(zeek)
