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
from .evtx_python import CHUNK_SIZE, HEADER_SIZE, MAX_ERRORS, read_evtx_python, truncation
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


def read_evtx(path: Optional[str], source: str, wanted: Optional[FrozenSet[int]] = None, handle: Any = None
              ) -> Iterator[Event]:
    """Flat events (and error records) of one .evtx file: `handle` an open binary file of it (which the
    reader may seek), `path` its name when it has one."""
    if engine() == "evtx":
        return read_evtx_rust(path, source, wanted, handle)
    return read_evtx_python(path, source, wanted, handle)


def read_evtx_rust(path: Optional[str], source: str, wanted: Optional[FrozenSet[int]] = None, handle: Any = None
                   ) -> Iterator[Event]:
    import evtx

    try:
        # by name when it can be (the Rust reader reads files faster than through a Python handle); a name
        # that is not UTF-8 cannot cross into Rust, so such a file goes by its handle
        if path is not None and _utf8(path):
            target = path
        else:
            target = handle if handle is not None else open(path, "rb")  # noqa: SIM115 (the parser keeps it)
            target.seek(0)
        records = evtx.PyEvtxParser(target).records_json()
    except (OSError, RuntimeError, ValueError) as exc:
        yield error(source, f"not a readable .evtx file ({exc})")
        return
    last, errors, bad_chunks = None, 0, set()
    while True:
        try:
            rec = next(records)
        except StopIteration:
            yield from chunk_problems(handle if handle is not None else path, source, bad_chunks)
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


def chunk_problems(file: Any, source: str, reported: Iterable[int] = ()) -> Iterator[Record]:
    """What the evtx package skips without a word: chunks with a broken header, a cut-off last chunk, a file
    cut at a chunk boundary (fewer chunks than its header counts). `file`: a path or an open binary file."""
    try:
        handle = open(file, "rb", buffering=0) if isinstance(file, str) else file
        try:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(0)
            header = handle.read(HEADER_SIZE)
            for number, offset in enumerate(range(HEADER_SIZE, size - CHUNK_SIZE + 1, CHUNK_SIZE)):
                handle.seek(offset)
                magic = handle.read(8)
                if magic != b"ElfChnk\x00" and any(magic) and number not in reported:
                    yield error(source, f"chunk {number}: bad chunk magic, its records not read", partial=True)
        finally:
            if isinstance(file, str):
                handle.close()
    except OSError as exc:
        yield error(source, f"cannot re-read to check chunks ({exc})", partial=True)
        return
    problem = truncation(header, size)
    if problem:
        yield error(source, problem, partial=True)


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
