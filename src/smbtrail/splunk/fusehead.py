"""The search head's part of `smbtrailfuse`: compact rows in (see fuserows), in any order and number;
the command line's fusion of them out.

Rows wait in sorted runs on temporary disk (fusion.order.Runs: the dispatch directory under Splunk),
so memory holds one run of rows, not the search. After the last chunk the runs are merged in the
command line's order and streamed through the command line's fusion, whose memory is bounded by the
activity within its join window. Zeek's records take one pass before: completed per connection,
checked against the captures of the same traffic (whose records note that Zeek saw them too), and
recognized into commands, as the command line reads Zeek's files; that pass writes the network side
to runs of its own. With `fresh`, what fusion writes waits on disk until the run knows which trails a
new row joined: a row's mark is its record's class (FreshRecord), which fusion's annotation keeps.

Limits are said, never silent: rows past `max_records` and rows that could not be read become error
records among the results (`collect` keeps them in the summary index; the Input health view lists them).
"""

from __future__ import annotations

import heapq
import json
from datetime import datetime, timezone
from itertools import count
from operator import itemgetter
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Set, Tuple

from ..fusion.order import Runs
from ..records import COMMAND, ERROR, HOST_EVENT, TRAIL, Record
from . import fuserows, zeekevent
from .fuserows import KEY, LANE, NEW, RECORD, RECORDS, SKIPPED, VERSION, ZEEK, Key, Unreadable, V

TRAIL_KINDS = frozenset((TRAIL, COMMAND, ERROR))
Entry = Tuple[Key, bool, Any]  # order key, fresh, the record's JSON text (or the record, after the Zeek pass)
_key: Callable[[Entry], Key] = itemgetter(0)


class FreshRecord(Record):
    """A record of a row indexed in this run's window (the `fresh` field): the class is the mark."""


