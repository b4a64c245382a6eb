"""Select before dissecting: hand tshark only the flows that can carry what the engine reads.

A sensor's capture is mostly web, TLS, QUIC and the like; tshark would spend most of its time on packets
that can never become a record. tcpdump (libpcap's BPF, in C) keeps, in two passes over the file:
1. flows on the ports of SMB (445, 139), the endpoint mapper (135), Kerberos (88, 464), name resolution
   (DNS 53, NetBIOS 137/138, LLMNR 5355) and IP fragments (a fragmented Kerberos reply), plain, VLAN-tagged
   (also stacked) and IPv6;
2. every packet of each TCP flow on other ports where a segment starts with a DCE/RPC header (RPC over
   dynamic ports, found whether or not the endpoint-mapper answer that named the port was captured).
Whole flows are kept, so tshark's reassembly and per-connection state are what they would be on the
whole file. tshark numbers the kept packets 1..n; `Selection.frames` maps them back to the frame
numbers of the original file (packets are kept in order, and BPF decides on a packet's bytes alone, so
the first not yet matched packet with the same bytes is the one kept).
Without tcpdump, on a file tcpdump cannot read whole, on a small file, or when the filter would keep nearly
everything, tshark reads the original file (same records; slower, except on the small file).
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import struct
import subprocess
from array import array
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Set, Tuple

PORTS = (445, 139, 135, 88, 464, 53, 137, 138, 5355)
MAX_FLOWS = 1000  # more dynamic RPC flows than this: one BPF clause each is too long, read the whole file
WORTH_IT = 0.9  # keep the original when the selection holds more than this share of its bytes
# A smaller file is read whole: tcpdump's two passes cost about 17 ms of CPU however small the file, about
# what tshark spends on 0.6 MB of traffic that is not ours (28 ms a MB, measured on the sensor mix).
SMALLEST = 512 * 1024
RELEASE_EVERY = 32 * 1024 * 1024  # bytes of a mapped capture read before they are released


PORT_LIST = " or ".join(f"port {p}" for p in PORTS)
KNOWN = f"({PORT_LIST}) or (ip and ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6:1] = 44)"


def _dcerpc_start(payload: str, length: str) -> str:
    """A segment whose payload starts like a connection-oriented DCE/RPC PDU (version 5.0/5.1, a known
    packet type, a valid data representation): what tshark's DCE/RPC heuristic accepts on a TCP port."""
    return (f"{length} >= 16 and {payload}:1] = 5 and {payload} + 1:1] & 0xfe = 0"
            f" and {payload} + 2:1] <= 20 and {payload} + 4:1] & 0xee = 0")


TCP_DATA = "((tcp[12:1] & 0xf0) >> 2)"
IP6_DATA = "(40 + ((ip6[52:1] & 0xf0) >> 2))"
DCERPC = (f"(tcp and not ({PORT_LIST}) and "
          + _dcerpc_start(f"tcp[{TCP_DATA}", f"ip[2:2] - ((ip[0:1] & 0x0f) << 2) - {TCP_DATA}")
          + f") or (ip6 and ip6[6:1] = 6 and not ({PORT_LIST}) and "
          + _dcerpc_start(f"ip6[{IP6_DATA}", "ip6[4:2] - ((ip6[52:1] & 0xf0) >> 2)") + ")")


def vlan_too(expr: str, depth: int = 2) -> str:
    """The expression on untagged, tagged and double-tagged frames (libpcap's `vlan` shifts the offsets
    of everything after it, so the untagged test comes first)."""
    return f"({expr})" if depth == 0 else f"({expr}) or (vlan and ({vlan_too(expr, depth - 1)}))"


@dataclass
class Selection:
    path: str  # the selected packets, a nanosecond pcap written by tcpdump
    frames: array  # frames[n - 1] = the original frame number of selected packet n
    kept_bytes: int
    total_bytes: int


def find_tcpdump() -> Optional[str]:
    return os.environ.get("SMBTRAIL_TCPDUMP") or shutil.which("tcpdump") or (
        "/usr/sbin/tcpdump" if os.access("/usr/sbin/tcpdump", os.X_OK) else None)


FLOW_LINE = re.compile(r"^IP6? (\S+)\.(\d+) > (\S+)\.(\d+):")


def dynamic_rpc_flows(tcpdump: str, path: str) -> Optional[Set[Tuple[Tuple[str, int], ...]]]:
    """TCP flows outside the known ports with a DCE/RPC header at a segment start (None: tcpdump failed)."""
    proc = subprocess.run([tcpdump, "-n", "-q", "-t", "-r", path, vlan_too(DCERPC)], capture_output=True)
    if proc.returncode != 0:
        return None
    flows = set()
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        match = FLOW_LINE.match(line)
        if match:
            ends = ((match.group(1), int(match.group(2))), (match.group(3), int(match.group(4))))
            flows.add(tuple(sorted(ends)))
    return flows


