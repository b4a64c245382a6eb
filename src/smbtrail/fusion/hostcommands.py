"""Which remote command a Windows event shows.

Target-side events (4697/7045 service installed, 4698 task created, 5145 file written on a share,
4720 account created, ...) are recognized by the host-log rules (lookups/host_commands.csv, through
`hostlog.commands.rule_for`). A source-side 4688 process creation shows the command line the
operator typed (`sc.exe \\\\target create ...`, `schtasks /S target ...`): those rules are
lookups/command_lines.csv. Command and action names are the network recognizer's, so both sides
meet on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional, Pattern, Tuple

from .. import lookups
from ..hostlog.commands import rule_for, rules
from ..records import Record

FILE_NAME = "command_lines.csv"
PROCESS_CREATED = 4688


@dataclass(frozen=True)
class HostCommand:
    command: str
    action: str
    args: Dict[str, Any]
    target: Optional[str]  # the remote host a source-side command line names
    side: str  # "target" (the event is on the host acted upon) or "source"
    required: bool = False  # a command only when the event joins a trail (its rule needs a client)


@dataclass(frozen=True)
class _Line:
    command: str
    action: str
    pattern: Pattern[str]
    actions: Dict[str, str]


@lru_cache(maxsize=1)
def _lines() -> Tuple[Pattern[str], List[_Line]]:
    """The rules, and a gate that finds any of their programs (most command lines name none)."""
    rows = lookups.rows(FILE_NAME)
    programs = sorted({p for r in rows for p in r["programs"].split()}, key=len, reverse=True)
    gate = re.compile(r"(?i)(?:^|[\s\\\"'/])(?:" + "|".join(map(re.escape, programs)) + r")(?:\.exe)?[\"']?\s")
    return gate, [_Line(r["command"], r["action"], re.compile(r["command_line"]),
                        dict(p.split("=", 1) for p in (r["actions"] or "").split() if "=" in p)) for r in rows]


@lru_cache(maxsize=1)
def _anchors() -> frozenset:
    return frozenset(i for rule in rules() for i in rule.event_ids)


def host_command(rec: Record) -> Optional[HostCommand]:
    if rec.event_id == PROCESS_CREATED:
        return _command_line(str(rec.args.get("command_line") or ""))
    if rec.event_id not in _anchors():
        return None
    rule = rule_for(rec)
    if rule is None:
        return None
    args = _carried(rec)
    return HostCommand(rule.command, rule.action, args, None, "target", rule.required)


def recognized(rec: Record) -> HostCommand:
    """A command record the host-log engine already built (hostlog.recognize_host) from its anchor event."""
    args = _carried(rec)
    return HostCommand(rec.command or "", rec.operation or str(rec.args.get("action") or ""), args, None, "target")


def is_host_command(rec: Record) -> bool:
    return rec.kind == "command" and "network" not in rec.evidence and rec.protocol == "windows_event"


def _command_line(text: str) -> Optional[HostCommand]:
    gate, lines = _lines()
    if not text or not gate.search(text):
        return None
    for line in lines:
        match = line.pattern.search(text)
        if match is None:
            continue
        groups = {k: v.strip() for k, v in match.groupdict().items() if v and v.strip()}
        action = groups.pop("action", line.action).lower()
        target = groups.pop("target", None)
        groups["command_line"] = text
        return HostCommand(line.command, line.actions.get(action, action), groups, target, "source")
    return None


def _carried(rec: Record) -> Dict[str, Any]:
    """The arguments a host command keeps of its event (lookups/arguments.csv, role `carried`)."""
    args = {k: rec.args[k] for k in lookups.argument_names("carried") if rec.args.get(k) not in (None, "", [])}
    if rec.path and rec.event_id == 5145:
        args["file"], args["share"] = rec.path, rec.share
    return args


def key_args() -> Tuple[str, ...]:
    """The arguments that name the object a command acts on: two sightings of one command agree on them."""
    return lookups.argument_names("identifies")


def key_of(args: Dict[str, Any]) -> Tuple[Tuple[str, str], ...]:
    return tuple((k, str(args[k]).lower()) for k in key_args() if args.get(k))
