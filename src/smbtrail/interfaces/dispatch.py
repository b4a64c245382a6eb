"""IDispatch (MS-OAUT): the method names a client resolves and the string arguments it passes
(impacket dcomexec: ExecuteShellCommand / ShellExecute with "cmd", "/c ...")."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .dcom import bstr, orpcthis
from .decoding import Operations, decode_call
from .ndr import NdrError, Reader

INTERFACES = ("IDispatch",)
DISSECTORS = ("dispatch",)
FIELD_ARGS = {
    "dispatch.name": ("dispatch_names", "list"),
    "dispatch.id": ("dispid", "int"),
    "dcom.vt.bstr": ("bstrs", "list"),
}
FIELDS = tuple(FIELD_ARGS)
VT_I2, VT_I4, VT_BSTR, VT_BOOL = 2, 3, 8, 11
IID_NULL = "00000000-0000-0000-0000-000000000000"
MAX_ARGS = 64


def _get_ids_of_names(r: Reader, out: Dict[str, Any]) -> None:
    """ORPCTHIS, riid, [size_is(cNames)] LPOLESTR* rgszNames, cNames, lcid."""
    orpcthis(r)
    r.guid()
    count = r.count()
    if count > MAX_ARGS:
        raise NdrError(f"{count} names")
    refs = [r.pointer() for _ in range(count)]
    out["dispatch_names"] = [r.wstring() for ref in refs if ref]


def _variant(r: Reader) -> Any:
    """One wireVARIANT: its clSize (in 8-byte units) bounds it, so unknown types are skipped whole."""
    r.align(8)
    start = r.pos
    size = r.u32() * 8
    r.u32()
    vt = r.u16()
    r.raw(6)
    r.u32()  # union discriminant
    value: Any = None
    if vt == VT_BSTR:
        value = bstr(r)
    elif vt == VT_I4:
        value = r.i32()
    elif vt in (VT_I2, VT_BOOL):
        value = r.u16()
    if size < 24 or start + size > len(r.data):
        raise NdrError(f"bad VARIANT size {size} at {start}")
    r.pos = start + size
    return value


def _invoke(r: Reader, out: Dict[str, Any]) -> None:
    """ORPCTHIS, dispIdMember, riid, lcid, dwFlags, DISPPARAMS {rgvarg*, rgdispidNamedArgs*, cArgs, cNamedArgs}."""
    orpcthis(r)
    out["dispid"] = r.i32()
    if r.guid() != IID_NULL:
        raise NdrError("IDispatch::Invoke riid must be IID_NULL")
    r.u32()
    out["invoke_flags"] = r.u32()
    r.struct_start()
    args_ref = r.pointer()
    r.pointer()  # rgdispidNamedArgs
    count = r.u32()
    r.u32()
    if not args_ref or not count:
        return
    if r.count() != count or count > MAX_ARGS:
        raise NdrError("argument array size does not match cArgs")
    refs = [r.pointer() for _ in range(count)]
    values: List[Any] = [_variant(r) if ref else None for ref in refs]
    values.reverse()  # rgvarg holds the arguments last to first
    out["bstrs"] = [v for v in values if isinstance(v, str)]


def matches(opnum: int, request: bool, stub: Optional[bytes]) -> bool:
    """True when a request of an unbound context parses whole as IDispatch::Invoke with string
    arguments (DCOM runs over NDR only)."""
    if not request or opnum != REQUESTS.opnum("Invoke") or not stub:
        return False
    out: Dict[str, Any] = {}
    try:
        _invoke(Reader(stub, False), out)
    except (NdrError, ValueError, IndexError):
        return False
    return bool(out.get("bstrs"))


REQUESTS = Operations(INTERFACES, {"GetIDsOfNames": _get_ids_of_names, "Invoke": _invoke})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    out = decode_call(REQUESTS, {}, FIELD_ARGS, opnum, request, fields, stub)
    if "bstrs" in out and not stub:
        # tshark lists the VARIANTs in wire order (last argument first) and joins empty ones away
        out["bstrs"] = [v for v in reversed(out["bstrs"]) if v]
    return out
