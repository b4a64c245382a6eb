#!/usr/bin/env python3
"""What tshark sees in a lab capture, with and without the lab's secrets (used by tests/test_lab_fixtures.py).

    labcheck.py [FIXTURE_DIR]      prints, per manifest row, the operations tshark names and what is missing
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lab"


def read_manifest(fixtures: Path = FIXTURES) -> List[Dict[str, str]]:
    with open(fixtures / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_keys(path: Path) -> List[List[str]]:
    """The key lines of a .keys file: [sesid, session key, s2c, c2s], hex."""
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def tshark_options(keys: Optional[List[List[str]]] = None, password: str = "") -> List[str]:
    opts: List[str] = []
    for sesid, seskey, s2c, c2s in keys or []:
        opts += ["-o", f"uat:smb2_seskey_list:{sesid},{seskey},{s2c},{c2s}"]
    if password:
        opts += ["-o", f"ntlmssp.nt_password:{password}"]
    return opts


def tshark_fields(pcap: Path, fields: List[str], display_filter: str = "", opts: Optional[List[str]] = None,
                  two_pass: bool = True) -> List[List[str]]:
    argv = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    argv += (["-2"] if two_pass else []) + (opts or [])
    if display_filter:
        argv += ["-Y", display_filter]
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def operations(pcap: Path, opts: Optional[List[str]] = None) -> Set[str]:
    """`<protocol>.<operation>` for every DCE/RPC request tshark names, e.g. `svcctl.CreateServiceW`."""
    seen: Set[str] = set()
    for proto, info in tshark_fields(pcap, ["_ws.col.Protocol", "_ws.col.Info"], "dcerpc.pkt_type == 0", opts):
        for part in info.split(","):
            words = part.split()
            if len(words) >= 2 and words[-1] == "request":
                seen.add(f"{proto.lower()}.{words[-2]}")
            elif len(words) >= 2 and words[1] == "request":
                seen.add(f"{proto.lower()}.{words[0]}")
    return seen


def undecrypted(pcap: Path, opts: Optional[List[str]] = None) -> int:
    """SMB2 transform frames tshark could not open."""
    return len(tshark_fields(pcap, ["frame.number"], "smb2.header.transform.nonce && !smb2.cmd", opts, False))


def transform_frames(pcap: Path) -> int:
    return len(tshark_fields(pcap, ["frame.number"], "smb2.header.transform.nonce", None, False))


def observed_encryption(pcap: Path) -> str:
    """none: no SMB2 transform frame; all: nothing after SESSION_SETUP in clear; partial: some trees clear."""
    if transform_frames(pcap) == 0:
        return "none"
    clear = tshark_fields(pcap, ["frame.number"], "smb2.cmd > 1 && !smb2.header.transform.nonce", None, False)
    return "all" if not clear else "partial"


def main(argv: List[str]) -> int:
    fixtures = Path(argv[0]) if argv else FIXTURES
    for row in read_manifest(fixtures):
        pcap = fixtures / row["capture"]
        opts = tshark_options(read_keys(fixtures / row["keys"]), row["password"] if row["auth"] == "ntlm" else "")
        seen = operations(pcap, opts)
        expected = [op for op in row["expected_operations"].split(";") if op]
        missing = [op for op in expected if op not in seen]
        enc = transform_frames(pcap)
        print(f"{row['mode']}/{row['scenario']}: enc {enc} -> left {undecrypted(pcap, opts)}; "
              f"missing {missing or '-'}; seen {sorted(seen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
