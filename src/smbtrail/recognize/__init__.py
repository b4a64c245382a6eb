"""Operation records -> commands. Records are grouped into trails (client, target, account, burst of
activity); each trail is matched against the command signatures when it goes quiet.

Memory: one buffer per active trail, flushed after TRAIL_GAP seconds of capture time without
activity, or when it reaches MAX_BUFFER records (the trail then continues under the same id).
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from ..records import COMMAND, ERROR, HOST_EVENT, Provenance, Record, stable_id
from .failures import FAILED, is_failed_logon, logon_command
from .signatures import Signature, index_records, same_session, satisfied, signatures

TRAIL_GAP = 300.0
MAX_BUFFER = 20000
SWEEP = 10.0  # seconds of capture time between two looks for trails gone quiet
SUBJECT_KEYS = ("service_name", "task_name", "key", "account", "file", "job_command", "clsid_name", "secret")


class _Trail:
    def __init__(self, trail_id: str, first: float) -> None:
        self.trail_id = trail_id
        self.first = first
        self.last = first
        self.records: List[Record] = []

    def covers(self, when: float) -> bool:
        """Inputs are read file by file, so time can jump back: a trail spans one stretch of activity."""
        return self.first - TRAIL_GAP <= when <= self.last + TRAIL_GAP


def trail_key(rec: Record) -> Tuple:
    """Client, target, account; a failed logon goes to its client's trail of failures, whatever the account."""
    return (rec.src_ip, rec.dest_ip, FAILED if is_failed_logon(rec) else (rec.user or "").lower())


def recognize(records: Iterable[Record]) -> Iterator[Record]:
    """Pass every record through, with trail_id and command set; add one command record per match."""
    open_trails: Dict[Tuple, _Trail] = {}
    swept = float("-inf")
    for rec in records:
        if rec.kind in (ERROR, HOST_EVENT) or rec.src_ip is None:
            yield rec
            continue
        now = rec.time.timestamp()
        key = trail_key(rec)
        trail = open_trails.get(key)
        if trail is not None and not trail.covers(now):
            yield from _close(open_trails.pop(key))
            trail = None
        if trail is None:
            trail = open_trails[key] = _Trail(stable_id(*key, rec.time.isoformat()), now)
        trail.first = min(trail.first, now)
        trail.last = max(trail.last, now)
        rec.trail_id = trail.trail_id
        trail.records.append(rec)
        if len(trail.records) >= MAX_BUFFER:
            yield from _match(trail.records)
            trail.records = []
        if abs(now - swept) >= SWEEP:  # a pass over every open trail: not at every record
            swept = now
            for stale in [k for k, t in open_trails.items() if not t.covers(now)]:
                yield from _close(open_trails.pop(stale))
    for trail in open_trails.values():
        yield from _close(trail)


def _close(trail: _Trail) -> Iterator[Record]:
    logon = logon_command(trail.records)
    yield from _match(trail.records)
    if logon is not None:
        yield logon


def _match(records: List[Record]) -> Iterator[Record]:
    records.sort(key=lambda r: r.time)
    commands = []
    claimed: Dict[int, str] = {}
    index = index_records(records)
    for sig in signatures():
        anchors = [r for r in sig.anchor.candidates(index) if id(r) not in claimed and sig.anchor(r)]
        if not anchors:
            continue
        absorbable = [(r, _subject(r)) for r in
                      {id(r): r for step in sig.absorbs for r in step.candidates(index) if step(r)}.values()]
        for anchor in anchors:
            if id(anchor) in claimed:
                continue
            support = _requirements(sig, index, anchor)
            if support is None:
                continue
            members = [anchor] + support + _absorbed(absorbable, anchor, claimed)
            for member in members:
                claimed.setdefault(id(member), sig.command)
                if member.command is None:
                    member.command = sig.command
            commands.append(_command_record(sig, anchor, members))
    merged = sorted(records + commands, key=lambda r: (r.time, r.kind != COMMAND))
    yield from merged


def _requirements(sig: Signature, index, anchor: Record) -> Optional[List[Record]]:
    found = []
    for step in sig.requires:
        match = satisfied(index, step, anchor)
        if match is None:
            return None
        found.append(match)
    return found


def _absorbed(absorbable: List[Tuple[Record, Optional[Tuple[str, str]]]], anchor: Record, claimed: Dict[int, str]
              ) -> List[Record]:
    """Helper operations of the same command (handle opens, closes, lookups) that nobody claimed yet
    (`absorbable`: the candidates, each with its _subject)."""
    subject = _subject(anchor)
    out = []
    for rec, other in absorbable:
        if id(rec) in claimed or rec is anchor or not same_session(rec, anchor):
            continue
        if subject and other and other[0] == subject[0] and other[1] != subject[1]:
            continue  # same kind of argument naming another object: a different command
        out.append(rec)
    return out


def _subject(rec: Record) -> Optional[Tuple[str, str]]:
    for key in SUBJECT_KEYS:
        value = rec.args.get(key)
        if isinstance(value, str) and value:
            return key, value.lower()
    return None


def _command_record(sig: Signature, anchor: Record, members: List[Record]) -> Record:
    args: Dict[str, object] = {"action": sig.action}
    if sig.alternatives:
        args["alternatives"] = sig.alternatives  # the same wire signature, another tool
    for member in [anchor] + members:
        for key, value in member.args.items():
            if not key.startswith("_") and key not in ("fid", "stub_size", "auth_level"):
                args.setdefault(key, value)
    files = sorted({m.path for m in members if m.kind == "file" and m.path and m.operation != "pipe_open"})
    pipes = sorted({m.path for m in members if m.operation == "pipe_open" and m.path})
    if files:
        args["files"] = files
    if pipes:
        args["pipes"] = pipes
    frames = sorted({f for m in members for p in m.provenance for f in p.frames})
    source = anchor.provenance[0].file if anchor.provenance else "-"
    fields = anchor.model_dump(exclude={"kind", "args", "provenance", "command", "opnum", "operation",
                                        "path", "status", "confidence", "access"})
    fields.update(kind=COMMAND, command=sig.command, args=args, confidence=sig.confidence,
                  operation=sig.action, path=anchor.path, status=anchor.status,
                  sealed=any(m.sealed for m in members), partial=any(m.partial for m in members),
                  message=sig.description, provenance=[Provenance(file=source, frames=frames[:64])])
    return Record(**fields)
