"""One JSON object per line, with the record's deterministic id."""

from __future__ import annotations

import json
from typing import IO, Iterable

from ..records import Record
from . import json_text

_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode  # json.dumps(...) without a new encoder a line


def write_jsonl(records: Iterable[Record], out: IO[str]) -> int:
    count = 0
    for rec in records:
        data = rec.to_dict()
        data["id"] = rec.uid()
        out.write(json_text(_JSON(data)) + "\n")
        count += 1
    return count
