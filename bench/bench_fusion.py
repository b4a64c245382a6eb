"""Fusion benchmark (not a test): N host events + N network records through `fuse_records`.

The records are the public OTRF pairs' own (network engine on the captures, host reader on the
logs), replicated at a constant activity density whatever N: each pair is moved (both halves by the
same amount, so its own clock error stays) to start STAGGER after the previous one, and copy k of
the whole set is shifted by k * PERIOD (7 pairs, 3 min apart: about 1,150 records per hour). Every
copy of a pair gets its own logon ids and trail ids, and addresses (10.x.y.<last octet>) and host
names (<name>-<n>) that the same pair reuses only HOST_COPIES copies (52 h) later, so copies neither
collide nor join each other and the network has a fixed number of hosts (about 3,000, as a real
one does); accounts stay the same. Input order is what the
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
from itertools import chain
from typing import Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from smbtrail.engine import host_records, network_records  # noqa: E402
from smbtrail.fusion import fuse_records  # noqa: E402
from smbtrail.fusion.order import by_time  # noqa: E402
from smbtrail.records import HOST_EVENT, Record  # noqa: E402

SHARED = os.environ.get("SMBTRAIL_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
STAGGER = timedelta(minutes=3)  # between two pairs of one copy
HOST_COPIES = 150  # copies before addresses and names are reused: 150 * 21 min = 52 h, beyond fusion's window
Copyable = Tuple[Record, int]  # a public record, moved, and the index of its pair


def public_records() -> Dict[str, List[Record]]:
    pairs = os.path.join(SHARED, "otrf-security-datasets", "windows", "*")
    network = list(network_records(sorted(glob.glob(os.path.join(pairs, "network", "*.zip")))))
    host = list(host_records(sorted(glob.glob(os.path.join(pairs, "host", "*.zip")))))
    return {"network": [r for r in network if r.kind != "error"], "host": [r for r in host if r.kind == HOST_EVENT]}


def _pair(rec: Record) -> str:
    return os.path.basename(rec.provenance[0].file.split("!")[0])


def staggered(public: Dict[str, List[Record]]) -> Tuple[Dict[str, List[Copyable]], int]:
    """Each pair moved to start STAGGER after the previous one (at its first network record), oldest first."""
    names = sorted({_pair(r) for r in public["network"]})
    start = {name: min(r.time for r in public["network"] if _pair(r) == name) for name in names}
    origin = min(start.values())

    def moved(rec: Record) -> Copyable:
        pair = names.index(_pair(rec))
        return rec.model_copy(update={"time": rec.time - start[names[pair]] + origin + STAGGER * pair}), pair

    return {side: sorted((moved(r) for r in records if _pair(r) in start), key=lambda m: m[0].time)
            for side, records in public.items()}, len(names)


def _address(ip: Optional[str], copy: int) -> Optional[str]:
    if not ip or ip.count(".") != 3:
        return ip
    return f"10.{(copy // 256) % 256}.{copy % 256}.{ip.rsplit('.', 1)[-1]}" if copy else ip


def _name(name: Optional[str], copy: int) -> Optional[str]:
    if not name or not copy:
        return name
    short, dot, rest = name.partition(".")
    return f"{short}-{copy}{dot}{rest}"


def _copy(rec: Record, copy: int, hosts: int, shift: timedelta) -> Record:
    return rec.model_copy(update={
        "time": rec.time + shift, "src_ip": _address(rec.src_ip, hosts),
        "dest_ip": _address(rec.dest_ip, hosts), "dest_host": _name(rec.dest_host, hosts),
        "src_host": _name(rec.src_host, hosts), "args": dict(rec.args),
        "logon_id": f"{rec.logon_id}-{copy}" if rec.logon_id else None,
        "trail_id": f"{rec.trail_id}-{copy}" if rec.trail_id else None})


def _copies(records: List[Copyable], count: int) -> List[int]:
    """How many copies of each record make `count` records (the first ones get one more)."""
    whole, extra = divmod(count, len(records))
    return [whole + (i < extra) for i in range(len(records))]


def in_time_order(records: List[Copyable], pairs: int, count: int) -> Iterator[Record]:
    """`count` copies, oldest first: copy k of record i is due at t_i + k * PERIOD."""
    copies = _copies(records, count)
    period = STAGGER * pairs
    due: List[Tuple[float, int, int]] = [(r.time.timestamp(), i, 0) for i, (r, _) in enumerate(records) if copies[i]]
    heapq.heapify(due)
    while due:
        when, i, k = due[0]
        rec, pair = records[i]
        yield _copy(rec, k * pairs + pair, k % HOST_COPIES * pairs + pair, period * k)
        if k + 1 < copies[i]:
            heapq.heapreplace(due, (when + period.total_seconds(), i, k + 1))
        else:
            heapq.heappop(due)


def in_file_order(records: List[Copyable], pairs: int, count: int) -> Iterator[Record]:
    """`count` copies, one copy after another (as several files would come)."""
    copies = _copies(records, count)
    for k in range(max(copies)):
        yield from (_copy(r, k * pairs + pair, k % HOST_COPIES * pairs + pair, STAGGER * pairs * k)
                    for i, (r, pair) in enumerate(records) if k < copies[i])


Public = Tuple[Dict[str, List[Copyable]], int]


def sides(public: Public, size: int, engine_sort: bool) -> List[Iterator[Record]]:
    order = in_file_order if engine_sort else in_time_order
    records, pairs = public
    return [order(records["network"], pairs, size), order(records["host"], pairs, size)]


def stream(public: Public, size: int, engine_sort: bool) -> Iterator[Record]:
    if engine_sort:
        return by_time(*sides(public, size, engine_sort))
    return heapq.merge(*sides(public, size, engine_sort), key=lambda r: r.time.timestamp())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(public: Public, size: int, engine_sort: bool) -> Dict[str, float]:
    """Wall and CPU seconds: on a shared machine the CPU time is the steadier figure. Generation
    includes merging the two sides by time, which is what the engine gives fusion; with
    `engine_sort` it does not, and the fusion figures include the engine's sort (`by_time`)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in chain(*sides(public, size, engine_sort)) if engine_sort else stream(public, size, False):
        pass
    gen_wall, gen_cpu = time.perf_counter() - wall, time.process_time() - cpu
    base = peak_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    out = sum(1 for _ in fuse_records(stream(public, size, engine_sort)))
    return {"out": out, "gen_wall": gen_wall, "gen_cpu": gen_cpu, "wall": time.perf_counter() - wall - gen_wall,
            "cpu": time.process_time() - cpu - gen_cpu, "base": base, "peak": peak_mb()}


def in_child(public: Public, size: int, engine_sort: bool) -> Dict[str, float]:
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
    public = staggered(public_records())
    print(f"public records: {len(public[0]['network'])} network, {len(public[0]['host'])} host of {public[1]} "
          f"pairs; peak RSS after loading {peak_mb():.0f} MB", flush=True)
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
