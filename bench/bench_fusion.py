"""Fusion benchmark (not a test): N host events + N network records through `fuse_records`.

The records are the public OTRF pairs' own (network engine on the captures, host reader on the
logs), replicated: copy k gets its own addresses (10.<k>.x.y), host names (<name>-<k>) and a time
shift of k * 10 minutes, so copies neither collide nor join each other. Input order is what the
engine gives fusion: every network record, then every host record. Reports, per size: wall time of
generation alone, of generation + fusion, the difference (fusion), peak RSS, and time per record,
so linear growth shows as a flat per-record cost.

    python bench/bench_fusion.py [--sizes 250000 500000 1000000]
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import sys
import time
from datetime import timedelta
from typing import Dict, Iterator, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from smbtrail.engine import host_records, network_records  # noqa: E402
from smbtrail.fusion import fuse_records  # noqa: E402
from smbtrail.records import HOST_EVENT, Record  # noqa: E402

SHARED = os.environ.get("SMBTRAIL_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
SHIFT = timedelta(minutes=10)


def public_records() -> Dict[str, List[Record]]:
    pairs = os.path.join(SHARED, "otrf-security-datasets", "windows", "*")
    network = list(network_records(sorted(glob.glob(os.path.join(pairs, "network", "*.zip")))))
    host = list(host_records(sorted(glob.glob(os.path.join(pairs, "host", "*.zip")))))
    return {"network": [r for r in network if r.kind != "error"], "host": [r for r in host if r.kind == HOST_EVENT]}


def _address(ip: Optional[str], copy: int) -> Optional[str]:
    if not ip or ip.count(".") != 3:
        return ip
    last = ip.rsplit(".", 2)
    return f"10.{copy % 250}.{(copy // 250) % 250}.{last[-1]}" if copy else ip


def _name(name: Optional[str], copy: int) -> Optional[str]:
    if not name or not copy:
        return name
    short, dot, rest = name.partition(".")
    return f"{short}-{copy}{dot}{rest}"


def replicate(records: List[Record], count: int) -> Iterator[Record]:
    made, copy = 0, 0
    while True:
        for rec in records:
            if made == count:
                return
            yield rec.model_copy(update={
                "time": rec.time + SHIFT * copy, "src_ip": _address(rec.src_ip, copy),
                "dest_ip": _address(rec.dest_ip, copy), "dest_host": _name(rec.dest_host, copy),
                "src_host": _name(rec.src_host, copy), "args": dict(rec.args),
                "trail_id": f"{rec.trail_id}-{copy}" if rec.trail_id else None})
            made += 1
        copy += 1


def stream(public: Dict[str, List[Record]], size: int) -> Iterator[Record]:
    yield from replicate(public["network"], size)
    yield from replicate(public["host"], size)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(public: Dict[str, List[Record]], size: int) -> None:
    """Wall and CPU seconds: on a shared machine the CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in stream(public, size):
        pass
    gen_wall, gen_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    out = sum(1 for _ in fuse_records(stream(public, size)))
    fuse_wall, fuse_cpu = time.perf_counter() - wall - gen_wall, time.process_time() - cpu - gen_cpu
    print(f"{size:>8} host + {size:>8} network -> {out} records: generation {gen_wall:5.1f} s wall "
          f"{gen_cpu:5.1f} s cpu; fusion {fuse_wall:5.1f} s wall {fuse_cpu:5.1f} s cpu "
          f"({fuse_cpu / (2 * size) * 1e6:4.1f} us cpu/record); peak RSS {peak_mb():6.0f} MB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250000, 500000, 1000000])
    args = parser.parse_args()
    public = public_records()
    print(f"public records: {len(public['network'])} network, {len(public['host'])} host; "
          f"peak RSS after loading {peak_mb():.0f} MB", flush=True)
    for size in args.sizes:
        run(public, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
