"""Samba vfs_full_audit log entries -> flat events (channel `Samba`, provider `samba:full_audit`).

What Samba 4.17's full_audit module writes to Samba's own log with `full_audit:syslog = false` (seen in
tests/fixtures/lab/*/*.full_audit.log, made by tests/lab): a debug header in the server's local time,
without a zone, then the entry on the next line, indented by two spaces:

    [2026/11/26 00:42:12.012957,  1] ../../source3/modules/vfs_full_audit.c:643(do_log)
      <prefix>|<operation>|ok|<arguments>        (or |fail (<reason>)| for a refused operation)

The prefix is `full_audit:prefix` after Samba's substitutions. Read: the lab's `%U|%D|%I|%m|%i|%S|%P`
(user, domain, client IP, client NetBIOS name, server IP, share, share path) and Samba's default `%u|%I`.
Samba replaces `$ % ' " ; \\`` in substituted values by `_` (`C$` -> `C_`); connect and disconnect name
the share exactly in their arguments, and that name is kept for the share's later entries. There is no
client port and no session id: a join to a capture is account + server + time.
Mapped (event ids inferred: Samba logs none):
- connect -> 5140 (share accessed): share.
- create_file (`0x<access>|file|dir|<disposition>|<path>`) -> 5145 (share object checked): share, path
  relative to the share, access mask; unlinkat (a delete) and renameat (`<old>|<new>`) -> 5145 with DELETE.
- Other operations (disconnect, pread_send, pwrite_send ...) keep no event id: read with --all-events only.
Times: Samba writes local time; it is read as UTC (set TZ=UTC for smbd, as the lab's host does) and said so.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from .errors import error

HEADER = re.compile(rb"^\[(\d{4})/(\d\d)/(\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?),[^\]]*\]\s+\S*vfs_full_audit\.c:")
OPERATIONS = frozenset(("connect", "disconnect", "create_file", "unlinkat", "renameat", "openat", "pread",
                        "pread_send", "pwrite", "pwrite_send", "mkdirat", "fchmod", "fchown", "fntimes",
                        "close", "chdir", "fget_nt_acl", "fset_nt_acl", "streaminfo", "fstreaminfo"))
LAB_PREFIX = ("user", "domain", "clientIp", "clientName", "serverIp", "shareSubst", "sharePath")
DEFAULT_PREFIX = ("user", "clientIp")
DELETE = "0x10000"
TIME_NOTE = "Samba full_audit writes local time without a zone; read as UTC"
MAX_SHARES = 4096


def is_full_audit(text: str) -> bool:
    """True when a Samba log's first lines hold a full_audit entry (the reader's content test)."""
    return "vfs_full_audit.c:" in text and "(do_log)" in text


def read_full_audit(lines: Iterable[bytes], source: str) -> Iterator[Any]:
    """Flat events of the full_audit entries of a Samba log; other messages are skipped."""
    shares: Dict[Tuple[str, str], str] = {}  # (substituted share, share path) -> the exact share name
    when: Optional[str] = None
    for number, line in enumerate(lines, 1):
        header = HEADER.match(line)
        if header:
            year, month, day, clock = (g.decode() for g in header.groups())
            when = f"{year}-{month}-{day}T{clock}"
            continue
        if when is None:
            continue
        stamp, when = when, None  # the entry is the one line after its header
        text = line.decode("utf-8", "replace").strip()
        entry = _entry(text)
        if entry is None:
            yield error(source, f"line {number}: not a full_audit entry ({len(text)} characters)", partial=True)
            continue
        yield _flat(entry, stamp, shares)


def _entry(text: str) -> Optional[Dict[str, Any]]:
    fields = text.split("|")
    at = next((i for i in range(len(fields) - 1) if fields[i] in OPERATIONS and _status(fields[i + 1])), None)
    if at is None:
        return None
    prefix = fields[:at]
    if len(prefix) >= len(LAB_PREFIX):  # a user name holding `|` widens the first field, never the others
        names, cut = LAB_PREFIX, len(prefix) - len(LAB_PREFIX) + 1
    elif len(prefix) == len(DEFAULT_PREFIX):
        names, cut = DEFAULT_PREFIX, 1
    else:
        return None
    values = ["|".join(prefix[:cut])] + prefix[cut:]
    entry: Dict[str, Any] = dict(zip(names, values))
    entry.update(operation=fields[at], status=fields[at + 1], arguments=fields[at + 2:])
    return entry


def _status(text: str) -> bool:
    return text == "ok" or text.startswith("fail")


def _flat(entry: Dict[str, Any], stamp: str, shares: Dict[Tuple[str, str], str]) -> Dict[str, Any]:
    operation, args = entry.pop("operation"), entry.pop("arguments")
    flat: Dict[str, Any] = {"EventID": None, "Channel": "Samba", "Provider": "samba:full_audit", "Computer": None,
                            "EventRecordID": None, "TimeCreated": stamp, "@time_note": TIME_NOTE, "@inferred": True,
                            "operation": operation}
    flat.update((k, v) for k, v in entry.items() if v)
    key = (entry.get("shareSubst") or "", entry.get("sharePath") or "")
    if operation in ("connect", "disconnect") and args:
        if len(shares) < MAX_SHARES:
            shares[key] = args[0]
        flat["share"] = args[0]
    else:
        flat["share"] = shares.get(key) or entry.get("shareSubst")
    if operation == "connect":
        flat["EventID"] = 5140
    elif operation == "create_file" and len(args) >= 4:
        flat.update(EventID=5145, accessMask=args[0], objectType=args[1], disposition=args[2],
                    path=_relative(args[3], entry.get("sharePath")))
    elif operation in ("unlinkat", "renameat") and args:
        flat.update(EventID=5145, accessMask=DELETE, path=_relative(args[0], entry.get("sharePath")))
        if operation == "renameat" and len(args) > 1:
            flat["newPath"] = _relative(args[1], entry.get("sharePath"))
    elif args:
        flat["path"] = _relative(args[-1], entry.get("sharePath"))
    return flat


def _relative(path: str, root: Optional[str]) -> str:
    """/srv/share/c/Temp/x.tmp under the share path /srv/share/c -> Temp\\x.tmp (Windows' RelativeTargetName);
    the share's own root -> \\."""
    if root and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root.rstrip("/")):]
    parts: List[str] = [p for p in path.split("/") if p and p != "."]
    return "\\".join(parts) or "\\"
