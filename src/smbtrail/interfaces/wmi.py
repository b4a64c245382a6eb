"""IWbemServices (MS-WMI): the WMI object path, method and query a client asks for
(wmic / wmiexec: Win32_Process.Create). Readable only when the DCOM call is not sealed."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .dcom import bstr, orpcthis
from .decoding import decode_call
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


REQUESTS = {3: _object, 6: _object, 7: _object, 10: _object, 11: _object, 12: _object, 13: _object,
            16: _object, 17: _object, 18: _object, 19: _object, 20: _query, 21: _query, 22: _query,
            23: _query, 24: _method, 25: _method}


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, {}, {}, opnum, request, fields, stub)
