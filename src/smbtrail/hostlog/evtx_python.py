"""python-evtx, the pure-Python .evtx reader used when the `evtx` package cannot be imported (the Splunk app).

python-evtx renders each record by walking its template's binary XML again. Here a template (with the
templates of any nested binary-XML substitutions) is rendered once per chunk, with markers in place of its
substitutions, and flattened into a recipe; a record then only fills its own substitution values in. The
result is what rendering and flattening the record's XML gives (a test compares both on the sample
records). A template whose field names are themselves substitutions takes python-evtx's full rendering.
"""

from __future__ import annotations

import logging
import re
import struct
import time
import zlib
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Dict, FrozenSet, Iterator, List, Optional, Tuple, Union

from ..records import Record
from .errors import error
from .flatten import from_xml

HEADER_SIZE, CHUNK_SIZE = 0x1000, 0x10000
FIRST_RECORD, RECORD_MAGIC, RECORD_HEADER = 0x200, 0x00002A2A, 0x18
MAX_XML = 16 * CHUNK_SIZE  # characters a template renders to, at most (the public samples' largest: 2,344)
MAX_ERRORS = 1000  # per file: a reader stuck on one broken spot stops here
CHUNK_SECONDS = 10.0  # an intact chunk takes about 0.2 s; corrupt data can make python-evtx loop far longer
FILETIME_EPOCH = datetime(1601, 1, 1)
HEX = re.compile(r"0x0[0-9a-f]+$")
GUID = re.compile(r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$")
MARK = re.compile("\ue000(\\d+)\ue001")  # private-use characters: survive python-evtx's escaping and XML
STRIPPED = frozenset(("EventID", "Channel", "Computer", "EventRecordID"))  # from_xml strips these texts
ATTRIBUTES = frozenset(("Provider", "TimeCreated", "UserID"))  # XML attribute values: whitespace -> space
Parts = Tuple[Union[str, int], ...]  # static text and substitution indexes, in order
Entries = List[Tuple[str, Union[None, Parts, List[Parts]]]]
Recipe = Tuple[Entries, Tuple[int, ...]]  # the flat template, and the plain substitutions it uses
NO_RECIPE: Recipe = ([], ())
logging.getLogger("Evtx").setLevel(logging.ERROR)  # its per-token warnings would flood stderr; errors are records


def read_evtx_python(path: str, source: str, wanted: Optional[FrozenSet[int]] = None, handle: Any = None
                     ) -> Iterator[Union[dict, Record]]:
    """Every 64 KiB chunk slot of the file is tried (the header's chunk count is stale in dirty files),
    so one bad chunk costs that chunk only."""
    try:
        buf = _map(handle if handle is not None else path)
        if len(buf) < HEADER_SIZE or bytes(buf[:8]) != b"ElfFile\x00":
            raise ValueError("no ElfFile header")
    except Exception as exc:  # python-evtx raises many kinds on foreign input
        yield error(source, f"not a readable .evtx file ({exc})")
        return
    errors = 0
    for number, chunk in chunks(buf):
        for item in _chunk(chunk, number, source, wanted):
            errors += isinstance(item, Record)
            yield item
        if errors >= MAX_ERRORS:
            yield error(source, f"stopped after {errors} unreadable records", partial=True)
            return
    problem = truncation(bytes(buf[:HEADER_SIZE]), len(buf))
    if problem:
        yield error(source, problem, partial=True)


def truncation(header: bytes, size: int) -> Optional[str]:
    """A file cut inside a chunk, or at a chunk boundary before the chunk count its header gives (trusted
    only when the header's checksum holds: a dirty header undercounts, never overcounts)."""
    if size > HEADER_SIZE and (size - HEADER_SIZE) % CHUNK_SIZE:
        return (f"file ends inside chunk {(size - HEADER_SIZE) // CHUNK_SIZE} (truncated): the records of that "
                "chunk are not read")
    present = max(0, (size - HEADER_SIZE) // CHUNK_SIZE)
    if len(header) >= 128 and zlib.crc32(header[:120]) == int.from_bytes(header[124:128], "little"):
        declared = int.from_bytes(header[42:44], "little")
        if declared > present:
            return (f"file ends after chunk {present - 1} of the {declared} its header counts (truncated): "
                    f"the records of {declared - present} chunk(s) are not read")
    return None


def chunks(buf: Any) -> Iterator[Tuple[int, Any]]:
    """(number, python-evtx ChunkHeader) of every 64 KiB chunk slot after the file header. Each chunk parses a
    copy of its own bytes, so no walk through it (records, tables, tokens) reads past its end."""
    bounded = _bounded_chunk()
    for number, offset in enumerate(range(HEADER_SIZE, len(buf) - CHUNK_SIZE + 1, CHUNK_SIZE)):
        yield number, bounded(bytes(buf[offset:offset + CHUNK_SIZE]), 0)


@cache
def _bounded_chunk() -> type:
    """python-evtx's ChunkHeader with walks that end: it follows the string and template tables' hash chains
    until an offset of 0 (a chain that loops back, as one corrupt pointer makes it, never ends) and walks
    records by their sizes alone. Here each chain stops at an offset seen before or outside the chunk, and a
    record is checked (magic, size at both ends) and parsed over its own bytes only. Set up once, with the
    guard on string arrays (python-evtx's other endless loop)."""
    from Evtx.Evtx import ChunkHeader, Record

    _bound_string_arrays()

    class BoundedChunk(ChunkHeader):  # type: ignore[misc,valid-type]
        def _load_strings(self) -> None:
            if self._strings is None:
                self._strings = {}
            self._follow(0x80, 64, self.add_string)

        def _load_templates(self) -> None:
            if self._templates is None:
                self._templates = {}
            # python-evtx's own check: a template follows the instance token that declares it
            self._follow(0x180, 32, self.add_template,
                         lambda at: self.unpack_byte(at - 10) == 0x0C and self.unpack_dword(at - 4) == at)

        def _follow(self, table: int, buckets: int, add: Any, valid: Any = None) -> None:
            seen = set()
            for bucket in range(buckets):
                at = self.unpack_dword(table + 4 * bucket)
                while FIRST_RECORD <= at < CHUNK_SIZE - 8 and at not in seen and (valid is None or valid(at)):
                    seen.add(at)
                    at = add(at).next_offset()

        def records(self) -> Iterator[Any]:
            whole, at = memoryview(self._buf), FIRST_RECORD
            end = min(self.next_record_offset(), CHUNK_SIZE)
            while at + RECORD_HEADER <= end:
                magic, size = struct.unpack_from("<II", whole, at)
                if not magic and not size:  # free space: the records end
                    return
                if (magic != RECORD_MAGIC or size < RECORD_HEADER + 4 or at + size > CHUNK_SIZE
                        or struct.unpack_from("<I", whole, at + size - 4)[0] != size):
                    raise ValueError(f"broken record header at offset {at:#x} (the rest of the chunk is not read)")
                yield Record(whole[:at + size], at, self)
                at += size

    return BoundedChunk


def _bound_string_arrays() -> None:
    """python-evtx splits a string array (UTF-16 strings, NUL-separated) in a loop that never ends when one
    byte is left over; an array of odd length is corrupt, so it is refused before that loop."""
    from Evtx.Nodes import WstringArrayTypeNode

    split = WstringArrayTypeNode.string

    def string(node: Any) -> str:
        if len(node.binary()) % 2:
            raise ValueError(f"string array of odd length ({len(node.binary())} bytes)")
        return split(node)

    WstringArrayTypeNode.string = string


def _chunk(chunk: Any, number: int, source: str, wanted: Optional[FrozenSet[int]]) -> Iterator[Union[dict, Record]]:
    if not chunk.check_magic():
        if any(chunk.unpack_binary(0, 8)):
            yield error(source, f"chunk {number}: bad chunk magic", partial=True)
        return
    recipes: Dict[Any, Recipe] = {}
    started, read = time.monotonic(), 0
    records = iter(chunk.records())
    while True:
        try:
            rec = next(records)
        except StopIteration:
            return
        except Exception as exc:
            yield error(source, f"chunk {number}: {exc}", partial=True)
            return
        if time.monotonic() - started > CHUNK_SECONDS:
            yield error(source, f"chunk {number}: abandoned after {CHUNK_SECONDS:g} s and {read} records (corrupt "
                                "data makes it too slow to read)", partial=True)
            return
        read += 1
        try:
            flat = record_flat(rec, recipes)
        except Exception as exc:
            yield error(source, f"chunk {number} record #{_record_num(rec)}: {exc}", partial=True)
            continue
        if wanted is None or _int(flat.get("EventID")) in wanted:
            yield flat


def record_flat(rec: Any, recipes: Optional[Dict[Any, Recipe]] = None) -> dict:
    """The flat event of one python-evtx record, with values as the evtx package writes them.
    `recipes` caches the chunk's templates; without it the record's XML is rendered and parsed."""
    from Evtx.Nodes import FiletimeTypeNode

    root = rec.root()
    subs = root.substitutions()  # python-evtx parses them again at each call: once a record
    flat = None
    if recipes is not None:
        key, leaves = _shape(root, subs)
        if key not in recipes:
            recipes[key] = _recipe(root)
        if recipes[key][0]:
            flat = _fill(recipes[key], leaves)
    if flat is None:
        flat = from_xml(rec.xml())
    for sub in subs:  # the exact SystemTime: python-evtx's own rounds via float
        if isinstance(sub, FiletimeTypeNode):
            flat["TimeCreated"] = (FILETIME_EPOCH + timedelta(microseconds=sub.unpack_qword(0) // 10)).isoformat() + "Z"
            break
    for key, value in flat.items():
        if value.__class__ is str and key != "TimeCreated":
            flat[key] = _rust_style(value)
    for key in ("EventID", "EventRecordID"):
        flat[key] = _int(flat.get(key))
    return flat


def _shape(root: Any, subs: List[Any]) -> Tuple[Any, List[Any]]:
    """(the templates this record is rendered from, nested ones included; its plain substitutions in order),
    from the root node and its substitutions."""
    from Evtx.Nodes import BXmlTypeNode

    nested, leaves = [], []
    for index, sub in enumerate(subs):
        if isinstance(sub, BXmlTypeNode):
            inner_root = sub.root()
            key, inner = _shape(inner_root, inner_root.substitutions())
            nested.append((index, key))
            leaves.extend(inner)
        else:
            leaves.append(sub)
    return (root.template_instance().template_offset(), len(subs), tuple(nested)), leaves


class _Marker:
    """Stands for a substitution when a template is rendered."""

    def __init__(self, text: str):
        self.text = text

    def string(self) -> str:
        return self.text


def _recipe(root: Any) -> Recipe:
    """The flat template: each key's value as static text and plain-substitution numbers (NO_RECIPE when a
    field's name itself is a substitution)."""
    flat = from_xml(_skeleton(root, [0]))
    entries: Entries = []
    for key, value in flat.items():
        if MARK.search(key):
            return NO_RECIPE
        entries.append((key, value if value is None else
                        [_parts(v) for v in value] if isinstance(value, list) else _parts(value)))
    texts = [t for v in flat.values() if v is not None for t in (v if isinstance(v, list) else [v])]
    return entries, tuple(sorted({int(i) for text in texts for i in MARK.findall(text)}))


def _skeleton(root: Any, counter: List[int]) -> str:
    """The record's XML with markers for its plain substitutions, numbered in `_shape`'s leaf order;
    nested binary XML is rendered in place, as python-evtx does."""
    from Evtx.Nodes import BXmlTypeNode
    from Evtx.Views import escape_value, render_root_node_with_subs

    markers, nested = [], {}
    for index, sub in enumerate(root.substitutions()):
        if isinstance(sub, BXmlTypeNode):
            markers.append(_Marker(f"\ue002{index}\ue003"))
            nested[escape_value(markers[-1].text)] = _skeleton(sub.root(), counter)
        else:
            markers.append(_Marker(f"\ue000{counter[0]}\ue001"))
            counter[0] += 1
    xml = render_root_node_with_subs(_ChunkTemplate(root), markers)
    for marker, inner in nested.items():
        if len(xml) + len(inner) * xml.count(marker) > MAX_XML:  # a template repeating nested binary XML
            raise ValueError(f"renders past {MAX_XML} characters")  # grows as a power of the nesting depth
        xml = xml.replace(marker, inner)
    return xml


class _ChunkTemplate:
    """A root node whose template is the chunk's own parsed one: python-evtx parses that once per chunk to
    find where each record's substitutions start; RootNode.template() would parse it again."""

    def __init__(self, root: Any):
        self.root = root

    def template(self) -> Any:
        return self.root._chunk.templates()[self.root.template_instance().template_offset()]


def _parts(text: str) -> Parts:
    pieces = MARK.split(text)  # static, index, static, index, ..., static
    return tuple(int(p) if i % 2 else p for i, p in enumerate(pieces) if i % 2 or p)


def _fill(recipe: Recipe, leaves: List[Any]) -> dict:
    from Evtx.Views import RESTRICTED_CHARS

    entries, used = recipe
    texts = [""] * len(leaves)
    for index in used:
        texts[index] = _text(leaves[index], RESTRICTED_CHARS)
    flat: Dict[str, Any] = {}
    for key, parts in entries:
        if parts is None:
            flat[key] = None
        elif isinstance(parts, list):
            flat[key] = [_join(p, texts) for p in parts]
        else:
            value = _join(parts, texts)
            if key in STRIPPED:
                value = value.strip()
            elif key in ATTRIBUTES:
                value = value.replace("\t", " ").replace("\n", " ")
            flat[key] = value
    if flat.get("UserID") == "":  # from_xml keeps a UserID only when it has a value
        del flat["UserID"]
    return flat


def _join(parts: Parts, texts: List[str]) -> str:
    if len(parts) == 1:
        part = parts[0]
        return texts[part] if part.__class__ is int else part  # type: ignore[index,return-value]
    return "".join(texts[p] if p.__class__ is int else p for p in parts)  # type: ignore[index,misc]


def _text(sub: Any, restricted: Any) -> str:
    """A substitution's text as it reads after python-evtx escapes it (dropping `restricted` characters)
    and an XML parser reads it back."""
    text = sub.string()
    if restricted.search(text):
        text = restricted.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _rust_style(value: str) -> str:
    """Zero-padded hex (0x00000000000003e7) -> 0x3e7; {guid} -> GUID, as the evtx package writes them."""
    if HEX.match(value):
        return hex(int(value, 16))
    if GUID.match(value):
        return value[1:-1].upper()
    return value


def _map(file: Any) -> Any:
    """The file's bytes, mapped (a path, or an open binary file)."""
    import mmap

    if not isinstance(file, str):
        file.seek(0, 2)
        if not file.tell():
            return b""
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    with open(file, "rb") as fh:
        return _map(fh)


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
