"""Engine records as Splunk events: sourcetype by convention, event time, deterministic id."""

from __future__ import annotations

import json
from typing import Any, Dict

from ..records import HOST_EVENT, Record

# What the inputs write: one sourcetype per kind of evidence, every record kind inside it (commands
# recognized from a capture are network records, commands recognized from Windows events host records).
NETWORK = "smbtrail:network"
HOST = "smbtrail:host"
HEALTH = "smbtrail:health"
INPUT_SOURCETYPES = (NETWORK, HOST)
# What the scheduled fusion writes to the summary index: `collect` with its default sourcetype (stash,
# not counted against the licence) and this source, which props.conf gives the JSON extractions.
FUSED_SOURCE = "smbtrail:fused"


def sourcetype_for(record: Record, default: str) -> str:
    """Windows events are host records wherever they were read; the rest keep the input's sourcetype."""
    return HOST if record.kind == HOST_EVENT else default


def event_body(record: Record) -> Dict[str, Any]:
    """The JSON written as the event: the record plus `uid`, its deterministic id (dedup key)."""
    body = record.to_dict()
    body["uid"] = record.uid()
    return body


def event_json(record: Record) -> str:
    # ASCII with \u escapes: strings from captures may hold lone surrogates or control characters that
    # would break the UTF-8 XML stream; "time" stays the first key (props TIME_PREFIX)
    return json.dumps(event_body(record), ensure_ascii=True)


def xml_safe(text: str) -> str:
    """Text for an XML element outside the JSON body (file names): no characters XML 1.0 forbids."""
    return "".join(c if c >= " " or c in "\t\n" else "?" for c in text).encode("utf-8", "replace").decode()


def record_from_body(body: Dict[str, Any]) -> Record:
    """Inverse of `event_body`: a record back from an event's JSON (the `uid` is recomputed, not kept)."""
    fields = {k: v for k, v in body.items() if k in Record.model_fields}
    return Record.model_validate(fields)
