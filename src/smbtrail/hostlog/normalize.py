"""One flat event -> one host record, driven by lookups/windows_events.csv.

A flat event is a dict with the Windows XML names: System values `EventID`, `Channel`, `Provider`,
`Computer`, `EventRecordID`, `TimeCreated`, `UserID` (System/Security), plus every EventData/UserData
field by its Name (a data field that repeats a System name, like 104's `Channel`, is `Data_<name>`). Keys starting
with `@` are reader notes: `@timestamp` (collector time), `@time_note`, `@inferred`, `@source`.
The Splunk adapter builds the same dict from indexed events and calls `normalize_flat` too.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..pydantic_api import construct
from ..records import HOST_EVENT, Provenance, Record
from . import fields as f
from .catalog import EventSpec, spec_for

SYSTEM = ("EventID", "Channel", "Provider", "Computer", "EventRecordID", "TimeCreated", "UserID")
NOTES = ("@timestamp", "@time_note", "@inferred", "@partial", "@source")
NOT_RAW = frozenset(SYSTEM + NOTES)
EMPTY = f.EMPTY
CLEANERS = {"logon_id": f.logon_id, "src_ip": f.address, "src_port": f.port, "dest_ip": f.address,
            "dest_port": f.port, "access": f.access_names}


def event_id(flat: Dict[str, Any]) -> Optional[int]:
    code = flat.get("EventID")
    if code.__class__ is int:
        return code
    try:
        return int(str(code).strip())
    except ValueError:
        return None


def normalize_flat(flat: Dict[str, Any], source: str, spec: Optional[EventSpec] = None) -> Record:
    """The host record of one flat event, covered or not (uncovered events keep only the generic fields)."""
    code = event_id(flat)
    channel = f.text(flat.get("Channel"))
    spec = spec or spec_for(code, channel)
    time, collector, args = _times(flat)
    record_id = _int(flat.get("EventRecordID"))
    host = f.text(flat.get("Computer"))
    values = _mapped(spec, flat, args) if spec is not None else {}
    short = f.short_host(host)
    if short and short != host:
        args["dest_host_short"] = short
    values.update(
        time=time, kind=HOST_EVENT, protocol="windows_event", evidence=["host"], event_id=code,
        collector_time=collector, channel=channel, provider=f.text(flat.get("Provider")), record_id=record_id,
        dest_host=host, args=args, raw={key: value for key, value in flat.items() if key not in NOT_RAW},
        inferred=bool(flat.get("@inferred")), partial=bool(flat.get("@partial")),
        operation=spec.name if spec else None,
        provenance=[construct(Provenance, {"file": source, "record_ids": [] if record_id is None else [record_id]})],
    )
    return construct(Record, values)


def _mapped(spec: EventSpec, flat: Dict[str, Any], args: Dict[str, Any]) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for target, names in spec.fields.items():
        value = _first(flat, names)
        if value is None:
            continue
        if target == "access":
            args["access_mask"] = f.hex_text(value)
        cleaner = CLEANERS.get(target)
        if cleaner is None:
            values[target] = value
            continue
        value = cleaner(value)
        if value is not None:
            values[target] = value
    for key, names in spec.args:
        value = _first(flat, names)
        if value is None:
            continue
        if key == "task_xml":
            args.update(f.task_actions(value))
        elif key.endswith("logon_id"):
            value = f.logon_id(value)
            if value:
                args[key] = value
        elif value[:2] in ("0x", "0X"):
            args[key] = f.hex_text(value)
        else:
            args[key] = value.replace("\r\n", "\n") if "\r" in value else value
    if "share" in values:  # "\\\\*\\ADMIN$" as logged; the network side names the share alone
        args["unc"] = values["share"]
        values["share"] = values["share"].rsplit("\\", 1)[-1]
    return values


def _first(flat: Dict[str, Any], names: Tuple[str, ...]) -> Optional[str]:
    """The first of the named fields that holds a value, as stripped text ('-' and empty are no value)."""
    for name in names:
        value = flat.get(name)
        if value is None:
            continue
        value = value.strip() if value.__class__ is str else f.text(value)
        if value and value not in EMPTY:
            return value
    return None


def _times(flat: Dict[str, Any]) -> Tuple[Any, Any, Dict[str, Any]]:
    """(time, collector time, notes): the event's own time; the collector's only when the event has none,
    and said so."""
    notes: Dict[str, Any] = {}
    own = f.parse_time(flat.get("TimeCreated"))
    collector = f.parse_time(flat["@timestamp"]) if "@timestamp" in flat else None
    if "@time_note" in flat:
        notes["time_note"] = flat["@time_note"]
    if own is None:
        if collector is None:  # never a made-up time: the reader reports the event, naming it
            shown = str(flat.get("TimeCreated"))[:40]
            raise ValueError(f"no readable time (TimeCreated {shown!r})")
        own = collector
        notes["time_note"] = "event has no own time; collector time used"
    return own, collector, notes


def _int(value: Any) -> Optional[int]:
    if value.__class__ is int:
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None
