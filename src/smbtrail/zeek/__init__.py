"""Zeek logs as a network source: the records a capture gives, from the logs a SOC's sensors already write.

logs.py         Zeek log files (TSV or JSON lines, plain or gzip, any rotation name) -> rows -> records
order.py        their records in time order: a short reorder buffer per file, files merged
rows.py         one row of dce_rpc / smb_mapping / smb_files / files / ntlm / kerberos / conn -> records
names.py        Zeek's interface and operation names <-> UUID and opnum (lookups/zeek_dce_rpc.csv)
connections.py  per connection (uid): the account, host names, a file's share, conn rows thinned
overlap.py      Zeek and a capture of the same traffic: one record where both saw it

Zeek logs no RPC arguments, no statuses and no access masks: its records say so (`args.absent`), and
the host side (4697, 4698, 5145 ...) brings the arguments back when fused.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence, Union

from ..records import Record
from .logs import LogFile, is_zeek_head, is_zeek_log

__all__ = ["LogFile", "is_zeek_head", "is_zeek_log", "zeek_records", "merged_with_captures"]


def zeek_records(logs: Sequence[Union[str, LogFile]]) -> Iterator[Record]:
    """The network records of these Zeek logs (paths, or members of archives), in time order (each file
    nearly is: see order.py)."""
    from .connections import complete
    from .order import in_time_order

    return complete(in_time_order(logs))


def merged_with_captures(captured: Iterable[Record], zeek: Iterable[Record]) -> Iterator[Record]:
    """Capture and Zeek records in time order, each record once where both saw it."""
    from ..fusion.order import by_time
    from .overlap import without_overlap

    return without_overlap(by_time(captured, zeek))


def network_records(captured: Optional[Iterable[Record]], zeek_logs: Sequence[Union[str, LogFile]]
                    ) -> Iterator[Record]:
    zeek = zeek_records(zeek_logs)
    return zeek if captured is None else merged_with_captures(captured, zeek)
