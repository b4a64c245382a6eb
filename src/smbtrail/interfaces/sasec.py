"""SASec (MS-TSCH): task account calls on \\PIPE\\atsvc (no tshark dissector: stub only)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call, server
from .ndr import Reader

INTERFACES = ("SASec",)
DISSECTORS: tuple = ()
FIELDS: tuple = ()


def _sa_set_account(r: Reader, out: Dict[str, Any]) -> None:
    """SASetAccountInformation: server, job name, account (the password is read past, never kept)."""
    server(r, out)
    out["task_name"] = r.wstring()
    out["account"] = r.wstring()


def _sa_set_ns_account(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    account = r.unique_wstring()
    if account:
        out["account"] = account


def _sa_get_account(r: Reader, out: Dict[str, Any]) -> None:
    server(r, out)
    out["task_name"] = r.wstring()


REQUESTS = Operations(INTERFACES, {
    "SASetAccountInformation": _sa_set_account, "SASetNSAccountInformation": _sa_set_ns_account,
    "SAGetNSAccountInformation": server, "SAGetAccountInformation": _sa_get_account,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, {}, {}, opnum, request, fields, stub)
