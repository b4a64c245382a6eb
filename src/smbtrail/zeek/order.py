"""Zeek's records in time order without sorting the run: each log file is nearly in order already.

Zeek writes a line when the exchange it describes ends (a call's response, a tree connect's answer),
stamped with when it began, so a file runs in time order but for the lines of exchanges that took
long. Each file goes through a reorder buffer of REORDER seconds, and the files are merged by time.
A line later than that comes out late rather than in place (conn.log lines, written when their
connection closes, can be hours late: the reader only needs them for connections no other log
names, so late is harmless). Memory: REORDER seconds of each file.
"""

from __future__ import annotations

import heapq
from typing import Iterable, Iterator, List, Sequence, Tuple, Union

from ..records import Record
from .logs import LogFile, read_log

REORDER = 600.0  # seconds a line may begin before lines already read in its file


def in_time_order(logs: Sequence[Union[str, LogFile]]) -> Iterator[Record]:
    return heapq.merge(*(reordered(read_log(log)) for log in logs), key=_time)


def reordered(records: Iterable[Record], window: float = REORDER) -> Iterator[Record]:
    """Records in time order, as far as a buffer of `window` seconds can put them."""
    buffer: List[Tuple[float, int, Record]] = []
    newest = float("-inf")
    for order, rec in enumerate(records):
        when = _time(rec)
        newest = max(newest, when)
        heapq.heappush(buffer, (when, order, rec))
        while buffer and buffer[0][0] < newest - window:
            yield heapq.heappop(buffer)[2]
    while buffer:
        yield heapq.heappop(buffer)[2]


def _time(rec: Record) -> float:
    return rec.time.timestamp()
