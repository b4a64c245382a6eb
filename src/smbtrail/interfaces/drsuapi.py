"""drsuapi (MS-DRSR): directory replication (DCSync). The operation name is the intent; the
arguments are not decoded beyond what tshark shows."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import decode_call

UUIDS = ("e3514235-4b06-11d1-ab04-00c04fc2dcd2",)
DISSECTORS: tuple = ()
FIELDS: tuple = ()


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call({}, {}, {}, opnum, request, fields, stub)
