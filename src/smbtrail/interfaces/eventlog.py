"""eventlog (MS-EVEN): open/read/clear/backup of a remote event log (psloglist, log clearing)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call, handle_only, handle_response
from .ndr import Reader

INTERFACES = ("eventlog",)
DISSECTORS = ("eventlog",)
FIELD_ARGS = {
    "eventlog.eventlog_OpenEventLogW.Module": "log_name",
    "eventlog.eventlog_OpenBackupEventLogW.logname": "backup_file",
    "eventlog.eventlog_RegisterEventSourceW.logname": "log_name",
    "eventlog.eventlog_ClearEventLogW.backupfilename": "backup_file",
    "eventlog.eventlog_BackupEventLogW.backupfilename": "backup_file",
    "eventlog.eventlog_OpenEventLogW.handle": ("_handle", "handle"),
    "eventlog.eventlog_ClearEventLogW.handle": ("_handle", "handle"),
    "eventlog.status": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)


def _clear(wide: bool):
    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        if r.pointer():
            name = r.unicode_string() if wide else r.ansi_string()
            if name:
                out["backup_file"] = name

    return parse


def _backup(wide: bool):
    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        name = r.unicode_string() if wide else r.ansi_string()
        if name:
            out["backup_file"] = name

    return parse


def _open(wide: bool, key: str):
    """ElfrOpenEL/RegisterEventSource/OpenBEL: server (one character), module or backup file name."""

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        if r.pointer():
            r.raw(2 if wide else 1)
        name = r.unicode_string() if wide else r.ansi_string()
        if name:
            out[key] = name

    return parse


def _read(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["read_flags"] = r.u32()
    out["record_offset"] = r.u32()


REQUESTS = Operations(INTERFACES, {
    "ElfrClearELFW": _clear(True), "ElfrBackupELFW": _backup(True), "ElfrCloseEL": handle_only,
    "ElfrNumberOfRecords": handle_only, "ElfrOldestRecord": handle_only, "ElfrOpenELW": _open(True, "log_name"),
    "ElfrRegisterEventSourceW": _open(True, "log_name"), "ElfrOpenBELW": _open(True, "backup_file"), "ElfrReadELW": _read,
    "ElfrClearELFA": _clear(False), "ElfrBackupELFA": _backup(False), "ElfrOpenELA": _open(False, "log_name"),
    "ElfrRegisterEventSourceA": _open(False, "log_name"), "ElfrOpenBELA": _open(False, "backup_file"), "ElfrReadELA": _read,
})
RESPONSES = Operations(INTERFACES, {operation: handle_response for operation in (
    "ElfrOpenELW", "ElfrRegisterEventSourceW", "ElfrOpenBELW", "ElfrOpenELA", "ElfrRegisterEventSourceA", "ElfrOpenBELA")})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
