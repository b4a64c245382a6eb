"""Windows event documents (evtx's JSON, event XML) -> flat events (see normalize.py for the shape)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Dict, List

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
SYSTEM_KEYS = ("EventID", "Channel", "Provider", "Computer", "EventRecordID", "TimeCreated")
SYSTEM_SET = frozenset(SYSTEM_KEYS)


def value_text(value: Any) -> Any:
    """Data values as the XML text would read: numbers as decimal text, null as empty, lists kept."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return value_text(value.get("#text"))
    if isinstance(value, list):
        return [value_text(v) for v in value]
    return str(value)


def _put(flat: Dict[str, Any], name: str, value: Any) -> None:
    if name in SYSTEM_KEYS:
        name = "Data_" + name
    if name in flat:  # a repeated name (unnamed <Data> items): keep every value
        old = flat[name]
        flat[name] = (old if isinstance(old, list) else [old]) + (value if isinstance(value, list) else [value])
    else:
        flat[name] = value


def from_json_event(event: Dict[str, Any]) -> Dict[str, Any]:
    """The flat event of evtx's JSON rendering ({"Event": {...}} already unwrapped)."""
    system = event.get("System") or {}
    code = system.get("EventID")
    provider = system.get("Provider")
    created = system.get("TimeCreated")
    flat: Dict[str, Any] = {
        "EventID": _int(code.get("#text") if isinstance(code, dict) else code),
        "Channel": system.get("Channel"),
        "Provider": provider.get("#attributes", {}).get("Name") if isinstance(provider, dict) else provider,
        "Computer": system.get("Computer"),
        "EventRecordID": _int(system.get("EventRecordID")),
        "TimeCreated": created.get("#attributes", {}).get("SystemTime") if isinstance(created, dict) else created,
    }
    security = system.get("Security")
    if security:
        flat["UserID"] = security.get("#attributes", {}).get("UserID")
    data = event.get("EventData")
    if data is None:
        data = _user_data(event.get("UserData"))
    if isinstance(data, dict):  # the hot loop of the .evtx reader: most values are already text
        for name, value in data.items():
            if value.__class__ is not str:
                if name == "#attributes":
                    continue
                value = value_text(value)
            flat["Data_" + name if name in SYSTEM_SET else name] = value
    elif data not in (None, ""):
        _put(flat, "Data", value_text(data))
    return flat


def _user_data(user_data: Any) -> Any:
    """UserData holds one element (LogFileCleared, ...) whose children are the fields."""
    if isinstance(user_data, dict):
        children = [v for k, v in user_data.items() if k != "#attributes"]
        if len(children) == 1 and isinstance(children[0], dict):
            return children[0]
    return user_data


def from_xml(text: str) -> Dict[str, Any]:
    """The flat event of one <Event> XML document (raises ET.ParseError or ValueError when it is not one)."""
    root = ET.fromstring(text)
    if _local(root.tag) != "Event":
        raise ValueError(f"root element is <{_local(root.tag)}>, not <Event>")
    flat: Dict[str, Any] = dict.fromkeys(SYSTEM_KEYS)
    system = _child(root, "System")
    for child in system if system is not None else ():
        name = _local(child.tag)
        if name == "Provider":
            flat["Provider"] = child.get("Name")
        elif name == "TimeCreated":
            flat["TimeCreated"] = child.get("SystemTime")
        elif name == "Security" and child.get("UserID"):
            flat["UserID"] = child.get("UserID")
        elif name in SYSTEM_KEYS:
            flat[name] = (child.text or "").strip()
    data = _child(root, "EventData")
    if data is None:
        user = _child(root, "UserData")
        data = user[0] if user is not None and len(user) else None
    if data is not None:
        _xml_data(data, flat)
    return flat


def _xml_data(node: ET.Element, flat: Dict[str, Any]) -> None:
    unnamed: List[str] = []
    for item in node:
        name = item.get("Name") or _local(item.tag)
        value = item.text or ""
        if name == "Data" and item.get("Name") is None:
            unnamed.append(value)
        else:
            _put(flat, name, value)
    if unnamed:
        _put(flat, "Data", unnamed[0] if len(unnamed) == 1 else unnamed)


def _child(node: ET.Element, name: str):
    found = node.find(NS + name)
    return found if found is not None else node.find(name)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(value: Any) -> Any:
    if isinstance(value, int) or value is None:
        return value
    try:
        return int(value)
    except ValueError:
        return value
