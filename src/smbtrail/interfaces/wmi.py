"""IWbemServices (MS-WMI): the WMI object path, method and query a client asks for
(wmic / wmiexec: Win32_Process.Create). Readable only when the DCOM call is not sealed."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .dcom import bstr, orpcthis
from .decoding import Operations, decode_call
from .ndr import Reader

INTERFACES = ("IWbemServices",)
DISSECTORS: tuple = ()
FIELDS: tuple = ()


def _put(out: Dict[str, Any], key: str, value: Optional[str]) -> None:
    if value:
        out[key] = value


def _object(r: Reader, out: Dict[str, Any]) -> None:
    """OpenNamespace/GetObject/DeleteClass/CreateInstanceEnum...: ORPCTHIS, the first BSTR."""
    orpcthis(r)
    _put(out, "object", bstr(r))


def _query(r: Reader, out: Dict[str, Any]) -> None:
    """ExecQuery/ExecNotificationQuery(Async): ORPCTHIS, language, query."""
    orpcthis(r)
    bstr(r)
    _put(out, "query", bstr(r))


def _method(r: Reader, out: Dict[str, Any]) -> None:
    """ExecMethod(Async): ORPCTHIS, object path, method name (the in-parameters are an encoded object)."""
    orpcthis(r)
    _put(out, "object", bstr(r))
    _put(out, "method", bstr(r))


REQUESTS = Operations(INTERFACES, {
    "OpenNamespace": _object, "GetObject": _object, "GetObjectAsync": _object, "DeleteClass": _object,
    "DeleteClassAsync": _object, "CreateClassEnum": _object, "CreateClassEnumAsync": _object, "DeleteInstance": _object,
    "DeleteInstanceAsync": _object, "CreateInstanceEnum": _object, "CreateInstanceEnumAsync": _object, "ExecQuery": _query,
    "ExecQueryAsync": _query, "ExecNotificationQuery": _query, "ExecNotificationQueryAsync": _query, "ExecMethod": _method,
    "ExecMethodAsync": _method,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, {}, {}, opnum, request, fields, stub)
