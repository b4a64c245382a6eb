"""eventlog (MS-EVEN): open/read/clear/backup of a remote event log (psloglist, log clearing)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import decode_call, handle_only, handle_response
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


REQUESTS = {
    0: _clear(True), 1: _backup(True), 2: handle_only, 4: handle_only, 5: handle_only,
    7: _open(True, "log_name"), 8: _open(True, "log_name"), 9: _open(True, "backup_file"), 10: _read,
    12: _clear(False), 13: _backup(False), 14: _open(False, "log_name"), 15: _open(False, "log_name"),
    16: _open(False, "backup_file"), 17: _read,
}
RESPONSES = {opnum: handle_response for opnum in (7, 8, 9, 14, 15, 16)}


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
