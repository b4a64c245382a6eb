"""wkssvc (MS-WKST): workstation info, logged-on users (psloggedon, netview), domain join."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call, server
from .ndr import Reader
from .srvsvc import column, enum_entries

INTERFACES = ("wkssvc",)
DISSECTORS = ("wkssvc",)
FIELD_ARGS = {
    "wkssvc.wkssvc_NetWkstaGetInfo.server_name": "server",
    "wkssvc.wkssvc_NetWkstaEnumUsers.server_name": "server",
    "wkssvc.wkssvc_NetrJoinDomain2.domain_name": "domain",
    "wkssvc.wkssvc_NetrWkstaUserInfo1.user_name": ("accounts", "list"),
    "wkssvc.wkssvc_NetrWkstaUserInfo0.user_name": ("accounts", "list"),
    "wkssvc.werror": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)
USER_LEVELS = {0: "s", 1: "ssss"}


def _join_domain(r: Reader, out: Dict[str, Any]) -> None:
    """NetrJoinDomain2 / NetrUnjoinDomain2: server, domain (or account), OU, account ..."""
    server(r, out)
    for key in ("domain", "ou", "account"):
        value = r.unique_wstring()
        if value:
            out[key] = value


def _unjoin_domain(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    account = r.unique_wstring()
    if account:
        out["account"] = account


def _user_enum_response(r: Reader, out: Dict[str, Any]) -> None:
    table = enum_entries(r, USER_LEVELS)
    out["accounts"] = column(table, 0)
    domains = column(table, 1)
    if domains:
        out["domains"] = domains


REQUESTS = Operations(INTERFACES, {
    "NetrWkstaGetInfo": server, "NetrWkstaSetInfo": server, "NetrWkstaUserEnum": server, "NetrWkstaTransportEnum": server,
    "NetrUseEnum": server, "NetrGetJoinInformation": server, "NetrJoinDomain2": _join_domain,
    "NetrUnjoinDomain2": _unjoin_domain, "NetrRenameMachineInDomain2": server, "NetrGetJoinableOUs2": server,
})
RESPONSES = Operations(INTERFACES, {"NetrWkstaUserEnum": _user_enum_response})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