def flow_filter(flows) -> str:
    """Known ports, and the dynamic RPC flows by their port pairs, grouped by the lower (server) port: a
    flow of another pair on the same hosts is kept as well, which costs time, never records."""
    groups: Dict[int, Set[int]] = {}
    for (_, first), (_, second) in flows:
        groups.setdefault(min(first, second), set()).add(max(first, second))
    high = " or ".join(_pairs(low, groups[low]) for low in sorted(groups) if low > 1023)
    low = " or ".join(_pairs(low, groups[low]) for low in sorted(groups) if low <= 1023)
    parts = [KNOWN]
    if high:  # both ports dynamic: most traffic (web, mail...) leaves at the first test
        parts += [f"(ip and tcp and tcp[0:2] > 1023 and tcp[2:2] > 1023 and ({high}))", f"(ip6 and tcp and ({high}))"]
    if low:
        parts.append(f"(tcp and ({low}))")
    return vlan_too(" or ".join(parts))


def _pairs(low: int, highs: Set[int]) -> str:
    return f"(port {low} and ({' or '.join(f'port {port}' for port in sorted(highs))}))"


def select(path: str, workdir: str, keep_all: bool = False) -> Optional[Selection]:
    """The packets worth dissecting, written under workdir; None: read the original file. keep_all: the
    selection even when it holds nearly the whole file (a pcap to cut into pieces)."""
    tcpdump = find_tcpdump()
    if tcpdump is None or (os.path.getsize(path) < SMALLEST and not keep_all):
        return None
    flows = dynamic_rpc_flows(tcpdump, path)
    if flows is None or len(flows) > MAX_FLOWS:
        return None
    out = os.path.join(workdir, "selected.pcap")
    proc = subprocess.run([tcpdump, "-r", path, "--time-stamp-precision=nano", "-w", out, flow_filter(flows)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0 or b"truncated" in proc.stderr:
        return None  # tshark reads the original and says what is wrong with it
    total, kept = os.path.getsize(path), os.path.getsize(out)
    if kept > WORTH_IT * total and not keep_all:
        os.remove(out)
        return None
    frames = original_numbers(path, out)
    if frames is None:
        return None
    return Selection(out, frames, kept, total)


def original_numbers(original: str, selected: str) -> Optional[array]:
    """For each packet of `selected`, its frame number in `original` (None: a packet was not found)."""
    frames = array("I")
    with open(original, "rb") as o_handle, open(selected, "rb") as s_handle:
        if not os.fstat(o_handle.fileno()).st_size or not os.fstat(s_handle.fileno()).st_size:
            return frames
        with mmap.mmap(o_handle.fileno(), 0, access=mmap.ACCESS_READ) as o_map, \
                mmap.mmap(s_handle.fileno(), 0, access=mmap.ACCESS_READ) as s_map:
            originals = packets(o_map)
            number = 0
            for start, length in packets(s_map):
                wanted = s_map[start:start + length]
                for number_start, number_length in originals:
                    number += 1
                    if number_length == length and o_map[number_start:number_start + length] == wanted:
                        frames.append(number)
                        break
                else:
                    return None
    return frames


def packets(data) -> Iterator[Tuple[int, int]]:
    """(offset, captured length) of each packet's bytes in a pcap or pcapng file held in `data`, read
    front to back. When `data` is an mmap, the pages behind the packet last handed out are released as
    it goes: a file read whole would otherwise stay resident in this process (2 GB for a 2 GB capture)."""
    magic = bytes(data[:4])
    found = _pcapng_packets(data) if magic == b"\x0a\x0d\x0d\x0a" else _pcap_packets(data, magic)
    released = 0
    for offset, length in found:
        if offset - released >= RELEASE_EVERY:
            released = _release(data, released, offset)
        yield offset, length


def _release(data, start: int, upto: int) -> int:
    """Drop [start, upto) of a mapped file from this process (it stays in the page cache; read again,
    it is mapped again): returns where the next release starts (page-aligned)."""
    end = upto - upto % mmap.PAGESIZE
    if end > start and isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        data.madvise(mmap.MADV_DONTNEED, start, end - start)
    return end


def _pcap_packets(data, magic: bytes) -> Iterator[Tuple[int, int]]:
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    header = struct.Struct(endian + "8xI4x")
    offset, end = 24, len(data)
    while offset + 16 <= end:
        (caplen,) = header.unpack_from(data, offset)
        if offset + 16 + caplen > end:
            return  # cut short: tshark stops there too
        yield offset + 16, caplen
        offset += 16 + caplen


def _pcapng_packets(data) -> Iterator[Tuple[int, int]]:
    offset, end = 0, len(data)
    endian = "<"
    snaplens: List[int] = []
    while offset + 12 <= end:
        if bytes(data[offset:offset + 4]) == b"\x0a\x0d\x0d\x0a":
            endian = "<" if bytes(data[offset + 8:offset + 12]) == b"\x4d\x3c\x2b\x1a" else ">"
            snaplens = []
        kind, length = struct.unpack_from(endian + "II", data, offset)
        if length < 12 or offset + length > end:
            return
        if kind == 1:  # interface description: its snap length bounds simple packet blocks
            snaplens.append(struct.unpack_from(endian + "I", data, offset + 12)[0])
        elif kind == 6:  # enhanced packet block
            yield offset + 28, struct.unpack_from(endian + "I", data, offset + 20)[0]
        elif kind == 3:  # simple packet block
            orig = struct.unpack_from(endian + "I", data, offset + 8)[0]
            snap = snaplens[0] if snaplens and snaplens[0] else orig
            yield offset + 12, min(orig, snap)
        elif kind == 2:  # obsolete packet block
            yield offset + 28, struct.unpack_from(endian + "I", data, offset + 20)[0]
        offset += length
