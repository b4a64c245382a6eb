"""netlogon (MS-NRPC): computer and account names of secure-channel setup (names only)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call, server
from .ndr import Reader

INTERFACES = ("netlogon",)
DISSECTORS = ("rpc_netlogon",)
FIELDS: tuple = ()


def _req_challenge(r: Reader, out: Dict[str, Any]) -> None:
    """NetrServerReqChallenge: [unique] PrimaryName, [string] ComputerName, ClientChallenge."""
    server(r, out)
    out["machine"] = r.wstring()


def _authenticate(r: Reader, out: Dict[str, Any]) -> None:
    """NetrServerAuthenticate(2/3) and NetrServerPasswordSet(2): PrimaryName, AccountName,
    SecureChannelType, ComputerName, ..."""
    server(r, out)
    out["account"] = r.wstring()
    out["channel_type"] = r.enum()
    out["machine"] = r.wstring()


REQUESTS = Operations(INTERFACES, {
    "NetrServerReqChallenge": _req_challenge, "NetrServerAuthenticate": _authenticate,
    "NetrServerPasswordSet": _authenticate, "NetrServerAuthenticate2": _authenticate,
    "NetrServerAuthenticate3": _authenticate, "NetrServerPasswordSet2": _authenticate,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, {}, {}, opnum, request, fields, stub)
