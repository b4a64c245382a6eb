"""Binary .evtx files: the Rust-backed `evtx` package, or python-evtx when `evtx` cannot be imported.

Both yield the same flat events. With the Rust reader a record whose EventID is not wanted is
skipped on a regex over its JSON text, before any parsing (most of the reader's speed).
"""

from __future__ import annotations

import json
import re
from typing import Any, FrozenSet, Iterable, Iterator, Optional, Union

from ..records import Record
from .errors import error
from .evtx_python import CHUNK_SIZE, HEADER_SIZE, MAX_ERRORS, read_evtx_python
from .flatten import from_json_event

try:  # orjson is optional: 4x faster, same result
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

Event = Union[dict, Record]
CHUNK_NUMBER = re.compile(r"chunk number (\d+)")
EVENT_ID = re.compile(r'"EventID":(?:\{"#attributes":\{[^}]*\},"#text":)?"?(\d+)')


def engine() -> str:
    try:
        import evtx  # noqa: F401
    except ImportError:
        return "python-evtx"
    return "evtx"


def read_evtx(path: str, source: str, wanted: Optional[FrozenSet[int]] = None, handle: Any = None
              ) -> Iterator[Event]:
    """Flat events (and error records) of one .evtx file; `handle` is an open binary file for zip members."""
    if engine() == "evtx":
        return read_evtx_rust(path, source, wanted, handle)
    return read_evtx_python(path, source, wanted, handle)


def read_evtx_rust(path: str, source: str, wanted: Optional[FrozenSet[int]] = None, handle: Any = None
                   ) -> Iterator[Event]:
    import evtx

    try:
        records = evtx.PyEvtxParser(handle if handle is not None else path).records_json()
    except (OSError, RuntimeError, ValueError) as exc:
        yield error(source, f"not a readable .evtx file ({exc})")
        return
    last, errors, bad_chunks = None, 0, set()
    while True:
        try:
            rec = next(records)
        except StopIteration:
            yield from chunk_problems(path, source, bad_chunks)
            return
        except (RuntimeError, OSError, ValueError) as exc:
            errors += 1
            bad_chunks.update(int(n) for n in CHUNK_NUMBER.findall(str(exc)))
            yield error(source, f"after record #{last}: {exc}", partial=True)
            if errors >= MAX_ERRORS:
                yield error(source, f"stopped after {errors} unreadable records", partial=True)
                return
            continue
        last = rec.get("event_record_id")
        data = rec["data"]
        if wanted is not None:
            match = EVENT_ID.search(data)
            if match is not None and int(match.group(1)) not in wanted:
                continue
        try:
            event = _loads(data)["Event"]
        except (ValueError, KeyError, TypeError) as exc:
            yield error(source, f"record #{last}: not an event ({exc})", partial=True)
            continue
        yield from_json_event(event)


def chunk_problems(path: str, source: str, reported: Iterable[int] = ()) -> Iterator[Record]:
    """What the evtx package skips without a word: chunks with a broken header, a cut-off last chunk."""
    try:
        with open(path, "rb", buffering=0) as handle:
            handle.seek(0, 2)
            size = handle.tell()
            for number, offset in enumerate(range(HEADER_SIZE, size - CHUNK_SIZE + 1, CHUNK_SIZE)):
                handle.seek(offset)
                magic = handle.read(8)
                if magic != b"ElfChnk\x00" and any(magic) and number not in reported:
                    yield error(source, f"chunk {number}: bad chunk magic, its records not read", partial=True)
    except OSError as exc:
        yield error(source, f"cannot re-read to check chunks ({exc})", partial=True)
        return
    if size > HEADER_SIZE and (size - HEADER_SIZE) % CHUNK_SIZE:
        yield error(source, f"file ends inside chunk {(size - HEADER_SIZE) // CHUNK_SIZE} (truncated): "
                            "the records of that chunk are not read", partial=True)
