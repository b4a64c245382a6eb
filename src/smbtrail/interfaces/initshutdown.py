"""InitShutdown and WindowsShutdown (MS-RSP): remote shutdown/reboot with its message and timeout.

winreg opnums 24/30 carry the same arguments and reuse shutdown_request().
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .decoding import Operations, decode_call
from .ndr import Reader

INTERFACES = ("initshutdown", "WindowsShutdown")
DISSECTORS = ("initshutdown",)
FIELD_ARGS = {
    "initshutdown.initshutdown_InitEx.timeout": ("timeout", "int"),
    "initshutdown.initshutdown_Init.timeout": ("timeout", "int"),
    "initshutdown.initshutdown_InitEx.reason": ("reason", "int"),
    "initshutdown.initshutdown_InitEx.do_reboot": ("reboot", "int"),
    "initshutdown.initshutdown_Init.do_reboot": ("reboot", "int"),
    "initshutdown.initshutdown_InitEx.force_apps": ("force", "int"),
    "initshutdown.initshutdown_Init.force_apps": ("force", "int"),
    "initshutdown.werror": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)
SHUTDOWN_RESTART = 0x4
SHUTDOWN_FORCE = 0x3


def shutdown_request(r: Reader, out: Dict[str, Any], extended: bool) -> None:
    """Server (one wchar), [unique] message, timeout, then either the two BOOLEAN flags
    (+ reason when extended) of BaseInitiateShutdown(Ex), or the DWORD flags, reason and client
    hint of WsdrInitiateShutdown; the two are told apart by what is left in the stub."""
    r.wchar_pointer()
    message = r.unique_unicode_string()
    if message:
        out["message"] = message
    out["timeout"] = r.u32()
    if not extended and r.remaining() >= 12:
        flags = r.u32()
        out["reboot"] = bool(flags & SHUTDOWN_RESTART)
        out["force"] = bool(flags & SHUTDOWN_FORCE)
        out["reason"] = r.u32()
        return
    out["force"] = bool(r.u8())
    out["reboot"] = bool(r.u8())
    if extended:
        out["reason"] = r.u32()
    r.end()


def _init(r: Reader, out: Dict[str, Any]) -> None:
    shutdown_request(r, out, False)


def _init_ex(r: Reader, out: Dict[str, Any]) -> None:
    shutdown_request(r, out, True)


REQUESTS = Operations(INTERFACES, {
    "BaseInitiateShutdown": _init, "WsdrInitiateShutdown": _init, "BaseInitiateShutdownEx": _init_ex,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    out = decode_call(REQUESTS, {}, FIELD_ARGS, opnum, request, fields, stub)
    for key in ("reboot", "force"):
        if isinstance(out.get(key), int):
            out[key] = bool(out[key])
    return out
