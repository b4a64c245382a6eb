"""Error records for host-log input that could not be (fully) read: one line naming file and position."""

from __future__ import annotations

import os

from ..records import ERROR, Provenance, Record, from_epoch


def error(source: str, reason: str, partial: bool = False) -> Record:
    """`source` is a path or `archive.zip!member`; the record carries the file's mtime, so replays match."""
    try:
        when = os.path.getmtime(source.split("!", 1)[0])
    except OSError:
        when = 0.0
    reason = " ".join(str(reason).split())[:300]
    return Record(time=from_epoch(when), kind=ERROR, message=f"{source}: {reason}", partial=partial,
                  status="partial" if partial else "error", evidence=["host"],
                  provenance=[Provenance(file=source)])
