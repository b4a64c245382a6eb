"""Network engine benchmark (not a test): smbtrail vs bare tshark on the same >= 200 MB capture.

Builds the capture from the public dev captures (or any captures given with --from), replicated
with shifted times and rewritten IPv4 addresses so that flows do not collide, then reports in one
run: smbtrail's wall time and the Python process's peak memory, next to
    tshark -n -r X -Y <filter> -q                       (dissection alone)
    tshark -n -r X -Y <filter> -T fields -e ...          (the naive design, same fields as smbtrail)

    python bench/bench_network.py [--size-mb 200] [--from DIR ...] [--keep FILE]
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from smbtrail.capture import tshark  # noqa: E402
from smbtrail.capture.fields import field_list  # noqa: E402
from smbtrail.engine import network_records  # noqa: E402
from smbtrail.network.pipeline import _decoder_fields  # noqa: E402

DEFAULT_SOURCES = ["suricata-verify", "zeek/Traces", "pcap-attack", "samr-enum-lab", "otrf-security-datasets"]


def as_pcap(path: str, tmp: str) -> str:
    """Every input converted to classic little-endian pcap, so copies can be rewritten with struct."""
    out = os.path.join(tmp, f"src-{abs(hash(path))}.pcap")
    subprocess.run(["editcap", "-F", "pcap", path, out], check=True, capture_output=True)
    return out


def read_pcap(path: str):
    with open(path, "rb") as handle:
        header = handle.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        packets = []
        while True:
            rec = handle.read(16)
            if len(rec) < 16:
                break
            sec, usec, incl, orig = struct.unpack(endian + "IIII", rec)
            packets.append((sec, usec, orig, handle.read(incl)))
    return linktype, header, endian, packets


def rewrite(data: bytes, linktype: int, copy: int) -> bytes:
    """Shift both IPv4 addresses' second octet by `copy` (Ethernet and Linux cooked captures)."""
    offset = {1: 14, 113: 16}.get(linktype)
    if offset is None or len(data) < offset + 20:
        return data
    ethertype = data[offset - 2: offset]
    if ethertype == b"\x81\x00":
        offset += 4
    elif ethertype != b"\x08\x00":
        return data
    buf = bytearray(data)
    for pos in (offset + 13, offset + 17):
        buf[pos] = (buf[pos] + copy) % 256
    return bytes(buf)


def build(target_mb: int, sources, out: str) -> int:
    tmp = tempfile.mkdtemp(prefix="smbtrail-bench-")
    inputs = []
    for path in sources:
        try:
            inputs.append(read_pcap(as_pcap(path, tmp)))
        except (subprocess.CalledProcessError, struct.error):
            continue
    written, copy = 0, 0
    with open(out, "wb") as dst:
        dst.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while written < target_mb * 1_000_000:
            copy += 1
            for linktype, _header, _endian, packets in inputs:
                if linktype != 1:
                    continue
                for sec, usec, orig, data in packets:
                    body = rewrite(data, linktype, copy)
                    dst.write(struct.pack("<IIII", sec + copy * 86400, usec, len(body), orig) + body)
                    written += 16 + len(body)
    return written


def timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--from", dest="roots", action="append", default=[])
    parser.add_argument("--keep", help="write the built capture here and keep it")
    args = parser.parse_args()
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    roots = args.roots or [os.path.join(shared, s) for s in DEFAULT_SOURCES]
    sources = []
    for root in roots:
        for pattern in ("**/*.pcap", "**/*.pcapng", "**/*.cap"):
            sources += glob.glob(os.path.join(root, pattern), recursive=True)
    if not sources:
        sys.exit("no source captures found: give --from DIR")
    capture = args.keep or os.path.join(tempfile.mkdtemp(prefix="smbtrail-bench-"), "bench.pcap")
    size = build(args.size_mb, sorted(sources), capture)
    print(f"capture: {capture} ({size / 1e6:.0f} MB from {len(sources)} sources)")

    binary = tshark.check_tshark()
    names = field_list(_decoder_fields())
    base = [binary, "-n", "-r", capture, "-Y", tshark.DISPLAY_FILTER]
    t_quiet = timed(base + ["-q"])
    fields_cmd = base + ["-T", "fields"] + [x for name in names for x in ("-e", name)]
    t_fields = timed(fields_cmd)

    start = time.perf_counter()
    count = sum(1 for _ in network_records([capture]))
    t_ours = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"{'tshark -Y filter -q':<44} {t_quiet:8.1f} s")
    print(f"{'tshark -Y filter -T fields (same fields)':<44} {t_fields:8.1f} s")
    print(f"{'smbtrail analyze':<44} {t_ours:8.1f} s   {count} records, Python peak RSS {peak_mb:.0f} MB")
    print(f"ratio smbtrail / tshark -T fields: {t_ours / t_fields:.2f}   (<= 1.0 is the goal)")
    print(f"ratio smbtrail / tshark -q:        {t_ours / t_quiet:.2f}")
    if not args.keep:
        os.remove(capture)


if __name__ == "__main__":
    main()
