#!/usr/bin/env python3
"""Extract SMB3 session keys from Samba logs written with `debug encryption = yes`.

Output, one line per session (all hex, the order bytes have on the wire):
    <session id> <session key> <server-to-client key> <client-to-server key>
The session key is cut to 16 bytes (MS-SMB2 uses the first 16; tshark accepts no more).

    samba_keys.py LOGFILE...        prints the key lines of every session found
"""
from __future__ import annotations

import re
import sys
from typing import Dict, Iterable, List

_FIELD = re.compile(
    r"^\s*(Session Id|Session Key|Signing Key|App Key|ServerIn Key|ServerOut Key)\s+\[[0-9A-Fa-f]{4}\]\s+(.*)$")
_CONT = re.compile(r"^\s+\[[0-9A-Fa-f]{4}\]\s+(.*)$")
_HEXRUN = re.compile(r"(?:[0-9A-Fa-f]{2}[ \t]{1,3}){0,15}[0-9A-Fa-f]{2}")


def _hexbytes(text: str) -> str:
    """The hex bytes at the start of a dump line (at most 16), without the ASCII column after them."""
    m = _HEXRUN.match(text)
    return re.sub(r"\s", "", m.group(0)).lower() if m else ""


def parse(text: str) -> List[Dict[str, str]]:
    """Every key dump in `text`, in order, as dicts with the fields named as in the log."""
    sessions: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    field = ""
    for line in text.splitlines():
        m = _FIELD.match(line)
        if m:
            field = m.group(1)
            if field == "Session Id" and current:
                sessions.append(current)
                current = {}
            current[field] = _hexbytes(m.group(2))
            continue
        c = _CONT.match(line)
        if c and field:
            current[field] += _hexbytes(c.group(1))
            continue
        field = ""
    if current:
        sessions.append(current)
    return [s for s in sessions if {"Session Id", "Session Key", "ServerIn Key", "ServerOut Key"} <= s.keys()]


def key_lines(sessions: Iterable[Dict[str, str]]) -> List[str]:
    """Lines `<sesid> <seskey16> <s2c> <c2s>`, each session once."""
    seen = set()
    out = []
    for s in sessions:
        line = "{} {} {} {}".format(s["Session Id"], s["Session Key"][:32], s["ServerOut Key"], s["ServerIn Key"])
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def main(argv: List[str]) -> int:
    text = ""
    for path in argv:
        with open(path, encoding="utf-8", errors="replace") as f:
            text += f.read()
    for line in key_lines(parse(text)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
