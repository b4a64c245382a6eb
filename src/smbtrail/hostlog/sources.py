"""Input paths -> readers: directories are walked, zip archives opened, each file's format is told by
its content (never its name): .evtx, JSON lines (Windows events or Samba audit), event XML, Samba log
(JSON audit or vfs_full_audit entries)."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import zipfile
from typing import IO, Any, Callable, FrozenSet, Iterator, Optional, Sequence

from .errors import error
from .evtx_reader import read_evtx
from .jsonl import read_json_lines
from .samba_audit import read_samba_log
from .samba_vfs_audit import is_full_audit, read_full_audit
from .xml_events import read_xml_events

SNIFF = 4096
SAMBA_HEADER = re.compile(r"\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d")
Opener = Callable[[], IO[bytes]]


def sniff(head: bytes) -> str:
    """evtx | zip | jsonl | xml | samba_full_audit | samba_log | json_array | empty | unknown"""
    if not head.strip():
        return "empty"
    if head.startswith(b"ElfFile\x00"):
        return "evtx"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    text = _decode(head).lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        return "jsonl"
    if text.startswith("<") and ("<Event" in text or text.startswith("<?xml")):
        return "xml"
    if SAMBA_HEADER.match(text):
        return "samba_full_audit" if is_full_audit(text) else "samba_log"
    if text.startswith("[") and text[1:].lstrip().startswith("{"):
        return "json_array"
    return "unknown"


def read_paths(paths: Sequence[str], wanted: Optional[FrozenSet[int]]) -> Iterator[Any]:
    """Flat events and error records of every input, in the order given (directories sorted)."""
    for path in paths:
        if os.path.isdir(path):
            yield from _walk(path, wanted)
        elif not os.path.exists(path):
            yield error(path, "no such file or directory")
        else:
            yield from read_file(path, wanted)


def _walk(root: str, wanted: Optional[FrozenSet[int]]) -> Iterator[Any]:
    skipped = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if _kind_of(path) in ("unknown", "empty"):
                skipped.append(name)
                continue
            yield from read_file(path, wanted)
    if skipped:
        yield error(root, f"skipped {len(skipped)} file(s) that hold no host log, e.g. {skipped[0]}")


def _kind_of(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return sniff(handle.read(SNIFF))
    except OSError:
        return "unreadable"


def read_file(path: str, wanted: Optional[FrozenSet[int]]) -> Iterator[Any]:
    try:
        with open(path, "rb") as handle:
            kind = sniff(handle.read(SNIFF))
    except OSError as exc:
        yield error(path, f"cannot open ({exc.strerror or exc})")
        return
    if kind == "zip":
        yield from _read_zip(path, wanted)
    elif kind == "evtx":
        yield from _tagged(read_evtx(path, path, wanted), path)
    else:
        yield from _read_stream(kind, lambda: open(path, "rb"), path, wanted)


def _read_zip(path: str, wanted: Optional[FrozenSet[int]]) -> Iterator[Any]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield error(path, f"not a readable zip archive ({exc})")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            source = f"{path}!{info.filename}"
            try:
                yield from _read_member(archive, info, source, wanted)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
                yield error(source, f"archive member unreadable ({exc})", partial=True)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str,
                 wanted: Optional[FrozenSet[int]]) -> Iterator[Any]:
    with archive.open(info) as member:
        kind = sniff(member.read(SNIFF))
    if kind == "evtx":  # the evtx parser seeks: give it a real file, not the inflating stream
        with tempfile.NamedTemporaryFile(suffix=".evtx") as tmp:
            with archive.open(info) as member:
                shutil.copyfileobj(member, tmp, 1 << 20)
            tmp.flush()
            yield from _tagged(read_evtx(tmp.name, source, wanted), source)
    elif kind == "zip":
        yield error(source, "zip inside a zip is not read; unpack it first")
    else:
        yield from _read_stream(kind, lambda: archive.open(info), source, wanted)


def _read_stream(kind: str, opener: Opener, source: str, wanted: Optional[FrozenSet[int]]) -> Iterator[Any]:
    if kind == "unknown" and source.lower().endswith(".evtx"):
        yield error(source, "named .evtx but not an event log file (no ElfFile signature)")
        return
    if kind in ("empty", "unknown", "json_array"):
        yield error(source, {"empty": "empty file",
                             "json_array": "a JSON array; give JSON lines (one event per line)",
                             "unknown": "not a host log (no .evtx, JSON, event XML or Samba audit content)",
                             }[kind])
        return
    with opener() as raw:
        if kind == "jsonl":
            yield from _tagged(read_json_lines(raw, source), source)
        elif kind == "samba_log":
            yield from _tagged(read_samba_log(raw, source), source)
        elif kind == "samba_full_audit":
            yield from _tagged(read_full_audit(raw, source), source)
        else:
            head = raw.read(4)
            encoding = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
            text = io.TextIOWrapper(_Prefixed(head, raw), encoding=encoding, errors="replace", newline="")
            yield from _tagged(read_xml_events(text, source), source)


def _tagged(items: Iterator[Any], source: str) -> Iterator[Any]:
    """Flat events learn their source (`@source`); error records pass as they are."""
    for item in items:
        if isinstance(item, dict):
            item["@source"] = source
        yield item


class _Prefixed(io.RawIOBase):
    """A binary stream with a few already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size], self._head = self._head[:size], self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _decode(head: bytes) -> str:
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace")
