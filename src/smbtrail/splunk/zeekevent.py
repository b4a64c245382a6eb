"""Zeek events already in Splunk -> the network records the Zeek log reader gives for the same lines.

The Splunk Add-on for Zeek (aka Bro) indexes Zeek's JSON logs under one sourcetype per log,
`bro:<log>:json` (bro:dce_rpc:json, bro:smb_files:json, bro:smb_mapping:json, bro:files:json,
bro:ntlm:json, bro:kerberos:json, bro:conn:json), split from `bro:json` by the source's file name; its search-
time fields keep Zeek's names (`ts`, `uid`, `id.orig_h`, `endpoint`, `operation`, ...). Older and other
add-ons name the same logs `bro_<log>`, `zeek:<log>` or `corelight_<log>`; some pipelines flatten
`id.orig_h` to `id_orig_h`. Where `_raw` holds the JSON line, it is read as written (exact, as
`winevent` reads the event XML); else the row's fields are, with the CIM aliases (src_ip, src_port,
dest_ip, dest_port) where Zeek's own are absent. The add-on's TSV sourcetypes (`bro_<log>`: the TSV line
in `_raw`, fields by indexed extraction from `#fields`, `id_orig_h`...) keep Zeek's TSV escapes in their
values (`\\\\` for a backslash): unescaped here. Rows of logs smbtrail does not use are not Zeek input.
"""

from __future__ import annotations

import json
import re
from collections import deque
from itertools import chain
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ..records import COMMAND, OPERATION, Record
from ..zeek import rows
from ..zeek.logs import USED, log_of_fields, unescape

SOURCETYPE = re.compile(r"^(?:bro|zeek|corelight)[:_]([a-z0-9_]+?)(?::json)?$", re.IGNORECASE)
# the fields a row of the logs smbtrail uses is read by (zeek/rows.py, zeek/logs.py signatures), in
# Zeek's names and the flattened and CIM names some pipelines give
FIELDS_READ = (
    "_path", "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "id_orig_h", "id_orig_p",
    "id_resp_h", "id_resp_p", "src_ip", "src_port", "dest_ip", "dest_port", "endpoint", "operation", "named_pipe",
    "rtt", "path", "share_type", "service", "native_file_system", "name", "action", "prev_name", "fuid", "size",
    "source", "filename", "conn_uids", "is_orig", "tx_hosts", "seen_bytes", "total_bytes", "mime_type", "md5",
    "sha1", "sha256", "success", "status", "username", "domainname", "hostname", "server_nb_computer_name",
    "server_dns_computer_name", "server_tree_name", "client", "request_type", "error_msg", "cipher",
    "conn_state", "history", "duration", "orig_bytes", "resp_bytes",
)
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
    read = _unescaped if "\t" in raw else _as_is  # a TSV line in _raw (bro_<log>): its fields hold Zeek's escapes
    fields = {k.replace("id_orig_", "id.orig_").replace("id_resp_", "id.resp_"): read(v) for k, v in row.items()
              if not k.startswith("__mv_") and k != "_raw"}
    for zeek, cim in CIM.items():
        if zeek not in fields and row.get(cim) not in (None, ""):
            fields[zeek] = row[cim]
    if "ts" not in fields and row.get("_time") not in (None, ""):
        fields["ts"] = row["_time"]
    return fields


def _unescaped(value: Any) -> Any:
    if isinstance(value, list):
        return [_unescaped(v) for v in value]
    return unescape(value) if isinstance(value, str) else value


def _as_is(value: Any) -> Any:
    return value


def _flat(event: Dict[str, Any]) -> Dict[str, Any]:
    for key in [k for k, v in event.items() if isinstance(v, dict)]:
        for sub, value in event.pop(key).items():
            event[f"{key}.{sub}"] = value
    return event


def network_side(zeek: Iterable[Record], captured: Iterable[Record], take: Callable[[Record], None]) -> None:
    """The network side of a search that holds Zeek events, each record handed to `take` (not in time
    order: recognition holds a trail's records until it closes). Zeek's records (`zeek`, in time order)
    are completed per connection and recognized into commands, as the CLI does with Zeek's files; the
    capture records (`captured`, in time order) are checked against them: where both saw the same
    traffic only the capture's record stays, noting that Zeek saw it too (`_Confirmed`)."""
    from ..recognize import recognize
    from ..zeek import merged_with_captures
    from ..zeek.connections import complete
    from ..zeek.overlap import is_zeek

    completed: Iterable[Record] = complete(zeek)
    captured = iter(captured)
    first = next(captured, None)
    held = _Confirmed(take)
    if first is not None:
        completed = held.zeek_only(merged_with_captures(chain([first], captured), completed), is_zeek)
    for rec in recognize(completed):
        take(rec)
    held.release(float("inf"))


class _Confirmed:
    """Capture records wait here until Zeek can no longer confirm them (the overlap check notes a record
    up to overlap.WINDOW after passing it on). A capture's command then notes Zeek where the call it was
    recognized from (its anchor: same connection and time) did, as recognition after the merge gives it
    on the command line; the inputs recognized it before."""

    def __init__(self, take: Callable[[Record], None]) -> None:
        from ..zeek.overlap import TOLERANCE, WINDOW

        self.take, self.wait = take, WINDOW + 2 * TOLERANCE
        self.queue: Deque[Record] = deque()
        self.calls: Dict[tuple, Record] = {}  # anchor -> the capture's call, while it can be one
        self.called: Deque[Tuple[float, tuple]] = deque()

    def zeek_only(self, stream: Iterable[Record], is_zeek: Callable[[Record], bool]) -> Iterator[Record]:
        for rec in stream:
            self.release(rec.time.timestamp() - self.wait)
            if is_zeek(rec):
                yield rec
                continue
            self.queue.append(rec)
            if rec.kind == OPERATION:
                self.calls[_anchor(rec)] = rec
                self.called.append((rec.time.timestamp(), _anchor(rec)))

    def release(self, before: float) -> None:
        while self.queue and self.queue[0].time.timestamp() < before:
            rec = self.queue.popleft()
            call = self.calls.get(_anchor(rec)) if rec.kind == COMMAND else None
            if call is not None and "zeek" in call.evidence and "zeek" not in rec.evidence:
                rec.evidence = list(rec.evidence) + ["zeek"]
                rec.provenance = list(rec.provenance) + list(call.provenance[1:])  # the Zeek lines
                rec.args.setdefault("zeek", call.args.get("zeek"))
                if not rec.user and call.user:
                    rec.user, rec.domain = call.user, call.domain
            self.take(rec)
        while self.called and self.called[0][0] < before - self.wait:
            self.calls.pop(self.called.popleft()[1], None)


def _anchor(rec: Record) -> tuple:
    return rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port, rec.time
