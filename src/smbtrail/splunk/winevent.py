"""Windows events already in Splunk -> one flat event dict with the XML (EventData) field names.

Three shapes arrive at the search command:
- XmlWinEventLog with `_raw` = the event XML: parsed exactly (hostlog.flatten, as the readers do);
- XmlWinEventLog extractions (fields named as the XML Data names, `EventID` -> `EventCode`);
- classic WinEventLog extractions (`Account_Name` with subject and target values, `Share_Name`, ...).
The flat dict is hostlog's (see hostlog/normalize.py): the Windows XML names (`EventID`, `Computer`,
`Channel`, `TimeCreated`, `EventRecordID`, `Provider`, each `<Data Name=...>`), so one normalizer
serves files and Splunk events alike.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

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


SYSTEM_READ = ("EventCode", "EventID", "EventRecordID", "Computer", "Channel", "Provider", "TimeCreated",
               "SystemTime", "ObjectType", "ObjectServer")


def fields_read() -> List[str]:
    """Every field of a row this module and the normalizer read besides `_raw`: the System names, the
    classic rendering's names, and each event field lookups/windows_events.csv maps (with the
    Subject/Target forms of the classic pairs)."""
    from ..hostlog.catalog import catalog

    names = set(SYSTEM_READ) | set(CLASSIC) | set(PAIRED) | {"_time", "host"}
    names.update(f"{side}{what}" for side in ("Subject", "Target") for what in PAIRED.values())
    for spec in catalog().values():
        names.update(name for group in spec.fields.values() for name in group)
        names.update(name for _, group in spec.args for name in group)
    return sorted(names)


def is_windows_event(row: Mapping[str, Any]) -> bool:
    raw = str(row.get("_raw") or "").lstrip()
    return raw.startswith("<Event") or bool(row.get("EventCode") or row.get("EventID"))


def flat_event(row: Mapping[str, Any]) -> Dict[str, Any]:
    """The flat event of one Splunk result row (raises ValueError when the row holds no Windows event)."""
    raw = str(row.get("_raw") or "").lstrip()
    if raw.startswith("<Event"):
        from ..hostlog.flatten import from_xml

        flat = from_xml(raw)
    elif _classic(row):
        flat = from_classic(row)
    else:
        flat = {k: v for k, v in row.items() if k not in SPLUNK_META and not k.startswith("__mv_")}
        flat["EventID"] = flat.pop("EventCode", flat.get("EventID"))
        flat.setdefault("TimeCreated", flat.pop("SystemTime", None))
    if not flat.get("EventID"):
        raise ValueError("no EventCode/EventID")
    if not flat.get("TimeCreated") and row.get("_time"):
        flat["TimeCreated"] = _iso_epoch(row["_time"])
    if not flat.get("Computer"):
        flat["Computer"] = row.get("host")
    return flat


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
    """The host record of a flat event: the same normalizer the host-log readers use."""
    from ..hostlog.normalize import normalize_flat

    return normalize_flat(flat, source)
