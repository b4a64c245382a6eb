"""Zeek log reader speed against the cost of merely reading the same logs, in the same run.

Builds a corpus of copies of the real Zeek logs in ../shared/data/zeek-real (or --data): each copy's
times shifted by one hour and its connection uids renamed, gzip as Zeek rotates them. Then times, each
in its own child process (wall, CPU, peak RSS): (1) `raw`: decompress every file and split every line
into its fields, the floor of any reader in Python; (2) `smbtrail`: network_records over the corpus
directory (content detection, rows -> records, time order, accounts per connection, command
recognition). Prints CPU time per row and the ratio smbtrail / raw (CPU: wall time is only as good as
the machine is idle).
Not a test: run `python bench/bench_zeek.py [--copies 300] [--data DIR] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_corpus(data: Path, target: Path, copies: int) -> int:
    rows = 0
    for path in sorted(data.glob("*.log.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        header = [line for line in lines if line.startswith("#") and not line.startswith("#close")]
        body = [line.split("\t") for line in lines if not line.startswith("#")]
        fields = next(line.split("\t")[1:] for line in header if line.startswith("#fields"))
        ts, uid = fields.index("ts"), fields.index("uid")
        out = []
        for copy in range(copies):
            for values in body:
                values = list(values)
                values[ts] = f"{float(values[ts]) + 3600 * copy:.6f}"
                values[uid] = f"{values[uid]}x{copy}"
                out.append("\t".join(values))
        rows += len(out)
        with gzip.open(target / path.name, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(header + out) + "\n")
    return rows


def raw_pass(corpus: Path) -> dict:
    count = 0
    for path in sorted(corpus.iterdir()):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if not line.startswith("#"):
                    line.rstrip("\n").split("\t")
                    count += 1
    return {"rows": count}


def smbtrail_pass(corpus: Path) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from smbtrail.engine import network_records

    kinds: dict = {}
    for rec in network_records([str(corpus)]):
        kinds[rec.kind] = kinds.get(rec.kind, 0) + 1
    return {"records": sum(kinds.values()), "commands": kinds.get("command", 0), "errors": kinds.get("error", 0)}


def child(name: str, corpus: Path) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    result = {"raw": raw_pass, "smbtrail": smbtrail_pass}[name](corpus)
    result.update(wall=time.perf_counter() - start, cpu=time.process_time() - cpu,
                  rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def run(name: str, corpus: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", name, str(corpus)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("SMBTRAIL_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="smbtrail-zeek-bench-") as tmp:
        rows = build_corpus(Path(args.data) / "zeek-real", Path(tmp), args.copies)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"corpus: {rows} rows in {len(list(Path(tmp).iterdir()))} gzip logs, {size / 1e6:.1f} MB compressed")
        for number in range(args.runs):
            raw, mine = run("raw", Path(tmp)), run("smbtrail", Path(tmp))
            print(f"run {number + 1}: raw {raw['wall']:.2f} s wall, {raw['cpu']:.2f} s cpu; smbtrail "
                  f"{mine['wall']:.2f} s wall, {mine['cpu']:.2f} s cpu ({rows / mine['cpu']:,.0f} rows per cpu "
                  f"second, {1e6 * mine['cpu'] / rows:.0f} us a row), peak RSS {mine['rss_mb']:.0f} MB, "
                  f"{mine['records']} records, {mine['commands']} commands; ratio (cpu) "
                  f"{mine['cpu'] / raw['cpu']:.0f}")


if __name__ == "__main__":
    main()
