"""The one engine entry point that every adapter (CLI, modular inputs, search command) calls."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

from .options import Options
from .records import Record

__all__ = ["Options", "analyze", "fuse", "host_records", "network_records"]


def network_records(paths: Sequence[str], options: Optional[Options] = None, progress=None) -> Iterator[Record]:
    """progress: a `progress.Progress` told how far the captures are read (None: not reported)."""
    from .network.pipeline import analyze_captures

    return analyze_captures(paths, options or Options(), progress)


def host_records(paths: Sequence[str], options: Optional[Options] = None) -> Iterator[Record]:
    from .hostlog import read_hostlogs
    from .hostlog.commands import recognize_host

    options = options or Options()
    return recognize_host(read_hostlogs(paths, all_events=options.all_events, max_expansion=options.max_expansion))


def fuse(records: Iterable[Record]) -> Iterator[Record]:
    from .fusion import fuse_records

    return fuse_records(records)


def analyze(captures: Sequence[str], hostlogs: Sequence[str] = (), options: Optional[Options] = None,
            progress=None) -> Iterator[Record]:
    options = options or Options()
    stream: Iterable[Record] = network_records(captures, options, progress) if captures else iter(())
    if options.fuse and hostlogs:  # with captures or alone: host events make trails of their own
        from .fusion.order import by_time

        return fuse(by_time(stream, host_records(hostlogs, options)))  # fusion takes them in time order
    if hostlogs:
        from itertools import chain

        stream = chain(stream, host_records(hostlogs, options))
    return iter(stream)
