"""Trails: one account's logon session on one target, its operations in order, evidence from both sides.

Network records keep the trail id the capture gave them (a connection seen by two sensors gets the
first one). Host events join a trail through `joins.Link`. A host event that shows a command (4697,
4698, 5145 write, a 4688 command line ...) becomes a *fact*; at the end each fact either merges into
the network command record it confirms (arguments filled in where the RPC was sealed or encrypted,
evidence network+host, provenance from both) or, when the network side saw no command (SMB3
encryption), becomes a command record of its own on the trail the joins found.

Facts and trails live in memory while records can still reach them: `flush_facts` turns old
unmatched facts into command records, `finish_before` moves idle trails to a temporary sqlite
table, from which the timeline reads every trail in start order at the end (and a trail that is
touched again is taken back).
"""

from __future__ import annotations

import pickle
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from .. import lookups
from ..recognize.failures import is_failed_logon
from ..recognize.signatures import anchors
from ..records import COMMAND, Provenance, Record, from_epoch
from .failures import Burst, failed
from .hostcommands import HostCommand, key_args
from .identity import Identity, event_host
from .joins import Link, host_trail_id

MERGE_WINDOW = 300.0  # seconds between a host fact and the network command it confirms
SUMMARY_FRAMES = 12  # frames / record ids per file kept in a trail summary
RECENT_FACTS = 64  # a new sighting is compared with this many latest facts of its trail (time-ordered)
CACHE_KB = 16384  # sqlite page cache for the idle trails: holds the id index of a long run
MAX_FACT_PROVENANCE = 64  # host events a fact cites (a spray may log thousands)


def same_command(a: Tuple[str, str], b: Tuple[str, str]) -> bool:
    """Equal, or anchored on the same RPC call (PsExec's service creation is an `sc create` to the host)."""
    return a == b or (a in anchors() and anchors().get(a) == anchors().get(b))


class Seen(NamedTuple):
    """What a fact keeps of the host event that showed it (not the event: its raw data can be large)."""

    event_id: Optional[int]
    dest_host: Optional[str]
    user: Optional[str]
    domain: Optional[str]
    src_ip: Optional[str]
    logon_id: Optional[str]

    @classmethod
    def of(cls, rec: Record) -> Seen:
        return cls(rec.event_id, rec.dest_host, rec.user, rec.domain, rec.src_ip, rec.logon_id)


@dataclass
class Fact:
    time: float  # capture clock
    trail_id: str
    command: str
    action: str
    args: Dict[str, Any]
    rec: Seen  # the host event that speaks for it
    link: Optional[Link]
    provenance: List[Provenance] = field(default_factory=list)
    events: List[int] = field(default_factory=list)
    conflicts: Dict[str, List[Any]] = field(default_factory=dict)
    used: bool = False
    target: Optional[str] = None  # the remote host a source-side command line names
    reasons: List[str] = field(default_factory=list)  # joins of every event that showed it
    vehicles: List[Record] = field(default_factory=list)  # the host engine's command records for it

    def matches(self, command: Tuple[str, str], args: Dict[str, Any], when: float) -> bool:
        if not same_command((self.command, self.action), command) or abs(when - self.time) > MERGE_WINDOW:
            return False
        shared = [k for k in key_args() if self.args.get(k) and args.get(k)]
        return not shared or any(_same(self.args[k], args[k]) for k in shared)


