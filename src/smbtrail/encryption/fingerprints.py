"""DCE/RPC operations named by PDU sizes (lookups/rpc_size_fingerprints.csv).

A row: pipe, interface, opnum, operation, request and response PDU size (an exact size, `lo-hi`, or `*`),
source (`ndr`: fixed by the IDL, holds for any client; `lab`: measured on decrypted lab captures), count.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .. import lookups
from .sizes import Exchange, Open

FIELDS = ["pipe", "interface", "opnum", "operation", "request", "response", "source", "count"]


@dataclass(frozen=True)
class Fingerprint:
    pipe: str
    interface: str
    opnum: int
    operation: str
    request: Tuple[int, int]
    response: Tuple[int, int]
    source: str
    count: int = 1
    alternatives: Tuple[int, ...] = ()  # undecided (opnum -1): the opnums these sizes fit

    @property
    def opnums(self) -> Tuple[int, ...]:
        return self.alternatives or ((self.opnum,) if self.opnum >= 0 else ())

    def matches(self, exchange: Exchange) -> bool:
        return _within(exchange.request, self.request) and _within(exchange.response, self.response)

    @property
    def exact(self) -> bool:
        return self.request[0] == self.request[1] and self.response[0] == self.response[1]


def _within(value: int, bounds: Tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


def parse_range(text: str) -> Tuple[int, int]:
    text = text.strip()
    if text in ("", "*"):
        return (0, 1 << 30)
    low, _, high = text.partition("-")
    return (int(low), int(high)) if high else (int(low), int(low))


def format_range(bounds: Tuple[int, int]) -> str:
    if bounds == (0, 1 << 30):
        return "*"
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"


def from_rows(rows: Iterable[Dict[str, str]]) -> List[Fingerprint]:
    """Rows that do not parse are left out (a hand-edited lookup must not stop an analysis)."""
    out = []
    for row in rows:
        try:
            out.append(Fingerprint((row["pipe"] or "").lower(), row["interface"] or "", int(row["opnum"]),
                                   row["operation"] or "", parse_range(row["request"] or ""),
                                   parse_range(row["response"] or ""), row.get("source") or "lab",
                                   int(row.get("count") or 1)))
        except (KeyError, TypeError, ValueError):
            continue
    return out


@lru_cache(maxsize=1)
def load() -> Tuple[Fingerprint, ...]:
    """The shipped fingerprints; none (so no RPC operation is named) if the lookup is missing."""
    try:
        return tuple(from_rows(lookups.rows("rpc_size_fingerprints.csv")))
    except OSError:
        return ()


def to_rows(prints: Sequence[Fingerprint]) -> List[Dict[str, str]]:
    return [
        {"pipe": p.pipe, "interface": p.interface, "opnum": str(p.opnum), "operation": p.operation,
         "request": format_range(p.request), "response": format_range(p.response), "source": p.source,
         "count": str(p.count)}
        for p in prints
    ]


@dataclass
class PipeGuess:
    pipe: str  # "" when the name length fits several pipes and no operation decided
    interface: str
    operations: List[Tuple[Exchange, Fingerprint, float]]  # with how well the sizes fit (1 = exactly)
    score: float  # how well the fingerprints explain the pipe's exchanges (0..1)


MIN_SCORE = 0.3  # below this, the pipe is left unnamed rather than guessed
GENERIC = (28, 48)  # a bare status, a handle and status: answers of many operations, little evidence of one
FAULT = 32  # a DCE/RPC fault PDU (status and padding): the call failed (e.g. an opnum the server lacks)


def identify(opened: Open, prints: Optional[Sequence[Fingerprint]] = None) -> Optional[PipeGuess]:
    """The interface of a pipe open (by name length and operation sizes) and its operations.

    Each exchange votes for the interfaces whose fingerprints explain it; a size that several interfaces
    explain equally well (a bare status, a handle) counts for little."""
    prints = load() if prints is None else prints
    candidates = [p for p in prints if len(p.pipe) == opened.name_len]
    calls = [e for e in opened.exchanges[1:] if e.response]  # the first exchange is the bind
    if not candidates or not calls:
        return None
    names = sorted({(p.pipe, p.interface) for p in candidates})
    hits = {n: [_best(e, [p for p in candidates if (p.pipe, p.interface) == n]) for e in calls] for n in names}
    best: Optional[PipeGuess] = None
    for name in names:
        found, votes, counted = [], 0.0, 0
        for pos, hit in enumerate(hits[name]):
            if hit is None:
                counted += calls[pos].response != FAULT  # a fault answers any call: no evidence either way
                continue
            counted += 1
            rivals = sum(1 for other in names if hits[other][pos] is not None and hits[other][pos][1] >= hit[1])
            votes += hit[1] / rivals
            found.append((calls[pos], hit[0], hit[1]))
        guess = PipeGuess(name[0], name[1], found, votes / max(counted, 1))
        if best is None or guess.score > best.score:
            best = guess
    return best if best is not None and best.operations and best.score >= MIN_SCORE else None


def _best(exchange: Exchange, rows: Sequence[Fingerprint]) -> Optional[Tuple[Fingerprint, float]]:
    """Measured sizes first, then IDL size ranges; else the response size (fixed-size answers) or the request
    size (variable answers such as enumerations) if it belongs to one operation only."""
    fitting = [r for r in rows if r.matches(exchange)]
    exact = [r for r in fitting if r.exact]
    if exact:
        return _one_of(exact), 1.0
    if fitting:
        generic = all(r.response[0] == r.response[1] and r.response[0] in GENERIC for r in fitting)
        return _one_of(fitting), 0.5 if generic else 0.8
    same_answer = [r for r in rows if _within(exchange.response, r.response) and r.response[0] == r.response[1]]
    if len({r.opnum for r in same_answer}) == 1:
        return max(same_answer, key=lambda r: r.count), 0.5
    same_request = [r for r in rows if _within(exchange.request, r.request) and r.request[0] == r.request[1]]
    if len({r.opnum for r in same_request}) == 1:
        return same_request[0], 0.3
    return None


def _one_of(rows: Sequence[Fingerprint]) -> Fingerprint:
    """The operation these sizes name; if several operations of the interface fit them (samr
    OpenUser/OpenGroup/OpenAlias), an undecided one (opnum -1) that a template accepts only if it accepts
    every alternative (CreateServiceW or CreateServiceA: either is a service created)."""
    ops = sorted({(r.opnum, r.operation) for r in rows})
    top = max(rows, key=lambda r: r.count)
    if len(ops) == 1:
        return top
    return Fingerprint(top.pipe, top.interface, -1, "|".join(op for _, op in ops), top.request, top.response,
                       top.source, sum(r.count for r in rows), tuple(n for n, _ in ops))


def calibrate(activity: Sequence, truth: Sequence) -> Tuple[List[Fingerprint], int, int]:
    """Fingerprints measured by lining up the size model's RPC exchanges (from encrypted_activity records)
    with the operation records of the decrypted run of the same capture (by frame number).
    Returns the fingerprints and how many operations were and were not lined up."""
    from .sizes import structure

    by_frame = {}
    for rec in truth:
        frames = [f for p in rec.provenance for f in p.frames]
        if rec.kind == "operation" and rec.transport == "ncacn_np" and frames and rec.opnum is not None:
            by_frame[frames[0]] = rec
    counts: Dict[Fingerprint, int] = {}
    for rec in activity:
        frames = rec.args.get("message_frames") or []
        sizes = rec.args.get("message_sizes") or []
        for opened in structure(sizes[:len(frames)]).opens:
            for exchange in opened.exchanges:
                op = by_frame.pop(frames[exchange.index[0]], None)
                if op is None or not exchange.response:
                    continue
                key = Fingerprint((op.path or "").lower().rsplit("\\", 1)[-1], op.rpc_interface or "",
                                  op.opnum, op.operation or "", (exchange.request,) * 2,
                                  (exchange.response,) * 2, "lab")
                counts[key] = counts.get(key, 0) + 1
    prints = [Fingerprint(k.pipe, k.interface, k.opnum, k.operation, k.request, k.response, k.source, n)
              for k, n in counts.items()]
    lined_up = sum(counts.values())
    return sorted(prints, key=lambda p: (p.pipe, p.interface, p.opnum, p.request)), lined_up, len(by_frame)
