"""The rows `smbtrailfuse` moves from the indexers to the search head, and the records they hold.

The map phase (run by splunkd as the command's streaming preop, on the indexers) reads each input row
(an smbtrail record, a Windows event, a Zeek event) and writes one compact row per engine record:

- `smbtrail_record`: the record's JSON, as the inputs write it;
- `smbtrail_key`: its place in the command line's order (JSON list: time in microseconds, host side,
  file name, first frame, first event record id, uid): the search head sorts on it without reading
  the record;
- `smbtrail_lane`: `record` (fused as it is), `zeek` (a Zeek event's record: completed per connection
  and recognized on the search head, where every row of a connection meets), `skipped` (how many rows
  of this chunk could not be read, by reason: `smbtrail_record` holds {reason: count});
- `smbtrail_new`: 1 when the row's `fresh` field was true;
- `smbtrail_v`: the format (indexers may run another app version while the knowledge bundle replicates).

Everything else of the row stays on the indexer. On the search head a compact row becomes a record
again without pydantic's validation pass (it costs twice fusion's own time per record in the app's
pure-Python pydantic): `record_of` checks each value's type and validates only what does not pass.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Type

from ..pydantic_api import construct
from ..records import HOST_EVENT, Provenance, Record, iso
from . import events, winevent, zeekevent

VERSION = "1"
V, LANE, KEY, RECORD, NEW = "smbtrail_v", "smbtrail_lane", "smbtrail_key", "smbtrail_record", "smbtrail_new"
FIELDS = ("_time", V, LANE, KEY, RECORD, NEW)
RECORDS, ZEEK, SKIPPED = "record", "zeek", "skipped"
TRUE = frozenset(("1", "true", "t", "yes", "y"))
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
Key = Tuple[int, int, str, List[int], List[int], str]


class Unreadable(ValueError):
    """A row that holds no input fusion can read: counted by reason, never fatal."""


# --- map phase: input rows -> compact rows --------------------------------------------------------

def compact_rows(rows: Iterable[Dict[str, Any]], fresh: Optional[str] = None, keep_raw: bool = False
                 ) -> Iterator[Dict[str, Any]]:
    """The compact rows of these input rows, then one `skipped` row with the reasons rows were not read.
    A Windows event's `raw` (every field it had) is dropped unless `keep_raw`: fusion never reads it."""
    skipped: Dict[str, int] = {}
    for row in rows:
        new = "1" if fresh and str(row.get(fresh) or "").strip().lower() in TRUE else "0"
        try:
            for lane, body, text in row_bodies(row):
                if not keep_raw and "raw" in body:
                    del body["raw"]
                    text = None
                yield compact(lane, body, text, new)
        except Unreadable as exc:
            reason = str(exc).split(":", 1)[0]
            skipped[reason] = skipped.get(reason, 0) + 1
    if skipped:
        yield {"_time": "", V: VERSION, LANE: SKIPPED, KEY: "", RECORD: json.dumps(skipped), NEW: "0"}


def compact(lane: str, body: Dict[str, Any], text: Optional[str], new: str) -> Dict[str, Any]:
    key = body_key(body)
    return {"_time": f"{key[0] / 1e6:.6f}", V: VERSION, LANE: lane, KEY: json.dumps(key, ensure_ascii=True),
            RECORD: text if text is not None else json.dumps(body, ensure_ascii=True), NEW: new}


def input_records(row: Dict[str, Any]) -> List[Record]:
    """The records of one input row, as the search head gets them (ValueError when it holds none it can
    read); the `raw` of Windows events kept."""
    return [record_of(body) for _, body, _ in row_bodies(row)]


def canonical_order(records: Iterable[Record]) -> List[Record]:
    """The command line's order, whatever order and chunking Splunk delivered the rows in (`order_key`)."""
    return sorted(records, key=order_key)


