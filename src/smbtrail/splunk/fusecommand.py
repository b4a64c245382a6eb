"""`smbtrailfuse`: network records and Windows events already in Splunk -> fused trails (SCP v2).

An events-type command: it must see every input row before fusing, so rows are buffered as records
across chunks and the trails are written with the last chunk. Output rows all carry the same fields
(the record writer fixes its header from the first row) plus `_raw` = the record JSON for `collect`.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Iterator, List

from splunklib.searchcommands import Configuration, EventingCommand, Option, validators

from ..records import Record
from . import events, winevent, zeekevent

OUTPUT_FIELDS = [
    "_time", "_raw", "sourcetype", "uid", "kind", "trail_id", "session_id", "command", "operation",
    "rpc_interface", "src_ip", "src_port", "dest_ip", "dest_port", "src_host", "dest_host", "user", "domain",
    "share", "path", "event_id", "logon_id", "encrypted", "decrypted", "inferred", "partial", "confidence",
    "evidence", "join", "message",
]


@Configuration()
class SmbtrailFuseCommand(EventingCommand):
    """| smbtrailfuse [max_records=<int>]: fuse smbtrail:network rows and Windows events into trails."""

    max_records = Option(require=False, default=1000000, validate=validators.Integer(1))

    def __init__(self) -> None:
        super().__init__()
        self._records: List[Record] = []
        self._zeek: List[Record] = []  # Zeek add-on events: recognized together before fusion
        self._skipped: Dict[str, int] = {}

    def transform(self, records: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        for row in records:
            self._take(row)
        if len(self._records) + len(self._zeek) > self.max_records:
            raise ValueError(f"more than max_records={self.max_records} input rows; narrow the search")
        if not self._finished:
            return
        for reason, count in sorted(self._skipped.items()):
            self.write_warning("smbtrailfuse: {} rows ignored: {}", count, reason)
        from ..engine import fuse

        records = self._records + list(zeekevent.network_records(self._zeek, self._records))
        for record in fuse(canonical_order(records)):
            yield output_row(record)

    def _take(self, row: Dict[str, Any]) -> None:
        try:
            if zeekevent.is_zeek_event(row):
                self._zeek.extend(zeekevent.row_records(row))
                return
            record = input_record(row)
        except ValueError as exc:
            reason = str(exc).split(":", 1)[0]
            self._skipped[reason] = self._skipped.get(reason, 0) + 1
            return
        if record is not None:
            self._records.append(record)


def canonical_order(records: List[Record]) -> List[Record]:
    """Time order (ties by uid): searches return newest first and in any chunking, the CLI reads in
    time order, and fusion must not depend on how Splunk happened to deliver the rows."""
    return sorted(records, key=lambda r: (r.time, r.uid()))


def input_record(row: Dict[str, Any]):
    """One Splunk row as an engine record, None for rows that are not input (health events)."""
    row = {k: v for k, v in row.items() if v not in ("", None, [])}  # empty in the chunk = field absent
    sourcetype = str(row.get("sourcetype") or "")
    if sourcetype.startswith("smbtrail:"):
        if sourcetype == events.HEALTH:
            return None
        try:
            return events.record_from_body(json.loads(row.get("_raw") or ""))
        except ValueError as exc:
            raise ValueError(f"unreadable smbtrail event: {exc.__class__.__name__}") from None
    if winevent.is_windows_event(row):
        try:
            flat = winevent.flat_event(row)
            return winevent.to_record(flat, str(row.get("source") or sourcetype or "splunk"))
        except ImportError:  # an engine part missing is the build's fault, not the row's
            raise
        except Exception as exc:  # ET.ParseError, bad numbers: attacker-shaped input, never a crash
            raise ValueError(f"unreadable Windows event: {exc.__class__.__name__}") from None
    raise ValueError("neither an smbtrail record nor a Windows event")


def output_row(record: Record) -> Dict[str, Any]:
    body = events.event_body(record)
    row: Dict[str, Any] = {name: None for name in OUTPUT_FIELDS}
    for name in OUTPUT_FIELDS:
        value = body.get(name)
        if isinstance(value, bool):
            value = int(value)
        row[name] = value
    row["_time"] = record.time.timestamp()
    row["_raw"] = events.event_json(record)
    row["sourcetype"] = events.TRAIL
    return row
