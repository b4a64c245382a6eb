"""Fusion's input in time order: network and host records merged by time.

Each side is sorted on its own: in memory when it is small, else in sorted runs of RUN records
pickled to temporary files and merged, so memory holds one run and one record per run whatever the
input order (past MAX_RUNS runs, they are first merged into one). Captures and logs of several files,
each about in time order, are not in order together.
Fusion tolerates a little disorder (pipeline.REORDER, SKEW); it needs no more.
`Runs` is the same sort for items pushed one at a time (the Splunk command receives its rows chunk
by chunk), in any order a key gives.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from typing import IO, Any, Callable, Generic, Iterable, Iterator, List, Optional, TypeVar

from ..records import Record

RUN = 20000  # records sorted in memory at a time, per side
MAX_RUNS = 200  # open run files per side; more are first merged into one (open files stay under ulimit -n)
T = TypeVar("T")


def by_time(*sides: Iterable[Record]) -> Iterator[Record]:
    """Records of every side, oldest first (ties keep the sides' order)."""
    return heapq.merge(*(_sorted(side) for side in sides), key=_time)


def _time(rec: Record) -> float:
    return rec.time.timestamp()


class Runs(Generic[T]):
    """Items sorted by `key`, RUN at a time in memory, the rest in sorted runs on temporary disk."""

    def __init__(self, key: Callable[[T], Any], run: Optional[int] = None) -> None:
        self.key, self.run = key, run or RUN
        self.files: List[IO[bytes]] = []
        self.chunk: List[T] = []
        self.count = 0

    def add(self, item: T) -> None:
        self.chunk.append(item)
        self.count += 1
        if len(self.chunk) >= self.run:
            self.files.append(_spill(sorted(self.chunk, key=self.key)))
            self.chunk = []
        if len(self.files) == MAX_RUNS:
            merged = _spill(heapq.merge(*(_read(f) for f in self.files), key=self.key))
            self.close()
            self.files = [merged]

    def merged(self) -> Iterator[T]:
        """Every item added so far, in key order (ties in the order they were added within a run). Another
        pass may follow this one, not run beside it; `close` frees the disk."""
        self.chunk.sort(key=self.key)
        for run in self.files:
            run.seek(0)
        return heapq.merge(*(_read(f) for f in self.files), self.chunk, key=self.key)

    def close(self) -> None:
        for run in self.files:
            run.close()
        self.files = []


def _sorted(records: Iterable[Record]) -> Iterator[Record]:
    runs: Runs[Record] = Runs(_time)
    try:
        for rec in records:
            runs.add(rec)
        yield from runs.merged()
    finally:
        runs.close()


def _spill(ordered: Iterable[Any]) -> IO[bytes]:
    run = tempfile.TemporaryFile(prefix="smbtrail-order-")
    for item in ordered:
        pickle.dump(item, run, protocol=pickle.HIGHEST_PROTOCOL)
    run.seek(0)
    return run


def _read(run: IO[bytes]) -> Iterator[Any]:
    while True:
        try:
            yield pickle.load(run)
        except EOFError:
            return
