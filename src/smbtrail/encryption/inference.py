"""Commands guessed from the sizes of encrypted SMB3 messages.

For each encrypted_activity record: the size model (sizes.py) rebuilds tree connects, file opens and RPC
exchanges; fingerprints.py names the pipe and its operations by PDU sizes; the command templates of
lookups/size_templates.csv are matched on the result. Each match is a command record marked
`inferred: true` with a confidence and the message sizes it rests on.

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

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..lookups import lookup_path
from ..records import COMMAND, ENCRYPTED_ACTIVITY, TREE, Record
from .fingerprints import Fingerprint, identify, parse_range
from .sizes import Activity, Open, structure

MAX_EVIDENCE = 40  # message sizes quoted per inferred command
CARRY_SECONDS = 300.0  # how long an upload can support a command in a later burst


@dataclass
class Item:
    """One thing the sizes show: an RPC operation, a file transfer, a delete or a share connect."""

    kind: str  # rpc upload read delete tree
    share: str = ""
    interface: str = ""
    opnum: int = -1
    operation: str = ""
    size: int = 0  # bytes written or read
    request: int = 0  # request PDU size of an RPC operation
    pipe: str = ""
    quality: float = 1.0
    index: List[int] = field(default_factory=list)
    earlier: bool = False  # from an earlier burst of the same client, server and user


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
                          and (wanted is None or i.opnum in wanted) and low <= i.request <= high)
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
        with open(lookup_path("size_templates.csv"), newline="", encoding="utf-8") as handle:
            return templates_from_rows(csv.DictReader(handle))
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
        Item("rpc", share=share, interface=guess.interface, opnum=f.opnum, operation=f.operation, pipe=guess.pipe,
             request=e.request,
             quality=fit * (0.5 + guess.score / 2), index=opened.index[:2] + e.index)
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
    members: List[Item]

    @property
    def confidence(self) -> float:
        quality = sum(m.quality for m in self.members) / len(self.members)
        return round(self.template.confidence * quality, 2)


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
            if id(item) in claimed or not anchor(item):
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
          rules: Optional[Sequence[Template]] = None) -> Iterator[Record]:
    """Pass every record through; after each encrypted_activity record (not decrypted), the commands its
    message sizes suggest."""
    encrypted_shares: Dict[str, str] = {}
    uploads: Dict[tuple, List[Tuple[float, Item]]] = {}
    for rec in records:
        yield rec
        if rec.kind == TREE and rec.share and rec.args.get("share_encrypted") and rec.session_id:
            encrypted_shares[rec.session_id] = rec.share
        if rec.kind == ENCRYPTED_ACTIVITY and not rec.decrypted:
            key, now = (rec.src_ip, rec.dest_ip, (rec.user or "").lower()), rec.time.timestamp()
            recent = [(t, i) for t, i in uploads.get(key, []) if abs(now - t) <= CARRY_SECONDS]
            found, made = _infer_one(rec, prints, rules, encrypted_shares.get(rec.session_id or "", ""),
                                     [i for _, i in recent])
            yield from made
            uploads[key] = recent + [(now, _carried(i)) for i in found if i.kind == "upload"]


def commands_for(rec: Record, prints: Optional[Sequence[Fingerprint]] = None,
                 rules: Optional[Sequence[Template]] = None, default_share: str = "",
                 earlier: Sequence[Item] = ()) -> List[Record]:
    """The commands one encrypted_activity record's sizes suggest."""
    return _infer_one(rec, prints, rules, default_share, earlier)[1]


def _infer_one(rec: Record, prints, rules, default_share: str, earlier: Sequence[Item]
               ) -> Tuple[List[Item], List[Record]]:
    sizes = [s for s in rec.args.get("message_sizes") or [] if isinstance(s, int) and not isinstance(s, bool)]
    if not sizes:
        return [], []
    found = items(structure(sizes, host_lengths(rec)), prints, default_share)
    return found, [_record(rec, m, sizes) for m in match(found, rules, earlier)]


def _carried(item: Item) -> Item:
    return Item(item.kind, share=item.share, size=item.size, quality=item.quality * 0.8, earlier=True)


def host_lengths(rec: Record) -> List[int]:
    """Lengths of the names a client may have typed for the server (the UNC host part)."""
    names = [n for n in (rec.dest_ip, rec.dest_host, rec.args.get("netname")) if isinstance(n, str) and n]
    names += [n.split(".", 1)[0] for n in names if not n.replace(".", "").isdigit()]  # NetBIOS-style short name
    return sorted({len(n) for n in names})


def _record(rec: Record, found: Match, sizes: List[int]) -> Record:
    positions = sorted({p for m in found.members if not m.earlier for p in m.index})
    args: Dict[str, object] = {"action": found.template.action,
                               "evidence_sizes": [sizes[p] for p in positions[:MAX_EVIDENCE]],
                               "template": found.template.description}
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
        time=rec.time, kind=COMMAND, src_ip=rec.src_ip, src_port=rec.src_port, dest_ip=rec.dest_ip,
        dest_port=rec.dest_port, src_host=rec.src_host, dest_host=rec.dest_host, user=rec.user, domain=rec.domain,
        protocol=rec.protocol, transport=rec.transport, share=shares[0] if shares else None,
        command=found.template.command, operation=found.template.action, args=args, encrypted=True,
        inferred=True, confidence=found.confidence, evidence=list(rec.evidence), session_id=rec.session_id,
        trail_id=rec.trail_id, provenance=list(rec.provenance),
        message=f"inferred from encrypted message sizes: {found.template.description}",
    )
