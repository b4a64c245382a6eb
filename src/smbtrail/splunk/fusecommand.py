"""`smbtrailfuse`: network records and Windows events already in Splunk -> fused trails (SCP v2).

An events-type command: it must see every input row before fusing, so rows are buffered as records
across chunks and the result is written with the last chunk. What it writes (`emit`):
- `trails` (default): the trails (`kind=trail`) and the steps they are made of (`kind=command`), plus
  fusion's own error records: never a copy of an input row, so `collect` adds only what fusion found;
- `all`: every input record too, annotated with its trail and join (for an analyst's own search).
With `fresh=<field>`, only the trails that hold at least one row whose <field> is true are written:
the scheduled search reads newly indexed rows with their context and marks the new ones, so a trail
is written again only when something new joined it.
Output rows all carry the same fields (the record writer fixes its header from the first row), `_raw`
is the record JSON (what `collect` writes) and `fused_at` tells versions of one trail apart.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set

from splunklib.searchcommands import Configuration, EventingCommand, Option, validators

from ..output import printable
from ..records import COMMAND, ERROR, HOST_EVENT, TRAIL, Record
from . import events, logs, winevent, zeekevent

OUTPUT_FIELDS = [
    "_time", "_raw", "uid", "kind", "trail_id", "session_id", "command", "operation", "score", "stage",
    "rpc_interface", "src_ip", "src_port", "dest_ip", "dest_port", "src_host", "dest_host", "user", "domain",
    "share", "path", "event_id", "logon_id", "encrypted", "decrypted", "inferred", "partial", "confidence",
    "evidence", "join", "message", "fused_at",
]
TRAIL_KINDS = frozenset((TRAIL, COMMAND, ERROR))
TRUE = frozenset(("1", "true", "t", "yes", "y"))


@Configuration()
class SmbtrailFuseCommand(EventingCommand):
    """| smbtrailfuse [emit=trails|all] [fresh=<field>] [max_records=<int>]: fuse smbtrail records and
    Windows events into trails."""

    max_records = Option(require=False, default=1000000, validate=validators.Integer(1))
    emit = Option(require=False, default="trails", validate=validators.Set("trails", "all"))
    fresh = Option(require=False, default=None, validate=validators.Fieldname())

    def __init__(self) -> None:
        super().__init__()
        self._records: List[Record] = []
        self._zeek: List[Record] = []  # Zeek add-on events: recognized together before fusion
        self._fresh_rows: List[Record] = []
        self._skipped: Dict[str, int] = {}

    def transform(self, records: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        for row in records:
            self._take(row)
        if len(self._records) + len(self._zeek) > self.max_records:
            raise ValueError(f"more than max_records={self.max_records} input rows; narrow the search")
        if not self._finished:
            return
        log = logs.logger("smbtrailfuse")
        for reason, count in sorted(self._skipped.items()):
            self.write_warning("smbtrailfuse: {} rows ignored: {}", count, reason)
            log.warning("%d rows ignored: %s", count, printable(reason))
        started = time.time()
        fused_at, written = round(started, 3), 0
        for record in self.results():
            written += 1
            yield output_row(record, fused_at)
        log.info("fused %d rows (%d fresh, %d Zeek) into %d rows written (emit=%s) in %.1f s",
                 len(self._records) + len(self._zeek), len(self._fresh_rows), len(self._zeek), written,
                 self.emit, time.time() - started)

    def results(self) -> Iterator[Record]:
        from ..engine import fuse

        records = self._records + list(zeekevent.network_records(self._zeek, self._records))
        fused = fuse(canonical_order(records))
        if self.emit == "all":
            return fused
        given = {id(r) for r in self._records if r.kind == ERROR}  # inputs pass through as the same objects
        steps = (r for r in fused if r.kind in TRAIL_KINDS and id(r) not in given)
        if not self.fresh:
            return steps
        kept = list(steps)  # trail ids are final only once the whole input is fused
        wanted = fresh_trails(self._fresh_rows)
        return iter([r for r in kept if r.kind == ERROR or r.trail_id in wanted])

    def _take(self, row: Dict[str, Any]) -> None:
        try:
            zeek = zeekevent.is_zeek_event(row)
            taken = zeekevent.row_records(row) if zeek else [input_record(row)]
        except ValueError as exc:
            reason = str(exc).split(":", 1)[0]
            self._skipped[reason] = self._skipped.get(reason, 0) + 1
            return
        taken = [r for r in taken if r is not None]
        (self._zeek if zeek else self._records).extend(taken)
        if self.fresh and str(row.get(self.fresh) or "").strip().lower() in TRUE:
            self._fresh_rows.extend(taken)


def fresh_trails(fresh: List[Record]) -> Set[str]:
    """The trails the fresh rows ended up in (fusion annotates its input records in place); a host event
    fusion linked to no connection speaks for the host-only trail of its logon session."""
    from ..fusion.trails import host_evidence_trail

    wanted = {r.trail_id for r in fresh if r.trail_id}
    wanted.update(host_evidence_trail(r) for r in fresh if not r.trail_id and r.kind in (HOST_EVENT, COMMAND))
    return wanted


def canonical_order(records: List[Record]) -> List[Record]:
    """The command line's order, whatever order and chunking Splunk delivered the rows in: by time,
    network records before host records at the same time, then as each file holds them (frames, event
    record ids); the deterministic uid settles what is left."""
    return sorted(records, key=_file_order)


def _file_order(rec: Record) -> tuple:
    prov = rec.provenance[0] if rec.provenance else None
    host_side = rec.kind == HOST_EVENT or rec.evidence == ["host"]  # events and the commands read from them
    return (rec.time, host_side, prov.file.rsplit("/", 1)[-1] if prov else "", prov.frames[:1] if prov else [],
            prov.record_ids[:1] if prov else [], rec.uid())


def input_record(row: Dict[str, Any]) -> Optional[Record]:
    """One Splunk row as an engine record, None for rows that are not input (health events)."""
    row = {k: v for k, v in row.items() if v not in ("", None, [])}  # empty in the chunk = field absent
    sourcetype = str(row.get("sourcetype") or "")
    if row.get("source") == events.FUSED_SOURCE:
        raise ValueError("fusion output (smbtrail:fused), not input")
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


def output_row(record: Record, fused_at: float) -> Dict[str, Any]:
    body = events.event_body(record)
    body["fused_at"] = fused_at
    if record.kind == TRAIL:
        body["score"], body["stage"] = record.args.get("score"), record.args.get("stage")
    row: Dict[str, Any] = {}
    for name in OUTPUT_FIELDS:
        value = body.get(name)
        row[name] = int(value) if isinstance(value, bool) else value
    row["_time"] = record.time.timestamp()
    row["_raw"] = json.dumps(body, ensure_ascii=True)
    return row
