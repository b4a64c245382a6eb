"""Command signatures from lookups/command_signatures.csv, matched against one trail's records.

Step syntax (space-separated list; `||` separates alternatives inside one step):
    rpc:<interface>:<opnums|.*>   an operation of that interface (its name or an alias in rpc_interfaces.csv)
    arg:<name>:<regex>            an argument value of a record
    pipe:<regex>                  a named pipe opened
    file:<share re>:<op re>:<path re>   a file record (op = write|read|delete|open|rename)
    tree:<share re>               a share mapping
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from .. import lookups
from ..interfaces import interface_uuid
from ..records import FILE, OPERATION, TREE, Record

FILE_NAME = "command_signatures.csv"


@dataclass
class Signature:
    command: str
    action: str
    priority: int
    confidence: float
    anchor: Step
    requires: List[Step]
    absorbs: List[Step]
    description: str
    alternatives: List[str]


@lru_cache(maxsize=1)
def signatures() -> List[Signature]:
    sigs = [
        Signature(
            command=row["command"], action=row["action"], priority=int(row["priority"]),
            confidence=float(row["confidence"]), anchor=step(row["anchor"]),
            requires=[step(s) for s in row["requires"].split()], absorbs=[step(s) for s in row["absorbs"].split()],
            description=row["description"],
            alternatives=[a.strip() for a in row.get("alternatives", "").split(";") if a.strip()],
        )
        for row in lookups.rows(FILE_NAME)
    ]
    return sorted(sigs, key=lambda s: -s.priority)


@lru_cache(maxsize=1)
def anchors() -> Dict[Tuple[str, str], str]:
    """(command, action) -> the step that anchors it, as written (the last row of a command and action wins)."""
    return {(row["command"], row["action"]): row["anchor"] for row in lookups.rows(FILE_NAME)}


class Step:
    """One signature step: a predicate, plus the record kinds (and RPC UUIDs) it can ever match,
    so a trail's records are only tested where they could match."""

    def __init__(self, text: str) -> None:
        parts = [_one(part) for part in text.split("||")]
        self.alternatives = [p for p, _ in parts]
        self.keys = {key for _, key in parts}
        # arg: steps speak of the anchor's own arguments, not of anything else in the trail
        self.on_anchor = [part.startswith("arg:") for part in text.split("||")]

    def __call__(self, rec: Record) -> bool:
        for alternative in self.alternatives:
            if alternative(rec):
                return True
        return False

    def candidates(self, index: Dict[tuple, List[Record]]) -> List[Record]:
        found: List[Record] = []
        for key in self.keys:
            found.extend(index.get(key, ()))
        return found if len(self.keys) == 1 else sorted(found, key=lambda r: r.time)


def index_records(records: List[Record]) -> Dict[tuple, List[Record]]:
    """Records by (kind, rpc uuid) and by (kind, None), each list in time order."""
    index: Dict[tuple, List[Record]] = {}
    for rec in records:
        index.setdefault((rec.kind, None), []).append(rec)
        if rec.rpc_uuid:
            index.setdefault((rec.kind, rec.rpc_uuid), []).append(rec)
    return index


def step(text: str) -> Step:
    return Step(text)


def _one(text: str):
    kind, _, rest = text.partition(":")
    if kind == "rpc":
        name, _, opnums = rest.partition(":")
        uuid = interface_uuid(name)
        if uuid is None:
            raise ValueError(f"signature step {text!r}: no interface {name!r} in rpc_interfaces.csv")
        wanted = None if opnums in ("", ".*") else {int(n) for n in opnums.split("|")}
        return (lambda r: r.rpc_uuid == uuid and (wanted is None or r.opnum in wanted)), (OPERATION, uuid)
    if kind == "arg":
        name, _, pattern = rest.partition(":")
        rx = re.compile(pattern)
        return (lambda r: isinstance(r.args.get(name), str) and bool(rx.search(r.args[name]))), (OPERATION, None)
    if kind == "pipe":
        rx = re.compile(rest)
        return (lambda r: r.operation == "pipe_open" and bool(rx.search(r.path or ""))), (FILE, None)
    if kind == "file":
        share, op, path = _three(rest)
        return (lambda r: (r.operation != "pipe_open" and bool(share.search(r.share or ""))
                           and bool(op.search(r.operation or "")) and bool(path.search(r.path or "")))), (FILE, None)
    if kind == "tree":
        rx = re.compile(rest)
        return (lambda r: bool(rx.search(r.share or ""))), (TREE, None)
    raise ValueError(f"unknown signature step {text!r}")


def _three(text: str):
    """share:op:path where the path regex may itself contain colons."""
    share, op, path = text.split(":", 2)
    return re.compile(share), re.compile(op), re.compile(path)


def satisfied(index: Dict[tuple, List[Record]], step: Step, anchor: Record) -> Optional[Record]:
    """The record that satisfies a required step for this anchor: the anchor itself for its own
    arguments, else a record of the same SMB session (of the trail when the anchor has none)."""
    for alternative, on_anchor in zip(step.alternatives, step.on_anchor):
        if on_anchor:
            if alternative(anchor):
                return anchor
            continue
        for rec in step.candidates(index):
            if alternative(rec) and same_session(rec, anchor):
                return rec
    return None


def same_session(rec: Record, anchor: Record) -> bool:
    return not (rec.session_id and anchor.session_id) or rec.session_id == anchor.session_id