@dataclass
class Summary:
    trail_id: str
    first: float
    last: float
    src_ip: Optional[str] = None
    src_host: Optional[str] = None
    dest_ip: Optional[str] = None
    dest_host: Optional[str] = None
    domain: Optional[str] = None
    users: Counter = field(default_factory=Counter)
    commands: List[Tuple[float, str, Dict[str, Any], List[str]]] = field(default_factory=list)
    evidence: Set[str] = field(default_factory=set)
    joins: Set[str] = field(default_factory=set)
    confidence: Optional[float] = None
    provenance: Dict[str, Tuple[List[int], List[int]]] = field(default_factory=dict)
    records: int = 0
    partial: bool = False
    sealed: bool = False
    encrypted: bool = False
    ambiguous: int = 0
    conflicts: Dict[str, List[Any]] = field(default_factory=dict)
    pipes: Set[str] = field(default_factory=set)  # named pipes opened (what an encrypted RPC went through)
    seq: int = 0  # creation order: trails that start at the same time keep it

    def touch(self, when: float) -> None:
        self.first, self.last = min(self.first, when), max(self.last, when)

    def add_provenance(self, provenance: List[Provenance]) -> None:
        for prov in provenance:
            kept = self.provenance.get(prov.file)
            if kept is None:
                kept = self.provenance[prov.file] = ([], [])
            frames, ids = kept
            if (not prov.frames or len(frames) >= SUMMARY_FRAMES) and (
                    not prov.record_ids or len(ids) >= SUMMARY_FRAMES):
                continue
            frames.extend(f for f in prov.frames[: SUMMARY_FRAMES - len(frames)] if f not in frames)
            ids.extend(i for i in prov.record_ids[: SUMMARY_FRAMES - len(ids)] if i not in ids)

    @property
    def user(self) -> Optional[str]:
        people = [u for u, _ in self.users.most_common() if not u.endswith("$")]
        return people[0] if people else (self.users.most_common(1)[0][0] if self.users else None)


