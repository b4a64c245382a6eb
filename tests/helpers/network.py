"""Shared helpers for tests that run the network engine."""

from __future__ import annotations

import subprocess
from collections import Counter
from functools import lru_cache
from typing import List, Tuple

from smbtrail.engine import Options, network_records
from smbtrail.records import Record


@lru_cache(maxsize=64)
def _run(paths: Tuple[str, ...], keys: str = "", password: str = "") -> Tuple[Record, ...]:
    from pydantic import SecretStr

    options = Options(keys_file=keys or None, passwords=[SecretStr(password)] if password else [])
    return tuple(network_records(list(paths), options))


def records(*paths, keys: str = "", password: str = "") -> List[Record]:
    return list(_run(tuple(str(p) for p in paths), keys, password))


def kinds(recs, kind: str) -> List[Record]:
    return [r for r in recs if r.kind == kind]


def tshark_request_opnums(path: str) -> Counter:
    """Opnums of every complete DCE/RPC request PDU the client sent (last fragment of each call)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", "dcerpc.pkt_type == 0", "-T", "fields",
         "-e", "dcerpc.pkt_type", "-e", "dcerpc.opnum", "-e", "dcerpc.cn_flags.last_frag",
         "-e", "smb2.flags.response"],
        capture_output=True, text=True, check=False).stdout
    counts: Counter = Counter()
    for line in out.splitlines():
        types, opnums, lasts, smb_response = (line.split("\t") + ["", "", "", ""])[:4]
        if smb_response.startswith(("1", "True")):
            continue  # a pipe response that echoes the request PDU is not a second request
        types_l, ops_l, last_l = types.split(","), opnums.split(","), lasts.split(",")
        for i, pkt in enumerate(types_l):
            if pkt != "0":
                continue
            last = last_l[i] if i < len(last_l) else last_l[-1]
            op = ops_l[i] if i < len(ops_l) else ops_l[-1]
            if last in ("1", "True") and op:
                counts[int(op)] += 1
    return counts
