"""Host-side command recognition: host records -> commands, rules from lookups/host_commands.csv.

A rule names the event ids that are a command's own evidence (its anchor: 7045, 4698, 4720, 5145...),
conditions on the anchor (`field~regex`, joined by ` && `; field is a record field, `args.<name>` or
`access`) and optionally the named pipe a remote client must have opened on the same host first
(`svcctl`, `atsvc`): 5145 on IPC$ within WINDOW seconds, the same logon session preferred; `svcctl!`: only
with that pipe access (7040: services change start type on their own all the time). The client
(src_ip, src_port, user) comes from that pipe access, else from the 4624 of the anchor's logon id, else
from a logon on the same client socket (Samba). Anchors whose pipe is not seen yet wait (the System log
may be read after the Security log) and are emitted without a client at the end of the stream.
Memory: bounded by MAX_TRACKED pipe accesses and logons, and by the anchors still waiting.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

from .. import lookups
from ..records import COMMAND, HOST_EVENT, Provenance, Record

WINDOW = 120.0
MAX_TRACKED = 50000
FILE_NAME = "host_commands.csv"
Condition = Tuple[str, "re.Pattern[str]"]


@dataclass(frozen=True)
class Rule:
    command: str
    action: str
    priority: int
    event_ids: Tuple[int, ...]
    conditions: Tuple[Condition, ...]
    context: str
    confidence: float
    description: str
    required: bool = False  # no command without the context's pipe access

    def matches(self, rec: Record) -> bool:
        return rec.event_id in self.event_ids and all(
            pattern.search(_field(rec, name) or "") for name, pattern in self.conditions)


def _conditions(cell: str) -> Tuple[Condition, ...]:
    out = []
    for part in filter(None, (p.strip() for p in cell.split(" && "))):
        name, _, regex = part.partition("~")
        out.append((name.strip(), re.compile(regex)))
    return tuple(out)


@lru_cache(maxsize=1)
def rules() -> List[Rule]:
    parsed = [Rule(r["command"], r["action"], int(r["priority"]),
                   tuple(int(i) for i in r["event_ids"].split("|")), _conditions(r["match"] or ""),
                   (r["context"] or "").strip().lower().rstrip("!"), float(r["confidence"]), r["description"],
                   (r["context"] or "").strip().endswith("!")) for r in lookups.rows(FILE_NAME)]
    return sorted(parsed, key=lambda rule: -rule.priority)


def _field(rec: Record, name: str) -> Optional[str]:
    if name.startswith("args."):
        value = rec.args.get(name[5:])
    elif name == "access":
        value = " ".join(rec.access)
    else:
        value = getattr(rec, name, None)
    return None if value is None else str(value)


def rule_for(rec: Record) -> Optional[Rule]:
    for rule in rules():
        if rule.matches(rec):
            return rule
    return None


class _Bounded(OrderedDict):
    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > MAX_TRACKED:
            self.popitem(last=False)


class _State:
    def __init__(self) -> None:
        self.pipes: Deque[Record] = deque(maxlen=MAX_TRACKED)  # 5145 IPC$ pipe accesses
        self.logons = _Bounded()  # (host, logon id) -> 4624 with a client address
        self.sockets = _Bounded()  # (src_ip, src_port) -> logon on that client socket
        self.waiting: List[Tuple[Record, Rule]] = []
        self.done = _Bounded()  # command keys already emitted (4697 + 7045 of one service, repeated 5145s)


def recognize_host(records: Iterable[Record]) -> Iterator[Record]:
    """Every record passes through; host anchors get `command`; one kind="command" record per command."""
    state = _State()
    for rec in records:
        if rec.kind != HOST_EVENT:
            yield rec
            continue
        _learn(state, rec)
        found = rule_for(rec)
        if found is not None:
            rec.command = found.command
        yield rec
        if rec.event_id == 5145 and _pipe_name(rec):
            yield from _release(state, rec)
        if found is not None:
            yield from _anchor(state, rec, found)
    for anchor, rule in state.waiting:
        if not rule.required:
            yield from _emit(state, anchor, rule, None)


def _learn(state: _State, rec: Record) -> None:
    if rec.event_id in (4624,) and rec.src_ip:
        if rec.logon_id:
            state.logons.put((_host(rec), rec.logon_id), rec)
        if rec.src_port:
            state.sockets.put((rec.src_ip, rec.src_port), rec)
    elif rec.event_id == 5145 and _pipe_name(rec):
        state.pipes.append(rec)


def _anchor(state: _State, rec: Record, rule: Rule) -> Iterator[Record]:
    if not rule.context:
        yield from _emit(state, rec, rule, None)
        return
    pipe = _find_pipe(state.pipes, rec, rule.context)
    if pipe is None:
        state.waiting.append((rec, rule))
        if len(state.waiting) > MAX_TRACKED:  # memory bound: the oldest waits no longer
            anchor, oldest = state.waiting.pop(0)
            if not oldest.required:
                yield from _emit(state, anchor, oldest, None)
    else:
        yield from _emit(state, rec, rule, pipe)


def _release(state: _State, pipe: Record) -> Iterator[Record]:
    """A pipe access that arrives after the anchors it explains (logs read in another order)."""
    still = []
    for anchor, rule in state.waiting:
        if rule.context == _pipe_name(pipe) and _find_pipe([pipe], anchor, rule.context) is pipe:
            yield from _emit(state, anchor, rule, pipe)
        else:
            still.append((anchor, rule))
    state.waiting = still


def _find_pipe(pipes: Iterable[Record], anchor: Record, name: str) -> Optional[Record]:
    best, best_score = None, None
    when = anchor.time.timestamp()
    for pipe in pipes:
        if _pipe_name(pipe) != name or _host(pipe) != _host(anchor):
            continue
        gap = when - pipe.time.timestamp()
        if not -5.0 <= gap <= WINDOW:  # the pipe is opened first; a few seconds of clock jitter allowed
            continue
        score = (pipe.logon_id is not None and pipe.logon_id == anchor.logon_id, -abs(gap))
        if best_score is None or score > best_score:
            best, best_score = pipe, score
    return best


def _emit(state: _State, anchor: Record, rule: Rule, pipe: Optional[Record]) -> Iterator[Record]:
    subject = anchor.args.get("service_name") or anchor.args.get("task_name") or anchor.args.get("account") \
        or anchor.args.get("member_sid") or anchor.args.get("group") or anchor.path
    key = (_host(anchor), rule.command, rule.action, str(subject).lower(), anchor.logon_id if
           rule.context == "" else None)
    last = state.done.get(key)
    if last is not None and abs(anchor.time.timestamp() - last) <= WINDOW:
        return
    state.done.put(key, anchor.time.timestamp())
    yield _command(state, anchor, rule, pipe)


def _command(state: _State, anchor: Record, rule: Rule, pipe: Optional[Record]) -> Record:
    client = pipe or state.logons.get((_host(anchor), anchor.logon_id)) or anchor
    if client is anchor and anchor.user is None and anchor.src_ip and anchor.src_port:
        client = state.sockets.get((anchor.src_ip, anchor.src_port)) or anchor  # Samba: logon on that socket
    args: Dict[str, Any] = dict(anchor.args)
    args.update(action=rule.action, event=anchor.operation)
    if pipe is not None:
        args.update(pipe=rule.context, client_logon_id=pipe.logon_id)
    if rule.context or client is not anchor:
        # a client address from the pipe access or the logon session: remote; none seen: cannot tell
        args["remote"] = True if (client.src_ip or anchor.src_ip) else None
    provenance = [Provenance(file=p.file, record_ids=list(p.record_ids)) for r in (anchor, pipe, client)
                  if r is not None for p in r.provenance]
    return Record(
        time=anchor.time, kind=COMMAND, command=rule.command, operation=rule.action, protocol=anchor.protocol,
        dest_host=anchor.dest_host, dest_ip=anchor.dest_ip or client.dest_ip, src_ip=client.src_ip or anchor.src_ip,
        src_port=client.src_port or anchor.src_port, user=client.user or anchor.user,
        domain=client.domain or anchor.domain, logon_id=anchor.logon_id, share=anchor.share, path=anchor.path,
        access=list(anchor.access), event_id=anchor.event_id, channel=anchor.channel, args=args,
        confidence=rule.confidence, message=rule.description, evidence=["host"],
        provenance=_unique(provenance),
    )


def _unique(items: List[Provenance]) -> List[Provenance]:
    seen, out = set(), []
    for item in items:
        key = (item.file, tuple(item.record_ids))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _pipe_name(rec: Record) -> Optional[str]:
    if (rec.share or "").upper() != "IPC$" or not rec.path:
        return None
    return rec.path.strip("\\").lower()


def _host(rec: Record) -> str:
    return (rec.args.get("dest_host_short") or rec.dest_host or "").lower()
