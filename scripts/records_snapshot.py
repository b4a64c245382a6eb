#!/usr/bin/env python3
"""Write the records of every lab recording and public capture as jsonl, one file a case, to compare
two versions of the engine byte for byte (a refactoring must leave them identical).

    python scripts/records_snapshot.py OUT_DIR [--data DIR]      # the engine importable as `smbtrail`
    python scripts/records_snapshot.py --compare OLD_DIR NEW_DIR

The engine is whichever `smbtrail` Python imports: run it once with PYTHONPATH=<old checkout>/src and
once with the new one (each finds its own lookups/ next to its src/), on the same input paths. Cases:
each lab recording alone (network records), with its session keys, fused with its Samba log, each lab
mode's recordings in one run; each public capture (`../shared/data`, skipped when absent) alone, with
its published secrets, the OTRF network + host pairs fused, the real Zeek logs, the event-log samples.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ("*.pcap", "*.pcapng", "*.cap")

Case = Tuple[str, List[str], List[str], dict]


def lab_cases(lab: Path) -> Iterator[Case]:
    for mode in sorted(p for p in lab.iterdir() if p.is_dir()):
        pcaps = sorted(mode.glob("*.pcapng"))
        for pcap in pcaps:
            name = f"lab-{mode.name}-{pcap.stem}"
            yield f"{name}.net", [str(pcap)], [], {"fuse": False}
            keys = pcap.with_suffix(".keys")
            if keys.is_file():
                yield f"{name}.keys", [str(pcap)], [], {"fuse": False, "keys_file": str(keys)}
            for log in (pcap.with_suffix(".audit.jsonl"), pcap.with_suffix(".full_audit.log")):
                if log.is_file():
                    extra = {"keys_file": str(keys)} if keys.is_file() else {}
                    yield f"{name}.fused-{log.name.split('.', 1)[1]}", [str(pcap)], [str(log)], extra
        yield f"lab-{mode.name}.all", [str(p) for p in pcaps], [], {"fuse": False}


def shared_cases(data: Path) -> Iterator[Case]:
    captures = sorted(p for pattern in CAPTURES for p in data.rglob(pattern) if "mix" not in p.parts)
    for pcap in captures:
        yield f"shared-{_name(data, pcap)}.net", [str(pcap)], [], {"fuse": False}
    smb3 = data / "suricata-verify" / "smb3-01" / "input.pcap"
    if smb3.is_file():
        yield "shared-smb3-01.keys", [str(smb3)], [], {
            "fuse": False, "session_keys": ["3d00009400480000 28f2847263c83dc00621f742dd3f2e7b"]}
    for pcap in sorted((data / "samr-enum-lab" / "Resources").glob("python.exe_*.pcapng")):
        yield f"shared-{_name(data, pcap)}.password", [str(pcap)], [], {"fuse": False, "passwords": ["LabAdm1!"]}
    for net in sorted((data / "otrf-security-datasets").rglob("network/*.zip")):
        host = net.parent.parent / "host" / net.name
        yield f"shared-{_name(data, net)}.net", [str(net)], [], {"fuse": False}
        if host.is_file():
            yield f"shared-{_name(data, net)}.fused", [str(net)], [str(host)], {}
            yield f"shared-{_name(data, host)}.host", [], [str(host)], {}
    if (data / "zeek-real").is_dir():
        yield "shared-zeek-real.net", [str(data / "zeek-real")], [], {"fuse": False}
    if (data / "mix").is_dir():
        yield "shared-mix.net", [str(data / "mix")], [], {"fuse": False}
    for folder in ("evtx-attack-samples", "python-evtx", "omerbenamram-evtx"):
        if (data / folder).is_dir():
            yield f"shared-{folder}.host", [], [str(data / folder)], {}


def _name(data: Path, path: Path) -> str:
    return str(path.relative_to(data)).replace("/", "_").replace(" ", "_")


def run_case(captures: Sequence[str], hostlogs: Sequence[str], options: dict) -> str:
    from smbtrail.engine import Options, analyze
    from smbtrail.output.jsonl import write_jsonl
    from smbtrail.pydantic_api import SecretStr

    opts = dict(options)
    for key in ("session_keys", "passwords"):
        if key in opts:
            opts[key] = [SecretStr(v) for v in opts[key]]
    out = io.StringIO()
    write_jsonl(analyze(list(captures), list(hostlogs), Options(**opts)), out)
    return out.getvalue()


def snapshot(out_dir: Path, data: Path, fixtures: Path) -> int:
    import smbtrail

    out_dir.mkdir(parents=True, exist_ok=True)
    cases = list(lab_cases(fixtures / "lab"))
    hostile = fixtures / "hostile"
    cases += [(f"hostile-{p.stem}.net", [str(p)], [], {"fuse": False}) for p in sorted(hostile.glob("*.pcapng"))]
    if (fixtures / "hostlog").is_dir():
        cases.append(("fixtures-hostlog.host", [], [str(fixtures / "hostlog")], {}))
    if data.is_dir():
        cases += list(shared_cases(data))
    print(f"engine {Path(smbtrail.__file__).parent}; {len(cases)} cases", file=sys.stderr)
    started = time.monotonic()
    for name, captures, hostlogs, options in cases:
        (out_dir / f"{name}.jsonl").write_text(run_case(captures, hostlogs, options), encoding="utf-8")
    print(f"{len(cases)} cases in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


def compare(old: Path, new: Path) -> int:
    names = sorted({p.name for p in old.glob("*.jsonl")} | {p.name for p in new.glob("*.jsonl")})
    differ = [n for n in names if not (old / n).is_file() or not (new / n).is_file()
              or (old / n).read_bytes() != (new / n).read_bytes()]
    records = sum(len((old / n).read_bytes().splitlines()) for n in names if (old / n).is_file())
    for name in differ:
        print(f"differs: {name}")
    print(f"{len(names)} cases, {records} records: {len(names) - len(differ)} identical, {len(differ)} differ")
    return 1 if differ else 0


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--fixtures", type=Path, default=ROOT / "tests" / "fixtures")
    args = parser.parse_args(argv or None)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        parser.error("give OUT_DIR or --compare OLD NEW")
    return snapshot(args.out, args.data, args.fixtures)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
