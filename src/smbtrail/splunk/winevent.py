"""Windows events already in Splunk -> one flat event dict with the XML (EventData) field names.

Three shapes arrive at the search command:
- XmlWinEventLog with `_raw` = the event XML: parsed exactly;
- XmlWinEventLog extractions (fields named as the XML Data names, `EventID` -> `EventCode`);
- classic WinEventLog extractions (`Account_Name` with subject and target values, `Share_Name`, ...).
The flat dict uses the names the Windows XML uses (`EventID`, `Computer`, `Channel`, `TimeCreated`,
`EventRecordID`, `Provider`, and each `<Data Name=...>`), the same names JSON exports carry.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"

# classic WinEventLog extraction name -> XML Data name
CLASSIC = {
    "ComputerName": "Computer", "LogName": "Channel", "SourceName": "Provider", "RecordNumber": "EventRecordID",
    "Source_Network_Address": "IpAddress", "Source_Port": "IpPort", "Logon_Type": "LogonType",
    "Workstation_Name": "WorkstationName", "Authentication_Package": "AuthenticationPackageName",
    "Logon_Process": "LogonProcessName", "Key_Length": "KeyLength",
    "Share_Name": "ShareName", "Share_Path": "ShareLocalPath", "Relative_Target_Name": "RelativeTargetName",
    "Accesses": "AccessList", "Access_Mask": "AccessMask", "Object_Type": "ObjectType",
    "Service_Name": "ServiceName", "Service_File_Name": "ServiceFileName", "Service_Type": "ServiceType",
    "Service_Start_Type": "ServiceStartType", "Service_Account": "ServiceAccount",
    "Task_Name": "TaskName", "Task_Content": "TaskContent",
    "Group_Name": "TargetUserName", "Group_Domain": "TargetDomainName",
    "Process_Name": "ProcessName", "New_Process_Name": "NewProcessName", "Process_Command_Line": "CommandLine",
}
# classic fields that hold (subject, target) values in that order
PAIRED = {"Account_Name": "UserName", "Account_Domain": "DomainName", "Logon_ID": "LogonId",
          "Security_ID": "UserSid"}
# events whose single account section is the target, not the subject
TARGET_ONLY = {4624, 4625, 4634, 4647, 4776}
SPLUNK_META = {"_time", "_raw", "_cd", "_bkt", "_si", "_serial", "_indextime", "_sourcetype", "_kv",
               "host", "source", "sourcetype", "index", "splunk_server", "linecount", "punct", "eventtype",
               "tag", "timestartpos", "timeendpos", "date_hour", "date_mday", "date_minute", "date_month",
               "date_second", "date_wday", "date_year", "date_zone"}


def is_windows_event(row: Mapping[str, Any]) -> bool:
    raw = str(row.get("_raw") or "").lstrip()
    return raw.startswith("<Event") or bool(row.get("EventCode") or row.get("EventID"))


def flat_event(row: Mapping[str, Any]) -> Dict[str, Any]:
    """The flat event of one Splunk result row (raises ValueError when the row holds no Windows event)."""
    raw = str(row.get("_raw") or "").lstrip()
    if raw.startswith("<Event"):
        flat = from_xml(raw)
    elif _classic(row):
        flat = from_classic(row)
    else:
        flat = {k: v for k, v in row.items() if k not in SPLUNK_META and not k.startswith("__mv_")}
        flat["EventID"] = flat.pop("EventCode", flat.get("EventID"))
    if not flat.get("EventID"):
        raise ValueError("no EventCode/EventID")
    if not flat.get("TimeCreated") and row.get("_time"):
        flat["TimeCreated"] = _iso_epoch(row["_time"])
    flat.setdefault("Computer", row.get("host"))
    return flat


def from_xml(text: str) -> Dict[str, Any]:
    """Flatten one `<Event>` document (entities are not expanded by expat beyond the XML builtins)."""
    root = ET.fromstring(text)
    flat: Dict[str, Any] = {}
    system = root.find(f"{NS}System")
    if system is not None:
        for child in system:
            name = child.tag.replace(NS, "")
            if name == "Provider":
                flat["Provider"] = child.get("Name")
            elif name == "TimeCreated":
                flat["TimeCreated"] = child.get("SystemTime")
            elif name == "Execution":
                flat["ProcessID"] = child.get("ProcessID")
            elif child.text and child.text.strip():
                flat[name] = child.text.strip()
    for section in ("EventData", "UserData"):
        node = root.find(f"{NS}{section}")
        if node is not None:
            _data(node, flat)
    return flat


def _data(node: ET.Element, flat: Dict[str, Any]) -> None:
    for item in node.iter():
        name = item.get("Name") or (None if item is node or len(item) else item.tag.split("}")[-1])
        if name and item is not node:
            flat[name] = (item.text or "").strip()


def _classic(row: Mapping[str, Any]) -> bool:
    return any(k in row for k in ("ComputerName", "Account_Name", "LogName", "Share_Name", "Task_Name"))


def from_classic(row: Mapping[str, Any]) -> Dict[str, Any]:
    code = int(str(row.get("EventCode") or 0))
    flat: Dict[str, Any] = {"EventID": code}
    for name, value in row.items():
        if name in SPLUNK_META or name.startswith("__mv_"):
            continue
        if name in PAIRED:
            _pair(flat, PAIRED[name], _values(value), code)
        elif name in CLASSIC:
            flat.setdefault(CLASSIC[name], _first(value))
        elif name != "EventCode":
            flat.setdefault(name, value)
    return flat


def _pair(flat: Dict[str, Any], suffix: str, values: List[str], code: int) -> None:
    if len(values) >= 2:
        flat["Subject" + suffix], flat["Target" + suffix] = values[0], values[1]
    elif values:
        flat[("Target" if code in TARGET_ONLY else "Subject") + suffix] = values[0]


def _values(value: Any) -> List[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)] if value not in (None, "") else []


def _first(value: Any) -> Optional[str]:
    values = _values(value)
    return values[0] if values else None


def _iso_epoch(value: Any) -> Optional[str]:
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc).isoformat()
    except (TypeError, ValueError):
        return None


def to_record(flat: Dict[str, Any], source: str):
    """A host record from a flat event; uses the host-log normalizer once the engine exposes one."""
    normalize = _engine_normalizer()
    if normalize is not None:
        return normalize(flat, source)
    return _basic_record(flat, source)


def _engine_normalizer():
    try:
        from ..hostlog import normalize_flat  # type: ignore[attr-defined]
    except ImportError:
        return None
    return normalize_flat


USER_IS_TARGET = {4624, 4625, 4648, 4720, 4722, 4724, 4726, 4738}


def _basic_record(flat: Dict[str, Any], source: str):
    """Stand-in mapping used until hostlog exposes its normalizer: the join keys fusion needs."""
    from ..records import HOST_EVENT, Provenance, Record

    code = int(str(flat["EventID"]))
    side = "Target" if code in USER_IS_TARGET else "Subject"
    ip = _clean(flat.get("IpAddress"))
    return Record(
        time=flat.get("TimeCreated") or datetime.now(timezone.utc), kind=HOST_EVENT, protocol="windows_event",
        event_id=code, channel=flat.get("Channel"), provider=flat.get("Provider"),
        record_id=_int(flat.get("EventRecordID")), dest_host=flat.get("Computer"),
        src_ip=ip.replace("::ffff:", "") if ip else None, src_port=_int(flat.get("IpPort")),
        user=_clean(flat.get(side + "UserName")), domain=_clean(flat.get(side + "DomainName")),
        logon_id=_clean(flat.get("TargetLogonId") if code == 4624 else flat.get("SubjectLogonId")),
        share=_clean(flat.get("ShareName")), path=_clean(flat.get("RelativeTargetName")),
        access=str(flat.get("AccessList") or "").split(),
        raw={k: v for k, v in flat.items() if v not in (None, "")},
        provenance=[Provenance(file=source, record_ids=[_int(flat.get("EventRecordID")) or 0])],
    )


def _clean(value: Any) -> Optional[str]:
    text = str(value).strip() if value is not None else ""
    return None if text in ("", "-") else text


def _int(value: Any) -> Optional[int]:
    try:
        return int(str(value), 0) if value not in (None, "", "-") else None
    except ValueError:
        return None
