"""Fusion benchmark (not a test): N host events + N network records through `fuse_records`.

The records are the public OTRF pairs' own (network engine on the captures, host reader on the
logs), replicated: copy k gets its own addresses (10.<k>.x.y), host names (<name>-<k>) and a time
shift of k * 10 minutes, so copies neither collide nor join each other. Input order is what the
engine gives fusion: network and host records merged by time (`fusion.order.by_time`); with
`--engine-sort` the copies come one after another as files would and the engine's sort is timed
too. Each size runs in its own forked process, so its peak RSS is its own. Reports, per size: wall
and CPU time of generation alone and of fusion (the difference), CPU per record, peak RSS, and both
as ratios to the first size: flat ratios show linear time and bounded memory.

    python bench/bench_fusion.py [--sizes 250000 500000 1000000] [--engine-sort]
"""

from __future__ import annotations

import argparse
import glob
import heapq
import json
import os
import resource
import sys
import time
from datetime import timedelta
from typing import Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from smbtrail.engine import host_records, network_records  # noqa: E402
from smbtrail.fusion import fuse_records  # noqa: E402
from smbtrail.fusion.order import by_time  # noqa: E402
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


def _copy(rec: Record, copy: int) -> Record:
    return rec.model_copy(update={
        "time": rec.time + SHIFT * copy, "src_ip": _address(rec.src_ip, copy),
        "dest_ip": _address(rec.dest_ip, copy), "dest_host": _name(rec.dest_host, copy),
        "src_host": _name(rec.src_host, copy), "args": dict(rec.args),
        "trail_id": f"{rec.trail_id}-{copy}" if rec.trail_id else None})


def _copies(records: List[Record], count: int) -> List[int]:
    """How many copies of each record make `count` records (the first ones get one more)."""
    whole, extra = divmod(count, len(records))
    return [whole + (i < extra) for i in range(len(records))]


def in_time_order(records: List[Record], count: int) -> Iterator[Record]:
    """`count` copies, oldest first: copy k of record i is due at t_i + k * SHIFT."""
    copies = _copies(records, count)
    due: List[Tuple[float, int, int]] = [(r.time.timestamp(), i, 0) for i, r in enumerate(records) if copies[i]]
    heapq.heapify(due)
    step = SHIFT.total_seconds()
    while due:
        when, i, k = due[0]
        yield _copy(records[i], k)
        if k + 1 < copies[i]:
            heapq.heapreplace(due, (when + step, i, k + 1))
        else:
            heapq.heappop(due)


def in_file_order(records: List[Record], count: int) -> Iterator[Record]:
    """`count` copies, one copy after another (as several files would come)."""
    copies = _copies(records, count)
    for k in range(max(copies)):
        yield from (_copy(r, k) for i, r in enumerate(records) if k < copies[i])


def sides(public: Dict[str, List[Record]], size: int, engine_sort: bool) -> List[Iterator[Record]]:
    order = in_file_order if engine_sort else in_time_order
    return [order(public["network"], size), order(public["host"], size)]


def stream(public: Dict[str, List[Record]], size: int, engine_sort: bool) -> Iterator[Record]:
    if engine_sort:
        return by_time(*sides(public, size, engine_sort))
    return heapq.merge(*sides(public, size, engine_sort), key=lambda r: r.time.timestamp())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(public: Dict[str, List[Record]], size: int, engine_sort: bool) -> Dict[str, float]:
    """Wall and CPU seconds: on a shared machine the CPU time is the steadier figure. With
    `engine_sort`, the fusion figures include the engine's sort."""
    wall, cpu = time.perf_counter(), time.process_time()
    for side in sides(public, size, engine_sort):
        for _ in side:
            pass
    gen_wall, gen_cpu = time.perf_counter() - wall, time.process_time() - cpu
    base = peak_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    out = sum(1 for _ in fuse_records(stream(public, size, engine_sort)))
    return {"out": out, "gen_wall": gen_wall, "gen_cpu": gen_cpu, "wall": time.perf_counter() - wall - gen_wall,
            "cpu": time.process_time() - cpu - gen_cpu, "base": base, "peak": peak_mb()}


def in_child(public: Dict[str, List[Record]], size: int, engine_sort: bool) -> Dict[str, float]:
    """One size in a forked process: its peak RSS is its own, not the largest run's so far."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        with os.fdopen(write, "w") as out:
            out.write(json.dumps(measure(public, size, engine_sort)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as result:
        text = result.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250000, 500000, 1000000])
    parser.add_argument("--engine-sort", action="store_true", help="copies in file order, sorted by the engine")
    args = parser.parse_args()
    public = public_records()
    print(f"public records: {len(public['network'])} network, {len(public['host'])} host; "
          f"peak RSS after loading {peak_mb():.0f} MB", flush=True)
    for side in public.values():
        side.sort(key=lambda r: r.time)
    first: Dict[str, float] = {}
    for size in args.sizes:
        m = in_child(public, size, args.engine_sort)
        per_record = m["cpu"] / (2 * size) * 1e6
        first = first or {"per_record": per_record, "peak": m["peak"]}
        print(f"{size:>8} host + {size:>8} network -> {m['out']} records: generation {m['gen_wall']:5.1f} s wall "
              f"{m['gen_cpu']:5.1f} s cpu; fusion {m['wall']:5.1f} s wall {m['cpu']:5.1f} s cpu "
              f"({per_record:4.1f} us cpu/record, x{per_record / first['per_record']:.2f}); peak RSS "
              f"{m['peak']:5.0f} MB (x{m['peak'] / first['peak']:.2f}; {m['base']:.0f} MB before fusion)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
