"""The fusion pass: one stream in (network records, then host records), one stream out.

Network records are indexed (connections, sessions, pipe opens, service calls) and passed on at
once; network command records wait until the end to meet the host facts that confirm them. Host
events go through a reorder buffer one window long (a 4624 is logged after the 4672 of the same
logon, a 7045 before the 4697 it mirrors), are joined (joins.py), annotated and passed on. Then come
the network commands with merged arguments, the commands only the hosts saw, and one `trail`
record per trail with the attack timeline. Memory holds the index (per connection and logon, not
per record), the reorder window and the held command records (spilled to disk past a bound).
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from typing import IO, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ..records import COMMAND, ENCRYPTED_ACTIVITY, ERROR, FILE, HOST_EVENT, OPERATION, SESSION, TREE, Record
from .clocks import Clocks
from .connections import Conn, NetIndex
from .hostcommands import host_command, is_host_command, recognized
from .identity import Identity
from .joins import Joiner, Link
from .timeline import timeline
from .trails import TrailBook

NETWORK_KINDS = frozenset((SESSION, TREE, FILE, OPERATION, COMMAND, ENCRYPTED_ACTIVITY))
REORDER = 120.0  # seconds of host time an event waits for its logon and its neighbours
EVICT = 3600.0  # host-side index entries older than this behind the reorder point are dropped
HELD_IN_MEMORY = 5000  # network command records kept in memory before spilling to disk


class Fusion:
    def __init__(self, assets: Optional[str] = None) -> None:
        self.identity = Identity(assets)
        self.clocks = Clocks()
        self.net = NetIndex()
        self.joiner = Joiner(self.net, self.identity, self.clocks)
        self.trails = TrailBook(self.identity)
        self.held = _Held()
        self.aliases: Dict[str, str] = {}
        self._buffer: List[Tuple[float, int, Record]] = []
        self._seq = 0
        self._watermark = float("-inf")
        self._evicted = float("-inf")

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            if rec.kind == HOST_EVENT or is_host_command(rec):
                yield from self._host_arrived(rec)
            elif rec.kind in NETWORK_KINDS:
                yield from _guarded(self._network, rec)
            else:
                yield rec
        while self._buffer:
            yield from _guarded(self._host, heapq.heappop(self._buffer)[2])
        for rec in self.held:
            yield from _guarded(self.trails.merge_into, rec)
        yield from self.trails.unmatched()
        yield from timeline(self.trails.summaries(), self.identity)

    # -- network side --------------------------------------------------------------------------------
    def _network(self, rec: Record) -> Optional[Record]:
        self.identity.learn(rec)
        conn = self.net.add(rec)
        if rec.trail_id:
            rec.trail_id = self._canonical(rec.trail_id, conn)
        if rec.kind == COMMAND:
            self.held.add(rec, conn)
            return None
        self.trails.note_network(rec)
        return rec

    def _canonical(self, trail_id: str, conn: Optional[Conn]) -> str:
        """A connection seen by two sensors is one trail: the first trail id seen on it wins."""
        trail_id = self.aliases.get(trail_id, trail_id)
        if conn is not None and conn.trail_id != trail_id and conn.trail_id not in self.aliases:
            self.aliases.setdefault(trail_id, conn.trail_id)
            return conn.trail_id
        return trail_id

    # -- host side -----------------------------------------------------------------------------------
    def _host_arrived(self, rec: Record) -> Iterator[Record]:
        yield from _guarded(self._register, rec, passed=False)
        when = rec.time.timestamp()
        self._watermark = max(self._watermark, when)
        self._seq += 1
        heapq.heappush(self._buffer, (when, self._seq, rec))
        while self._buffer and self._buffer[0][0] < self._watermark - REORDER:
            yield from _guarded(self._host, heapq.heappop(self._buffer)[2])

    def _register(self, rec: Record) -> None:
        if rec.kind == HOST_EVENT:
            self.identity.learn(rec)
            self.joiner.register(rec)

    def _host(self, rec: Record) -> Optional[Record]:
        when = rec.time.timestamp()
        if when - EVICT > self._evicted + EVICT:
            self.joiner.forget_before(when - EVICT)
            self._evicted = when - EVICT
        host = self.joiner.host_of(rec)
        at = self.clocks.to_capture_time(host, when)
        link = self.joiner.link(rec)
        vehicle = is_host_command(rec)  # the host engine's own command record: it travels with its fact
        cmd = recognized(rec) if vehicle else host_command(rec)
        if (link is None or link.ambiguous) and cmd is not None:
            link = self.joiner.by_account(rec, cmd) or link
        if vehicle:
            self.trails.add_fact(rec, cmd, link, at, vehicle=True)
            return None
        if cmd is not None:
            rec.args["side"] = cmd.side
        self._annotate(rec, link, host, at)
        self.trails.note_host(rec, link, at)
        if cmd is not None:
            self.trails.add_fact(rec, cmd, link, at)
        return rec

    def _annotate(self, rec: Record, link: Optional[Link], host: Optional[str], at: float) -> None:
        offset = self.clocks.offset(host, rec.time.timestamp())
        if offset:
            rec.args["clock_offset_s"] = round(offset, 3)
        if link is None:
            return
        if link.ambiguous:
            rec.join = ["ambiguous:" + r for r in link.reasons]
            rec.args["join_candidates"] = link.candidates
            return
        rec.trail_id, rec.join, rec.confidence = link.trail_id, list(link.reasons), link.confidence
        if link.conflicts:
            rec.args["conflicts"] = link.conflicts
        conn = link.conn
        if conn is not None and rec.args.get("side") != "source":
            rec.src_ip = rec.src_ip or conn.client_ip
            rec.dest_ip = rec.dest_ip or conn.server_ip
            rec.src_host = rec.src_host or conn.src_host or self.identity.name_of(conn.client_ip)


def _guarded(step: Callable[[Record], Optional[Record]], rec: Record, passed: bool = True) -> Iterator[Record]:
    """One odd record costs its own join, never the run: it goes on unjoined, with an error record."""
    try:
        out = step(rec)
    except Exception as exc:  # noqa: BLE001 - any failure on one record is reported and contained
        if passed:
            yield rec
        where = rec.provenance[0].file if rec.provenance else "input"
        yield Record(time=rec.time, kind=ERROR, partial=True, provenance=list(rec.provenance[:1]),
                     message=f"{where}: fusion left one {rec.kind} record unjoined ({type(exc).__name__}: {exc})")
        return
    if out is not None and passed:
        yield out


class _Held:
    """Network command records waiting for the host facts; duplicates from a second sensor fold in."""

    def __init__(self) -> None:
        self._memory: Dict[tuple, Record] = {}
        self._spill: Optional[IO[bytes]] = None

    def add(self, rec: Record, conn: Optional[Conn]) -> None:
        key = (conn.key if conn else rec.trail_id, rec.command, rec.operation, int(rec.time.timestamp()))
        seen = self._memory.get(key)
        if seen is not None:
            if {p.file for p in rec.provenance} - {p.file for p in seen.provenance}:
                seen.provenance = list(seen.provenance) + list(rec.provenance)
                if not seen.user and rec.user:
                    seen.user, seen.domain = rec.user, rec.domain
                return
            key = key + (id(rec),)
        self._memory[key] = rec
        if len(self._memory) > HELD_IN_MEMORY:
            self._flush()

    def _flush(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="smbtrail-fusion-")
        for rec in self._memory.values():
            pickle.dump(rec, self._spill, protocol=pickle.HIGHEST_PROTOCOL)
        self._memory.clear()

    def __iter__(self) -> Iterator[Record]:
        if self._spill is not None:
            self._spill.seek(0)
            while True:
                try:
                    yield pickle.load(self._spill)
                except EOFError:
                    break
            self._spill.close()
            self._spill = None
        yield from self._memory.values()
        self._memory.clear()
