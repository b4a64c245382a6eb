"""One flat event -> one host record, driven by lookups/windows_events.csv.

A flat event is a dict with the Windows XML names: System values `EventID`, `Channel`, `Provider`,
`Computer`, `EventRecordID`, `TimeCreated`, plus every EventData/UserData field by its Name (a data
field that repeats a System name, like 104's `Channel`, is kept as `Data_<name>`). Keys starting
with `@` are reader notes: `@timestamp` (collector time), `@time_note`, `@inferred`.
The Splunk adapter builds the same dict from indexed events and calls `normalize_flat` too.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..records import HOST_EVENT, Record
from . import fields as f
from .catalog import EventSpec, spec_for

SYSTEM = frozenset(("EventID", "Channel", "Provider", "Computer", "EventRecordID", "TimeCreated"))
EPOCH = f.parse_time("1601-01-01T00:00:00Z")
CLEANERS = {"logon_id": f.logon_id, "src_ip": f.address, "src_port": f.port, "dest_ip": f.address,
            "dest_port": f.port}


def event_id(flat: Dict[str, Any]) -> Optional[int]:
    try:
        return int(str(flat.get("EventID")).strip())
    except ValueError:
        return None


def normalize_flat(flat: Dict[str, Any], source: str) -> Record:
    """The host record of one flat event, covered or not (uncovered events keep only the generic fields)."""
    code = event_id(flat)
    channel = f.text(flat.get("Channel"))
    spec = spec_for(code, channel)
    time, collector, notes = _times(flat)
    record_id = _int(flat.get("EventRecordID"))
    host = f.text(flat.get("Computer"))
    raw = {k: v for k, v in flat.items() if k not in SYSTEM and k[0] != "@"}
    values: Dict[str, Any] = {}
    args: Dict[str, Any] = dict(notes)
    if spec is not None:
        values, args = _mapped(spec, flat, args)
    short = f.short_host(host)
    if short and short != host:
        args["dest_host_short"] = short
    return Record(
        time=time, kind=HOST_EVENT, protocol="windows_event", evidence=["host"], event_id=code,
        collector_time=collector, channel=channel, provider=f.text(flat.get("Provider")), record_id=record_id,
        dest_host=host,
        args=args, raw=raw, inferred=bool(flat.get("@inferred")), partial=bool(flat.get("@partial")),
        operation=spec.name if spec else None,
        provenance=[{"file": source, "record_ids": [record_id] if record_id is not None else []}],
        **values,
    )


def _mapped(spec: EventSpec, flat: Dict[str, Any], args: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict]:
    values: Dict[str, Any] = {}
    for target, names in spec.fields.items():
        value = _first(flat, names)
        if target == "access":
            values["access"] = f.access_names(value)
            if value is not None:
                args["access_mask"] = f.hex_text(value)
        else:
            value = CLEANERS.get(target, f.text)(value)
            if value is not None:
                values[target] = value
    for key, names in spec.args:
        value = f.text(_first(flat, names))
        if value is None:
            continue
        if key == "task_xml":
            args.update(f.task_actions(value))
        elif key.endswith("logon_id"):
            args[key] = f.logon_id(value)
        else:
            args[key] = f.hex_text(value) if value[:2] in ("0x", "0X") else value
    if values.get("share"):  # "\\\\*\\ADMIN$" as logged; the network side names the share alone
        args["unc"] = values["share"]
        values["share"] = values["share"].rsplit("\\", 1)[-1]
    return values, {k: v for k, v in args.items() if v is not None}


def _first(flat: Dict[str, Any], names: Tuple[str, ...]) -> Any:
    for name in names:
        value = flat.get(name)
        if f.text(value) is not None:
            return value
    return None


def _times(flat: Dict[str, Any]) -> Tuple[Any, Any, Dict[str, Any]]:
    """(time, collector time, notes): the event's own time; the collector's only when the event has none, and said so."""
    notes: Dict[str, Any] = {}
    own = f.parse_time(flat.get("TimeCreated"))
    collector = f.parse_time(flat.get("@timestamp"))
    if flat.get("@time_note"):
        notes["time_note"] = flat["@time_note"]
    if own is None:
        own = collector or EPOCH
        notes["time_note"] = "event has no own time; collector time used" if collector else "event has no time"
    return own, collector, notes


def _int(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except ValueError:
        return None
