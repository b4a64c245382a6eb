"""Host-log files read on two cores, with the output of one process: same records, same order.

A helper process (a fork: nothing is imported again) reads every file the plan gives it, in order, to
records, and queues them; the caller reads the other files itself and, at each of the helper's files,
takes its records from the queue. Records cross as their set fields and are rebuilt with `construct`;
taking one costs the caller about a third of reading it, so the plan gives the caller PARENT_SHARE of
the bytes, interleaved in file order (it balances the two processes' CPU time on the benchmark corpus).
Memory stays bounded: the queue holds at most QUEUE batches of BATCH records. If the helper dies, the
caller reads the rest itself, past the records it already took. One process reads everything where
fork is not available, on one core, when the caller runs other threads (forking those is unsafe), or
when the machine has no idle core (1-minute load average over cores - 1): there the helper would only
compete with the caller.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from itertools import islice
from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence, Tuple, Union

from ..records import Record
from .normalize import fields_of, record_of

BATCH = 256
QUEUE = 64
POLL_SECONDS = 0.5
PARENT_SHARE = 0.45
Reader = Callable[[str], Iterator[Union[Dict[str, Any], Record]]]  # host fields (normalize.host_fields) or records


def read_in_order(units: Sequence[Union[str, Record]], read: Reader) -> Iterator[Record]:
    """The records of `read(path)` for every path of `units` and the records of `units` as they are, in order."""
    paths = [unit for unit in units if isinstance(unit, str)]
    plan = _plan(paths) if len(paths) > 1 and _can_fork() and _idle_core() else [False] * len(paths)
    helper = _Helper(paths, plan, read) if any(plan) else None
    try:
        index = 0
        for unit in units:
            if isinstance(unit, Record):
                yield unit
                continue
            yield from helper.records(index, unit, read) if plan[index] else _records(read(unit))
            index += 1
    finally:
        if helper is not None:
            helper.stop()


def _can_fork() -> bool:
    return _cores() > 1 and "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _idle_core() -> bool:
    return os.getloadavg()[0] < _cores() - 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _plan(paths: List[str]) -> List[bool]:
    """Which files the helper reads: the caller keeps PARENT_SHARE of the bytes, interleaved."""
    plan, mine, total = [], 0, 0
    for path in paths:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        total += size
        plan.append(mine + size > PARENT_SHARE * total)
        mine += 0 if plan[-1] else size
    return plan


class _Helper:
    def __init__(self, paths: List[str], plan: List[bool], read: Reader) -> None:
        context = multiprocessing.get_context("fork")
        self.queue = context.Queue(QUEUE)
        self.dead = False
        files = [(index, path) for index, (path, theirs) in enumerate(zip(paths, plan)) if theirs]
        self.process = context.Process(target=_help, args=(files, read, self.queue), daemon=True)
        self.process.start()

    def records(self, index: int, path: str, read: Reader) -> Iterator[Record]:
        taken = 0
        while not self.dead:
            try:
                got, batch, last = self.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                self.dead = not self.process.is_alive()
                continue
            if got != index:
                raise RuntimeError(f"host-log helper sent file #{got} where #{index} was due")
            for fields in batch:
                yield record_of(fields)
            taken += len(batch)
            if last:
                return
        yield from _records(islice(read(path), taken, None))  # the helper died: the rest of this file here

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.queue.close()


def _help(files: List[Tuple[int, str]], read: Reader, out: Any) -> None:
    """The helper process: its files' records, in batches, in order."""
    for index, path in files:
        batch: List[Dict[str, Any]] = []
        for item in read(path):
            batch.append(fields_of(item) if isinstance(item, Record) else item)
            if len(batch) == BATCH:
                out.put((index, batch, False))
                batch = []
        out.put((index, batch, True))


def _records(items: Iterable[Union[Dict[str, Any], Record]]) -> Iterator[Record]:
    for item in items:
        yield item if isinstance(item, Record) else record_of(item)
