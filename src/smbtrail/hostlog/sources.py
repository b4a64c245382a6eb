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

from ..input_files import InputError, Prefixed, is_environment_fault, open_regular, open_zip_member, reason, walk
from ..records import Record
from .errors import error
from .evtx_reader import read_evtx
from .jsonl import read_json_lines
from .samba_audit import read_samba_log
from .samba_vfs_audit import is_full_audit, read_full_audit
from .xml_events import read_xml_events

SNIFF = 4096
MAX_ERRORS_SHOWN = 100  # per file: past this, one line counts the rest (a broken file never floods the log)
CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  b"\x0a\x0d\x0d\x0a")
SAMBA_HEADER = re.compile(r"\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d")
Opener = Callable[[], IO[bytes]]


def sniff(head: bytes) -> str:
    """evtx | zip | capture | jsonl | xml | samba_full_audit | samba_log | json_array | empty | unknown"""
    if not head.strip():
        return "empty"
    if head.startswith(b"ElfFile\x00"):
        return "evtx"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:4] in CAPTURE_MAGICS:
        return "capture"
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


def read_paths(paths: Sequence[str], wanted: Optional[FrozenSet[int]], max_expansion: float) -> Iterator[Any]:
    """Flat events and error records of every input, in the order given (directories sorted); a zip member
    expands at most `max_expansion` times."""
    for path in paths:
        if os.path.isdir(path):
            yield from _walk(path, wanted, max_expansion)
        elif not os.path.lexists(path):
            yield error(path, "no such file or directory")
        else:
            yield from _guarded(read_file(path, wanted, max_expansion), path)


def _walk(root: str, wanted: Optional[FrozenSet[int]], max_expansion: float) -> Iterator[Any]:
    skipped = []
    for path, problem in walk(root):
        if problem:
            yield error(path, problem)
            continue
        kind = _kind_of(path)
        if kind == "capture":
            continue  # the capture side's: a case directory holds both
        if kind in ("unknown", "empty"):
            skipped.append(os.path.basename(path))
            continue
        yield from _guarded(read_file(path, wanted, max_expansion), path)
    if skipped:
        yield error(root, f"skipped {len(skipped)} file(s) that hold no host log, e.g. {skipped[0]}")


def _guarded(items: Iterator[Any], path: str) -> Iterator[Any]:
    """One file's items, at most MAX_ERRORS_SHOWN of its error records (then a count), and an unexpected
    failure of its reader as its last error record: the other files are still read."""
    errors = 0
    try:
        for item in items:
            if isinstance(item, Record) and item.kind == "error":
                errors += 1
                if errors > MAX_ERRORS_SHOWN:
                    continue
            yield item
    except Exception as exc:
        if is_environment_fault(exc):
            raise
        yield error(path, f"reading stopped: {reason(exc)}", partial=True)
    if errors > MAX_ERRORS_SHOWN:
        yield error(path, f"{errors - MAX_ERRORS_SHOWN} more problems in this file not shown", partial=True)


def _kind_of(path: str) -> str:
    try:
        with open_regular(path) as handle:
            return sniff(handle.read(SNIFF))
    except (OSError, InputError):
        return "unreadable"


def read_file(path: str, wanted: Optional[FrozenSet[int]], max_expansion: float) -> Iterator[Any]:
    try:
        handle = open_regular(path)
    except (OSError, InputError) as exc:
        yield error(path, f"cannot open ({reason(exc)})")
        return
    with handle:
        kind = sniff(handle.read(SNIFF))
        if kind == "zip":
            yield from _read_zip(handle, path, wanted, max_expansion)
            return
        if kind == "evtx":
            yield from _tagged(read_evtx(path, path, wanted, handle), path)
            return
        handle.seek(0)
        yield from _read_stream(kind, lambda: _Unclosed(handle), path, wanted)


def _read_zip(handle: IO[bytes], path: str, wanted: Optional[FrozenSet[int]], max_expansion: float
              ) -> Iterator[Any]:
    try:
        archive = zipfile.ZipFile(handle)
    except Exception as exc:  # BadZipFile, and whatever a hostile central directory raises
        yield error(path, f"not a readable zip archive ({exc if isinstance(exc, zipfile.BadZipFile) else reason(exc)})")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            source = f"{path}!{info.filename}"
            try:
                yield from _read_member(archive, info, source, wanted, max_expansion)
            except Exception as exc:  # corrupt, truncated, encrypted, a bomb, temp disk full
                if is_environment_fault(exc):
                    raise
                yield error(source, f"archive member unreadable ({reason(exc)})", partial=True)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str,
                 wanted: Optional[FrozenSet[int]], max_expansion: float) -> Iterator[Any]:
    with open_zip_member(archive, info, max_expansion) as member:
        kind = sniff(member.read(SNIFF))
    if kind == "evtx":  # the evtx parser seeks: give it a real file, not the inflating stream
        with tempfile.NamedTemporaryFile(prefix="smbtrail-evtx-", suffix=".evtx") as tmp:
            with open_zip_member(archive, info, max_expansion) as member:
                shutil.copyfileobj(member, tmp, 1 << 20)
            tmp.flush()
            yield from _tagged(read_evtx(tmp.name, source, wanted, tmp), source)
    elif kind == "zip":
        yield error(source, "zip inside a zip is not read; unpack it first")
    elif kind == "capture":
        yield error(source, "a capture, not a host log: give it as a capture")
    else:
        yield from _read_stream(kind, lambda: open_zip_member(archive, info, max_expansion), source, wanted)


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
            text = io.TextIOWrapper(Prefixed(head, raw), encoding=encoding, errors="replace", newline="")
            yield from _tagged(read_xml_events(text, source), source)


def _tagged(items: Iterator[Any], source: str) -> Iterator[Any]:
    """Flat events learn their source (`@source`); error records pass as they are."""
    for item in items:
        if isinstance(item, dict):
            item["@source"] = source
        yield item


class _Unclosed(io.RawIOBase):
    """An already open file handed to a reader that closes what it is given (the caller closes it)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._handle.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _decode(head: bytes) -> str:
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace")
