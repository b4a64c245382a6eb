"""Binary .evtx files: the Rust-backed `evtx` package, or python-evtx when `evtx` cannot be imported.

Both yield the same flat events. With the Rust reader a record whose EventID is not wanted is
skipped on a regex over its JSON text, before any parsing (most of the reader's speed).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any, FrozenSet, Iterable, Iterator, Optional, Union

from ..records import Record
from .errors import error
from .flatten import from_json_event, from_xml

try:  # orjson is optional: 4x faster, same result
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

Event = Union[dict, Record]
CHUNK_NUMBER = re.compile(r"chunk number (\d+)")
EVENT_ID = re.compile(r'"EventID":(?:\{"#attributes":\{[^}]*\},"#text":)?"?(\d+)')
MAX_ERRORS = 1000  # per file: a reader stuck on one broken spot stops here
HEADER_SIZE, CHUNK_SIZE = 0x1000, 0x10000
FILETIME_EPOCH = datetime(1601, 1, 1)
HEX = re.compile(r"0x0[0-9a-f]+$")
GUID = re.compile(r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$")


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


def read_evtx_python(path: str, source: str, wanted: Optional[FrozenSet[int]] = None, handle: Any = None
                     ) -> Iterator[Event]:
    """python-evtx: slower. Every 64 KiB chunk slot of the file is tried (the header's chunk count is
    stale in dirty files), so one bad chunk costs that chunk only."""
    try:
        buf = handle.read() if handle is not None else _map(path)
        if len(buf) < HEADER_SIZE or bytes(buf[:8]) != b"ElfFile\x00":
            raise ValueError("no ElfFile header")
    except Exception as exc:  # python-evtx raises many kinds on foreign input
        yield error(source, f"not a readable .evtx file ({exc})")
        return
    errors = 0
    for number, offset in enumerate(range(HEADER_SIZE, len(buf) - CHUNK_SIZE + 1, CHUNK_SIZE)):
        for item in _python_chunk(buf, offset, number, source, wanted):
            errors += isinstance(item, Record)
            yield item
        if errors >= MAX_ERRORS:
            yield error(source, f"stopped after {errors} unreadable records", partial=True)
            return
    if (len(buf) - HEADER_SIZE) % CHUNK_SIZE:
        yield error(source, f"file ends inside chunk {(len(buf) - HEADER_SIZE) // CHUNK_SIZE} (truncated): "
                            "the records of that chunk are not read", partial=True)


def _python_chunk(buf: Any, offset: int, number: int, source: str, wanted: Optional[FrozenSet[int]]
                  ) -> Iterator[Event]:
    from Evtx.Evtx import ChunkHeader

    chunk = ChunkHeader(buf, offset)
    if not chunk.check_magic():
        if any(buf[offset:offset + 8]):
            yield error(source, f"chunk {number}: bad chunk magic", partial=True)
        return
    try:
        records = list(chunk.records())
    except Exception as exc:
        yield error(source, f"chunk {number}: {exc}", partial=True)
        return
    for rec in records:
        try:
            flat = _python_flat(rec)
        except Exception as exc:
            yield error(source, f"chunk {number} record #{_record_num(rec)}: {exc}", partial=True)
            continue
        if wanted is None or _int(flat.get("EventID")) in wanted:
            yield flat


def _python_flat(rec: Any) -> dict:
    """python-evtx's XML, flattened, with values rendered as the Rust reader renders them."""
    from Evtx.Nodes import FiletimeTypeNode

    flat = from_xml(rec.xml())
    for sub in rec.root().substitutions():  # the exact SystemTime: python-evtx's own rounds via float
        if isinstance(sub, FiletimeTypeNode):
            ticks = sub.unpack_qword(0)
            flat["TimeCreated"] = (FILETIME_EPOCH + timedelta(microseconds=ticks // 10)).isoformat() + "Z"
            break
    for key, value in flat.items():
        if isinstance(value, str) and key not in ("TimeCreated",):
            flat[key] = _rust_style(value)
    for key in ("EventID", "EventRecordID"):
        flat[key] = _int(flat.get(key))
    return flat


def _rust_style(value: str) -> str:
    """Zero-padded hex (0x00000000000003e7) -> 0x3e7; {guid} -> GUID, as the evtx package writes them."""
    if HEX.match(value):
        return hex(int(value, 16))
    if GUID.match(value):
        return value[1:-1].upper()
    return value


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


def _map(path: str) -> Any:
    import mmap

    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if not fh.tell():
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _record_num(rec: Any) -> Any:
    try:
        return rec.record_num()
    except Exception:
        return "?"


def _int(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except ValueError:
        return None
