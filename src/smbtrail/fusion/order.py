"""Fusion's input in time order: network and host records merged by time.

Each side is sorted on its own: in memory when it is small, else in sorted runs of RUN records
pickled to temporary files and merged, so memory holds one run and one record per run whatever the
input order (past MAX_RUNS runs, they are first merged into one). Captures and logs of several files,
each about in time order, are not in order together.
Fusion tolerates a little disorder (pipeline.REORDER, SKEW); it needs no more.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from typing import IO, Iterable, Iterator, List

from ..records import Record

RUN = 20000  # records sorted in memory at a time, per side
MAX_RUNS = 200  # open run files per side; more are first merged into one (open files stay under ulimit -n)


def by_time(*sides: Iterable[Record]) -> Iterator[Record]:
    """Records of every side, oldest first (ties keep the sides' order)."""
    return heapq.merge(*(_sorted(side) for side in sides), key=_time)


def _time(rec: Record) -> float:
    return rec.time.timestamp()


def _sorted(records: Iterable[Record]) -> Iterator[Record]:
    runs: List[IO[bytes]] = []
    chunk: List[Record] = []
    try:
        for rec in records:
            chunk.append(rec)
            if len(chunk) == RUN:
                runs.append(_spill(sorted(chunk, key=_time)))
                chunk = []
            if len(runs) == MAX_RUNS:
                merged = _spill(heapq.merge(*(_read(run) for run in runs), key=_time))
                for run in runs:
                    run.close()
                runs = [merged]
        chunk.sort(key=_time)
        yield from heapq.merge(*(_read(run) for run in runs), chunk, key=_time)
    finally:
        for run in runs:
            run.close()


def _spill(ordered: Iterable[Record]) -> IO[bytes]:
    run = tempfile.TemporaryFile(prefix="smbtrail-order-")
    for rec in ordered:
        pickle.dump(rec, run, protocol=pickle.HIGHEST_PROTOCOL)
    run.seek(0)
    return run


def _read(run: IO[bytes]) -> Iterator[Record]:
    while True:
        try:
            yield pickle.load(run)
        except EOFError:
            return
