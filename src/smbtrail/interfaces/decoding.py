"""What every interface decoder shares: reading tshark fields, running a stub parser, never raising.

A decoder module declares
  REQUESTS / RESPONSES: Operations(INTERFACES, {operation name: parser(reader, out)}) for the NDR stub (operations
    named as lookups/rpc_operations.csv names them: that table alone holds the opnums), and
  FIELD_ARGS: {tshark field: arg name or (arg name, kind)} for what tshark 4.0 already dissects,
and its decode() calls decode_call(). Stub values win over field values (no comma-joining there).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..capture.fields import first, split
from .ndr import NdrError, Reader, return_code

Parser = Callable[[Reader, Dict[str, Any]], None]
FieldSpec = Union[str, Tuple[str, str]]

# Set by the caller when it knows the transfer syntax of the call's presentation context.
NDR64_KEY = "_ndr64"
MAX_ITEMS = 4096  # array counts above this are corruption, not data
# Set by the caller when the stub is only the first fragments of the PDU (not reassembled).
PARTIAL_KEY = "_partial"
ERROR_KEY = "_decode_error"


class Operations(Mapping[int, Parser]):
    """A decoder's stub parsers by operation name, read by opnum: the names resolve through
    lookups/rpc_operations.csv (for any of the module's interfaces) on first use."""

    def __init__(self, interfaces: Sequence[str], parsers: Mapping[str, Parser]) -> None:
        self.interfaces = tuple(interfaces)
        self.parsers = dict(parsers)
        self._by_opnum: Optional[Dict[int, Parser]] = None

    def opnum(self, name: str) -> int:
        from . import interface_uuid, operation_opnums  # the lookups are read on first use, not at import

        opnums = operation_opnums(tuple(interface_uuid(i) or i for i in self.interfaces))
        if name not in opnums:
            raise KeyError(f"{name}: no operation of {', '.join(self.interfaces)} with one opnum in rpc_operations.csv")
        return opnums[name]

    def _table(self) -> Dict[int, Parser]:
        if self._by_opnum is None:
            table: Dict[int, Parser] = {}
            for name, parser in self.parsers.items():
                opnum = self.opnum(name)
                if table.setdefault(opnum, parser) is not parser:
                    raise KeyError(f"{name}: opnum {opnum} has another parser already")
            self._by_opnum = table
        return self._by_opnum

    def __getitem__(self, opnum: int) -> Parser:
        return self._table()[opnum]

    def get(self, opnum: int, default: Optional[Parser] = None) -> Optional[Parser]:  # type: ignore[override]
        return self._table().get(opnum, default)  # Mapping.get would raise and catch KeyError for each absent one

    def __iter__(self) -> Iterator[int]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


def text(fields: Mapping[str, str], name: str) -> Optional[str]:
    value = fields.get(name)
    return value if value else None


def number(fields: Mapping[str, str], name: str) -> Optional[int]:
    """First occurrence of a numeric field; tshark prints decimal or 0x-hex."""
    return to_int(first(fields, name)) if fields.get(name) else None


def to_int(value: str) -> Optional[int]:
    try:
        return int(value.strip(), 0)
    except ValueError:
        try:
            return int(value.strip())
        except ValueError:
            return None


def hex_bytes(fields: Mapping[str, str], name: str) -> Optional[str]:
    """First occurrence of a bytes field (context handle) as bare lower-case hex."""
    return first(fields, name).replace(":", "").lower() if fields.get(name) else None


def field_args(spec: Mapping[str, FieldSpec], fields: Mapping[str, str], request: bool) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for field, target in spec.items():
        if not fields.get(field):
            continue
        arg, kind = (target, "str") if isinstance(target, str) else target
        if kind == "handle":
            arg = "_handle_in" if request else "_handle_out"
            value: Any = hex_bytes(fields, field)
        elif kind == "int":
            value = number(fields, field)
        elif kind == "list":
            value = [item for item in split(fields[field]) if item]
        else:
            value = text(fields, field)
        if value is not None and arg not in out:
            out[arg] = value
    return out


def ndr64_hint(fields: Mapping[str, str]) -> Optional[bool]:
    value = fields.get(NDR64_KEY)
    if value is None or value == "":
        return None
    return str(value).lower() in ("1", "true", "yes", "ndr64")


def run_parser(parser: Parser, stub: bytes, fields: Mapping[str, str], out: Dict[str, Any]) -> None:
    """Parse in the transfer syntax the caller named; without one, try NDR and NDR64 and keep the
    parse that failed less and left fewer bytes unread. Partial results survive a failure."""
    hint = ndr64_hint(fields)
    syntaxes = [hint] if hint is not None else [False, True]
    outcomes = []
    for ndr64 in syntaxes:
        attempt: Dict[str, Any] = {}
        reader = Reader(stub, ndr64)
        try:
            parser(reader, attempt)
        except (NdrError, ValueError, IndexError, KeyError, struct.error) as exc:
            outcomes.append((1, 0, attempt, exc))
            continue
        outcomes.append((0, reader.remaining(), attempt, None))
    failed, _, attempt, exc = min(outcomes, key=lambda outcome: outcome[:2])
    out.update(attempt)
    if failed:
        out[ERROR_KEY] = f"{type(exc).__name__}: {exc}"


def decode_call(requests: Mapping[int, Parser], responses: Mapping[int, Parser],
                spec: Mapping[str, FieldSpec], opnum: int, request: bool,
                fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    """The body of every module's decode(): fields first, then the stub parser, then the status."""
    try:
        out = field_args(spec, fields or {}, request)
        parser = (requests if request else responses).get(opnum)
        if parser is not None and stub:
            run_parser(parser, stub, fields or {}, out)
        complete = not (fields or {}).get(PARTIAL_KEY) and ERROR_KEY not in out
        if not request and stub and complete and "return_code" not in out:
            out["return_code"] = return_code(stub)
        return out
    except Exception as exc:  # a decoder bug must not stop the run
        return {ERROR_KEY: f"{type(exc).__name__}: {exc}"}


def handle_only(r: Reader, out: Dict[str, Any]) -> None:
    """A request whose first argument is the context handle it acts on."""
    out["_handle_in"] = r.handle()


def handle_response(r: Reader, out: Dict[str, Any]) -> None:
    """A response that ends with a new context handle and the status."""
    if len(r.data) < 24:
        raise NdrError("response too short for a handle")
    r.pos = len(r.data) - 24
    out["_handle_out"] = r.raw(20).hex()
    out["return_code"] = int.from_bytes(r.raw(4), "little")


def server(r: Reader, out: Dict[str, Any]) -> None:
    """The leading [unique, string] server name most MS-RPC calls carry."""
    name = r.unique_wstring()
    if name:
        out["server"] = name


def handle_and_string(key: str) -> Parser:
    """A request of a context handle then an RPC_UNICODE_STRING (key, value, file, account ...)."""

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        out["_handle_in"] = r.handle()
        value = r.unicode_string()
        if value is not None:
            out[key] = value

    return parse


def counted_sids(r: Reader) -> List[str]:
    """{Count, [size_is(Count)] pointers to RPC_SID}: SAMPR_PSID_ARRAY and LSAPR_SID_ENUM_BUFFER."""
    r.struct_start()
    count = r.u32()
    if not r.pointer() or not count:
        return []
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("SID array size does not match its count")
    refs = [r.pointer() for _ in range(count)]
    return [r.sid() for ref in refs if ref]
