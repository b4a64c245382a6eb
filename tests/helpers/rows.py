"""A real capture's tshark rows, fed straight to the protocol state machines.

The rows are read once a session, with the command and fields the network pipeline uses, so a test can cut
or drop frames of a real recording (a capture that began late, a lost bind ack) and run the analyzer on the
rest without another tshark pass. Which frames to cut is asked of tshark with a display filter, so the test
does not read the rows with the code it tests. Only `feed` and `capture_rows` know the analyzer's interface.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from typing import AbstractSet, FrozenSet, Iterable, List, Tuple

from smbtrail import interfaces
from smbtrail.capture import tshark
from smbtrail.capture.fields import Row, field_list, make_frame, to_row
from smbtrail.network.analyzer import Analyzer, RunState
from smbtrail.network.pipeline import _decoder_fields
from smbtrail.records import Record


@lru_cache(maxsize=32)
def capture_rows(path: str) -> Tuple[Row, ...]:
    """Every row tshark gives the pipeline for a capture read without secrets."""
    names = field_list(_decoder_fields())
    cmd = tshark.build_command(tshark.check_tshark(), path, names, disabled=interfaces.all_dissectors())
    run = tshark.TsharkRun()
    rows = tuple(to_row(names, values) for values in tshark.stream_rows(cmd, len(names), run))
    assert run.problem() is None and not run.bad_lines, f"{path}: {run.problem()} ({run.bad_lines} bad lines)"
    return rows


def feed(rows: Iterable[Row], file: str = "rows") -> List[Record]:
    """The records the analyzer makes of these rows, everything still open flushed at the end."""
    analyzer = Analyzer(file, RunState())
    for row in rows:
        analyzer.feed(make_frame(row))
    analyzer.flush(list(analyzer.table.conns.values()))
    return analyzer.out


def number(row: Row) -> int:
    return make_frame(row).number


def without(rows: Iterable[Row], frames: AbstractSet[int]) -> List[Row]:
    return [row for row in rows if number(row) not in frames]


def from_frame(rows: Iterable[Row], first: int) -> List[Row]:
    """The rows of a capture that began at frame `first`."""
    return [row for row in rows if number(row) >= first]


@lru_cache(maxsize=128)
def frames(path: str, display_filter: str) -> FrozenSet[int]:
    """Numbers of the frames tshark's display filter selects (tshark's reading, not the engine's)."""
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return frozenset(int(line) for line in out.split())
