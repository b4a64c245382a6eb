"""srvsvc (MS-SRVS): net view/share/session/file/time against a server."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .decoding import Operations, decode_call, server
from .ndr import NdrError, Reader

INTERFACES = ("srvsvc",)
DISSECTORS = ("srvsvc",)
FIELD_ARGS = {
    "srvsvc.srvsvc_NetShareEnumAll.server_unc": "server",
    "srvsvc.srvsvc_NetShareGetInfo.server_unc": "server",
    "srvsvc.srvsvc_NetSessEnum.server_unc": "server",
    "srvsvc.srvsvc_NetRemoteTOD.server_unc": "server",
    "srvsvc.srvsvc_NetSrvGetInfo.server_unc": "server",
    "srvsvc.srvsvc_NetShareGetInfo.share_name": "share_name",
    "srvsvc.srvsvc_NetShareDel.share_name": "share_name",
    "srvsvc.srvsvc_NetShareInfo2.name": "share_name",
    "srvsvc.srvsvc_NetShareInfo502.name": "share_name",
    "srvsvc.srvsvc_NetShareInfo2.path": "share_path",
    "srvsvc.srvsvc_NetShareInfo502.path": "share_path",
    "srvsvc.srvsvc_NetSessEnum.client": "client",
    "srvsvc.srvsvc_NetSessEnum.user": "account",
    "srvsvc.srvsvc_NetFileClose.fid": ("file_id", "int"),
    "srvsvc.srvsvc_NetShareInfo1.name": ("names", "list"),
    "srvsvc.werror": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)

# Layout of the entries of each enumeration level: "s" a string pointer, "u" a DWORD,
# "b" a pointer to a byte array (security descriptor).
SHARE_LEVELS = {0: "s", 1: "sus", 2: "susuuuss", 502: "susuuussub"}
SESSION_LEVELS = {0: "s", 1: "ssuuuu", 2: "ssuuuus", 10: "ssuu", 502: "ssuuuuss"}
FILE_LEVELS = {2: "u", 3: "uuuss"}
CONNECTION_LEVELS = {0: "u", 1: "uuuuuss"}


def enum_entries(r: Reader, layouts: Mapping[int, str]) -> List[List[Optional[str]]]:
    """A [switch_is(Level)] enumeration container: Level, arm, container {count, array}."""
    level = r.u32()
    r.union_tag()
    layout = layouts.get(level)
    if layout is None or not r.pointer():
        return []
    r.struct_start()
    read = r.u32()
    if not r.pointer() or not read:
        return []
    count = r.count()
    if count > 65536:
        raise NdrError(f"enumeration of {count} entries")
    rows = [_fixed_part(r, layout) for _ in range(count)]
    return [_deferred_part(r, row) for row in rows]


def _fixed_part(r: Reader, layout: str) -> List[Tuple[str, int]]:
    r.struct_start()
    return [(kind, r.u32() if kind == "u" else r.pointer()) for kind in layout]


def _deferred_part(r: Reader, row: Sequence[Tuple[str, int]]) -> List[Optional[str]]:
    """The strings of one entry, by position (None for numbers, byte arrays and NULL pointers)."""
    values: List[Optional[str]] = []
    for kind, value in row:
        if kind == "s" and value:
            values.append(r.wstring())
            continue
        if kind == "b" and value:
            r.conformant_bytes()
        values.append(None)
    return values


def column(table: Sequence[Sequence[Optional[str]]], index: int) -> List[str]:
    return [row[index] for row in table if len(row) > index and row[index] is not None]


def _share_info(r: Reader, out: Dict[str, Any], level: int) -> None:
    """SHARE_INFO_1/2/502 behind a union arm pointer: name, type, remark, ..., path."""
    if not r.pointer():
        return
    layout = SHARE_LEVELS.get(level)
    if layout is None:
        return
    values = _deferred_part(r, _fixed_part(r, layout))
    if values[0]:
        out["share_name"] = values[0]
    if level in (2, 502) and values[6]:
        out["share_path"] = values[6]


def _share_add(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    level = r.u32()
    r.union_tag()
    _share_info(r, out, level)


def _share_name_request(r: Reader, out: Dict[str, Any]) -> None:
    """NetrShareGetInfo/SetInfo/Del/Check: server, share name, ..."""
    server(r, out)
    out["share_name"] = r.wstring()


def _session_request(r: Reader, out: Dict[str, Any]) -> None:
    """NetrSessionEnum/Del: server, client filter, user filter."""
    server(r, out)
    for key in ("client", "account"):
        value = r.unique_wstring()
        if value:
            out[key] = value


def _file_enum(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    for key in ("file", "account"):
        value = r.unique_wstring()
        if value:
            out[key] = value


def _file_close(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    out["file_id"] = r.u32()


def _connection_enum(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    qualifier = r.unique_wstring()
    if qualifier:
        out["share_name"] = qualifier


def _share_enum_response(r: Reader, out: Dict[str, Any]) -> None:
    out["names"] = column(enum_entries(r, SHARE_LEVELS), 0)


def _session_enum_response(r: Reader, out: Dict[str, Any]) -> None:
    table = enum_entries(r, SESSION_LEVELS)
    out["clients"] = column(table, 0)
    out["accounts"] = column(table, 1)


def _file_enum_response(r: Reader, out: Dict[str, Any]) -> None:
    table = enum_entries(r, FILE_LEVELS)
    out["files"] = column(table, 3)
    out["accounts"] = column(table, 4)


def _share_info_response(r: Reader, out: Dict[str, Any]) -> None:
    """NetrShareGetInfo: [out, switch_is(Level)] LPSHARE_INFO InfoStruct (its tag, then the arm)."""
    level = r.union_tag()
    _share_info(r, out, level)


REQUESTS = Operations(INTERFACES, {
    "NetrConnectionEnum": _connection_enum, "NetrFileEnum": _file_enum, "NetrFileGetInfo": _file_close,
    "NetrFileClose": _file_close, "NetrSessionEnum": _session_request, "NetrSessionDel": _session_request,
    "NetrShareAdd": _share_add, "NetrShareEnum": server, "NetrShareGetInfo": _share_name_request,
    "NetrShareSetInfo": _share_name_request, "NetrShareDel": _share_name_request, "NetrShareDelSticky": _share_name_request,
    "NetrShareCheck": _share_name_request, "NetrServerGetInfo": server, "NetrServerDiskEnum": server,
    "NetrServerTransportEnum": server, "NetrRemoteTOD": server, "NetrShareEnumSticky": server,
})
RESPONSES = Operations(INTERFACES, {
    "NetrFileEnum": _file_enum_response, "NetrSessionEnum": _session_enum_response, "NetrShareEnum": _share_enum_response,
    "NetrShareGetInfo": _share_info_response, "NetrShareEnumSticky": _share_enum_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