class TrailBook:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.trails: Dict[str, Summary] = {}
        self.facts: Dict[str, List[Fact]] = {}
        self.finished = _Finished()
        self._made = 0

    def _summary(self, trail_id: str, when: float) -> Summary:
        summary = self.trails.get(trail_id)
        if summary is None:
            summary = self.finished.take(trail_id)
            if summary is None:
                self._made += 1
                summary = Summary(trail_id, when, when, seq=self._made)
            self.trails[trail_id] = summary
        summary.touch(when)
        return summary

    def finish_before(self, when: float) -> None:
        """Trails no record touched since before `when` go to disk."""
        for trail_id in [t for t, s in self.trails.items() if s.last < when]:
            self.finished.put(self.trails.pop(trail_id))

    def note_network(self, rec: Record) -> None:
        if not rec.trail_id or rec.kind == "error":
            return
        s = self._summary(rec.trail_id, rec.time.timestamp())
        s.records += 1
        s.evidence.add("network")
        s.src_ip, s.dest_ip = s.src_ip or rec.src_ip, s.dest_ip or rec.dest_ip
        s.src_host, s.dest_host = s.src_host or rec.src_host, s.dest_host or rec.dest_host
        if rec.user and not is_failed_logon(rec):  # a spray's accounts are not the trail's
            s.users[rec.user.lower()] += 1
            s.domain = s.domain or rec.domain
        s.partial |= rec.partial
        if (rec.share or "").upper() == "IPC$" and rec.path:
            s.pipes.add(rec.path.strip("\\").lower())
        s.sealed |= rec.sealed
        s.encrypted |= rec.encrypted
        s.add_provenance(rec.provenance)

    def note_host(self, rec: Record, link: Optional[Link], when: float) -> None:
        if link is None or not link.trail_id:
            return
        s = self._summary(link.trail_id, when)
        s.records += 1
        s.evidence.add("host")
        s.joins.update(link.reasons)
        s.confidence = link.confidence if s.confidence is None else max(s.confidence, link.confidence)
        if link.conn is not None:
            s.evidence.add("network")
            s.src_ip = s.src_ip or link.conn.client_ip
            s.dest_ip = s.dest_ip or link.conn.server_ip
        if link.ends is not None:  # a host trail names its own ends
            s.src_ip, s.src_host = s.src_ip or link.ends.src_ip, s.src_host or link.ends.src_host
            s.dest_host = s.dest_host if s.dest_host and "." in s.dest_host else (link.ends.dest_host or s.dest_host)
        elif link.conn is None or rec.args.get("side") != "source":
            s.dest_host = s.dest_host if s.dest_host and "." in s.dest_host else (rec.dest_host or s.dest_host)
        if link.user and not failed(rec):
            s.users[link.user] += 1
            s.domain = s.domain or rec.domain
        if rec.event_id == 5145 and (rec.share or "").upper() == "IPC$" and rec.path:
            s.pipes.add(rec.path.strip("\\").lower())
        for name, values in link.conflicts.items():
            s.conflicts.setdefault(name, values)
        s.add_provenance(rec.provenance)

    def add_fact(self, rec: Record, cmd: HostCommand, link: Optional[Link], when: float,
                 vehicle: bool = False) -> None:
        """A host sighting of a command; `vehicle`: a command record (not an event) that carries it."""
        trail = link.trail_id if link and link.trail_id else host_evidence_trail(rec)
        for fact in reversed(self.facts.get(trail, [])[-RECENT_FACTS:]):
            if fact.matches((cmd.command, cmd.action), cmd.args, when):
                if vehicle:
                    fact.vehicles.append(rec)
                    _merge_args(fact.args, cmd.args, fact.conflicts)
                    return
                fact.reasons = _union(fact.reasons, link.reasons if link else [])
                if _strength(rec.logon_id, link) > _strength(fact.rec.logon_id, fact.link):  # 4697 over its 7045
                    fact.args, old = dict(cmd.args), fact.args
                    fact.rec, fact.link = Seen.of(rec), link
                    _merge_args(fact.args, old, fact.conflicts)
                else:
                    _merge_args(fact.args, cmd.args, fact.conflicts)
                fact.provenance.extend(rec.provenance)
                fact.events.append(rec.event_id or 0)
                return
        fact = Fact(when, trail, cmd.command, cmd.action, dict(cmd.args), Seen.of(rec), link,
                    list(rec.provenance), [rec.event_id or 0], target=cmd.target,
                    reasons=list(link.reasons) if link else [], vehicles=[rec] if vehicle else [])
        self.facts.setdefault(trail, []).append(fact)

    def logon_fact(self, burst: Burst, rec: Record, link: Link) -> None:
        """The `logon` fact of a burst of failed logons, created with its first failure and updated with each."""
        fact = burst.fact
        if fact is None:
            fact = Fact(burst.opened.first, link.trail_id or burst.opened.trail_id, "logon", burst.action,
                        burst.args(), Seen.of(rec), link, reasons=list(link.reasons))
            self.facts.setdefault(fact.trail_id, []).append(fact)
            burst.fact = fact
        fact.action, fact.args = burst.action, burst.args()
        if len(fact.args["accounts"]) > 1:
            fact.rec = fact.rec._replace(user=None)  # a spray: no one account speaks for it
        if len(fact.provenance) < MAX_FACT_PROVENANCE:
            fact.provenance.extend(rec.provenance)
        if (rec.event_id or 0) not in fact.events:
            fact.events.append(rec.event_id or 0)
        fact.reasons = _union(fact.reasons, link.reasons)

    def merge_into(self, rec: Record) -> Record:
        """A network command record with the host facts that confirm it."""
        when = rec.time.timestamp()
        for fact in self.facts.get(rec.trail_id or "", ()):
            if fact.used or not fact.matches((rec.command or "", rec.operation or ""), rec.args, when):
                continue
            fact.used = True
            conflicts: Dict[str, List[Any]] = dict(rec.args.get("conflicts") or {})
            _merge_args(rec.args, fact.args, conflicts)
            conflicts.update(fact.conflicts)
            if conflicts:
                rec.args["conflicts"] = conflicts
            rec.args["host_events"] = sorted(set(fact.events))
            if fact.vehicles:  # the host engine's view of the same command, folded in here
                rec.args["merged_records"] = [v.uid() for v in fact.vehicles]
            rec.evidence = _union(rec.evidence, ["network", "host"])
            rec.join = _union(rec.join, fact.reasons)
            rec.provenance = list(rec.provenance) + fact.provenance
            if not rec.user and fact.link and fact.link.user and fact.rec.user:
                rec.user, rec.domain = fact.link.user, rec.domain or fact.rec.domain
        self.note_command(rec)
        return rec

    def flush_facts(self, before: float) -> Iterator[Record]:
        """Facts older than `before` that no network record took, as commands: what encryption hid."""
        for trail_id in [t for t, facts in self.facts.items() if any(f.time < before for f in facts)]:
            facts = self.facts.pop(trail_id)
            kept = [f for f in facts if f.time >= before]
            if kept:
                self.facts[trail_id] = kept
            for fact in facts:
                if fact.time < before and not fact.used:
                    rec = self._fact_record(fact)
                    self.note_command(rec)
                    yield _carried(rec, fact.vehicles)

    def _fact_record(self, fact: Fact) -> Record:
        link, host = fact.link, fact.rec
        conn = link.conn if link else None
        provenance = list(fact.provenance)
        if conn is not None:
            provenance += [Provenance(file=f, frames=list(fr)) for f, fr in conn.provenance.items()]
        args = dict(fact.args, action=fact.action, host_events=sorted(set(fact.events)))
        if fact.conflicts:
            args["conflicts"] = fact.conflicts
        if link and link.ambiguous:
            args["join_candidates"] = link.candidates
        source_side = _side(host) == "source"
        ends = link.ends if link is not None and not link.ambiguous else None
        rec = Record(
            time=from_epoch(fact.time), kind=COMMAND, command=fact.command, operation=fact.action, args=args,
            src_ip=conn.client_ip if conn else (None if source_side else host.src_ip or (ends and ends.src_ip)),
            src_port=conn.key[1] if conn else None, dest_ip=conn.server_ip if conn else None,
            dest_port=conn.key[3] if conn else None,
            src_host=(conn.src_host if conn else None) or (host.dest_host if source_side else None) or (
                ends.src_host if ends and ends.src_host != ends.src_ip else None),
            dest_host=(conn.dest_host if conn and source_side else None) or (
                fact.target if source_side else host.dest_host),
            user=host.user or (link.user if link else None), domain=host.domain,
            evidence=["network", "host"] if conn is not None else ["host"],
            join=(["ambiguous:" + r for r in link.reasons] if link and link.ambiguous else fact.reasons),
            confidence=link.confidence if link and not link.ambiguous else None,
            trail_id=fact.trail_id, provenance=provenance, inferred=conn is None,
            message=f"{fact.command} {fact.action} from host event {'/'.join(map(str, sorted(set(fact.events))))}",
        )
        if rec.src_ip and not rec.src_host:
            rec.src_host = self.identity.name_of(rec.src_ip)
        if rec.dest_ip and not rec.dest_host:
            rec.dest_host = self.identity.name_of(rec.dest_ip)
        return rec

    def note_command(self, rec: Record) -> None:
        if not rec.trail_id:
            return
        s = self._summary(rec.trail_id, rec.time.timestamp())
        shown = {k: v for k, v in rec.args.items() if k in _shown() and v not in (None, "", [])}
        if rec.inferred and rec.confidence:
            shown["inferred"] = f"from encrypted message sizes, confidence {rec.confidence:.2f}"
        s.commands.append((rec.time.timestamp(), f"{rec.command} {rec.operation or ''}".strip(), shown,
                           list(rec.evidence)))
        s.evidence.update(rec.evidence)
        s.src_ip, s.dest_ip = s.src_ip or rec.src_ip, s.dest_ip or rec.dest_ip
        s.src_host, s.dest_host = s.src_host or rec.src_host, s.dest_host or rec.dest_host
        if rec.user:
            s.users[rec.user.lower()] += 1
        if rec.evidence == ["host"]:
            s.add_provenance(rec.provenance)

    def summaries(self) -> Iterator[Summary]:
        """Every trail, oldest first (read back from disk)."""
        self.finish_before(float("inf"))
        for s in self.finished.ordered():
            s.commands.sort(key=lambda c: c[0])
            if s.src_ip and not s.src_host:
                s.src_host = self.identity.name_of(s.src_ip)
            if s.dest_ip and not s.dest_host:
                s.dest_host = self.identity.name_of(s.dest_ip)
            yield s


