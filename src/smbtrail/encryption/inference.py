"""Commands guessed from the sizes of encrypted SMB3 messages.

For each encrypted_activity record: the size model (sizes.py) rebuilds tree connects, file opens and RPC
exchanges; fingerprints.py names the pipe and its operations by PDU sizes; the command templates of
lookups/size_templates.csv are matched on the result. A match becomes a command record (marked
`inferred: true`, with the message sizes it rests on) only when lookups/inference_calibration.csv shows its
label by default and its score reaches the label's threshold; its confidence is the label's precision
measured leave-one-source-out (scripts/inference_accuracy.py fits both). Otherwise no command is named: the
encrypted_activity record's `observed` list says what the sizes do show (a pipe by name length, the interface
its sizes are like, bytes written to a share).

Template step syntax (space-separated; the first `requires` step is the anchor, one command per anchor):
    rpc:<interface>:<opnums|.*>[:<request PDU size or lo-hi>]
                                     an RPC operation named by its sizes (the request size can pin a string
                                     length, e.g. the registry key an OpenKey names)
    upload:<share re>:<min bytes>    a file open on that share with at least that many bytes written
    read:<share re>:<min bytes>      a file open with at least that many bytes read (0: opened for reading)
    delete:<share re>                a file disposed (SET_INFO), or looked up in a listing then opened and closed
                                     without I/O (delete-on-close, as smbclient and impacket delete)
    tree:<share re>                  a share connected
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .. import lookups
from ..records import COMMAND, ENCRYPTED_ACTIVITY, OPERATION, TREE, Record
from .fingerprints import Fingerprint, identify, parse_range
from .sizes import Activity, Open, structure

MAX_EVIDENCE = 40  # message sizes quoted per inferred command
CARRY_SECONDS = 300.0  # how long an upload can support a command in a later burst
MIN_ANCHOR_FIT = 0.8  # an operation named by one of its two sizes can support a command, not anchor one


@dataclass
class Item:
    """One thing the sizes show: an RPC operation, a file transfer, a delete or a share connect."""

    kind: str  # rpc upload read delete tree
    share: str = ""
    interface: str = ""
    opnum: int = -1
    opnums: Tuple[int, ...] = ()  # the operations these sizes fit (several when undecided)
    operation: str = ""
    size: int = 0  # bytes written or read
    request: int = 0  # request PDU size of an RPC operation
    pipe: str = ""
    quality: float = 1.0
    fit: float = 1.0  # how well the sizes fit the operation (1: measured exactly, 0.8: IDL range, less: one side)
    index: List[int] = field(default_factory=list)
    earlier: bool = False  # from an earlier burst of the same client, server and user, or read in clear


Step = Callable[[Item], bool]


@dataclass
class Template:
    command: str
    action: str
    priority: int
    confidence: float
    requires: List[Step]
    absorbs: List[Step]
    description: str


def step(text: str) -> Step:
    kind, _, rest = text.partition(":")
    if kind == "rpc":
        interface, opnums, size = (rest.split(":") + ["", ""])[:3]
        wanted = None if opnums in ("", ".*") else {int(n) for n in opnums.split("|")}
        low, high = parse_range(size)
        return lambda i: (i.kind == "rpc" and i.interface.lower() == interface.lower()
                          and (wanted is None or bool(i.opnums) and set(i.opnums) <= wanted)
                          and low <= i.request <= high)
    if kind in ("upload", "read"):
        share, _, least = rest.rpartition(":")
        rx, minimum = re.compile(share), int(least or 0)
        return lambda i: i.kind == kind and bool(rx.search(i.share)) and i.size >= minimum
    if kind in ("delete", "tree"):
        rx = re.compile(rest)
        return lambda i: i.kind == kind and bool(rx.search(i.share))
    raise ValueError(f"size_templates.csv: unknown step {text!r}")


def templates_from_rows(rows: Iterable[Dict[str, str]]) -> List[Template]:
    """Rows that do not parse (bad number, unknown step, bad regex) are left out."""
    out = []
    for row in rows:
        try:
            requires = [step(s) for s in (row["requires"] or "").split()]
            if requires:
                out.append(Template(row["command"], row["action"], int(row["priority"]), float(row["confidence"]),
                                    requires, [step(s) for s in (row["absorbs"] or "").split()],
                                    row["description"] or ""))
        except (KeyError, TypeError, ValueError, re.error):
            continue
    return sorted(out, key=lambda t: -t.priority)


@lru_cache(maxsize=1)
def templates() -> List[Template]:
    """The shipped templates; none (so nothing is inferred) if the lookup is missing."""
    try:
        return templates_from_rows(lookups.rows("size_templates.csv"))
    except OSError:
        return []


def items(activity: Activity, prints: Optional[Sequence[Fingerprint]] = None, default_share: str = "") -> List[Item]:
    """What the sizes show. `default_share`: the encrypted share whose cleartext TREE_CONNECT was seen
    (share-level encryption), for opens whose tree connect is not among the encrypted messages."""
    found: List[Item] = []
    for tree in activity.trees:
        found.append(Item("tree", share=tree.share, quality=0.8 if tree.share else 0.5, index=tree.index))
    for opened in activity.opens:
        share = opened.tree.share if opened.tree else default_share
        found.extend(_pipe_items(opened, share, prints) if opened.is_pipe else _file_items(opened, share))
    return found


def _pipe_items(opened: Open, share: str, prints: Optional[Sequence[Fingerprint]]) -> List[Item]:
    guess = identify(opened, prints)
    if guess is None:
        return []
    return [
        Item("rpc", share=share, interface=guess.interface, opnum=f.opnum, opnums=f.opnums, operation=f.operation,
             pipe=guess.pipe, request=e.request, quality=fit * (0.5 + guess.score / 2), fit=fit,
             index=opened.index[:2] + e.index)
        for e, f, fit in guess.operations
    ]


def _file_items(opened: Open, share: str) -> List[Item]:
    quality = 0.8 if share else 0.5
    if share == "IPC$":
        return []
    index = opened.index
    if opened.bytes_written:
        return [Item("upload", share=share, size=opened.bytes_written, quality=quality, index=index)]
    if opened.reads:
        return [Item("read", share=share, size=opened.bytes_read, quality=quality, index=index)]
    if opened.disposition or (opened.closed and opened.name_len and opened.listed and not opened.other):
        return [Item("delete", share=share, quality=quality * 0.7, index=index)]
    return []


@dataclass
class Match:
    template: Template
    members: List[Item]  # the required items first (anchor, then one per further step), then those absorbed

    @property
    def score(self) -> float:
        """How well the sizes fit the template's required steps (not a probability: the calibration turns
        it into one); absorbed items neither raise nor lower it."""
        required = self.members[:len(self.template.requires)]
        return round(self.template.confidence * sum(m.quality for m in required) / len(required), 2)

    @property
    def label(self) -> Tuple[str, str]:
        return self.template.command, self.template.action


@dataclass(frozen=True)
class Gate:
    """When a label is shown: its score threshold and the precision measured at it (leave-one-source-out)."""

    command: str
    action: str
    min_score: Optional[float]  # None: never shown by default
    right: int = 0  # how often it was right when shown (in the shipped lookup: leave-one-source-out)
    shown: int = 0
    confidence: float = 0.0
    sources: str = ""  # the sources the threshold was fitted on

    def passes(self, score: float) -> bool:
        return self.min_score is not None and score >= self.min_score


ANY_LABEL = ("*", "*")  # the gate of labels without evidence of their own
GATE_FIELDS = ["command", "action", "min_score", "right", "shown", "confidence", "sources"]
Gates = Dict[Tuple[str, str], Gate]


def gates_from_rows(rows: Iterable[Dict[str, str]]) -> Gates:
    """Rows that do not parse are left out (their label is then never shown)."""
    out: Gates = {}
    for row in rows:
        try:
            low = (row.get("min_score") or "").strip()
            gate = Gate(row["command"], row["action"], float(low) if low else None, int(row.get("right") or 0),
                        int(row.get("shown") or 0), float(row.get("confidence") or 0), row.get("sources") or "")
        except (KeyError, TypeError, ValueError):
            continue
        out[(gate.command, gate.action)] = gate
    return out


def gate_rows(gates: Gates) -> List[Dict[str, str]]:
    return [{"command": g.command, "action": g.action, "min_score": "" if g.min_score is None else f"{g.min_score:g}",
             "right": str(g.right), "shown": str(g.shown), "confidence": f"{g.confidence:.2f}", "sources": g.sources}
            for _, g in sorted(gates.items())]


def gate_for(table: Gates, label: Tuple[str, str]) -> Optional[Gate]:
    return table.get(label) or table.get(ANY_LABEL)


@lru_cache(maxsize=1)
def gates() -> Gates:
    """The shipped calibration; none (so no command is shown, only what the sizes show) if it is missing."""
    try:
        return gates_from_rows(lookups.rows("inference_calibration.csv"))
    except OSError:
        return {}


def match(found: List[Item], rules: Optional[Sequence[Template]] = None, earlier: Sequence[Item] = ()) -> List[Match]:
    """Templates by priority; an item an earlier command used or absorbed cannot anchor another. Items of
    earlier bursts (`earlier`) can only support a command anchored in this one (Windows PsExec uploads
    the service binary in one SMB session and creates the service in another)."""
    claimed: set = set()
    matches = []
    pool = list(found) + list(earlier)
    for rule in templates() if rules is None else rules:
        anchor, needs = rule.requires[0], rule.requires[1:]
        for item in found:
            if id(item) in claimed or item.fit < MIN_ANCHOR_FIT or not anchor(item):
                continue
            support = [next((i for i in pool if need(i) and id(i) not in claimed), None) for need in needs]
            if any(s is None for s in support):
                continue
            members = [item] + [s for s in support if s is not None]
            members += [i for i in found if id(i) not in claimed and i not in members and any(a(i) for a in rule.absorbs)]
            claimed.update(id(m) for m in members)
            matches.append(Match(rule, members))
    return matches


def infer(records: Iterable[Record], prints: Optional[Sequence[Fingerprint]] = None,
          rules: Optional[Sequence[Template]] = None, calibration: Optional[Gates] = None,
          show_all: bool = False) -> Iterator[Record]:
    """Pass every record through; each encrypted_activity record (not decrypted) gains `observed` (what its
    sizes show) and is followed by the commands its sizes suggest that the calibration shows (`show_all`:
    every template match, shown or not, for the evaluation). An RPC call the sensor reads can complete a
    command whose other half was encrypted a moment before (PsExec's upload to an encrypted ADMIN$)."""
    state = _Inference(prints, rules, gates() if calibration is None else calibration, show_all)
    for rec in records:
        if rec.kind == TREE and rec.share and rec.args.get("share_encrypted") and rec.session_id:
            state.encrypted_shares[rec.session_id] = rec.share
        if rec.kind == ENCRYPTED_ACTIVITY and not rec.decrypted:
            made = state.encrypted(rec)
            yield rec
            yield from made
        else:
            yield rec
            if rec.kind == OPERATION and not rec.inferred and rec.rpc_interface and rec.opnum is not None:
                yield from state.readable(rec)


@dataclass
class _Pending:
    """A transfer under encryption that a readable RPC call may still turn into a command."""

    when: float
    burst: Record
    sizes: List[int]
    item: Item


class _Inference:
    """Per client and server: uploads of recent bursts, RPC calls read in clear, transfers still pending."""

    def __init__(self, prints, rules, table: Gates, show_all: bool) -> None:
        self.prints, self.rules, self.table, self.show_all = prints, rules, table, show_all
        self.encrypted_shares: Dict[str, str] = {}
        self.uploads: Dict[tuple, List[Tuple[float, Item]]] = {}
        self.calls: Dict[tuple, _Recent] = {}
        self.pending: Dict[tuple, List[_Pending]] = {}

    def encrypted(self, rec: Record) -> List[Record]:
        key, now = (rec.src_ip, rec.dest_ip, (rec.user or "").lower()), rec.time.timestamp()
        recent = [(t, i) for t, i in self.uploads.get(key, []) if abs(now - t) <= CARRY_SECONDS]
        held = self.calls.get(key[:2])
        calls = [i for t, i in held.items if abs(now - t) <= CARRY_SECONDS] if held else []
        found = read(rec, self.prints, self.rules, self.encrypted_shares.get(rec.session_id or "", ""),
                     [i for _, i in recent] + calls)
        if found.sizes:
            rec.args["observed"] = found.notes
        self.uploads[key] = recent + [(now, _carried(i)) for i in found.items if i.kind == "upload"]
        with_calls = {id(m) for match in found.matches if any(x.kind == "rpc" for x in match.members)
                      for m in match.members}
        waiting = [_Pending(now, rec, found.sizes, i) for i in found.items
                   if i.kind in ("upload", "read") and id(i) not in with_calls]
        self.pending[key[:2]] = [p for p in self.pending.get(key[:2], []) if now - p.when <= CARRY_SECONDS] + waiting
        return self._shown(_record(rec, m, gate_for(self.table, m.label), found.sizes) for m in found.matches)

    def readable(self, rec: Record) -> List[Record]:
        key, now, call = (rec.src_ip, rec.dest_ip), rec.time.timestamp(), _read_call(rec)
        _remember(self.calls, key, now, call)
        if not self.pending.get(key):
            return []
        made, left = [], []
        for waiting in self.pending.get(key, []):
            if not 0 <= now - waiting.when <= CARRY_SECONDS:
                continue
            found = [m for m in match([waiting.item], self.rules, [call]) if any(x is call for x in m.members)]
            made += [_record(waiting.burst, m, gate_for(self.table, m.label), waiting.sizes, rec.time) for m in found]
            if not found:
                left.append(waiting)
        self.pending[key] = left
        return self._shown(made)

    def _shown(self, made: Iterable[Record]) -> List[Record]:
        return [r for r in made if self.show_all or r.args["shown_by_default"]]


def commands_for(rec: Record, prints: Optional[Sequence[Fingerprint]] = None,
                 rules: Optional[Sequence[Template]] = None, default_share: str = "",
                 earlier: Sequence[Item] = (), calibration: Optional[Gates] = None) -> List[Record]:
    """The commands one encrypted_activity record's sizes suggest that the calibration shows."""
    table = gates() if calibration is None else calibration
    found = read(rec, prints, rules, default_share, earlier)
    made = [_record(rec, m, gate_for(table, m.label), found.sizes) for m in found.matches]
    return [r for r in made if r.args["shown_by_default"]]


@dataclass
class Reading:
    """What one encrypted_activity record's sizes show."""

    sizes: List[int]
    items: List[Item]
    matches: List[Match]
    notes: List[str]  # what is known, in words, whether or not a command is shown


def read(rec: Record, prints: Optional[Sequence[Fingerprint]] = None, rules: Optional[Sequence[Template]] = None,
         default_share: str = "", earlier: Sequence[Item] = ()) -> Reading:
    sizes = [s for s in rec.args.get("message_sizes") or [] if isinstance(s, int) and not isinstance(s, bool)]
    if not sizes:
        return Reading([], [], [], [])
    activity = structure(sizes, host_lengths(rec))
    found = items(activity, prints, default_share)
    return Reading(sizes, found, match(found, rules, earlier), observed(activity, found, default_share))


MAX_NOTES = 12


def observed(activity: Activity, found: Sequence[Item], default_share: str = "") -> List[str]:
    """What the sizes show without naming a command: pipes by name length and the interface their sizes are
    like, bytes written or read per share, deletes, shares connected."""
    notes = []
    for opened in activity.opens:
        share = opened.tree.share if opened.tree else default_share
        if opened.is_pipe:
            notes.append(_pipe_note(opened, [i for i in found if i.kind == "rpc" and i.index[:2] == opened.index[:2]]))
        elif share != "IPC$":
            notes.extend(_file_notes(opened, share))
    shares = sorted({t.share or f"a {max(t.unc_len, 0)}-character UNC path" for t in activity.trees})
    if shares:
        notes.append("share connected: " + ", ".join(shares))
    return notes[:MAX_NOTES] + ([f"... {len(notes) - MAX_NOTES} more"] if len(notes) > MAX_NOTES else [])


def _pipe_note(opened: Open, operations: Sequence[Item]) -> str:
    calls = max(len([e for e in opened.exchanges if e.response]) - 1, 0)
    text = f"RPC on a {opened.name_len}-character pipe, {calls} call{'s' if calls != 1 else ''}"
    if operations:
        names = list(dict.fromkeys(i.operation.replace("|", " or ") for i in operations))
        like = "sizes like" if max(i.fit for i in operations) >= MIN_ANCHOR_FIT else "one size per call like"
        text += f", {like} {operations[0].interface} ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
    elif calls:
        text += ", sizes like no known interface"
    return text


def _file_notes(opened: Open, share: str) -> List[str]:
    where = share or "an unnamed share"
    if opened.bytes_written:
        return [f"{opened.bytes_written} bytes written to a {opened.name_len}-character file name on {where}"]
    if opened.reads:
        return [f"{opened.bytes_read} bytes read from a {opened.name_len}-character file name on {where}"]
    if opened.disposition:
        return [f"a {opened.name_len}-character file name on {where} marked for deletion"]
    return []


MAX_REMEMBERED = 64  # readable RPC calls kept per client and server


@dataclass
class _Recent:
    """Readable RPC calls of one client and server, in the order read, with bounds of their times."""

    items: List[Tuple[float, Item]] = field(default_factory=list)
    low: float = float("inf")  # at most the earliest time held
    high: float = float("-inf")  # at least the latest time held


def _remember(seen: Dict[tuple, _Recent], key: tuple, when: float, item: Item) -> None:
    """Keep `item`, the calls within CARRY_SECONDS of `when` (either side) and at most MAX_REMEMBERED in all."""
    recent = seen.get(key)
    if recent is None:
        recent = seen[key] = _Recent()
    if when - recent.low > CARRY_SECONDS or recent.high - when > CARRY_SECONDS:  # some call held may be out of reach
        recent.items = [(t, i) for t, i in recent.items if abs(when - t) <= CARRY_SECONDS]
        recent.low = min((t for t, _ in recent.items), default=float("inf"))
        recent.high = max((t for t, _ in recent.items), default=float("-inf"))
    recent.items.append((when, item))
    if len(recent.items) > MAX_REMEMBERED:
        del recent.items[0]
    recent.low, recent.high = min(recent.low, when), max(recent.high, when)


def _read_call(rec: Record) -> Item:
    """An RPC call the sensor read (over TCP, or on an IPC$ that share-level encryption leaves clear): it can
    support a command anchored in encrypted sizes (PsExec's upload to an encrypted ADMIN$)."""
    return Item("rpc", interface=rec.rpc_interface or "", opnum=rec.opnum if rec.opnum is not None else -1,
                opnums=(rec.opnum,) if rec.opnum is not None else (), operation=rec.operation or "", earlier=True)


def _carried(item: Item) -> Item:
    return Item(item.kind, share=item.share, size=item.size, quality=item.quality * 0.8, earlier=True)


def host_lengths(rec: Record) -> List[int]:
    """Lengths of the names a client may have typed for the server (the UNC host part)."""
    names = [n for n in (rec.dest_ip, rec.dest_host, rec.args.get("netname")) if isinstance(n, str) and n]
    names += [n.split(".", 1)[0] for n in names if not n.replace(".", "").isdigit()]  # NetBIOS-style short name
    return sorted({len(n) for n in names})


def _record(rec: Record, found: Match, gate: Optional[Gate], sizes: List[int],
            when: Optional[datetime] = None) -> Record:
    shown = gate is not None and gate.passes(found.score)
    positions = sorted({p for m in found.members if not m.earlier for p in m.index})
    args: Dict[str, object] = {"action": found.template.action,
                               "evidence_sizes": [sizes[p] for p in positions[:MAX_EVIDENCE]],
                               "template": found.template.description, "score": found.score,
                               "shown_by_default": shown}
    operations = [f"{m.interface}.{m.operation}" for m in found.members if m.kind == "rpc"]
    if operations:
        args["operations"] = operations
    pipes = sorted({m.pipe for m in found.members if m.pipe})
    if pipes:
        args["pipe"] = pipes[0]
    for kind, key in (("upload", "bytes_written"), ("read", "bytes_read")):
        total = sum(m.size for m in found.members if m.kind == kind)
        if total:
            args[key] = total
    shares = sorted({m.share for m in found.members if m.share and m.share != "IPC$"})
    return Record(
        time=when or rec.time, kind=COMMAND, src_ip=rec.src_ip, src_port=rec.src_port, dest_ip=rec.dest_ip,
        dest_port=rec.dest_port, src_host=rec.src_host, dest_host=rec.dest_host, user=rec.user, domain=rec.domain,
        protocol=rec.protocol, transport=rec.transport, share=shares[0] if shares else None,
        command=found.template.command, operation=found.template.action, args=args, encrypted=True,
        inferred=True, confidence=gate.confidence if shown and gate is not None else 0.0, evidence=list(rec.evidence),
        session_id=rec.session_id, trail_id=rec.trail_id, provenance=list(rec.provenance),
        message=f"inferred from encrypted message sizes: {found.template.description}",
    )
