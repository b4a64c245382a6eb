"""The covered Windows events and how their fields map onto a record, from lookups/windows_events.csv.

Columns user, domain, logon_id, src_ip, src_port, dest_ip, dest_port, share, path and access name the event field that
fills that record field; `A|B` takes the first of A, B that holds a value. Column args is a `;` list
of `arg=Field` pairs. The same CSV is a Splunk lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, List, Optional, Tuple

from .. import lookups

FILE_NAME = "windows_events.csv"
TARGETS = ("user", "domain", "logon_id", "src_ip", "src_port", "dest_ip", "dest_port", "share", "path", "access")
Fields = Tuple[str, ...]


@dataclass(frozen=True)
class EventSpec:
    event_id: int
    channel: str
    name: str
    meaning: str
    fields: Dict[str, Fields]  # record field -> event field names, first with a value wins
    args: List[Tuple[str, Fields]]


def _names(cell: str) -> Fields:
    return tuple(name.strip() for name in cell.split("|") if name.strip())


def _spec(row: Dict[str, str]) -> EventSpec:
    args = []
    for pair in filter(None, (p.strip() for p in (row.get("args") or "").split(";"))):
        key, _, source = pair.partition("=")
        args.append((key.strip(), _names(source)))
    fields = {t: _names(row.get(t) or "") for t in TARGETS if _names(row.get(t) or "")}
    return EventSpec(int(row["event_id"]), row["channel"], row["name"], row["meaning"], fields, args)


@lru_cache(maxsize=1)
def catalog() -> Dict[Tuple[str, int], EventSpec]:
    specs = [_spec(row) for row in lookups.rows(FILE_NAME)]
    return {(s.channel.lower(), s.event_id): s for s in specs}


@lru_cache(maxsize=1)
def covered_ids() -> FrozenSet[int]:
    """Event ids covered on some channel: the cheap pre-filter before a record is parsed."""
    return frozenset(event_id for _, event_id in catalog())


@lru_cache(maxsize=1)
def _by_id() -> Dict[int, List[EventSpec]]:
    out: Dict[int, List[EventSpec]] = {}
    for spec in catalog().values():
        out.setdefault(spec.event_id, []).append(spec)
    return out


def spec_for(event_id: Optional[int], channel: Optional[str]) -> Optional[EventSpec]:
    """The spec of (channel, event id); without a channel, the id's spec when it is unambiguous."""
    if event_id is None:
        return None
    if channel:
        return catalog().get((channel.lower(), event_id))
    specs = [s for s in _by_id().get(event_id, []) if s.channel != "Samba"]
    return specs[0] if len(specs) == 1 else None
