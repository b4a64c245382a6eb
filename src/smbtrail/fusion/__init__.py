"""Fusion of network and host records into trails and an attack timeline.

identity.py  addresses <-> host names (captures, 4624, lookups/assets.csv)
clocks.py    per-host clock offsets from exact joins
connections.py  the capture side, indexed per connection
joins.py     the five joins, strongest first, each recorded as a reason
hostcommands.py  which command a Windows event shows (lookups/host_commands.csv, command_lines.csv)
trails.py    trails, host facts merged into network commands or standing alone
timeline.py  trails chained A->B->C with stage and suspicion (lookups/suspicion.csv)
order.py     the input in time order (sorted runs spilled to disk when large)
pipeline.py  the streaming pass that ties them together
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

from ..records import Record


def fuse_records(records: Iterable[Record], assets: Optional[str] = None) -> Iterator[Record]:
    """Network and host records in; every record out, annotated, plus fused commands and one `trail`
    record per trail. Input records are annotated in place.

    A stream is taken in the engine's order (network and host records merged by time, `order.by_time`).
    Records already in memory (a list, as the Splunk command has them, newest first) are put in that
    order.
    """
    from .pipeline import Fusion

    if isinstance(records, Sequence):
        records = sorted(records, key=lambda r: r.time)
    return Fusion(assets).run(records)
