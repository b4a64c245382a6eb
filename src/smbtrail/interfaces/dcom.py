"""DCOM activation (MS-DCOM IRemoteSCMActivator/ISystemActivator, IRemoteActivation): which class
was activated (MMC20, ShellWindows, ShellBrowserWindow, WMI) and where the object lives.

Also the ORPC helpers (ORPCTHIS, BSTR) that the IDispatch and WMI decoders share.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional

from ..capture.fields import split
from .decoding import Operations, decode_call, text
from .ndr import NdrError, Reader

INTERFACES = ("IRemoteSCMActivator", "IRemoteActivation")
DISSECTORS = ("isystemactivator", "remact")
FIELD_ARGS = {
    "isystemactivator.properties.instninfo.clsid": "clsid",
    "isystemactivator.properties.instninfo.iid": ("iids", "list"),
}
FIELDS = tuple(FIELD_ARGS) + ("dcom.dualstringarray.network_addr",)

OBJREF_SIGNATURE = b"MEOW"
OBJREF_CUSTOM = 4
IID_ACTIVATION_PROPERTIES_IN = "000001a2-0000-0000-c000-000000000046"
INSTANTIATION_INFO = "000001ab-0000-0000-c000-000000000046"
MAX_PROPERTIES = 16
_BINDING = re.compile(r"^(.+)\[(\d+)\]$")


# -- ORPC helpers shared with dispatch.py and wmi.py -----------------------------------------
def orpcthis(r: Reader) -> None:
    """ORPCTHIS: COMVERSION, flags, reserved, causality id, [unique] ORPC_EXTENT_ARRAY."""
    r.u16()
    r.u16()
    r.u32()
    r.u32()
    r.guid()
    if r.pointer():
        _extent_array(r)


def _extent_array(r: Reader) -> None:
    r.struct_start()
    size = r.u32()
    r.u32()
    if not r.pointer():
        return
    count = r.count()
    if count > 64 or count < size:
        raise NdrError("bad ORPC extent array")
    refs = [r.pointer() for _ in range(count)]
    for ref in refs:
        if ref:  # ORPC_EXTENT: conformance (padded size), GUID, size, data
            padded = r.count()
            r.guid()
            r.u32()
            r.raw(padded)


def bstr(r: Reader) -> Optional[str]:
    """A wire BSTR: [unique] FLAGGED_WORD_BLOB* {conformance, fFlags, clSize, asData[clSize]}."""
    if not r.pointer():
        return None
    r.count()
    r.u32()  # fFlags (byte length)
    chars = r.u32()
    if chars > (1 << 20):
        raise NdrError(f"BSTR of {chars} characters")
    return r.raw(2 * chars).decode("utf-16-le", errors="replace")


# -- activation ------------------------------------------------------------------------------
def activation_properties(stub: bytes) -> Dict[str, Any]:
    """CLSID and IIDs from the ActivationPropertiesIn blob of a custom OBJREF (MS-DCOM 2.2.22)."""
    at = stub.find(OBJREF_SIGNATURE)
    if at < 0:
        raise NdrError("no OBJREF in the activation stub")
    r = Reader(stub[at:], False)
    r.raw(4)
    if r.u32() != OBJREF_CUSTOM:
        raise NdrError("activation OBJREF is not a custom OBJREF")
    if r.guid() != IID_ACTIVATION_PROPERTIES_IN:
        raise NdrError("the OBJREF does not carry activation properties")
    r.raw(16)  # clsid of the unmarshaller
    r.u32()  # cbExtension
    r.u32()  # size
    r.u32()  # dwSize
    r.u32()  # dwReserved
    header_start = r.pos
    r.raw(16)  # type serialization headers
    r.u32()  # totalSize
    header_size = r.u32()
    r.u32()
    r.u32()  # destCtx
    count = r.u32()
    r.raw(16)  # classInfoClsid
    clsids_ref, sizes_ref = r.pointer(), r.pointer()
    r.pointer()
    if not clsids_ref or not sizes_ref or count > MAX_PROPERTIES or r.count() != count:
        raise NdrError("bad activation custom header")
    clsids = [r.guid() for _ in range(count)]
    if r.count() != count:
        raise NdrError("bad activation property sizes")
    sizes = [r.u32() for _ in range(count)]
    offset = header_start + header_size
    for clsid, size in zip(clsids, sizes):
        if clsid == INSTANTIATION_INFO:
            return _instantiation_info(r.data, offset)
        offset += size
    return {}


def _instantiation_info(data: bytes, offset: int) -> Dict[str, Any]:
    """InstantiationInfoData after its 16-byte serialization header: classId ... cIID, pIID."""
    r = Reader(data, False)
    r.pos = offset + 16
    out: Dict[str, Any] = {"clsid": r.guid()}
    r.u32()  # classCtx
    r.u32()  # actvflags
    r.u32()  # fIsSurrogate
    count = r.u32()
    r.u32()  # instFlag
    ref = r.pointer()
    r.u32()  # thisSize
    r.u32()  # clientCOMVersion
    if ref and count and r.count() == count and count <= 64:
        out["iids"] = [r.guid() for _ in range(count)]
    return out


def _name_class(out: Dict[str, Any]) -> None:
    from . import class_name, interface_name  # the package imports this module first

    clsid = out.get("clsid")
    if clsid:
        name = class_name(clsid)
        if name:
            out["clsid_name"] = name
    iids = out.get("iids") or []
    if iids:
        out["iid"] = iids[0]
        named = [interface_name(i) for i in iids]
        if any(named):
            out["iid_names"] = [n or i for n, i in zip(named, iids)]


def dual_string_bindings(stub: bytes) -> List[str]:
    """Network addresses of the DUALSTRINGARRAYs in a response (host[port] of the object exporter)."""
    found: List[str] = []
    for match in re.finditer(rb"\x07\x00((?:[\x20-\x7e]\x00){2,255})\x00\x00", stub):
        value = match.group(1).decode("utf-16-le")
        if value not in found:
            found.append(value)
    return found


def _activation_request(r: Reader, out: Dict[str, Any]) -> None:
    out.update(activation_properties(r.data))
    _name_class(out)


def _remote_activation(r: Reader, out: Dict[str, Any]) -> None:
    """IRemoteActivation::RemoteActivation: ORPCTHIS, Clsid, [unique] object name, ..."""
    orpcthis(r)
    out["clsid"] = r.guid()
    name = r.unique_wstring()
    if name:
        out["object_name"] = name
    _name_class(out)


def _activation_response(r: Reader, out: Dict[str, Any]) -> None:
    bindings = dual_string_bindings(r.data)
    _put_bindings(bindings, out)


def _put_bindings(bindings: List[str], out: Dict[str, Any]) -> None:
    if not bindings:
        return
    out["bindings"] = bindings
    for binding in bindings:
        match = _BINDING.match(binding)
        if match:
            out["port"] = int(match.group(2))
            break


ACTIVATIONS = ("RemoteGetClassObject", "RemoteCreateInstance")


def matches(opnum: int, request: bool, stub: Optional[bytes]) -> bool:
    """True when a request of an unbound context is unmistakably an activation (the bind was not
    captured): RemoteGetClassObject/RemoteCreateInstance carrying ActivationPropertiesIn."""
    if not request or not stub or opnum not in {REQUESTS.opnum(name) for name in ACTIVATIONS}:
        return False
    try:
        return bool(activation_properties(stub).get("clsid"))
    except (NdrError, ValueError, IndexError):
        return False


REQUESTS = Operations(INTERFACES, {
    "RemoteActivation": _remote_activation, "RemoteGetClassObject": _activation_request,
    "RemoteCreateInstance": _activation_request,
})
RESPONSES = Operations(INTERFACES, {
    "RemoteActivation": _activation_response, "RemoteGetClassObject": _activation_response,
    "RemoteCreateInstance": _activation_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    out = decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
    try:
        if not stub:
            _name_class(out)
            addresses = text(fields or {}, "dcom.dualstringarray.network_addr")
            if addresses and not request:
                _put_bindings([a for a in split(addresses) if a], out)
    except Exception as exc:  # never raise on odd input
        out["_decode_error"] = f"{type(exc).__name__}: {exc}"
    return out
