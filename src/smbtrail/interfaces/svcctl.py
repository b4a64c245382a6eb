"""svcctl (MS-SCMR): sc create/config/start/stop/delete/query, PsExec, smbexec.

tshark 4.0 dissects only a few svcctl calls (12, 15, 16, 27) and not 45 CreateServiceWOW64W or
64 OpenSCManager2, so every call that carries intent is also parsed from the stub.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Mapping, Optional

from .decoding import Operations, decode_call, handle_only, handle_response
from .ndr import NdrError, Reader

INTERFACES = ("svcctl",)
DISSECTORS = ("svcctl",)
FIELD_ARGS = {
    "svcctl.servicename": "service_name",
    "svcctl.displayname": "display_name",
    "svcctl.binarypathname": "binary_path",
    "svcctl.service_type": ("service_type", "int"),
    "svcctl.service_start_type": ("start_type", "int"),
    "svcctl.service_start_name": "start_name",
    "svcctl.machinename": "machine",
    "svcctl.database": "database",
    "svcctl.access_mask": ("access_mask", "int"),
    "svcctl.hnd": ("_handle", "handle"),
    "svcctl.rc": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)
NO_CHANGE = 0xFFFFFFFF


def _strings(wide: bool):
    """The ref and unique string readers for the W (UTF-16) or A (8-bit) variant of a call."""
    if wide:
        return Reader.wstring, Reader.unique_wstring
    return Reader.astring, Reader.unique_astring


def _put(out: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != NO_CHANGE:
        out[key] = value


def _skip_dependencies_and_password(r: Reader, out: Dict[str, Any], unique) -> None:
    """lpdwTagId, lpDependencies, dwDependSize, lpServiceStartName, lpPassword, dwPwSize."""
    if r.pointer():
        r.u32()
    if r.pointer():
        r.conformant_bytes()
    r.u32()
    _put(out, "start_name", unique(r))
    if r.pointer():
        r.conformant_bytes()  # the password is a secret: read past it, never return it
    r.u32()


def _create_service(wide: bool) -> Callable[[Reader, Dict[str, Any]], None]:
    ref, unique = _strings(wide)

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        out["service_name"] = ref(r)
        _put(out, "display_name", unique(r))
        out["access_mask"] = r.u32()
        out["service_type"] = r.u32()
        out["start_type"] = r.u32()
        out["error_control"] = r.u32()
        out["binary_path"] = ref(r)
        _put(out, "load_order_group", unique(r))
        _skip_dependencies_and_password(r, out, unique)
        r.end()

    return parse


def _change_config(wide: bool) -> Callable[[Reader, Dict[str, Any]], None]:
    _, unique = _strings(wide)

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        _put(out, "service_type", r.u32())
        _put(out, "start_type", r.u32())
        _put(out, "error_control", r.u32())
        _put(out, "binary_path", unique(r))
        _put(out, "load_order_group", unique(r))
        _skip_dependencies_and_password(r, out, unique)
        _put(out, "display_name", unique(r))
        r.end()

    return parse


def _open_scm(wide: bool) -> Callable[[Reader, Dict[str, Any]], None]:
    _, unique = _strings(wide)

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        _put(out, "machine", unique(r))
        _put(out, "database", unique(r))
        out["access_mask"] = r.u32()
        r.end()

    return parse


def _open_scm2(r: Reader, out: Dict[str, Any]) -> None:
    _put(out, "database", r.unique_wstring())
    out["access_mask"] = r.u32()
    r.end()


def _open_service(wide: bool) -> Callable[[Reader, Dict[str, Any]], None]:
    ref, _ = _strings(wide)

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        out["service_name"] = ref(r)
        out["access_mask"] = r.u32()
        r.end()

    return parse


def _start_service(wide: bool) -> Callable[[Reader, Dict[str, Any]], None]:
    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        argc = r.u32()
        if r.pointer() and argc:
            if r.count() != argc or argc > 1024:
                raise NdrError("argument vector size does not match argc")
            refs = [r.pointer() for _ in range(argc)]
            out["arguments"] = [(r.wstring() if wide else r.astring()) for ref in refs if ref]

    return parse


def _control(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["control"] = r.u32()


def _get_name(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["service_name"] = r.wstring()


def _enum_services(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["service_type"] = r.u32()
    out["service_state"] = r.u32()


def _enum_services_ex(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["info_level"] = r.u32()
    out["service_type"] = r.u32()
    out["service_state"] = r.u32()


def _change_config2(r: Reader, out: Dict[str, Any]) -> None:
    """SC_RPC_CONFIG_INFOW: level 1 description, level 2 failure actions (its command runs on failure)."""
    out["_handle_in"] = r.handle()
    level = r.u32()
    out["info_level"] = level
    r.union_tag()
    if not r.pointer() or level not in (1, 2):
        return
    if level == 1:
        _put(out, "description", r.unique_wstring())
        return
    r.u32()  # dwResetPeriod
    reboot_ref, command_ref = r.pointer(), r.pointer()
    if reboot_ref:
        r.wstring()
    if command_ref:
        out["failure_command"] = r.wstring()


def _query_config_response(wide: bool) -> Callable[[Reader, Dict[str, Any]], None]:
    ref, _ = _strings(wide)

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        r.struct_start()
        out["service_type"] = r.u32()
        out["start_type"] = r.u32()
        r.u32()  # error control
        refs = {}
        refs["binary_path"] = r.pointer()
        refs["load_order_group"] = r.pointer()
        r.u32()  # tag id
        refs["dependencies"] = r.pointer()
        refs["start_name"] = r.pointer()
        refs["display_name"] = r.pointer()
        for key, referent in refs.items():
            if referent:
                value = ref(r)
                if key != "dependencies":
                    _put(out, key, value or None)

    return parse


def _status_response(r: Reader, out: Dict[str, Any]) -> None:
    r.u32()  # service type
    out["service_state"] = r.u32()


def _status_ex_response(r: Reader, out: Dict[str, Any]) -> None:
    buf = r.conformant_bytes()
    if len(buf) >= 32:
        _, state, *_, pid = struct.unpack("<8I", buf[:32])
        out["service_state"] = state
        out["process_id"] = pid


def _enum_response(entry_size: int):
    """ENUM_SERVICE_STATUSW (36 bytes) or ENUM_SERVICE_STATUS_PROCESSW (44 bytes) entries whose
    service names sit at offsets inside the returned buffer."""

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        buf = r.conformant_bytes()
        r.u32()  # bytes needed
        returned = r.u32()
        names = []
        for index in range(min(returned, len(buf) // entry_size)):
            (offset,) = struct.unpack_from("<I", buf, index * entry_size)
            names.append(_utf16z(buf, offset))
        out["names"] = names

    return parse


def _utf16z(buf: bytes, offset: int) -> str:
    end = offset
    while end + 1 < len(buf) and buf[end:end + 2] != b"\x00\x00":
        end += 2
    return buf[offset:end].decode("utf-16-le", errors="replace")


REQUESTS = Operations(INTERFACES, {
    "RCloseServiceHandle": handle_only, "RControlService": _control, "RDeleteService": handle_only,
    "RQueryServiceStatus": handle_only, "RChangeServiceConfigW": _change_config(True),
    "RCreateServiceW": _create_service(True), "REnumDependentServicesW": handle_only, "REnumServicesStatusW": _enum_services,
    "ROpenSCManagerW": _open_scm(True), "ROpenServiceW": _open_service(True), "RQueryServiceConfigW": handle_only,
    "RStartServiceW": _start_service(True), "RGetServiceDisplayNameW": _get_name, "RGetServiceKeyNameW": _get_name,
    "RChangeServiceConfigA": _change_config(False), "RCreateServiceA": _create_service(False),
    "ROpenSCManagerA": _open_scm(False), "ROpenServiceA": _open_service(False), "RQueryServiceConfigA": handle_only,
    "RStartServiceA": _start_service(False), "RChangeServiceConfig2W": _change_config2, "RQueryServiceConfig2W": handle_only,
    "RQueryServiceStatusEx": handle_only, "REnumServicesStatusExW": _enum_services_ex,
    "RCreateServiceWOW64A": _create_service(False), "RCreateServiceWOW64W": _create_service(True),
    "RControlServiceExA": _control, "RControlServiceExW": _control, "RQueryServiceConfigEx": handle_only,
    "ROpenSCManager2": _open_scm2,
})
RESPONSES = Operations(INTERFACES, {
    "RControlService": _status_response, "RQueryServiceStatus": _status_response, "RCreateServiceW": handle_response,
    "REnumServicesStatusW": _enum_response(36), "ROpenSCManagerW": handle_response, "ROpenServiceW": handle_response,
    "RQueryServiceConfigW": _query_config_response(True), "RCreateServiceA": handle_response,
    "ROpenSCManagerA": handle_response, "ROpenServiceA": handle_response,
    "RQueryServiceConfigA": _query_config_response(False), "RQueryServiceStatusEx": _status_ex_response,
    "REnumServicesStatusExW": _enum_response(44), "RCreateServiceWOW64A": handle_response,
    "RCreateServiceWOW64W": handle_response, "ROpenSCManager2": handle_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
