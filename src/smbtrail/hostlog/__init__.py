"""Host-log engine: Windows event logs (.evtx, JSON lines, event XML, zip of these) and Samba AD DC
audit logs -> normalized host records, in the same stream and field names as the network records.

    read_hostlogs(paths, all_events=False, max_expansion=250) -> Iterator[Record]
        kind="host_event" records (protocol "windows_event", evidence ["host"]) for the events of
        lookups/windows_events.csv (every event with all_events=True), plus kind="error" records
        naming the file and position of anything unreadable (a zip member expanding more than
        max_expansion times, too: Options.max_expansion). Streaming: memory does not grow with input.
    recognize_host(records) -> Iterator[Record]
        passes every record through, sets `command` on host records that are a command's own evidence
        (7045 psexec, 4698 atexec, 4720 net user, ...) and adds one kind="command" record per command,
        with the client (src_ip, src_port, user) taken from the pipe access or logon it joins to.
        The rules are lookups/host_commands.csv.
    normalize_flat(flat, source) -> Record
        one flat event (dict with the Windows XML names) -> host record; used by the Splunk adapter.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from ..input_files import DEFAULT_MAX_EXPANSION
from ..records import Record
from .catalog import covered_ids, spec_for
from .commands import recognize_host
from .errors import error
from .jsonl import BAD_EVENT
from .normalize import event_id, normalize_flat
from .sources import read_paths

__all__ = ["read_hostlogs", "recognize_host", "normalize_flat"]


def read_hostlogs(paths: Sequence[str], all_events: bool = False,
                  max_expansion: float = DEFAULT_MAX_EXPANSION) -> Iterator[Record]:
    wanted = None if all_events else covered_ids()
    for item in read_paths(list(paths), wanted, max_expansion):
        if isinstance(item, Record):
            yield item
            continue
        source = item.get("@source") or "-"
        try:
            channel = item.get("Channel")
            spec = spec_for(event_id(item), None if channel is None else str(channel))
            if spec is None and not all_events:
                continue
            yield normalize_flat(item, source, spec)
        except BAD_EVENT as exc:  # one odd event costs that event, named
            yield error(source, f"record #{item.get('EventRecordID')}: cannot normalize ({exc})", partial=True)
