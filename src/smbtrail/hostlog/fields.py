"""Value cleaners shared by the readers and the normalizer: times, logon ids, addresses, access masks."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Dict, List, Optional

from .. import lookups

EMPTY = frozenset(("", "-", "NULL", "(null)", "None"))
LOCAL_ADDRESSES = ("::1", "127.0.0.1", "0.0.0.0", "::", "localhost")

_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*(Z|UTC|[+-]\d\d:?\d\d)?",
                   re.IGNORECASE)
_EXEC = re.compile(r"<Exec>(.*?)</Exec>", re.DOTALL)
_TAG = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.DOTALL) for name in ("Command", "Arguments", "UserId")}


def text(value: Any) -> Optional[str]:
    """A field value as stripped text, None when empty or a Windows placeholder ('-')."""
    if value is None:
        return None
    out = value.strip() if isinstance(value, str) else str(value)
    return None if out in EMPTY else out


def parse_time(value: Any) -> Optional[datetime]:
    """ISO-8601-like times as Windows, python-evtx, Samba and collectors write them, in UTC; naive means UTC."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if value.__class__ is str and len(value) == 27 and value[26] == "Z" and value[19] == ".":
        try:  # the evtx package's 2019-03-19T00:02:04.226251Z: most of the times read
            return datetime.fromisoformat(value[:26] + "+00:00")
        except ValueError:
            pass
    match = _TIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        out = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                       int((frac or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError:
        return None
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        out = out - offset if zone[0] == "+" else out + offset
    return out


def logon_id(value: Any) -> Optional[str]:
    """Lowercase hex with 0x; None for 0 (no session). Samba writes hex without the 0x."""
    raw = text(value)
    if raw is None:
        return None
    try:
        number = int(raw, 16)  # "0x17E2C0" and Samba's "64f438749ff1d8cb" alike
    except ValueError:
        return raw.lower()
    return hex(number) if number else None


def address(value: Any) -> Optional[str]:
    """A client address: IPv4-mapped IPv6 unwrapped; '-', empty and loopback mean no remote client."""
    raw = text(value)
    if raw is None:
        return None
    if raw.lower().startswith("::ffff:") and "." in raw:
        raw = raw[7:]
    return None if raw in LOCAL_ADDRESSES else raw


def port(value: Any) -> Optional[int]:
    raw = text(value)
    try:
        number = int(raw) if raw is not None else 0
    except ValueError:
        return None
    return number if 0 < number < 65536 else None


def access_names(value: Any) -> List[str]:
    raw = text(value)
    if raw is None:
        return []
    try:
        mask = int(raw, 16) if raw.lower().startswith("0x") else int(raw)
    except ValueError:
        return []
    return lookups.access_names(mask, "host")  # file and pipe rights, named as the network side names them


def hex_text(value: Any) -> Any:
    """0x00000000 and 0X1A as 0x0 and 0x1a: one spelling whatever wrote the number."""
    try:
        return hex(int(str(value), 16))
    except ValueError:
        return value


def decimal_hex(value: str) -> str:
    """588 -> 0x24c (a number some readers write in decimal); anything else unchanged."""
    return hex(int(value)) if value.isdigit() else value


@lru_cache(maxsize=1024)  # a log names few hosts, on every record
def short_host(name: Optional[str]) -> Optional[str]:
    """WIN-77LTAPHIQ1R.example.corp -> win-77ltaphiq1r (addresses stay whole)."""
    if not name:
        return None
    if name.replace(".", "").isdigit() or ":" in name:
        return name
    return name.split(".", 1)[0].lower()


def task_actions(xml: Optional[str]) -> Dict[str, Any]:
    """Exec Command/Arguments and the run-as UserId of a task definition (TaskContent XML)."""
    if not xml:
        return {}
    commands = []
    for block in _EXEC.findall(xml):
        command = _tag("Command", block)
        if command:
            arguments = _tag("Arguments", block)
            commands.append(f"{command} {arguments}" if arguments else command)
    out: Dict[str, Any] = {}
    if commands:
        out["task_command"] = commands[0]
        if len(commands) > 1:
            out["task_commands"] = commands
    run_as = _tag("UserId", xml)
    if run_as:
        out["task_run_as"] = run_as
    return out


def _tag(name: str, xml: str) -> Optional[str]:
    match = _TAG[name].search(xml)
    return html.unescape(match.group(1).strip()) if match and match.group(1).strip() else None