def row_bodies(row: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any], Optional[str]]]:
    """(lane, record body, its JSON text when the row already holds it) for each record of one row."""
    row = {k: v for k, v in row.items() if v not in ("", None, [])}  # empty in the chunk = field absent
    if zeekevent.is_zeek_event(row):
        try:
            return [(ZEEK, body_of(r), None) for r in zeekevent.row_records(row) if r is not None]
        except ValueError as exc:
            raise Unreadable(str(exc)) from None
    sourcetype = str(row.get("sourcetype") or "")
    if row.get("source") == events.FUSED_SOURCE:
        raise Unreadable("fusion output (smbtrail:fused), not input")
    if sourcetype.startswith("smbtrail:"):
        if sourcetype == events.HEALTH:
            return []
        text = str(row.get("_raw") or "")
        return [(RECORDS, smbtrail_body(text), text)]
    if winevent.is_windows_event(row):
        return [(RECORDS, body_of(windows_record(row)), None)]
    raise Unreadable("neither an smbtrail record nor a Windows event")


def smbtrail_body(text: str) -> Dict[str, Any]:
    """The body of an event an smbtrail input wrote (its uid kept: the inputs computed it)."""
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            raise ValueError("no record")
        time_us(body["time"])
        provenance = body.get("provenance") or []
        if not isinstance(provenance, list) or not all(isinstance(p, dict) for p in provenance):
            raise TypeError("provenance")
    except (ValueError, KeyError, TypeError) as exc:
        raise Unreadable(f"unreadable smbtrail event: {exc.__class__.__name__}") from None
    if not isinstance(body.get("uid"), str):
        body["uid"] = record_of(body).uid()
    return body


def windows_record(row: Dict[str, Any]) -> Record:
    try:
        return winevent.to_record(winevent.flat_event(row), str(row.get("source") or row.get("sourcetype") or "splunk"))
    except ImportError:  # an engine part missing is the build's fault, not the row's
        raise
    except Exception as exc:  # ET.ParseError, bad numbers: attacker-shaped input, never a crash
        raise Unreadable(f"unreadable Windows event: {exc.__class__.__name__}") from None


# --- the command line's order ---------------------------------------------------------------------

def body_key(body: Mapping[str, Any]) -> Key:
    """Time, network before host records at the same time, then as each file holds them (frames, event
    record ids); the deterministic uid settles what is left (see `order_key`)."""
    provenance = body.get("provenance") or [{}]
    prov = provenance[0] if isinstance(provenance[0], dict) else {}
    host_side = body.get("kind") == HOST_EVENT or body.get("evidence") == ["host"]
    return (time_us(body["time"]), int(host_side), str(prov.get("file") or "").rsplit("/", 1)[-1],
            list(prov.get("frames") or [])[:1], list(prov.get("record_ids") or [])[:1], str(body.get("uid") or ""))


def order_key(rec: Record) -> Key:
    """`body_key` of a record in memory."""
    prov = rec.provenance[0] if rec.provenance else None
    host_side = rec.kind == HOST_EVENT or rec.evidence == ["host"]  # events and the commands read from them
    return ((rec.time - EPOCH) // MICROSECOND, int(host_side), prov.file.rsplit("/", 1)[-1] if prov else "",
            prov.frames[:1] if prov else [], prov.record_ids[:1] if prov else [], rec.uid())


def time_us(text: Any) -> int:
    """Microseconds since the epoch of an ISO time (UTC when it names no zone)."""
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - EPOCH) // MICROSECOND


# --- search head: compact rows -> records ---------------------------------------------------------

