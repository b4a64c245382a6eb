"""Splunk fusion benchmark (not a test): the packaged `smbtrailfuse` as splunkd drives it, against the
command line's fusion of the same records in the same run.

Input: N network records + N Windows events built from the public OTRF pairs as `bench_fusion.py`
builds them (constant activity density, about 3,000 hosts). The search head gets them as the map
phase on the indexers writes them (compact rows: the record without the Windows event's `raw`, its
order key, the fresh flag), newest first, CHUNK rows a chunk, in chunked protocol v2 frames written to
a file beforehand: the timed process only reads its input, as the reduce of a real search does.

Runs, each in a process of its own (wall time, CPU time and peak RSS are that process's):
- splunk: `python3 -S build/pkg/smbtrail/bin/smbtrailfuse.py`, only the package's own pure-Python
  libraries (pydantic 1.10, splunk-sdk), stdin the frames, stdout a file; emit=trails (the default);
- cli (package libs): the command line's fusion, `fuse(by_time(network, host))`, on the same records
  in file order (each copy after the other, as files come), under the same libraries;
- cli (as installed): the same under this interpreter (pydantic 2, what the command line runs with).
The CLI runs subtract the time their generator alone takes (measured first, in the same process).
Also printed: the map phase's cost per input row (what each indexer spends), on a sample of input
rows as the inputs write them, and whether the trails and steps are the same (uids).

Needs ./package.sh run first (build/pkg/smbtrail) and the public data (../shared/data).

    python bench/bench_splunk_fusion.py [--size 1000000] [--runs 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "pkg" / "smbtrail"
LIB = STAGE / "bin" / "lib"
COMMAND = STAGE / "bin" / "smbtrailfuse.py"
CHUNK = 10000
MAP_SAMPLE = 20000  # input rows of each shape the map phase is timed on
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))


# --- input ----------------------------------------------------------------------------------------

def write_public(path: Path) -> None:
    """The staggered public records as JSON (read back under either pydantic by the CLI runs)."""
    from bench_fusion import public_records, staggered

    from smbtrail.splunk.events import event_json

    public, pairs = staggered(public_records())
    with path.open("w", encoding="utf-8") as out:
        json.dump({"pairs": pairs, "sides": {side: [[event_json(r), pair] for r, pair in records]
                                            for side, records in public.items()}}, out)


def read_public(path: Path) -> Tuple[Dict[str, List[Tuple[Any, int]]], int]:
    from smbtrail.splunk.events import record_from_body

    data = json.loads(path.read_text(encoding="utf-8"))
    return {side: [(record_from_body(json.loads(text)), pair) for text, pair in records]
            for side, records in data["sides"].items()}, data["pairs"]


def write_frames(public: Tuple[Dict[str, Any], int], size: int, path: Path, args: List[str]) -> int:
    """getinfo (with the command's `args`), then the compact rows of both sides newest first, CHUNK a
    frame (the last finished). Every row is marked new: with fresh=, every trail is written."""
    from bench_fusion import stream

    from helpers.splunk_sim import frame, getinfo, to_csv
    from smbtrail.splunk import events, fuserows

    chunks: List[Tuple[int, int]] = []  # (offset, length) of each chunk's body, oldest chunk first
    rows = 0
    with tempfile.TemporaryFile() as bodies:
        batch: List[Dict[str, Any]] = []
        for rec in stream(public, size, False):  # both sides merged by time, as the indexers return them
            body = events.event_body(rec)
            body.pop("raw", None)  # the map phase drops it: fusion never reads it
            batch.append(fuserows.compact(fuserows.RECORDS, body, None, "1"))
            if len(batch) == CHUNK:
                rows += _spill(bodies, batch, chunks, to_csv)
        rows += _spill(bodies, batch, chunks, to_csv)
        with path.open("wb") as out:
            out.write(getinfo(path.parent, args))
            for number, (offset, length) in enumerate(reversed(chunks)):
                bodies.seek(offset)
                out.write(frame({"action": "execute", "finished": number == len(chunks) - 1},
                                bodies.read(length).decode("utf-8")))
    return rows


def _spill(bodies: Any, batch: List[Dict[str, Any]], chunks: List[Tuple[int, int]], to_csv: Any) -> int:
    if not batch:
        return 0
    batch.reverse()  # newest first within the chunk too
    data = to_csv(batch).encode("utf-8")
    chunks.append((bodies.tell(), len(data)))
    bodies.write(data)
    count = len(batch)
    batch.clear()
    return count


# --- runs -----------------------------------------------------------------------------------------

# A small launcher forks and execs the measured command: the peak RSS a child reports to wait4 starts
# from its parent's at the fork (Linux keeps it across exec), so the parent must be small.
LAUNCHER = ("import json, os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n"
            "_, status, use = os.wait4(pid, 0)\n"
            "open(sys.argv[1], 'w').write(json.dumps([status, use.ru_maxrss, use.ru_utime + use.ru_stime]))\n")


def timed(command: List[str], stdin: Path, stdout: Path, env: Dict[str, str]) -> Dict[str, float]:
    usage = stdout.with_suffix(".usage")
    started = time.perf_counter()
    with stdin.open("rb") as source, stdout.open("wb") as sink:
        done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(usage)] + command, stdin=source,
                              stdout=sink, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - started
    status, peak_kb, cpu = json.loads(usage.read_text())
    if done.returncode or status:
        sys.exit(f"{command[:3]} failed ({status}): {done.stderr.decode(errors='replace')[-3000:]}")
    return {"wall": wall, "cpu": cpu, "peak": peak_kb / 1024.0}


def splunk_run(frames: Path, work: Path) -> Dict[str, Any]:
    """The packaged command on the frames; its reply's trails and steps."""
    out = work / "reply.bin"
    result = timed([sys.executable, "-S", str(COMMAND)], frames, out, {"PATH": os.environ.get("PATH", "")})
    result["uids"] = _splunk_uids(out)
    return result


def _splunk_uids(reply: Path) -> List[str]:
    from helpers.splunk_sim import read_frames

    uids: List[str] = []
    for meta, body in read_frames(reply.read_bytes()):
        if body:
            uids += [same(json.loads(row["_raw"])) for row in csv.DictReader(io.StringIO(body))
                     if row.get("kind") != "error"]
        for level, text in (meta.get("inspector") or {}).get("messages", []):
            print(f"  smbtrailfuse said: {level} {text}")
    return uids


def cli_run(python: List[str], public_file: Path, size: int, work: Path, env: Dict[str, str]) -> Dict[str, Any]:
    out = work / "cli.json"
    result = timed(python + [__file__, "--cli", str(public_file), "--size", str(size)], public_file, out, env)
    result.update(json.loads(out.read_text()))
    result["wall"], result["cpu"] = result["fuse_wall"], result["fuse_cpu"]
    return result


def cli_child(public_file: Path, size: int) -> None:
    """In the child: generation alone, then generation + the command line's sort and fusion."""
    from bench_fusion import sides

    from smbtrail.fusion import fuse_records
    from smbtrail.fusion.order import by_time

    public = read_public(public_file)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in chain(*sides(public, size, True)):
        pass
    gen_wall, gen_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    uids = [same(r.to_dict()) for r in fuse_records(by_time(*sides(public, size, True)))
            if r.kind in ("trail", "command")]
    print(json.dumps({"fuse_wall": time.perf_counter() - wall - gen_wall, "fuse_cpu": time.process_time() - cpu - gen_cpu,
                      "gen_wall": gen_wall, "uids": uids}))


def map_cost(public: Tuple[Dict[str, Any], int], work: Path) -> Dict[str, float]:
    """CPU per input row of the packaged map phase (phase=map), per shape of input row."""
    from bench_fusion import sides

    from helpers.splunk_sim import frame, getinfo, to_csv
    from smbtrail.splunk import events

    network, host = (list(side) for side in sides(public, MAP_SAMPLE, False))
    shapes = {
        "smbtrail:network": [{"_raw": events.event_json(r), "sourcetype": events.NETWORK, "source": "s"} for r in network],
        "smbtrail:host": [{"_raw": events.event_json(r), "sourcetype": events.HOST, "source": "s"} for r in host],
        "Windows add-on fields": [_addon_row(r) for r in host],
    }
    costs = {}
    for shape, rows in shapes.items():
        frames, reply = work / "map.in", work / "map.out"
        data = getinfo(work, ["phase=map"])
        for start in range(0, len(rows), CHUNK):
            data += frame({"action": "execute", "finished": start + CHUNK >= len(rows)}, to_csv(rows[start:start + CHUNK]))
        frames.write_bytes(data)
        result = timed([sys.executable, "-S", str(COMMAND)], frames, reply, {"PATH": os.environ.get("PATH", "")})
        costs[shape] = result["cpu"] / len(rows) * 1e6
    return costs


def _addon_row(rec: Any) -> Dict[str, Any]:
    """A Windows event as the Windows add-on extracts it (XML names, EventCode), from the event's raw fields."""
    row = {k: str(v) for k, v in rec.raw.items() if not isinstance(v, (dict, list)) and v is not None}
    row.update(EventCode=str(rec.event_id), sourcetype="XmlWinEventLog", source=f"XmlWinEventLog:{rec.channel}")
    row.pop("EventID", None)
    return row


def same(body: Dict[str, Any]) -> str:
    """What must be equal in both answers. Host events logged in the same microsecond by two channels
    come in file order on the command line and in record id order from Splunk (which knows no file): the
    order of a step's join reasons and which event ids a trail's capped evidence list keeps may differ."""
    args = body.get("args") or {}
    key = [body.get(k) for k in ("kind", "time", "trail_id", "command", "operation", "src_ip", "dest_ip", "user")]
    key += [sorted(body.get("join") or []), sorted(body.get("evidence") or []), args.get("score"),
            args.get("stage"), sorted({p["file"] for p in body.get("provenance") or []})]
    return json.dumps(key, sort_keys=True)


# --- report ---------------------------------------------------------------------------------------

def _digest(uids: List[str]) -> str:
    return hashlib.sha1("\n".join(sorted(uids)).encode()).hexdigest()[:12]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1000000, help="network records, and as many Windows events")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workdir", help="where the frames go (about 1.3 KB a row); default: a temp dir")
    parser.add_argument("--fresh", action="store_true",
                        help="run the command as the scheduled search does (fresh=smbtrail_fresh, every row new)")
    parser.add_argument("--cli", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cli:
        cli_child(Path(args.cli), args.size)
        return 0
    if not COMMAND.exists():
        sys.exit(f"{COMMAND} not found: run ./package.sh first")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-splunk-") as tmp:
        work = Path(tmp)
        public_file, frames = work / "public.json", work / "frames.bin"
        started = time.perf_counter()
        write_public(public_file)
        public = read_public(public_file)
        rows = write_frames(public, args.size, frames, ["fresh=smbtrail_fresh"] if args.fresh else [])
        print(f"{rows} compact rows ({args.size} network + {args.size} Windows), {frames.stat().st_size / 1e9:.2f} GB of "
              f"frames, {CHUNK} rows a chunk, newest first; built in {time.perf_counter() - started:.0f} s", flush=True)
        for shape, cost in map_cost(public, work).items():
            print(f"map phase (indexers), {shape}: {cost:.0f} us CPU per input row", flush=True)
        pkg_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(LIB)}
        here_env = dict(os.environ)
        for run in range(1, args.runs + 1):
            print(f"run {run} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)
            splunk = splunk_run(frames, work)
            cli_pkg = cli_run([sys.executable, "-S"], public_file, args.size, work, pkg_env)
            cli_here = cli_run([sys.executable], public_file, args.size, work, here_env)
            same = _digest(splunk["uids"]) == _digest(cli_pkg["uids"]) == _digest(cli_here["uids"])
            label = "splunk smbtrailfuse" + (" fresh=" if args.fresh else "") + " (package)"
            for name, m in ((label, splunk), ("cli fusion (package libs)", cli_pkg),
                            ("cli fusion (as installed)", cli_here)):
                print(f"  {name:30} wall {m['wall']:7.1f} s  cpu {m['cpu']:7.1f} s  peak RSS {m['peak']:6.0f} MB  "
                      f"trails+steps {len(m['uids'])}", flush=True)
            print(f"  splunk / cli: wall x{splunk['wall'] / cli_pkg['wall']:.2f} (package libs), "
                  f"x{splunk['wall'] / cli_here['wall']:.2f} (as installed); cpu x{splunk['cpu'] / cli_pkg['cpu']:.2f}, "
                  f"x{splunk['cpu'] / cli_here['cpu']:.2f}; same trails and steps: {'yes' if same else 'NO'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
