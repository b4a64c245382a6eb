"""The network engine's records of a capture, read once a session and shared by every test that asks for the
same capture with the same secrets (tshark is most of the suite's time); each caller gets its own copy."""

from __future__ import annotations

import copy
import os
import subprocess
from collections import Counter
from functools import cache
from typing import List, Tuple

from smbtrail.engine import Options, network_records
from smbtrail.records import Record


@cache
def _run(files: Tuple[Tuple[str, int, int], ...], keys: str, password: str) -> Tuple[Record, ...]:
    from pydantic import SecretStr

    options = Options(keys_file=keys or None, passwords=[SecretStr(password)] if password else [])
    return tuple(network_records([path for path, _, _ in files], options))


def records(*paths, keys: str = "", password: str = "") -> List[Record]:
    """network_records(paths) with these secrets; a file changed since (same path, new content) is read again."""
    files = tuple((str(p), *_version(str(p))) for p in paths)
    return copy.deepcopy(list(_run(files, str(keys or ""), password)))


def _version(path: str) -> Tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def kinds(recs, kind: str) -> List[Record]:
    return [r for r in recs if r.kind == kind]


def tshark_dcerpc(path: str) -> Tuple[Counter, bool]:
    """Opnums of every complete DCE/RPC request PDU the client sent (last fragment of each call), and whether
    any bind was acknowledged in the capture: one tshark pass."""
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", "dcerpc.pkt_type == 0 || dcerpc.pkt_type == 12", "-T", "fields",
         "-e", "dcerpc.pkt_type", "-e", "dcerpc.opnum", "-e", "dcerpc.cn_flags.last_frag",
         "-e", "smb2.flags.response"],
        capture_output=True, text=True, check=False).stdout
    counts: Counter = Counter()
    acked = False
    for line in out.splitlines():
        types, opnums, lasts, smb_response = (line.split("\t") + ["", "", "", ""])[:4]
        types_l, ops_l, last_l = types.split(","), opnums.split(","), lasts.split(",")
        acked = acked or "12" in types_l
        if smb_response.startswith(("1", "True")):
            continue  # a pipe response that echoes the request PDU is not a second request
        for i, pkt in enumerate(types_l):
            if pkt != "0":
                continue
            last = last_l[i] if i < len(last_l) else last_l[-1]
            op = ops_l[i] if i < len(ops_l) else ops_l[-1]
            if last in ("1", "True") and op:
                counts[int(op)] += 1
    return counts, acked