class HeadFusion:
    def __init__(self, max_records: int = 0, fresh: Optional[str] = None) -> None:
        self.max_records, self.fresh = max_records, fresh
        self.records: Runs[Entry] = Runs(_key)
        self.zeek: Runs[Entry] = Runs(_key)
        self.skipped: Dict[str, int] = {}
        self.over = 0  # rows past max_records, not fused
        self.wanted: Set[str] = set()  # trails a fresh row joined

    # -- rows in -------------------------------------------------------------------------------------
    def take(self, row: Dict[str, Any]) -> None:
        """One row: compact (the map phase ran on the indexers), else an input row, made compact here."""
        if V not in row:
            for compact in fuserows.compact_rows([row], self.fresh):
                self.take(compact)
            return
        try:
            self._take(row)
        except Unreadable as exc:
            self._skip(str(exc))

    def _take(self, row: Dict[str, Any]) -> None:
        if row[V] != VERSION:
            raise Unreadable(f"compact row of smbtrail format {row[V]!r}, not {VERSION}: app versions differ")
        lane = row.get(LANE)
        if lane == SKIPPED:
            for reason, number in _counts(row.get(RECORD)).items():
                self._skip(reason, number)
            return
        if lane not in (RECORDS, ZEEK):
            raise Unreadable(f"compact row of unknown lane {lane!r}")
        if self.max_records and self.records.count + self.zeek.count >= self.max_records:
            self.over += 1
            return
        entry = (_order_key(row.get(KEY)), row.get(NEW) == "1", str(row.get(RECORD) or ""))
        (self.zeek if lane == ZEEK else self.records).add(entry)

    def _skip(self, reason: str, number: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + number

    # -- records out ---------------------------------------------------------------------------------
    def fused(self, emit_all: bool) -> Iterator[Record]:
        """Every record fusion writes (`emit_all`), else the trails and their steps (only those a fresh
        row joined, with `fresh`); then the limits reached, as error records."""
        from ..engine import fuse

        try:
            out = fuse(self._inputs(keep_errors=emit_all))
            if emit_all:
                yield from out
            elif not self.fresh:
                yield from (rec for rec in out if rec.kind in TRAIL_KINDS)
            else:
                yield from self._joined_by_fresh(out)
            yield from self.limits()
        finally:
            self.records.close()
            self.zeek.close()

    def _inputs(self, keep_errors: bool) -> Iterator[Record]:
        entries: Iterable[Entry] = self.records.merged()
        if self.zeek.count:
            network = self._network_side()
            entries = heapq.merge((e for e in self.records.merged() if e[0][1]), network.merged(), key=_key)
        for rec in self._decoded(entries):
            if keep_errors or rec.kind != ERROR:  # the inputs' errors are not fusion's
                yield rec

    def _record(self, text: str, fresh: bool) -> Optional[Record]:
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise Unreadable("unreadable smbtrail record: not an object")
            return fuserows.record_of(body, FreshRecord if fresh else Record)
        except ValueError as exc:  # Unreadable, JSONDecodeError
            self._skip(str(exc) if isinstance(exc, Unreadable) else "unreadable smbtrail record: not JSON")
            return None

    def _network_side(self) -> Runs[Entry]:
        """The network side of the search when it holds Zeek events (zeekevent.network_side), in runs of
        its own: the capture's records annotated where Zeek saw the same traffic, Zeek's completed and
        recognized."""
        out: Runs[Entry] = Runs(_key)

        def add(rec: Record) -> None:
            out.add((fuserows.order_key(rec), isinstance(rec, FreshRecord), rec))

        network = self._decoded(e for e in self.records.merged() if not e[0][1])
        captured = (rec for rec in network if _captured(rec, add))
        zeekevent.network_side(self._decoded(self.zeek.merged()), captured, add)
        return out

    def _decoded(self, entries: Iterable[Entry]) -> Iterator[Record]:
        for _, fresh, payload in entries:
            rec = payload if isinstance(payload, Record) else self._record(payload, fresh)
            if rec is not None:
                yield rec

    def _joined_by_fresh(self, out: Iterator[Record]) -> Iterator[Record]:
        """Trails and steps of the trails a fresh row joined: held on disk until every row is fused."""
        from ..fusion.trails import host_evidence_trail

        held: Runs[Tuple[int, Record]] = Runs(itemgetter(0))
        order = count()
        try:
            for rec in out:
                if isinstance(rec, FreshRecord):  # a fused host event without a link speaks for its session
                    trail = rec.trail_id or (host_evidence_trail(rec) if rec.kind in (HOST_EVENT, COMMAND) else None)
                    if trail:
                        self.wanted.add(trail)
                if rec.kind in TRAIL_KINDS:
                    held.add((next(order), rec))
            yield from (rec for _, rec in held.merged() if rec.kind == ERROR or rec.trail_id in self.wanted)
        finally:
            held.close()

    def limits(self) -> Iterator[Record]:
        """The limits this run reached, as error records (partial: the trails written may miss rows)."""
        now = datetime.now(timezone.utc)
        if self.over:
            yield Record(time=now, kind=ERROR, partial=True, message=(
                f"smbtrailfuse: {self.over} rows past max_records={self.max_records} were not fused; trails "
                "may miss them: narrow the search or raise max_records"))
        for reason, number in sorted(self.skipped.items()):
            yield Record(time=now, kind=ERROR, partial=True, message=f"smbtrailfuse: {number} rows not read: {reason}")

    @property
    def taken(self) -> int:
        """Rows kept for fusion (records, not rows, when a Zeek row held several)."""
        return self.records.count + self.zeek.count


def _captured(rec: Record, other: Callable[[Record], None]) -> bool:
    """A capture's own record (checked against Zeek's); the rest of the network side passes to `other`."""
    from ..zeek.overlap import is_zeek

    if "network" in rec.evidence and not is_zeek(rec):
        return True
    other(rec)
    return False


def _order_key(text: Any) -> Key:
    try:
        key = json.loads(str(text))
        if (isinstance(key, list) and len(key) == 6 and all(isinstance(key[i], int) for i in (0, 1))
                and isinstance(key[2], str) and isinstance(key[5], str)
                and all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in key[3:5])):
            return tuple(key)  # type: ignore[return-value]
    except ValueError:
        pass
    raise Unreadable("compact row with an unreadable order key")


def _counts(text: Any) -> Dict[str, int]:
    try:
        counts = json.loads(str(text))
    except ValueError:
        counts = None
    if not isinstance(counts, dict):
        return {"compact row with unreadable counts": 1}
    return {str(k): v for k, v in counts.items() if isinstance(v, int) and v > 0}
