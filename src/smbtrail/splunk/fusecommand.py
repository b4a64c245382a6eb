"""`smbtrailfuse`: network records, Windows events and Zeek events already in Splunk -> fused trails (SCP v2).

A reporting command in two phases, as splunkd runs them:
- map (its streaming preop, on the indexers): each input row becomes compact rows, one per engine
  record, that hold only what fusion needs (fuserows); the rest of the event stays on the indexer;
- reduce (on the search head): the compact rows are sorted through temporary disk and fused with the
  command line's fusion at the last chunk (fusehead): memory is bounded by the activity inside fusion's
  join window, not by the rows of the search.

What it writes (`emit`):
- `trails` (default): the trails (`kind=trail`) and the steps they are made of (`kind=command`), plus
  fusion's own error records: never a copy of an input row, so `collect` adds only what fusion found;
- `all`: every input record too, annotated with its trail and join (for an analyst's own search).
With `fresh=<field>`, only the trails that hold at least one row whose <field> is true are written:
the scheduled search reads newly indexed rows with their context and marks the new ones, so a trail
is written again only when something new joined it.
Limits are said: rows past `max_records` and rows that could not be read are error records among the
results, warnings in the search's messages and lines in smbtrail.log.
Output rows all carry the same fields (the record writer fixes its header from the first row), `_raw`
is the record JSON (what `collect` writes) and `fused_at` tells versions of one trail apart.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional

from splunklib.searchcommands import Configuration, Option, ReportingCommand, validators
from splunklib.searchcommands.internals import CsvDialect, RecordWriterV2

from ..output import printable
from ..records import TRAIL, Record
from . import fuserows, logs, winevent, zeekevent
from .fusehead import HeadFusion

OUTPUT_FIELDS = [
    "_time", "_raw", "uid", "kind", "trail_id", "session_id", "command", "operation", "score", "stage",
    "rpc_interface", "src_ip", "src_port", "dest_ip", "dest_port", "src_host", "dest_host", "user", "domain",
    "share", "path", "event_id", "logon_id", "encrypted", "decrypted", "inferred", "partial", "confidence",
    "evidence", "join", "message", "fused_at",
]
MAX_RECORDS = 5_000_000  # records one run fuses: each costs about 1.3 KB of temporary disk and 0.1 ms
SPLUNK_FIELDS = ("_raw", "_time", "sourcetype", "source", "host")


@Configuration(required_fields=list(fuserows.FIELDS), run_in_preview=False)  # preview: fusion of part of the rows
class SmbtrailFuseCommand(ReportingCommand):
    """| smbtrailfuse [emit=trails|all] [fresh=<field>] [max_records=<int>]: fuse smbtrail records,
    Windows events and Zeek events into trails."""

    max_records = Option(require=False, default=MAX_RECORDS, validate=validators.Integer(0))
    emit = Option(require=False, default="trails", validate=validators.Set("trails", "all"))
    fresh = Option(require=False, default=None, validate=validators.Fieldname())

    def __init__(self) -> None:
        super().__init__()
        self._head: Optional[HeadFusion] = None

    def prepare(self) -> None:
        super().prepare()
        if self.phase == "map" and self.emit == "trails":  # emit=all keeps every field of a Windows event
            self._configuration.required_fields = required_fields(self.fresh)
        if self.phase == "reduce":
            writer = self._record_writer
            self._record_writer = SpooledRecordWriter(writer.ofile, writer._maxresultrows)

    @Configuration()
    def map(self, records: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        return fuserows.compact_rows(records, self.fresh, keep_raw=self.emit == "all")

    def reduce(self, records: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        if self._head is None:
            self._head = HeadFusion(self.max_records, self.fresh)
        for row in records:
            self._head.take(row)
        if not self._finished:
            return
        started = time.time()
        fused_at, written = round(started, 3), 0
        for record in self._head.fused(self.emit == "all"):
            written += 1
            yield output_row(record, fused_at)
        self._report(written, time.time() - started)

    def _report(self, written: int, seconds: float) -> None:
        head, log = self._head, logs.logger("smbtrailfuse")
        assert head is not None
        if head.over:
            self.write_warning("smbtrailfuse: {} rows past max_records={} were not fused", head.over, self.max_records)
            log.warning("%d rows past max_records=%d were not fused", head.over, self.max_records)
        for reason, number in sorted(head.skipped.items()):
            self.write_warning("smbtrailfuse: {} rows ignored: {}", number, reason)
            log.warning("%d rows ignored: %s", number, printable(reason))
        log.info("fused %d records (%d fresh trails) into %d rows written (emit=%s) in %.1f s",
                 head.taken, len(head.wanted), written, self.emit, seconds)


class SpooledRecordWriter(RecordWriterV2):
    """splunk-sdk's chunk writer with the reply body on temporary disk, rows written as they come: SCP v2
    sends all of fusion's output in the reply to the last chunk, which the sdk would hold twice in
    memory (every row in a list, then the CSV text)."""

    def __init__(self, ofile: Any, maxresultrows: Optional[int] = None) -> None:
        super().__init__(ofile, maxresultrows)
        self._spool = tempfile.TemporaryFile()
        self._buffer = io.TextIOWrapper(self._spool, encoding="utf-8", newline="")
        self._writer = csv.writer(self._buffer, dialect=CsvDialect)
        self._writerow = self._writer.writerow

    def write_records(self, records: Any) -> None:
        self._ensure_validity()
        if records is not NotImplemented:
            for record in records:
                self._write_record(record)

    def write_chunk(self, finished: Optional[bool] = None) -> None:
        self._buffer.flush()
        size = self._spool.tell()
        self._committed_record_count += self.pending_record_count
        self._chunk_count += 1
        metadata = [("inspector", self._inspector or None), ("finished", finished)]
        if not size:
            self._write_chunk(metadata, "")
        else:
            header = "".join(self._iterencode_json({k: v for k, v in metadata if v is not None}, 0)).encode("utf-8")
            self.write(f"chunked 1.0,{len(header)},{size}\n".encode("ascii") + header)
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, self.ofile)
            self.ofile.flush()
            self._flushed = True
        self._clear()

    def _clear(self) -> None:
        super()._clear()  # the base truncates the buffer through the text layer, which keeps its own position
        self._buffer.flush()
        self._spool.seek(0)
        self._spool.truncate()


def required_fields(fresh: Optional[str]) -> List[str]:
    """The fields the map phase reads: Splunk's, the Windows add-on's and Zeek's that the engine maps,
    and the fresh flag. Splunk extracts only these on the indexers."""
    names = list(SPLUNK_FIELDS) + sorted(set(winevent.fields_read()) | set(zeekevent.FIELDS_READ))
    return list(dict.fromkeys(names + ([fresh] if fresh else [])))


def output_row(record: Record, fused_at: float) -> Dict[str, Any]:
    body = fuserows.body_of(record)
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
