"""The attack timeline: trails chained by direction (A->B, then B->C), each with a stage and a
suspicion score whose reasons are listed. Stages and scores are data (lookups/suspicion.csv).

A trail continues a chain when its source host was the target of an earlier trail (the attacker
moved on from a host it had reached), by the same account or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, Iterator, List, Optional, Pattern, Tuple

from .. import lookups
from ..records import TRAIL, Provenance, Record, from_epoch
from .identity import Identity, host_key
from .trails import Summary

FILE_NAME = "suspicion.csv"


@dataclass(frozen=True)
class Rule:
    rule: str
    match: Pattern[str]
    field: str
    stage: str
    score: int
    reason: str


@lru_cache(maxsize=1)
def _table() -> Tuple[Dict[str, int], List[Rule]]:
    stages: Dict[str, int] = {}
    rules: List[Rule] = []
    for row in lookups.rows(FILE_NAME):
        if row["rule"] == "stage":
            stages[row["match"]] = int(row["score"])
        else:
            rules.append(Rule(row["rule"], re.compile(row["match"]), row["field"], row["stage"],
                              int(row["score"]), row["reason"]))
    return stages, rules


def score(summary: Summary, chain: List[str]) -> Tuple[int, Optional[str], List[str]]:
    """(score 0-100, stage, reasons) of one trail."""
    stages, rules = _table()
    total, stage, reasons = 0, None, []
    for rule in rules:
        if _applies(rule, summary, chain):
            total += rule.score
            if rule.reason not in reasons:
                reasons.append(rule.reason)
            if rule.stage and stages.get(rule.stage, 0) > stages.get(stage or "", 0):
                stage = rule.stage
    return max(0, min(100, total)), stage, reasons


def _applies(rule: Rule, summary: Summary, chain: List[str]) -> bool:
    if rule.rule == "command":
        return any(rule.match.search(c[1]) for c in summary.commands)
    if rule.rule == "arg":
        return any(rule.match.search(str(c[2].get(rule.field, ""))) for c in summary.commands if c[2].get(rule.field))
    if rule.rule == "chain":
        return rule.match.pattern in chain
    if rule.rule == "evidence":
        return rule.match.pattern == "host_only" and summary.evidence == {"host"}
    if rule.rule == "user":
        return bool(summary.user and rule.match.search(summary.user))
    return False


def _weight(command: str) -> int:
    """How much a command says about the trail: its suspicion score (the trail's headline command)."""
    return max((r.score for r in _table()[1] if r.rule == "command" and r.match.search(command)), default=0)


def _node(identity: Identity, ip: Optional[str], name: Optional[str]) -> Optional[str]:
    key = host_key(name)
    if key and key != ip:
        return key
    names = sorted(identity.keys_of(ip))
    return names[0] if len(names) == 1 else ip


def timeline(summaries: Iterable[Summary], identity: Identity) -> Iterator[Record]:
    """One `trail` record per trail, chained to the trail that reached its source host; `summaries`
    come oldest first (a stream: the trails of a long run are not all in memory)."""
    reached: Dict[str, Tuple[str, str, Optional[str], int]] = {}  # host -> (trail, chain id, user, hop)
    for s in summaries:
        src, dest = _node(identity, s.src_ip, s.src_host), _node(identity, s.dest_ip, s.dest_host)
        before = reached.get(src or "")
        chain: List[str] = []
        if before and before[0] != s.trail_id:
            chain.append("pivot")
            if before[2] and before[2] == s.user:
                chain.append("same_account")
        value, stage, reasons = score(s, chain)
        chain_id, hop = (before[1], before[3] + 1) if before else (s.trail_id, 0)
        if dest and (s.commands or s.evidence == {"network", "host"}):
            reached.setdefault(dest, (s.trail_id, chain_id, s.user, hop))
        yield _record(s, src, dest, value, stage, reasons, chain_id, hop, before[0] if before else None)


def _record(s: Summary, src: Optional[str], dest: Optional[str], value: int, stage: Optional[str],
            reasons: List[str], chain_id: str, hop: int, previous: Optional[str]) -> Record:
    commands = [{"time": from_epoch(t).isoformat().replace("+00:00", "Z"), "command": name, "args": args,
                 "evidence": evidence} for t, name, args, evidence in s.commands]
    args = {"commands": commands, "stage": stage, "score": value, "reasons": reasons, "chain_id": chain_id,
            "hop": hop, "previous_trail_id": previous, "src_node": src, "dest_node": dest,
            "start": from_epoch(s.first).isoformat().replace("+00:00", "Z"),
            "end": from_epoch(s.last).isoformat().replace("+00:00", "Z"), "records": s.records}
    if s.conflicts:
        args["conflicts"] = s.conflicts
    if s.pipes:
        args["pipes"] = sorted(s.pipes)
    names = sorted(dict.fromkeys(c["command"] for c in commands), key=_weight, reverse=True)
    return Record(
        time=from_epoch(s.first), kind=TRAIL, trail_id=s.trail_id, src_ip=s.src_ip, src_host=s.src_host,
        dest_ip=s.dest_ip, dest_host=s.dest_host, user=s.user, domain=s.domain,
        command=names[0] if names else None, args={k: v for k, v in args.items() if v is not None},
        evidence=sorted(s.evidence), join=sorted(s.joins), confidence=s.confidence, partial=s.partial,
        sealed=s.sealed, encrypted=s.encrypted,
        provenance=[Provenance(file=f, frames=fr, record_ids=ids) for f, (fr, ids) in s.provenance.items()],
        message=f"{src or '?'} -> {dest or '?'}: {', '.join(names) or 'no command seen'}",
    )
