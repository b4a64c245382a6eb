#!/usr/bin/env python3
"""What tshark sees in a lab capture, with and without the lab's secrets (used by tests/test_lab_fixtures.py).

    labcheck.py [FIXTURE_DIR]      prints, per manifest row, the operations tshark names and what is missing
"""
from __future__ import annotations

import csv
import html
import re
import subprocess
import sys
from dataclasses import dataclass, field
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
                  two_pass: bool = False) -> List[List[str]]:
    argv = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    argv += (["-2"] if two_pass else []) + (opts or [])
    if display_filter:
        argv += ["-Y", display_filter]
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@dataclass
class Summary:
    """One tshark pass over a capture."""

    transform: int = 0  # SMB2 transform (encrypted) frames
    sealed: int = 0  # of those, frames tshark could not open
    clear_after_setup: int = 0  # SMB2 frames past NEGOTIATE/SESSION_SETUP that were sent in clear
    operations: Set[str] = field(default_factory=set)  # `<protocol>.<operation>` of the DCE/RPC requests named


def summary(pcap: Path, opts: Optional[List[str]] = None) -> Summary:
    s = Summary()
    rows = tshark_fields(pcap, ["smb2.header.transform.nonce", "smb2.cmd", "dcerpc.pkt_type", "_ws.col.Protocol",
                                "_ws.col.Info"], "smb2 || dcerpc", opts)
    for row in rows:
        nonce, cmds, ptypes, proto, info = (row + [""] * 5)[:5]
        if nonce:
            s.transform += 1
            s.sealed += not cmds
        elif any(c and int(c) > 1 for c in cmds.split(",")):
            s.clear_after_setup += 1
        if "0" in ptypes.split(","):
            s.operations |= _requests(proto, info)
    return s


def _requests(proto: str, info: str) -> Set[str]:
    seen = set()
    info = re.sub(r"\[[^\]]*\]", " ", info)  # "DsBind request[Long frame (52 bytes)]": Wireshark's notes
    for part in info.split(","):
        words = part.split()
        if len(words) >= 2 and words[-1] == "request":
            seen.add(f"{proto.lower()}.{words[-2]}")
        elif len(words) >= 2 and words[1] == "request":
            seen.add(f"{proto.lower()}.{words[0]}")
    return seen


_HEX_LINE = re.compile(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ){1,16})")


def wire_contains(pcap: Path, needles: List[str], opts: Optional[List[str]] = None) -> Dict[str, bool]:
    """Whether each string is on the wire: in tshark's dissection text, or as UTF-16LE/ASCII/XML-escaped bytes in
    any data source (frames, decrypted SMB3, reassembled or unsealed DCE/RPC stubs)."""
    argv = ["tshark", "-n", "-r", str(pcap), "-V", "-x"] + (opts or [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    blocks, current = [], bytearray()
    for line in out.splitlines():
        m = _HEX_LINE.match(line)
        if m:
            current += bytes.fromhex(m.group(1).replace(" ", ""))
        elif current:
            blocks.append(bytes(current))
            current = bytearray()
    blocks.append(bytes(current))
    data = b"\x00".join(blocks).lower()
    text = out.lower()
    found = {}
    for needle in needles:
        forms = {needle.lower(), html.escape(needle, quote=False).lower()}
        found[needle] = any(f in text or f.encode("utf-16-le") in data or f.encode() in data for f in forms)
    return found


def observed_encryption(pcap: Path) -> str:
    """none: no SMB2 transform frame; all: nothing after SESSION_SETUP in clear; partial: some trees clear."""
    s = summary(pcap)
    if s.transform == 0:
        return "none"
    return "all" if s.clear_after_setup == 0 else "partial"


def row_secrets(fixtures: Path, row: Dict[str, str]) -> List[str]:
    """tshark options with the row's logged keys and, for NTLM rows, the password."""
    return tshark_options(read_keys(fixtures / row["keys"]), row["password"] if row["auth"] == "ntlm" else "")


def main(argv: List[str]) -> int:
    fixtures = Path(argv[0]) if argv else FIXTURES
    for row in read_manifest(fixtures):
        pcap = fixtures / row["capture"]
        plain, opened = summary(pcap), summary(pcap, row_secrets(fixtures, row))
        expected = [op for op in row["expected_operations"].split(";") if op]
        missing = [op for op in expected if op not in opened.operations]
        print(f"{row['mode']}/{row['scenario']}: enc {plain.transform} -> left {opened.sealed}; "
              f"missing {missing or '-'}; seen {sorted(opened.operations)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
