"""epm (C706 endpoint mapper, MS-RPCE): which interface a client asked for and the port it got.

This is what ties a later ncacn_ip_tcp connection (schtasks, sc over TCP, WMI) to its interface.
"""

from __future__ import annotations

import socket
import struct
import uuid as uuidlib
from functools import lru_cache
from typing import Any, Dict, FrozenSet, List, Mapping, Optional

from .. import lookups
from ..capture.fields import first, split
from .decoding import Operations, decode_call, to_int
from .ndr import NdrError, Reader

INTERFACES = ("epmapper",)
DISSECTORS = ("epm",)
FIELDS = ("epm.uuid", "epm.uuid_version", "epm.proto.tcp_port", "epm.proto.ip", "epm.proto.named_pipe")
MAX_TOWERS = 64
NIL_UUID = "00000000-0000-0000-0000-000000000000"


@lru_cache(maxsize=1)
def _not_interfaces() -> FrozenSet[str]:
    """UUIDs a tower floor may carry that name no interface: the transfer syntaxes (NDR, NDR64), nil."""
    syntaxes = [row["uuid"] for row in lookups.rows("rpc_interfaces.csv") if row["kind"] == "transfer_syntax"]
    return frozenset(syntaxes + [NIL_UUID])


def parse_tower(octets: bytes) -> Dict[str, Any]:
    """The floors of one protocol tower: interface UUID/version, TCP/UDP/HTTP port, IP, pipe."""
    out: Dict[str, Any] = {}
    (floors,) = struct.unpack_from("<H", octets, 0)
    pos = 2
    for _ in range(min(floors, 16)):
        (lhs_len,) = struct.unpack_from("<H", octets, pos)
        lhs = octets[pos + 2:pos + 2 + lhs_len]
        pos += 2 + lhs_len
        (rhs_len,) = struct.unpack_from("<H", octets, pos)
        rhs = octets[pos + 2:pos + 2 + rhs_len]
        pos += 2 + rhs_len
        if not lhs or len(rhs) != rhs_len:
            raise NdrError("truncated tower floor")
        _floor(lhs, rhs, out)
    return out


def _floor(lhs: bytes, rhs: bytes, out: Dict[str, Any]) -> None:
    protocol = lhs[0]
    if protocol == 0x0D and len(lhs) >= 19:
        value = str(uuidlib.UUID(bytes_le=lhs[1:17]))
        if value not in _not_interfaces() and "interface_uuid" not in out:
            out["interface_uuid"] = value
            out["interface_version"] = struct.unpack_from("<H", lhs, 17)[0]
    elif protocol in (0x07, 0x08, 0x1F) and len(rhs) >= 2:
        out["port"] = struct.unpack(">H", rhs[:2])[0]
    elif protocol == 0x09 and len(rhs) >= 4:
        out["ip"] = socket.inet_ntoa(rhs[:4])
    elif protocol in (0x0F, 0x10, 0x11):
        name = rhs.split(b"\x00", 1)[0].decode("latin-1")
        if name:
            out["pipe" if protocol == 0x0F else "endpoint" if protocol == 0x10 else "host"] = name


def _tower(r: Reader) -> Dict[str, Any]:
    """twr_t: a conformant structure {tower_length, tower_octet_string[tower_length]}."""
    r.count()
    length = r.u32()
    return parse_tower(r.raw(length))


def _map_request(r: Reader, out: Dict[str, Any]) -> None:
    """ept_map / ept_lookup-style request: [ptr] object UUID, [ptr] tower, entry handle, max."""
    if r.pointer():
        r.guid()
    if r.pointer():
        tower = _tower(r)  # its port and address are placeholders in a request
        for key in ("interface_uuid", "interface_version"):
            if key in tower:
                out[key] = tower[key]
    _name(out)


def _map_response(r: Reader, out: Dict[str, Any]) -> None:
    r.handle()  # entry handle
    count = r.u32()
    r.count()  # max_towers
    r.count()  # offset
    actual = r.count()
    if actual != count or count > MAX_TOWERS:
        raise NdrError("tower array length does not match num_towers")
    refs = [r.pointer() for _ in range(count)]
    towers = [_tower(r) for ref in refs if ref]
    _merge_endpoints(towers, out)


def _merge_endpoints(towers: List[Dict[str, Any]], out: Dict[str, Any]) -> None:
    ports = [t["port"] for t in towers if "port" in t]
    if ports:
        out["port"] = ports[0]
        if len(set(ports)) > 1:
            out["ports"] = ports
    for key in ("ip", "pipe", "interface_uuid"):
        values = [t[key] for t in towers if key in t]
        if values:
            out.setdefault(key, values[0])
    _name(out)


def _name(out: Dict[str, Any]) -> None:
    from . import interface_name  # the package imports this module first

    if out.get("interface_uuid"):
        name = interface_name(out["interface_uuid"])
        if name:
            out["interface"] = name


def _from_fields(fields: Mapping[str, str], request: bool) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    uuids = [u for u in split(fields.get("epm.uuid") or "") if u and u not in _not_interfaces()]
    if uuids:
        out["interface_uuid"] = uuids[0].lower()
    ports = [p for p in (to_int(v) for v in split(fields.get("epm.proto.tcp_port") or "") if v) if p]
    if ports and not request:
        out["port"] = ports[0]
    for field, key in (("epm.proto.ip", "ip"), ("epm.proto.named_pipe", "pipe")):
        value = first(fields, field)
        if value and value != "0.0.0.0" and not request:
            out[key] = value
    _name(out)
    return out


REQUESTS = Operations(INTERFACES, {"ept_map": _map_request})
RESPONSES = Operations(INTERFACES, {"ept_map": _map_response})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    out = decode_call(REQUESTS, RESPONSES, {}, opnum, request, fields, stub)
    if not stub and opnum == REQUESTS.opnum("ept_map"):
        try:
            for key, value in _from_fields(fields or {}, request).items():
                out.setdefault(key, value)
        except Exception as exc:  # never raise on odd input
            out["_decode_error"] = f"{type(exc).__name__}: {exc}"
    return out
