"""One argument decoder per MS-RPC interface, chosen by bind UUID (never by pipe name).

Each module holds INTERFACES (the names of the interfaces it decodes: lookups/rpc_interfaces.csv gives
their UUIDs), FIELDS (the tshark 4.0 fields it reads), DISSECTORS (the tshark
sub-dissectors whose calls it can also parse from the raw stub) and
decode(opnum, request, fields, stub) -> dict of intent arguments.
Interface and operation names come from lookups/rpc_interfaces.csv and lookups/rpc_operations.csv; rules name
an interface by its name or one of its aliases (interface_uuid).

Optional keys the caller may add to `fields`: "_ndr64" ("1"/"0", the transfer syntax accepted for
the call's context; without it both are tried) and "_partial" ("1" when the stub is only the first
fragment(s) of the PDU, so no status is read from its tail). Results may carry "_handle_in" /
"_handle_out" (20-byte context handles as hex) and "_decode_error" (what stopped the parse).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Protocol, Set, Tuple

from .. import lookups
from . import (
    atsvc,
    dcom,
    dispatch,
    drsuapi,
    epm,
    even6,
    eventlog,
    initshutdown,
    lsarpc,
    netlogon,
    samr,
    sasec,
    srvsvc,
    svcctl,
    tsch,
    winreg,
    wkssvc,
    wmi,
    wmi_login,
)

MODULES = (svcctl, atsvc, sasec, tsch, winreg, srvsvc, wkssvc, samr, lsarpc, eventlog, even6, initshutdown,
           epm, dcom, dispatch, wmi, wmi_login, drsuapi, netlogon)


class InterfaceDecoder(Protocol):
    INTERFACES: Tuple[str, ...]
    FIELDS: Tuple[str, ...]
    DISSECTORS: Tuple[str, ...]

    def decode(self, opnum: int, request: bool, fields: Mapping[str, str],
               stub: Optional[bytes]) -> Dict[str, Any]: ...


def uuids(module: InterfaceDecoder) -> Tuple[str, ...]:
    """The UUIDs of the interfaces a decoder module names."""
    found = []
    for name in module.INTERFACES:
        uuid = interface_uuid(name)
        if uuid is None:
            raise LookupError(f"{module.__name__} decodes {name!r}, an interface lookups/rpc_interfaces.csv lacks")
        found.append(uuid)
    return tuple(found)


@lru_cache(maxsize=1)
def _by_uuid() -> Dict[str, InterfaceDecoder]:
    return {uuid: module for module in MODULES for uuid in uuids(module)}


def decoder_for(uuid: str) -> Optional[InterfaceDecoder]:
    return _by_uuid().get((uuid or "").strip().lower())


def identify(opnum: int, request: bool, stub: Optional[bytes]) -> Optional[str]:
    """The interface UUID of a request whose bind was not captured, when its stub alone says so
    (DCOM activation, IDispatch::Invoke); None otherwise. The caller should mark the record inferred."""
    for module in (dcom, dispatch):
        if module.matches(opnum, request, stub):
            return uuids(module)[0]
    return None


def all_fields() -> List[str]:
    """Union of the tshark field names all decoders read, in a stable order."""
    seen: Dict[str, None] = {}
    for module in MODULES:
        for field in module.FIELDS:
            seen.setdefault(field, None)
    return list(seen)


def all_dissectors() -> List[str]:
    """tshark protocols that may be disabled (--disable-protocol) so that dcerpc.stub_data carries
    the raw stub of every call of these interfaces; the decoders then parse the stub themselves."""
    seen: Dict[str, None] = {}
    for module in MODULES:
        for name in module.DISSECTORS:
            seen.setdefault(name, None)
    return list(seen)


@lru_cache(maxsize=1)
def _interfaces() -> Dict[str, Dict[str, str]]:
    rows = lookups.rows("rpc_interfaces.csv")
    # a UUID can name an interface and nothing else; keep the interface row when kinds overlap
    table: Dict[str, Dict[str, str]] = {}
    for row in rows:
        table.setdefault(row["uuid"].lower(), row)
    return table


@lru_cache(maxsize=1)
def _operations() -> Dict[Tuple[str, int], Dict[str, str]]:
    return {(row["uuid"].lower(), int(row["opnum"])): row for row in lookups.rows("rpc_operations.csv")}


@lru_cache(maxsize=1)
def _uuids_by_name() -> Dict[str, str]:
    """Interface name or alias, lower case -> UUID (DCOM classes and transfer syntaxes are no interfaces)."""
    table: Dict[str, str] = {}
    for uuid, row in _interfaces().items():
        if row["kind"] == "interface":
            for name in [row["name"]] + lookups.cells(row["aliases"]):
                table.setdefault(name.lower(), uuid)
    return table


def interface_uuid(name: str) -> Optional[str]:
    """The UUID of an interface named as lookups/rpc_interfaces.csv names it or by one of its aliases (any case)."""
    return _uuids_by_name().get((name or "").strip().lower())


@lru_cache(maxsize=64)
def operation_opnums(uuids: Tuple[str, ...]) -> Dict[str, int]:
    """Operation name -> opnum for the operations of these interfaces; a name the table gives two opnums is left
    out (a decoder naming it fails tests/test_interfaces_lookups.py)."""
    wanted = {uuid.lower() for uuid in uuids}
    found: Dict[str, Set[int]] = {}
    for (uuid, opnum), row in _operations().items():
        if uuid in wanted:
            found.setdefault(row["operation"], set()).add(opnum)
    return {name: opnums.pop() for name, opnums in found.items() if len(opnums) == 1}


def interface_name(uuid: str) -> Optional[str]:
    row = _interfaces().get((uuid or "").strip().lower())
    return row["name"] if row else None


def operation_name(uuid: str, opnum: int) -> Optional[str]:
    row = _operations().get(((uuid or "").strip().lower(), int(opnum)))
    return row["operation"] if row else None


def operation_action(uuid: str, opnum: int) -> Optional[str]:
    """The short verb of lookups/rpc_operations.csv (create_service, add_job, set_value, ...)."""
    row = _operations().get(((uuid or "").strip().lower(), int(opnum)))
    return (row["action"] or None) if row else None


def class_name(clsid: str) -> Optional[str]:
    """A DCOM class name (MMC20.Application, ShellWindows, ...) from lookups/rpc_interfaces.csv."""
    row = _interfaces().get((clsid or "").strip().lower())
    return row["name"] if row and row.get("kind") == "dcom_class" else None
