"""One flat event -> one host record, driven by lookups/windows_events.csv.

A flat event is a dict with the Windows XML names: System values `EventID`, `Channel`, `Provider`,
`Computer`, `EventRecordID`, `TimeCreated`, `UserID` (System/Security), plus every EventData/UserData
field by its Name (a data field that repeats a System name, like 104's `Channel`, is `Data_<name>`). Keys starting
with `@` are reader notes: `@timestamp` (collector time), `@time_note`, `@inferred`, `@source`.
The Splunk adapter builds the same dict from indexed events and calls `normalize_flat` too.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .. import windows_names
from ..pydantic_api import construct
from ..records import HOST_EVENT, Provenance, Record
from . import fields as f
from .catalog import EventSpec, spec_for

SYSTEM = ("EventID", "Channel", "Provider", "Computer", "EventRecordID", "TimeCreated", "UserID")
NOTES = ("@timestamp", "@time_note", "@inferred", "@partial", "@source")
NOT_RAW = frozenset(SYSTEM + NOTES)
EMPTY = f.EMPTY
CLEANERS = {"logon_id": f.logon_id, "src_ip": f.address, "src_port": f.port, "dest_ip": f.address,
            "dest_port": f.port}
NAMED = ("object_type", "failure_reason", "operation_type", "token_elevation", "impersonation_level")  # %%N, %{guid}
LISTED = ("properties",)  # several %%N / {guid} in one value
KERBEROS_EVENTS = frozenset((4768, 4769, 4771))
WELL_KNOWN = {"object_name": "object_well_known", "account_sid": "account_well_known",  # S-1-5-21-...-512: Domain Admins
              "group_sid": "group_well_known", "member_sid": "member_well_known"}


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
        if target == "logon_id" and len(names) > 1 and f.logon_id(value) is None:
            value = _first(flat, names[1:])  # 4688's TargetLogonId 0x0: the creator's session is the one
        if value is None:
            continue
        if target == "access":
            values["access"] = _access(value, flat)
            if "%%" not in value:
                args["access_mask"] = f.hex_text(value)
            continue
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
        elif key.endswith("process_id"):  # size_t: hex from the evtx package and Windows, decimal from python-evtx
            args[key] = f.hex_text(value) if value[:2] in ("0x", "0X") else f.decimal_hex(value)
        elif value[:2] in ("0x", "0X"):
            args[key] = f.hex_text(value)
        else:
            args[key] = value.replace("\r\n", "\n") if "\r" in value else value
    _name_codes(spec.event_id, args)
    if "share" in values:  # "\\\\*\\ADMIN$" as logged; the network side names the share alone
        args["unc"] = values["share"]
        values["share"] = values["share"].rsplit("\\", 1)[-1]
    return values


def _access(value: str, flat: Dict[str, Any]) -> List[str]:
    """An AccessList by Windows' names; a bare mask by the rights of the object type it was asked on (file
    and pipe rights, named as the network side names them, when the event names no type)."""
    if "%%" in value:
        return windows_names.names(value)
    object_type = f.text(flat.get("ObjectType"))
    if not object_type or object_type == "File":
        return f.access_names(value)
    try:
        mask = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return []
    return windows_names.access_from_mask("DS" if f.text(flat.get("ObjectServer")) == "DS" else object_type, mask)


def _name_codes(event_id: int, args: Dict[str, Any]) -> None:
    """Windows' names beside (status, logon type, SIDs) or instead of (%%N, %{guid}) the raw codes; `raw`
    keeps them. One dictionary look-up per argument: most events carry none of these."""
    for key in [k for k in args if k in CODED]:
        value = args[key]
        if isinstance(value, str):
            CODED[key](event_id, key, value, args)


def _substituted(event_id: int, key: str, value: str, args: Dict[str, Any]) -> None:
    args[key] = windows_names.substitute(value)


def _listed(event_id: int, key: str, value: str, args: Dict[str, Any]) -> None:
    args[key] = windows_names.names(value)


def _status(event_id: int, key: str, value: str, args: Dict[str, Any]) -> None:
    name = windows_names.status(value, windows_names.KERBEROS if event_id in KERBEROS_EVENTS else windows_names.NTSTATUS)
    if name:
        args[key + "_name"] = name


def _well_known(event_id: int, key: str, value: str, args: Dict[str, Any]) -> None:
    name = windows_names.sid(value)
    if name:
        args[WELL_KNOWN[key]] = name


def _logon_type(event_id: int, key: str, value: str, args: Dict[str, Any]) -> None:
    name = windows_names.logon_type(value)
    if name:
        args["logon_type_name"] = name


CODED = {**{k: _substituted for k in NAMED}, **{k: _listed for k in LISTED}, "status": _status,
         "sub_status": _status, **{k: _well_known for k in WELL_KNOWN}, "logon_type": _logon_type}


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
