"""JSON lines of Windows events: Winlogbeat/Elastic Agent (nested `winlog`), evtx_dump (`{"Event": ...}`),
and flattened exports (NXLog, the OTRF datasets: `EventID`, `Channel`, `Hostname`, `@timestamp`, ...).
Samba AD DC audit lines are JSON too; they are recognised per line and handed to samba_audit.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from . import fields as f
from .errors import error
from .flatten import from_json_event, value_text
from .samba_audit import from_samba, is_samba

# Collector bookkeeping in flattened exports: not event data.
FLAT_META = frozenset((
    "EventID", "Channel", "Hostname", "Computer", "SourceName", "ProviderName", "Provider", "RecordNumber",
    "EventRecordID", "EventTime", "TimeCreated", "EventReceivedTime", "@timestamp", "@version", "Message",
    "Severity", "SeverityValue", "EventType", "SourceModuleName", "SourceModuleType", "ExecutionProcessID",
    "ThreadID", "ProviderGuid", "Keywords", "Opcode", "OpcodeValue", "Task", "Category", "Version", "host",
    "port", "tags", "ActivityID", "RelatedActivityID", "Level", "UserID", "AccountType", "EventCode",
))
LOCAL_SKEW = timedelta(minutes=15)  # UTC offsets are whole quarter hours
# what an event of unexpected shape raises while it is flattened: that event is reported, the rest is read
BAD_EVENT = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError, OverflowError)


def read_json_lines(lines: Iterable[bytes], source: str) -> Iterator[Any]:
    """Flat events and error records, one JSON document per line; blank lines are skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            yield error(source, f"line {number}: not JSON ({exc})", partial=True)
            continue
        except RecursionError:
            yield error(source, f"line {number}: JSON nested too deep to read", partial=True)
            continue
        try:
            yield flat_event(doc)
        except BAD_EVENT as exc:
            yield error(source, f"line {number}: not a Windows event or Samba audit record ({exc})", partial=True)


def flat_event(doc: Any) -> Dict[str, Any]:
    if not isinstance(doc, dict):
        raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    if is_samba(doc):
        return from_samba(doc)
    if isinstance(doc.get("Event"), dict):
        return from_json_event(doc["Event"])
    if isinstance(doc.get("winlog"), dict):
        return _from_beat(doc)
    if "EventID" in doc or "EventCode" in doc:
        return _from_flat(doc)
    raise ValueError("no EventID, winlog or Event key")


def _from_beat(doc: Dict[str, Any]) -> Dict[str, Any]:
    """Winlogbeat / Elastic Agent: @timestamp is the event's TimeCreated; event.created is the collector's."""
    win = doc["winlog"]
    event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    flat: Dict[str, Any] = {
        "EventID": win.get("event_id") or event.get("code"), "Channel": win.get("channel"),
        "Provider": win.get("provider_name"), "Computer": win.get("computer_name"),
        "EventRecordID": win.get("record_id"), "TimeCreated": win.get("time_created") or doc.get("@timestamp"),
        "@timestamp": event.get("created") or event.get("ingested"),
        "UserID": (win.get("user") or {}).get("identifier") if isinstance(win.get("user"), dict) else None,
    }
    for section in ("event_data", "user_data"):
        data = win.get(section)
        if isinstance(data, dict):
            for name, value in data.items():
                flat[("Data_" + name) if name in flat else name] = value_text(value)
    return flat


def _from_flat(doc: Dict[str, Any]) -> Dict[str, Any]:
    flat: Dict[str, Any] = {
        "EventID": doc.get("EventID", doc.get("EventCode")), "Channel": doc.get("Channel"),
        "Provider": doc.get("SourceName") or doc.get("ProviderName") or doc.get("Provider"),
        "Computer": doc.get("Hostname") or doc.get("Computer"),
        "EventRecordID": doc.get("RecordNumber", doc.get("EventRecordID")),
        "@timestamp": doc.get("@timestamp"),
    }
    flat["TimeCreated"], note = _own_time(doc)
    if note:
        flat["@time_note"] = note
    for name, value in doc.items():
        if name not in FLAT_META:
            flat[name] = value_text(value)
    if "AccountType" in doc and "UserID" in doc:
        # NXLog resolved the event's System UserID into AccountName/Domain, over any EventData field
        # of the same name (7045's service account): they name the acting user here.
        flat["UserID"] = doc["UserID"]
        flat["UserName"], flat["UserDomain"] = flat.pop("AccountName", None), flat.pop("Domain", None)
    return flat


def _own_time(doc: Dict[str, Any]) -> Tuple[Optional[Any], Optional[str]]:
    """NXLog's EventTime is the event's time in the host's local zone, without the zone. The zone is
    taken from @timestamp (rounded to a quarter hour); the time itself stays the event's own."""
    if doc.get("TimeCreated"):
        return doc["TimeCreated"], None
    local = f.parse_time(doc.get("EventTime"))
    if local is None or _has_zone(doc.get("EventTime")):
        return local, None
    collector = f.parse_time(doc.get("@timestamp"))
    if collector is None:
        return local, "EventTime has no zone; read as UTC"
    quarters = round((collector - local) / LOCAL_SKEW)
    offset = quarters * LOCAL_SKEW
    if abs(offset) > timedelta(hours=14):
        return local, "EventTime has no zone; read as UTC"
    return local + offset, f"EventTime is host-local; UTC offset {_hours(-offset)} inferred from @timestamp"


def _has_zone(value: Any) -> bool:
    text = str(value or "").strip()
    return text.endswith(("Z", "UTC")) or (len(text) > 19 and text[-6] in "+-")


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