def _optional(kind: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or kind(value)


def _is_str(value: Any) -> bool:
    return value.__class__ is str  # JSON gives exact types: no subclass to allow for


def _is_int(value: Any) -> bool:
    return value.__class__ is int  # not bool


def _is_float(value: Any) -> bool:
    return value.__class__ is float


def _strings(value: Any) -> bool:
    return value.__class__ is list and all(v.__class__ is str for v in value)


def _ints(value: Any) -> bool:
    return value.__class__ is list and all(v.__class__ is int for v in value)


# Record's fields by the JSON type that is already the field's type (tests check it covers them all);
# time, collector_time and provenance are converted; a value that passes none of these is validated.
TYPES: Dict[str, Callable[[Any], bool]] = {
    **dict.fromkeys(("kind",), _is_str),
    **dict.fromkeys(("src_ip", "dest_ip", "src_host", "dest_host", "user", "domain", "protocol", "transport",
                     "share", "path", "rpc_interface", "rpc_uuid", "operation", "status", "command", "trail_id",
                     "session_id", "channel", "provider", "logon_id", "message"), _optional(_is_str)),
    **dict.fromkeys(("src_port", "dest_port", "opnum", "event_id", "record_id"), _optional(_is_int)),
    "confidence": _optional(_is_float),
    **dict.fromkeys(("encrypted", "decrypted", "sealed", "inferred", "partial"), lambda v: v.__class__ is bool),
    **dict.fromkeys(("evidence", "join", "access"), _strings),
    **dict.fromkeys(("args", "raw"), lambda v: v.__class__ is dict),
}
CONVERTED = ("time", "collector_time", "provenance")
PROVENANCE = frozenset(("file", "frames", "record_ids"))


def record_of(body: Dict[str, Any], model: Type[Record] = Record) -> Record:
    """The record of an event body (fields that are not the record's, as `uid`, left out); ValueError
    when it is none."""
    try:
        return _constructed(body, model)
    except (TypeError, ValueError, KeyError, AttributeError):
        fields = {k: v for k, v in body.items() if k in model.model_fields}
        try:
            return model.model_validate(fields)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError in both versions
            raise Unreadable(f"unreadable smbtrail record: {exc.__class__.__name__}") from None


def _constructed(body: Dict[str, Any], model: Type[Record]) -> Record:
    values: Dict[str, Any] = {}
    for name, value in body.items():
        check = TYPES.get(name)
        if check is not None:
            if not check(value):
                raise TypeError(name)
            values[name] = value
        elif name not in CONVERTED and name in model.model_fields:
            raise KeyError(name)  # a field this table does not know: validated instead
    values["time"] = _utc(body["time"])
    if body.get("collector_time") is not None:
        values["collector_time"] = _utc(body["collector_time"])
    if body.get("provenance"):
        values["provenance"] = [_provenance(p) for p in body["provenance"]]
    return construct(model, values)


def _utc(text: Any) -> datetime:
    if not isinstance(text, str):
        raise TypeError("time")
    return EPOCH + time_us(text) * MICROSECOND


def _provenance(item: Any) -> Provenance:
    if item.__class__ is not dict or item.get("file").__class__ is not str or len(item) > 3 or (
            len(item) > 1 and set(item) - PROVENANCE):
        raise TypeError("provenance")
    frames, ids = item.get("frames", []), item.get("record_ids", [])
    if not (_ints(frames) and _ints(ids)):
        raise TypeError("provenance")
    return construct(Provenance, {"file": item["file"], "frames": frames, "record_ids": ids})


# --- search head: records -> event bodies -----------------------------------------------------------

def body_of(rec: Record) -> Dict[str, Any]:
    """`events.event_body(rec)` without pydantic's serializer (the app's pure-Python pydantic spends
    about 200 us a record there): fields in the model's order, those at their default left out, times
    in ISO, the uid added. Values are the record's own, not copies: for writing, not for keeping."""
    values = rec.__dict__
    body: Dict[str, Any] = {}
    for name, empty in _EMPTY:
        value = values[name]
        if value is None or value is empty or (value.__class__ is not bool and value == empty):
            continue
        if name in ("time", "collector_time"):
            value = iso(value)
        elif name == "provenance":
            value = [_provenance_body(p) for p in value]
        body[name] = value
    body["time"], body["kind"] = iso(rec.time), rec.kind
    body["uid"] = rec.uid()
    return body


def _provenance_body(prov: Provenance) -> Dict[str, Any]:
    body: Dict[str, Any] = {"file": prov.file}
    if prov.frames:
        body["frames"] = prov.frames
    if prov.record_ids:
        body["record_ids"] = prov.record_ids
    return body


def _empty_values() -> List[Tuple[str, Any]]:
    """(field, the value to_dict leaves out) in the model's order: None, a default False, an empty list or dict."""
    out = []
    for name, field in Record.model_fields.items():
        default = field.default_factory() if getattr(field, "default_factory", None) else field.default
        out.append((name, default if default in (False, [], {}) and default is not None else None))
    return out


_EMPTY = _empty_values()
