"""The fusion pass: one stream in (network and host records merged in time order), one stream out.

Network records are indexed (connections, sessions, pipe opens, service calls) and passed on at
once. A host event waits SKEW (the largest host clock error joined) before it is registered, so the
connections a slow host clock logs early are indexed by then, and REORDER more before it is joined
(a 4624 is logged after the 4672 of the same logon, a 7045 before the 4697 it mirrors), annotated
and passed on. A network command record waits until every host fact that may confirm it has been
joined, then goes on with merged arguments; a fact no network record took becomes a command of its
own once no record can take it any more. What fell KEEP behind the newest record is dropped from
the indexes (idle trails go to disk for the timeline, read at the end), so memory holds one window
of activity (about 2 x SKEW) and the hosts seen, not the whole run.
"""

from __future__ import annotations

import gc
import heapq
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

from ..recognize import TRAIL_GAP, trail_key
from ..records import COMMAND, ENCRYPTED_ACTIVITY, ERROR, FILE, HOST_EVENT, OPERATION, SESSION, TREE, Record
from .clocks import Clocks
from .connections import Conn, NetIndex
from .failures import failed
from .hostcommands import host_command, is_host_command, recognized
from .identity import Identity
from .joins import Joiner, Link
from .timeline import timeline
from .trails import MERGE_WINDOW, TrailBook

NETWORK_KINDS = frozenset((SESSION, TREE, FILE, OPERATION, COMMAND, ENCRYPTED_ACTIVITY))
SKEW = 14 * 3600.0  # largest host clock error joined: local time logged as UTC is UTC-12 .. UTC+14
REORDER = 120.0  # seconds of host time an event waits for its logon and its neighbours
HELD = 2 * SKEW + REORDER + 2 * MERGE_WINDOW  # a network command waits for host facts this long
KEEP = 2 * SKEW + 3600.0  # what fell this far behind the newest record is dropped (> HELD + MERGE_WINDOW)
EVICT = 3600.0  # host-side service indexes older than this behind the reorder point are dropped
SWEEP = KEEP / 4  # stream time between two evictions: each costs a pass over the window
# The window keeps ~10^5 objects alive for hours of stream time; at CPython's default first threshold
# (700) the cyclic collector rescans them so often that it took a fifth of fusion's time, for nothing:
# records form no cycles (peak RSS is the same with the collector off). Raised while fusion runs.
GC_YOUNG = 20000
REGISTER, RELEASE = range(2)  # what is due: register a host event, release a network command


