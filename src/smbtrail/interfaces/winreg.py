"""winreg (MS-RRP): reg query/add/delete/save, hive opens, and shutdown through the registry pipe.

Keys are relative to the handle in the request (`_handle_in`); the caller joins them with the
hive or key that opened that handle.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call, handle_and_string, handle_only, handle_response
from .initshutdown import shutdown_request
from .ndr import Reader

INTERFACES = ("winreg",)
DISSECTORS = ("winreg",)
FIELD_ARGS = {
    "winreg.winreg_OpenKey.keyname": "key",
    "winreg.winreg_CreateKey.name": "key",
    "winreg.winreg_DeleteKey.key": "key",
    "winreg.winreg_DeleteKeyEx.key": "key",
    "winreg.winreg_SetValue.name": "value",
    "winreg.winreg_QueryValue.value_name": "value",
    "winreg.winreg_DeleteValue.value": "value",
    "winreg.winreg_SaveKey.filename": "file",
    "winreg.winreg_SaveKeyEx.filename": "file",
    "winreg.winreg_RestoreKey.filename": "file",
    "winreg.winreg_LoadKey.filename": "file",
    "winreg.winreg_LoadKey.keyname": "key",
    "winreg.winreg_OpenKey.parent_handle": ("_handle", "handle"),
    "winreg.handle": ("_handle", "handle"),
    "winreg.access_mask": ("access_mask", "int"),
    "winreg.winreg_InitiateSystemShutdownEx.timeout": ("timeout", "int"),
    "winreg.winreg_InitiateSystemShutdown.timeout": ("timeout", "int"),
    "winreg.winreg_InitiateSystemShutdownEx.reason": ("reason", "int"),
    "winreg.werror": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)

HIVES = {"OpenClassesRoot": "HKCR", "OpenCurrentUser": "HKCU", "OpenLocalMachine": "HKLM", "OpenPerformanceData": "HKPD",
         "OpenUsers": "HKU", "OpenCurrentConfig": "HKCC", "OpenPerformanceText": "HKPT", "OpenPerformanceNlsText": "HKPN"}
VALUE_TYPES = {0: "REG_NONE", 1: "REG_SZ", 2: "REG_EXPAND_SZ", 3: "REG_BINARY", 4: "REG_DWORD",
               5: "REG_DWORD_BIG_ENDIAN", 6: "REG_LINK", 7: "REG_MULTI_SZ", 11: "REG_QWORD"}
MAX_DATA_HEX = 512  # bytes of binary data shown as hex; the rest is counted, not copied


def value_data(kind: int, data: bytes) -> Any:
    """Registry data as text or number where its type says so, else (truncated) hex."""
    if kind in (1, 2, 6):
        return data.decode("utf-16-le", errors="replace").split("\x00", 1)[0]
    if kind == 7:
        return [part for part in data.decode("utf-16-le", errors="replace").split("\x00") if part]
    if kind == 4 and len(data) >= 4:
        return struct.unpack("<I", data[:4])[0]
    if kind == 5 and len(data) >= 4:
        return struct.unpack(">I", data[:4])[0]
    if kind == 11 and len(data) >= 8:
        return struct.unpack("<Q", data[:8])[0]
    return data[:MAX_DATA_HEX].hex()


def _type_name(kind: int) -> str:
    return VALUE_TYPES.get(kind, str(kind))


def _open_hive(hive: str):
    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["hive"] = hive
        r.wchar_pointer()  # server name: a single character, unused
        out["access_mask"] = r.u32()
        r.end()

    return parse


def _open_key(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("key")(r, out)
    out["options"] = r.u32()
    out["access_mask"] = r.u32()
    r.end()


def _create_key(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("key")(r, out)
    r.unicode_string()  # class
    out["options"] = r.u32()
    out["access_mask"] = r.u32()


def _set_value(r: Reader, out: Dict[str, Any]) -> None:
    """BaseRegSetValue: handle, value name, type, data [size_is(cbData)], cbData."""
    handle_and_string("value")(r, out)
    kind = r.u32()
    out["value_type"] = _type_name(kind)
    data = r.conformant_bytes()
    out["data_size"] = r.u32()
    out["data"] = value_data(kind, data)
    r.end()


def _query_value(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("value")(r, out)


def _save_key(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("file")(r, out)


def _load_key(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("key")(r, out)
    file = r.unicode_string()
    if file is not None:
        out["file"] = file


def _replace_key(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("key")(r, out)
    for key in ("file", "old_file"):
        value = r.unicode_string()
        if value is not None:
            out[key] = value


def _enum_index(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["index"] = r.u32()


def _shutdown(extended: bool):
    def parse(r: Reader, out: Dict[str, Any]) -> None:
        shutdown_request(r, out, extended)

    return parse


def _query_value_response(r: Reader, out: Dict[str, Any]) -> None:
    """lpType, lpData [size_is(*lpcbData), length_is(*lpcbLen)], lpcbData, lpcbLen."""
    kind = r.u32() if r.pointer() else None
    data = r.varying_bytes() if r.pointer() else None
    if kind is not None:
        out["value_type"] = _type_name(kind)
        if data is not None:
            out["data"] = value_data(kind, data)


def _create_key_response(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_out"] = r.handle()
    if r.pointer():
        out["disposition"] = r.u32()  # 1 created new key, 2 opened existing


def _enum_key_response(r: Reader, out: Dict[str, Any]) -> None:
    name = r.unicode_string()
    if name is not None:
        out["key"] = name


def _enum_value_response(r: Reader, out: Dict[str, Any]) -> None:
    name = r.unicode_string()
    if name is not None:
        out["value"] = name


REQUESTS = Operations(INTERFACES, {
    **{operation: _open_hive(hive) for operation, hive in HIVES.items()},
    "BaseRegCloseKey": handle_only, "BaseRegCreateKey": _create_key, "BaseRegDeleteKey": handle_and_string("key"),
    "BaseRegDeleteValue": handle_and_string("value"), "BaseRegEnumKey": _enum_index, "BaseRegEnumValue": _enum_index,
    "BaseRegLoadKey": _load_key, "BaseRegOpenKey": _open_key, "BaseRegQueryInfoKey": handle_only,
    "BaseRegQueryValue": _query_value, "BaseRegReplaceKey": _replace_key, "BaseRegRestoreKey": _save_key,
    "BaseRegSaveKey": _save_key, "BaseRegSetValue": _set_value, "BaseRegUnLoadKey": handle_and_string("key"),
    "BaseInitiateSystemShutdown": _shutdown(False), "BaseInitiateSystemShutdownEx": _shutdown(True),
    "BaseRegSaveKeyEx": _save_key, "BaseRegDeleteKeyEx": handle_and_string("key"),
})
RESPONSES = Operations(INTERFACES, {
    **{operation: handle_response for operation in HIVES},
    "BaseRegCreateKey": _create_key_response, "BaseRegEnumKey": _enum_key_response,
    "BaseRegEnumValue": _enum_value_response, "BaseRegOpenKey": handle_response,
    "BaseRegQueryValue": _query_value_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
