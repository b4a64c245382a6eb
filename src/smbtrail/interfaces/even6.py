"""even6 (MS-EVEN6): wevtutil-style remote log clear/export/query over TCP (no tshark dissector)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call
from .ndr import Reader

INTERFACES = ("even6",)
DISSECTORS: tuple = ()
FIELDS: tuple = ()


def _put(out: Dict[str, Any], key: str, value: Optional[str]) -> None:
    if value:
        out[key] = value


def _clear(r: Reader, out: Dict[str, Any]) -> None:
    """EvtRpcClearLog: control handle, channel path, [unique] backup path, flags."""
    out["_handle_in"] = r.handle()
    _put(out, "log_name", r.wstring())
    _put(out, "backup_file", r.unique_wstring())


def _export(r: Reader, out: Dict[str, Any]) -> None:
    """EvtRpcExportLog: control handle, [unique] channel path, query, backup path, flags."""
    out["_handle_in"] = r.handle()
    _put(out, "log_name", r.unique_wstring())
    _put(out, "query", r.wstring())
    _put(out, "backup_file", r.wstring())


def _query(r: Reader, out: Dict[str, Any]) -> None:
    """EvtRpcRegisterLogQuery / EvtRpcRegisterRemoteSubscription: [unique] path, query, ..."""
    _put(out, "log_name", r.unique_wstring())
    _put(out, "query", r.wstring())


def _open_log(r: Reader, out: Dict[str, Any]) -> None:
    _put(out, "log_name", r.wstring())


REQUESTS = Operations(INTERFACES, {
    "EvtRpcRegisterRemoteSubscription": _query, "EvtRpcRegisterLogQuery": _query, "EvtRpcClearLog": _clear,
    "EvtRpcExportLog": _export, "EvtRpcOpenLogHandle": _open_log,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, {}, {}, opnum, request, fields, stub)