class _Finished:
    """Idle trails in a private temporary sqlite database (deleted when closed), by id and start."""

    def __init__(self) -> None:
        self._db: Optional[sqlite3.Connection] = None

    def put(self, summary: Summary) -> None:
        if self._db is None:
            self._db = sqlite3.connect("")  # "": a temporary on-disk database, removed on close
            for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KB}"):
                self._db.execute("PRAGMA " + pragma)
            self._db.execute("CREATE TABLE trails (id TEXT PRIMARY KEY, first REAL, seq INTEGER, summary BLOB)")
        self._db.execute("INSERT INTO trails VALUES (?, ?, ?, ?)", (
            summary.trail_id, summary.first, summary.seq, pickle.dumps(summary, protocol=pickle.HIGHEST_PROTOCOL)))

    def take(self, trail_id: str) -> Optional[Summary]:
        if self._db is None:
            return None
        row = self._db.execute("SELECT summary FROM trails WHERE id = ?", (trail_id,)).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM trails WHERE id = ?", (trail_id,))
        return pickle.loads(row[0])

    def ordered(self) -> Iterator[Summary]:
        if self._db is None:
            return
        try:
            self._db.execute("CREATE INDEX by_start ON trails (first, seq)")  # sorts keys, not summaries
            for (blob,) in self._db.execute("SELECT summary FROM trails INDEXED BY by_start ORDER BY first, seq"):
                yield pickle.loads(blob)
        finally:
            self._db.close()
            self._db = None


