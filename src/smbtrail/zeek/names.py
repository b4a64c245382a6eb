"""Zeek's DCE/RPC names -> interface UUID and opnum, and back.

dce_rpc.log names the interface (`endpoint`) and the call (`operation`), not the UUID and opnum the
engine classifies by. Zeek takes both names from its own table (base/protocols/dce-rpc/consts.zeek),
which follows the MS-* specifications, as lookups/rpc_interfaces.csv and rpc_operations.csv do: a
name resolves against those, with MS-SCMR's `R` prefix dropped (Zeek writes `CreateServiceW` for
`RCreateServiceW`). Where Zeek's name differs, lookups/zeek_dce_rpc.csv says so. Zeek writes
`unknown-<uuid>` / `unknown-<opnum>` for what its table lacks; both are read back.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Dict, Optional, Tuple

from ..lookups import rows as _rows

R_PREFIX = re.compile(r"^R(?=[A-Z])")
UNKNOWN = re.compile(r"^unknown-(.+)$", re.IGNORECASE)


@lru_cache(maxsize=1)
def _tables() -> Tuple[Dict[str, str], Dict[Tuple[str, str], int], Dict[Tuple[str, int], str], Dict[str, str]]:
    """endpoint -> uuid; (uuid, operation) -> opnum; and the reverse: (uuid, opnum) -> Zeek's operation,
    uuid -> Zeek's endpoint."""
    endpoints: Dict[str, str] = {}
    ops: Dict[Tuple[str, str], int] = {}
    zeek_ops: Dict[Tuple[str, int], str] = {}
    zeek_endpoints: Dict[str, str] = {}
    for row in _rows("zeek_dce_rpc.csv"):
        uuid = row["uuid"].lower()
        if row["operation"]:
            ops[(uuid, row["operation"].lower())] = int(row["opnum"])
            zeek_ops[(uuid, int(row["opnum"]))] = row["operation"]
        else:
            endpoints[row["endpoint"].lower()] = uuid
            zeek_endpoints[uuid] = row["endpoint"]
    for row in _rows("rpc_interfaces.csv"):
        if row.get("kind", "interface") == "interface":
            endpoints.setdefault(row["name"].lower(), row["uuid"].lower())
            zeek_endpoints.setdefault(row["uuid"].lower(), row["name"])
    operations = _rows("rpc_operations.csv")
    for column in ("operation", "plain", "wireshark_name"):  # the more exact name wins
        for row in operations:
            name = R_PREFIX.sub("", row["operation"]) if column == "plain" else row[column]
            if name and not name.startswith("("):
                ops.setdefault((row["uuid"].lower(), name.lower()), int(row["opnum"]))
    for row in operations:
        zeek_ops.setdefault((row["uuid"].lower(), int(row["opnum"])), R_PREFIX.sub("", row["operation"]))
    return endpoints, ops, zeek_ops, zeek_endpoints


def interface_uuid(endpoint: Optional[str]) -> Optional[str]:
    if not endpoint:
        return None
    unknown = UNKNOWN.match(endpoint)
    if unknown:
        return unknown.group(1).lower()
    return _tables()[0].get(endpoint.lower())


def opnum(uuid: Optional[str], operation: Optional[str]) -> Optional[int]:
    if not operation:
        return None
    unknown = UNKNOWN.match(operation)
    if unknown:
        return int(unknown.group(1)) if unknown.group(1).isdigit() else None
    return _tables()[1].get(((uuid or "").lower(), operation.lower())) if uuid else None


def zeek_endpoint(uuid: str) -> str:
    """The `endpoint` Zeek writes for an interface UUID."""
    return _tables()[3].get(uuid.lower()) or f"unknown-{uuid.lower()}"


def zeek_operation(uuid: str, number: int) -> str:
    """The `operation` Zeek writes for a call."""
    return _tables()[2].get((uuid.lower(), number)) or f"unknown-{number}"
