"""atsvc (MS-TSCH ATSvc): the legacy `at` command (NetrJobAdd command and time, JobDel, JobEnum)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call, server
from .ndr import Reader

INTERFACES = ("atsvc",)
DISSECTORS = ("atsvc",)
FIELD_ARGS = {
    "atsvc.server": "server",
    "atsvc.atsvc_JobInfo.command": "job_command",
    "atsvc.atsvc_JobInfo.job_time": ("job_time", "int"),
    "atsvc.atsvc_JobInfo.days_of_week": ("days_of_week", "int"),
    "atsvc.atsvc_JobInfo.days_of_month": ("days_of_month", "int"),
    "atsvc.job_id": ("job_id", "int"),
    "atsvc.atsvc_JobDel.min_job_id": ("job_id", "int"),
    "atsvc.atsvc_JobDel.max_job_id": ("max_job_id", "int"),
    "atsvc.status": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)


def _job_add(r: Reader, out: Dict[str, Any]) -> None:
    """NetrJobAdd: server, AT_INFO {JobTime (DWORD_PTR, ms after midnight), days, flags, Command}."""
    server(r, out)
    r.struct_start()
    out["job_time"] = r.dword_ptr()
    out["job_clock"] = clock(out["job_time"])
    out["days_of_month"] = r.u32()
    out["days_of_week"] = r.u8()
    out["job_flags"] = r.u8()
    if r.pointer():
        out["job_command"] = r.wstring()
    r.end()


def clock(milliseconds: int) -> str:
    """AT_INFO.JobTime (milliseconds after midnight, local time of the target) as HH:MM."""
    minutes = (milliseconds // 60000) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _job_del(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    out["job_id"] = r.u32()
    out["max_job_id"] = r.u32()


def _job_get_info(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    out["job_id"] = r.u32()


def _job_add_response(r: Reader, out: Dict[str, Any]) -> None:
    out["job_id"] = r.u32()


def _job_enum_response(r: Reader, out: Dict[str, Any]) -> None:
    """AT_ENUM_CONTAINER: the commands of the scheduled jobs."""
    r.struct_start()
    entries = r.u32()
    if not r.pointer() or not entries:
        return
    count = r.count()
    refs = []
    for _ in range(min(count, 4096)):
        r.struct_start()
        r.u32()  # JobId
        r.dword_ptr()  # JobTime
        r.u32()
        r.u8()
        r.u8()
        refs.append(r.pointer())
    out["job_commands"] = [r.wstring() for ref in refs if ref]


def _job_info_response(r: Reader, out: Dict[str, Any]) -> None:
    if not r.pointer():
        return
    r.struct_start()
    out["job_time"] = r.dword_ptr()
    r.u32()
    r.u8()
    r.u8()
    if r.pointer():
        out["job_command"] = r.wstring()


REQUESTS = Operations(INTERFACES, {
    "NetrJobAdd": _job_add, "NetrJobDel": _job_del, "NetrJobEnum": server, "NetrJobGetInfo": _job_get_info,
})
RESPONSES = Operations(INTERFACES, {
    "NetrJobAdd": _job_add_response, "NetrJobEnum": _job_enum_response, "NetrJobGetInfo": _job_info_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