@lru_cache(maxsize=1)
def _shown() -> frozenset:
    """The arguments a trail summary lists per command (lookups/arguments.csv, role `trail_summary`)."""
    return frozenset(lookups.argument_names("trail_summary"))


def _carried(rec: Record, vehicles: List[Record]) -> Record:
    """The fused command travels in the host engine's own record when there is one (no duplicate)."""
    if not vehicles:
        return rec
    vehicle = vehicles[0]
    for name in rec.model_fields_set | {"evidence", "join", "trail_id", "inferred", "confidence"}:
        if name not in ("args", "provenance", "message"):
            setattr(vehicle, name, getattr(rec, name))
    vehicle.args = dict(vehicle.args, **rec.args)
    if len(vehicles) > 1:
        vehicle.args["merged_records"] = [v.uid() for v in vehicles[1:]]
    vehicle.provenance = _unique_provenance(list(vehicle.provenance) + list(rec.provenance))
    return vehicle


def _unique_provenance(items: List[Provenance]) -> List[Provenance]:
    seen, out = set(), []
    for item in items:
        key = (item.file, tuple(item.frames), tuple(item.record_ids))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _strength(logon_id: Optional[str], link: Optional[Link]) -> Tuple[bool, float]:
    """Which sighting of a command speaks for it: an event in a logon session, then the surer join."""
    return bool(logon_id), (link.confidence if link is not None and not link.ambiguous else 0.0)


def _side(rec) -> str:
    return "source" if rec.event_id == 4688 else "target"


def host_evidence_trail(rec: Record) -> str:
    """A trail for host evidence the capture did not see: the logon session, else host + account + hour."""
    if rec.logon_id and _side(rec) == "target":
        return host_trail_id(event_host(rec), rec.logon_id)
    return host_trail_id(event_host(rec), (rec.user, int(rec.time.timestamp() // 3600)))


def _same(a: Any, b: Any) -> bool:
    return str(a).strip().lower() == str(b).strip().lower()


NOT_CONFLICTS = ("command_line",)  # cmd.exe /c sc.exe ... and sc.exe ... are one command


def _merge_args(into: Dict[str, Any], extra: Dict[str, Any], conflicts: Dict[str, List[Any]]) -> None:
    for key, value in extra.items():
        if value in (None, "", []):
            continue
        if into.get(key) in (None, "", []):
            into[key] = value
        elif key in NOT_CONFLICTS:
            continue
        elif not _same(into[key], value):
            seen = conflicts.setdefault(key, [into[key]])
            if not any(_same(v, value) for v in seen):
                seen.append(value)


def _union(a: List[str], b: List[str]) -> List[str]:
    return list(dict.fromkeys(list(a) + list(b)))
