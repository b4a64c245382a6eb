"""IWbemLevel1Login (MS-WMI): the namespace a WMI client logs in to (//./root/cimv2)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .dcom import orpcthis
from .decoding import Operations, decode_call
from .ndr import Reader

INTERFACES = ("IWbemLevel1Login",)
DISSECTORS: tuple = ()
FIELDS: tuple = ()


def _ntlm_login(r: Reader, out: Dict[str, Any]) -> None:
    """NTLMLogin: ORPCTHIS, [unique, string] network resource, [unique, string] locale, flags, ctx."""
    orpcthis(r)
    namespace = r.unique_wstring()
    if namespace:
        out["namespace"] = namespace


REQUESTS = Operations(INTERFACES, {"NTLMLogin": _ntlm_login})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, {}, {}, opnum, request, fields, stub)
