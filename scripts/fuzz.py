"""The long fuzz run: every target of tests/helpers/fuzz_targets.py for a time budget, fresh seeds each round.

    python scripts/fuzz.py [--minutes-per-target 5] [--targets ndr,evtx_python]

Prints per target: inputs tried, findings (an exception or a bound broken; hypothesis shrinks each to a minimal
input, printed), and the time taken. Exit status 1 when anything was found.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from helpers.fuzz_targets import targets  # noqa: E402


def fuzz(name: str, seconds: float, rounds_of: int = 25):
    make, check = targets()[name]
    strategy = make()
    if strategy is None:
        return None
    tried, findings, started = 0, {}, time.monotonic()

    def counted(example):
        nonlocal tried
        tried += 1
        check(example)

    while time.monotonic() - started < seconds:
        run = seed(random.getrandbits(64))(settings(max_examples=rounds_of, deadline=None, database=None,
                                                    suppress_health_check=list(HealthCheck))(given(strategy)(counted)))
        try:
            run()
        except Exception as exc:  # a finding: keep going with fresh seeds, report each distinct one at the end
            frames = traceback.extract_tb(exc.__traceback__)
            where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames)
                          if "smbtrail" in f.filename or "fuzz_targets" in f.filename), "?")
            key = f"{exc.__class__.__name__} at {where}"
            if key not in findings:
                findings[key] = str(exc).splitlines()[0][:200] if str(exc) else ""
    return tried, findings, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes-per-target", type=float, default=5.0)
    parser.add_argument("--targets", default="", help="comma-separated (default: all)")
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n] or sorted(targets())
    total_tried, total_found = 0, 0
    print(f"{'target':<14} {'inputs':>9} {'findings':>9} {'seconds':>8}")
    for name in names:
        result = fuzz(name, args.minutes_per_target * 60)
        if result is None:
            print(f"{name:<14} {'skipped: no seed inputs (public samples absent)':>30}")
            continue
        tried, findings, took = result
        total_tried, total_found = total_tried + tried, total_found + len(findings)
        print(f"{name:<14} {tried:>9} {len(findings):>9} {took:>8.0f}", flush=True)
        for key, message in findings.items():
            print(f"  finding: {key}: {message}")
    print(f"{'all':<14} {total_tried:>9} {total_found:>9}")
    return 1 if total_found else 0


if __name__ == "__main__":
    sys.exit(main())
