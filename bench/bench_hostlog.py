"""Host-log reader speed against the `evtx` package's own records_json() rate, in the same run.

Builds a >= 100 MB corpus of .evtx copies of the public samples (../shared/data, or --data) in a temp
dir, then times (1) iterating evtx's records_json() over it with the package's default thread setting
(number_of_threads=0: "the library decides"; its Python iterator parses on the calling thread, so it
uses one core: its CPU time is printed) and (2) smbtrail's read_hostlogs over it (one process, one
thread). Both rates count the corpus's records (input records per second); smbtrail's emitted records
are printed beside. Each pass runs in its own child process (peak RSS and CPU time of that pass alone).
With --python-evtx it also times the pure-Python fallback (what the Splunk app runs) on one copy of each
sample: smbtrail with `evtx` hidden, against python-evtx's own XML rendering of the same files.
Not a test: run `python bench/bench_hostlog.py [--size-mb 100] [--data DIR] [--all-events] [--runs 3]
[--python-evtx]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSES = ("raw", "parse", "smbtrail")
FALLBACK_PASSES = ("pyevtx_xml", "fallback")


def build_corpus(data: Path, target: Path, size_mb: int) -> int:
    samples = sorted(p for p in data.rglob("*.evtx"))
    if not samples:
        sys.exit(f"no .evtx under {data}")
    total, copy = 0, 0
    while total < size_mb * 1_000_000:
        for sample in samples:
            dest = target / f"{copy:03d}_{sample.name}"
            shutil.copyfile(sample, dest)
            total += dest.stat().st_size
        copy += 1
    return total


def raw_pass(corpus: Path) -> dict:
    import evtx

    files = sorted(str(p) for p in corpus.iterdir())
    count = 0
    start = time.perf_counter()
    for path in files:
        records = evtx.PyEvtxParser(path).records_json()
        while True:
            try:
                next(records)
            except StopIteration:
                break
            except RuntimeError:
                continue
            count += 1
    return {"records": count, "seconds": time.perf_counter() - start}


def parse_pass(corpus: Path, all_events: bool) -> dict:
    """The floor of any Python reader on top of evtx: iterate, pre-filter, JSON-parse what is kept."""
    import evtx

    from smbtrail.hostlog.catalog import covered_ids
    from smbtrail.hostlog.evtx_reader import EVENT_ID, _loads

    wanted = covered_ids()
    parsed = 0
    start = time.perf_counter()
    for path in sorted(str(p) for p in corpus.iterdir()):
        for rec in evtx.PyEvtxParser(path).records_json():
            match = EVENT_ID.search(rec["data"])
            if all_events or (match and int(match.group(1)) in wanted):
                _loads(rec["data"])
                parsed += 1
    return {"parsed": parsed, "seconds": time.perf_counter() - start}


def smbtrail_pass(corpus: Path, all_events: bool) -> dict:
    from smbtrail.hostlog import read_hostlogs

    emitted = errors = 0
    start = time.perf_counter()
    for rec in read_hostlogs([str(corpus)], all_events=all_events):
        if rec.kind == "error":
            errors += 1
        else:
            emitted += 1
    return {"emitted": emitted, "errors": errors, "seconds": time.perf_counter() - start}


def one_copy(corpus: Path) -> list:
    return sorted(str(p) for p in corpus.iterdir() if p.name.startswith("000_"))


def pyevtx_xml_pass(corpus: Path) -> dict:
    """python-evtx's own rendering: every record's XML, as its evtx_dump does."""
    from Evtx.Evtx import Evtx
    from Evtx.Views import evtx_file_xml_view

    count = 0
    start = time.perf_counter()
    for path in one_copy(corpus):
        try:
            with Evtx(path) as log:
                for _xml, _record in evtx_file_xml_view(log.get_file_header()):
                    count += 1
        except Exception:  # python-evtx stops on a broken chunk; what it rendered so far counts
            continue
    return {"records": count, "seconds": time.perf_counter() - start}


def fallback_pass(corpus: Path) -> dict:
    sys.modules["evtx"] = None  # type: ignore[assignment]  # import evtx now fails: python-evtx is used
    from smbtrail.hostlog import read_hostlogs

    emitted = 0
    start = time.perf_counter()
    for rec in read_hostlogs(one_copy(corpus), all_events=True):
        emitted += rec.kind != "error"
    return {"emitted": emitted, "seconds": time.perf_counter() - start}


def child(which: str, corpus: str, all_events: bool) -> None:
    passes = {"raw": lambda: raw_pass(Path(corpus)), "parse": lambda: parse_pass(Path(corpus), all_events),
              "smbtrail": lambda: smbtrail_pass(Path(corpus), all_events),
              "pyevtx_xml": lambda: pyevtx_xml_pass(Path(corpus)),
              "fallback": lambda: fallback_pass(Path(corpus))}
    cpu = time.process_time()
    result = passes[which]()
    result["cpu_seconds"] = time.process_time() - cpu  # all threads of the process
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(which: str, corpus: Path, all_events: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--corpus", str(corpus)]
    cmd += ["--all-events"] if all_events else []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--all-events", action="store_true")
    ap.add_argument("--runs", type=int, default=1, help="timed rounds over the same corpus")
    ap.add_argument("--python-evtx", action="store_true", help="also time the pure-Python fallback")
    ap.add_argument("--child", choices=PASSES + FALLBACK_PASSES)
    ap.add_argument("--corpus")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.corpus, args.all_events)
        return
    with tempfile.TemporaryDirectory(prefix="smbtrail-bench-") as tmp:
        corpus = Path(tmp)
        size = build_corpus(Path(args.data), corpus, args.size_mb)
        print(f"corpus: {len(list(corpus.iterdir()))} .evtx files, {size / 1e6:.1f} MB in {tmp}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        for _ in range(args.runs):
            report({name: run_child(name, corpus, args.all_events) for name in PASSES}, args.all_events)
            if args.python_evtx:
                report_fallback({name: run_child(name, corpus, args.all_events) for name in FALLBACK_PASSES})


def report(runs: dict, all_events: bool) -> None:
    raw, floor, ours = (runs[name] for name in PASSES)
    records = raw["records"]
    rate = {name: records / run["seconds"] for name, run in runs.items()}
    print(f"evtx records_json(), number_of_threads=0 (default): {records} records in {raw['seconds']:.2f} s "
          f"(CPU {raw['cpu_seconds']:.2f} s) = {rate['raw']:,.0f} records/s (peak RSS {raw['max_rss_mb']:.0f} MB)")
    print(f"smbtrail read_hostlogs{' --all-events' if all_events else ''}, one thread: {records} records in "
          f"{ours['seconds']:.2f} s (CPU {ours['cpu_seconds']:.2f} s) = {rate['smbtrail']:,.0f} records/s, "
          f"{ours['emitted']} host records emitted, {ours['errors']} errors (peak RSS {ours['max_rss_mb']:.0f} MB)")
    print(f"ceiling (evtx + EventID pre-filter + JSON parse of the {floor['parsed']} kept records, nothing "
          f"else): {rate['parse']:,.0f} records/s = {rate['parse'] / rate['raw']:.0%} of raw")
    print(f"ratio: {rate['smbtrail'] / rate['raw']:.0%} of the evtx package's raw rate")


def report_fallback(runs: dict) -> None:
    xml, ours = runs["pyevtx_xml"], runs["fallback"]
    print(f"python-evtx XML rendering, one copy of each sample: {xml['records']} records in {xml['seconds']:.1f} s "
          f"= {xml['records'] / xml['seconds']:,.0f} records/s")
    print(f"smbtrail fallback (evtx hidden, --all-events): {ours['emitted']} records in {ours['seconds']:.1f} s "
          f"= {ours['emitted'] / ours['seconds']:,.0f} records/s = {xml['seconds'] / ours['seconds']:.1f}x "
          "python-evtx's own rendering")


if __name__ == "__main__":
    main()