class Fusion:
    def __init__(self, assets: Optional[str] = None) -> None:
        self.identity = Identity(assets)
        self.clocks = Clocks()
        self.net = NetIndex()
        self.joiner = Joiner(self.net, self.identity, self.clocks)
        self.trails = TrailBook(self.identity)
        self.held: Dict[tuple, Record] = {}  # network command records by connection, command and second
        self.aliases: Dict[str, Tuple[str, float]] = {}  # trail id -> (the trail it joins, when), oldest first
        self.stretches: Dict[tuple, Tuple[str, float]] = {}  # (client, target, account) -> (trail, last seen)
        self._due: List[Tuple[float, int, int, Any]] = []  # heap: (due, order, what, record or held key)
        self._joining: Deque[Tuple[float, int, Record]] = deque()  # registered events: (due, order, event)
        self._order = 0
        self._watermark = float("-inf")
        self._swept = float("-inf")
        self._evicted = float("-inf")

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        threshold = gc.get_threshold()
        gc.set_threshold(GC_YOUNG, *threshold[1:])
        try:
            yield from self._run(records)
        finally:
            gc.set_threshold(*threshold)

    def _run(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            when = rec.time.timestamp()
            if rec.kind == HOST_EVENT or is_host_command(rec):
                self._schedule(when + SKEW, REGISTER, rec)
            elif rec.kind in NETWORK_KINDS:
                yield from _guarded(self._network, rec)
            else:
                yield rec
                continue
            if when > self._watermark:
                self._watermark = when
                if (self._due and self._due[0][0] <= when) or (self._joining and self._joining[0][0] <= when):
                    yield from self._release(when)
                if when >= self._swept + SWEEP:
                    yield from self._sweep(when - KEEP)
        yield from self._release(float("inf"))
        yield from self.trails.flush_facts(float("inf"))
        yield from timeline(self.trails.summaries(), self.identity)

    def _schedule(self, due: float, what: int, item: Any) -> None:
        self._order += 1
        heapq.heappush(self._due, (due, self._order, what, item))

    def _release(self, until: float) -> Iterator[Record]:
        """Everything due by `until`, in due order. Events leave registration in due order, so their
        joins (REORDER later) are due in order too: a queue holds them, not the heap."""
        due, joining = self._due, self._joining
        while due or joining:
            if joining and (not due or (joining[0][0], joining[0][1]) < (due[0][0], due[0][1])):
                if joining[0][0] > until:
                    return
                yield from _guarded(self._host, joining.popleft()[2])
                continue
            if due[0][0] > until:
                return
            when, _, what, item = heapq.heappop(due)
            if what == REGISTER:
                yield from _guarded(self._register, item, passed=False)
                self._order += 1
                joining.append((when + REORDER, self._order, item))
            else:
                yield from _guarded(self.trails.merge_into, self.held.pop(item))

    def _sweep(self, horizon: float) -> Iterator[Record]:
        """Drop what no record can reach any more: older than `horizon` (capture time)."""
        self._swept = self._watermark
        yield from self.trails.flush_facts(horizon)
        self.trails.finish_before(horizon)
        self.net.forget_before(horizon)
        while self.aliases and next(iter(self.aliases.values()))[1] < horizon:
            del self.aliases[next(iter(self.aliases))]
        self.stretches = {k: v for k, v in self.stretches.items() if v[1] >= horizon}

    # -- network side --------------------------------------------------------------------------------
    def _network(self, rec: Record) -> Optional[Record]:
        self.identity.learn(rec)
        conn = self.net.add(rec)
        if rec.trail_id:
            rec.trail_id = self._canonical(rec, conn)
        if rec.kind == COMMAND:
            self._hold(rec, conn)
            return None
        self.trails.note_network(rec)
        return rec

    def _canonical(self, rec: Record, conn: Optional[Conn]) -> str:
        """One trail however the capture was read: a connection seen by two sensors, and one stretch of
        a client's activity on a target as one account read from several capture files (a sensor's
        rotation, read file by file as the Splunk input does), keep the first trail id seen, as one
        run over all the files would."""
        trail_id = self._resolve(rec.trail_id or "")
        if conn is not None and conn.trail_id != trail_id and conn.trail_id not in self.aliases:
            self.aliases.setdefault(trail_id, (conn.trail_id, conn.last))
            trail_id = conn.trail_id
        when = rec.time.timestamp()
        key = trail_key(rec)
        owner = self.stretches.get(key)
        if owner is not None and owner[0] != trail_id and when - owner[1] <= TRAIL_GAP:
            self.aliases[trail_id] = (owner[0], when)
            trail_id = owner[0]
            if conn is not None:
                conn.trail_id = trail_id
        self.stretches[key] = (trail_id, max(when, owner[1]) if owner and owner[0] == trail_id else when)
        return trail_id

    def _resolve(self, trail_id: str) -> str:
        for _ in range(len(self.aliases) + 1):
            alias = self.aliases.get(trail_id)
            if alias is None:
                break
            trail_id = alias[0]
        return trail_id

    def _hold(self, rec: Record, conn: Optional[Conn]) -> None:
        """A network command waits for the host facts; its duplicate from a second sensor folds in."""
        when = rec.time.timestamp()
        key = (conn.key if conn else rec.trail_id, rec.command, rec.operation, int(when))
        seen = self.held.get(key)
        if seen is not None:
            if {p.file for p in rec.provenance} - {p.file for p in seen.provenance}:
                seen.provenance = list(seen.provenance) + list(rec.provenance)
                if not seen.user and rec.user:
                    seen.user, seen.domain = rec.user, rec.domain
                return
            key = key + (id(rec),)
        self.held[key] = rec
        self._schedule(when + HELD, RELEASE, key)

    # -- host side -----------------------------------------------------------------------------------
    def _register(self, rec: Record) -> None:
        if rec.kind == HOST_EVENT:
            self.identity.learn(rec)
            self.joiner.register(rec)

    def _host(self, rec: Record) -> Optional[Record]:
        when = rec.time.timestamp()
        if when - EVICT > self._evicted + EVICT:
            self.joiner.forget_before(when - EVICT, when - KEEP)
            self.clocks.forget_before(when - KEEP)
            self._evicted = when - EVICT
        host = self.joiner.host_of(rec)
        at = self.clocks.to_capture_time(host, when)
        link = self.joiner.link(rec)
        vehicle = is_host_command(rec)  # the host engine's own command record: it travels with its fact
        cmd = recognized(rec) if vehicle else host_command(rec)
        if (link is None or link.ambiguous) and cmd is not None:
            link = self.joiner.by_account(rec, cmd.side, cmd) or link
        if link is None:
            link = self.joiner.host_only(rec, cmd)
        if vehicle:
            self.trails.add_fact(rec, cmd, link, at, vehicle=True)
            return None
        if cmd is not None and cmd.required and link is None:
            cmd = None  # no client, no command (7040: a service changing its own start type)
        if cmd is not None:
            rec.args["side"] = cmd.side
        self._annotate(rec, link, host, at)
        self.trails.note_host(rec, link, at)
        if cmd is not None:
            self.trails.add_fact(rec, cmd, link, at)
        if failed(rec) and link is not None and not link.ambiguous:
            self._failed_logon(rec, link, host, at)
        elif rec.event_id == 4624 and host:
            self.joiner.failures.succeeded(rec, host)
        return rec

    def _failed_logon(self, rec: Record, link: Link, host: Optional[str], at: float) -> None:
        """A failed logon counts in its source's burst; the burst is a `logon` fact of the trail."""
        target = host or (link.conn.server_ip if link.conn is not None else "")
        burst = self.joiner.failures.burst(rec, target, at, link.trail_id)
        if burst is not None:
            self.joiner.failures.attempt(burst, rec)
            self.trails.logon_fact(burst, rec, link)

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


def _guarded(step: Callable[[Record], Optional[Record]], rec: Record, passed: bool = True) -> Tuple[Record, ...]:
    """One odd record costs its own join, never the run: it goes on unjoined, with an error record."""
    try:
        out = step(rec)
    except Exception as exc:  # noqa: BLE001 - any failure on one record is reported and contained
        where = rec.provenance[0].file if rec.provenance else "input"
        error = Record(time=rec.time, kind=ERROR, partial=True, provenance=list(rec.provenance[:1]),
                       message=f"{where}: fusion left one {rec.kind} record unjoined ({type(exc).__name__}: {exc})")
        return (rec, error) if passed else (error,)
    return (out,) if out is not None and passed else ()
