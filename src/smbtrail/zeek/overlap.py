"""A capture and Zeek's logs of the same traffic: one set of records, not two.

Zeek sees the packets a capture holds, and logs less of them, so a Zeek record that the capture
also gave (same connection, same call / tree / file / logon, within TOLERANCE seconds) is dropped;
the capture's record notes that Zeek saw it too (evidence `zeek`, the log line in its provenance)
and takes the account Zeek names when it has none. What Zeek alone logged (the capture started
late, or ended early) stays. Both sides come in merged in time order; every record waits
TOLERANCE seconds of stream time so a counterpart logged a little later is seen first.

Memory: the records of TOLERANCE seconds, and one entry per capture record of the last WINDOW
seconds (file records: Zeek logs a delete or a transfer well after the open the capture dates it by).
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, Iterable, Iterator, List, Optional, Tuple

from ..records import ERROR, FILE, OPERATION, SESSION, TREE, Record

TOLERANCE = 5.0  # seconds between two sensors' times of one packet (clocks kept by NTP)
WINDOW = 600.0  # seconds a capture's file record can precede Zeek's line of the same file
Conn = Tuple[Optional[str], Optional[int], Optional[str], Optional[int]]


def detail(rec: Record) -> Optional[tuple]:
    """What must be equal, besides the connection, for two records to be one."""
    if rec.kind == OPERATION:
        return ("op", rec.rpc_uuid, rec.opnum) if rec.rpc_uuid and rec.opnum is not None else None
    if rec.kind == TREE:
        return ("tree", (rec.share or "").lower())
    if rec.kind == FILE:
        return ("file", (rec.path or "").lower())
    if rec.kind == SESSION:
        return ("connection",) if rec.args.get("connection") else ("session", rec.protocol == "kerberos")
    return None


def is_zeek(rec: Record) -> bool:
    """Read from a Zeek log (such records say what they lack); a capture's record Zeek confirmed is not."""
    return "absent" in rec.args and rec.kind != ERROR


class Overlap:
    def __init__(self) -> None:
        self.waiting: Deque[Record] = deque()
        self.seen: Dict[Conn, List[Tuple[float, Optional[tuple], Record]]] = {}
        self.order: Deque[Tuple[float, Conn]] = deque()  # capture facts by time, for eviction

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            now = rec.time.timestamp()
            if not is_zeek(rec) and rec.kind != ERROR:
                self._remember(rec, now)
            self.waiting.append(rec)
            yield from self._release(now - TOLERANCE)
            self._forget(now - WINDOW)
        yield from self._release(float("inf"))

    def _release(self, until: float) -> Iterator[Record]:
        while self.waiting and self.waiting[0].time.timestamp() <= until:
            rec = self.waiting.popleft()
            if is_zeek(rec) and self._absorbed(rec):
                continue
            yield rec

    def _remember(self, rec: Record, now: float) -> None:
        conn = _conn(rec)
        if conn[0] is None:
            return
        self.seen.setdefault(conn, []).append((now, detail(rec), rec))
        self.order.append((now, conn))

    def _forget(self, horizon: float) -> None:
        while self.order and self.order[0][0] < horizon:
            when, conn = self.order.popleft()
            facts = self.seen.get(conn)
            if facts:
                self.seen[conn] = [f for f in facts if f[0] >= horizon]
                if not self.seen[conn]:
                    del self.seen[conn]

    def _absorbed(self, rec: Record) -> bool:
        """True when the capture has this Zeek record: the capture's record takes its note."""
        facts = self.seen.get(_conn(rec))
        if not facts:
            return False
        when, wanted = rec.time.timestamp(), detail(rec)
        for seen, what, captured in facts:
            if _same(wanted, what, when - seen):
                _note(captured, rec)
                return True
        return False


def _same(wanted: Optional[tuple], what: Optional[tuple], lag: float) -> bool:
    """lag: the Zeek record's time minus the capture record's."""
    if wanted is None:
        return False
    if wanted == ("connection",):
        return -TOLERANCE <= lag  # any capture record on the connection names it
    if wanted != what:
        return False
    if wanted[0] == "file":
        return -TOLERANCE <= lag <= WINDOW
    return abs(lag) <= TOLERANCE


def _note(captured: Record, zeek: Record) -> None:
    if "zeek" not in captured.evidence:
        captured.evidence = list(captured.evidence) + ["zeek"]
    captured.provenance = list(captured.provenance) + list(zeek.provenance[:1])
    captured.args.setdefault("zeek", {"uid": (zeek.args.get("zeek") or {}).get("uid")})
    if not captured.user and zeek.user:
        captured.user, captured.domain = zeek.user, zeek.domain


def _conn(rec: Record) -> Conn:
    return (rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port)


def without_overlap(records: Iterable[Record]) -> Iterator[Record]:
    return Overlap().run(records)
