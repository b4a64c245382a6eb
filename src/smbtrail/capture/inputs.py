"""Capture inputs: files, directories, gzip and zip archives, each checked by content before tshark sees it.

A plain capture is read by tshark from its path. A gzip capture or a zip member is decompressed here,
within the expansion bound of `input_files`, and streamed into tshark's standard input: nothing is
extracted to temporary disk, and a corrupt, encrypted or truncated archive costs its own records only.
A zip member that is a Zeek log (as the caller's test of its first bytes tells) becomes a source of its
own, `archive.zip!member`, opened by the same bounded decompression; the zip's captures skip it.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Callable, FrozenSet, Iterator, List, Optional, Sequence, Tuple

from ..input_files import (
    CHUNK,
    GZIP_MAGIC,
    InputError,
    Prefixed,
    gunzip,
    open_regular,
    open_zip_member,
    plain_head,
    read_exactly,
    reason,
    walk,
)
from ..tempdirs import ZIP, LockedTempdir

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
ZIP_MAGIC = b"PK\x03\x04"
CAPTURE_EXTENSIONS = (".pcap", ".pcapng", ".cap", ".gz", ".dmp", ".zip", ".erf", ".snoop")
PCAP_HEADER = 24
MAX_FIRST_BLOCK = 1 << 20  # a pcapng section header block larger than this is not believed


@dataclass
class Source:
    path: str  # what the user named (a member of a zip is shown as archive.zip!member)
    error: Optional[str] = None
    kind: Optional[str] = None  # pcap | pcapng | gzip | zip | zeek (a Zeek log, as the caller's zeek_log tells)
    size: int = 0
    open: Optional[Callable[[], IO[bytes]]] = None  # a Zeek log inside a zip: its bytes, decompressed
    skip: FrozenSet[str] = frozenset()  # a zip's members taken as Zeek logs: not captures


@dataclass
class Member:
    """One capture for tshark: `path` read directly, or the bytes `open()` gives fed on its standard input."""

    name: str  # shown in records and errors
    path: str  # the file on disk (the archive, for a member)
    open: Optional[Callable[[], IO[bytes]]] = None
    error: Optional[str] = None


def kind_of(head: bytes) -> Optional[str]:
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    if head[:4] == ZIP_MAGIC:
        return "zip"
    return None


def header_problem(kind: str, head: bytes, size: Optional[int]) -> Optional[str]:
    """Why a pcap/pcapng file cannot be read from its first bytes (`size` None: not known yet, a stream).
    tshark reads a pcapng cut inside its first block as some other format, without a word."""
    if kind == "pcap":
        if len(head) < PCAP_HEADER:
            return "truncated capture (cut inside its pcap file header)"
        return None
    order = head[8:12]
    if len(head) < 12:
        return "truncated capture (cut inside its first pcapng block)"
    if order not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
        return "corrupt pcapng header (no byte-order magic)"
    length = struct.unpack("<I" if order[0] == 0x4D else ">I", head[4:8])[0]
    if length < 28 or length % 4 or length > MAX_FIRST_BLOCK:
        return f"corrupt pcapng header (first block length {length})"
    if (size if size is not None else len(head)) < length:
        return "truncated capture (cut inside its first pcapng block)"
    return None


LogTest = Callable[[str], bool]
HeadTest = Callable[[bytes], bool]  # on a file's first LOG_HEAD bytes, decompressed
LOG_HEAD = 4096
LOG_HEAD_IN = 64 << 10  # compressed bytes read for LOG_HEAD out


def _no_log(path: str) -> bool:
    return False


def sniff(path: str, zeek_log: LogTest = _no_log) -> Source:
    """What the file holds, by content. `zeek_log` tells a Zeek log (a reader above this package knows them)."""
    try:
        with open_regular(path) as handle:
            head = handle.read(64)
            size = os.fstat(handle.fileno()).st_size
    except (OSError, InputError) as exc:
        return Source(path, error=reason(exc))
    if not head:
        return Source(path, error="empty file")
    kind = kind_of(head)
    if kind not in ("pcap", "pcapng", "zip") and zeek_log(path):  # gzip'd Zeek logs too
        return Source(path, kind="zeek", size=size)
    if kind is None:
        return Source(path, error="not a capture file (no pcap/pcapng/gzip/zip signature) nor a Zeek log")
    problem = header_problem(kind, head, size) if kind in ("pcap", "pcapng") else None
    return Source(path, error=problem, kind=kind, size=size)


def expand(paths: Sequence[str], max_expansion: float, zeek_log: LogTest = _no_log,
           zeek_head: Optional[HeadTest] = None) -> List[Source]:
    """Every file named, and every capture-looking file under named directories, in a stable order; with
    `zeek_head`, the Zeek logs inside zip archives (each expanding at most `max_expansion` times) as sources
    of their own."""
    sources: List[Source] = []
    for path in paths:
        if os.path.isdir(path):
            for found, problem in walk(path):
                named = found.lower().endswith(CAPTURE_EXTENSIONS)
                if problem:
                    if named or "directory" in problem:
                        sources.append(Source(found, error=problem))
                    continue
                source = sniff(found, zeek_log)
                if source.error and source.kind is None and not named:
                    continue  # a key file, a README... beside the captures: not ours to judge
                sources += _with_logs(source, zeek_head, max_expansion)
        elif os.path.lexists(path):
            sources += _with_logs(sniff(path, zeek_log), zeek_head, max_expansion)
        else:
            sources.append(Source(path, error="no such file or directory"))
    return sources


def _with_logs(source: Source, zeek_head: Optional[HeadTest], max_expansion: float) -> List[Source]:
    """A zip's Zeek logs, then the zip itself for the members left (none left: the zip is not a capture)."""
    if source.kind != "zip" or source.error or zeek_head is None:
        return [source]
    logs, members_count = _zip_logs(source, zeek_head, max_expansion)
    source.skip = frozenset(log.path.split("!", 1)[1] for log in logs)
    return logs + ([source] if len(logs) < members_count or not members_count else [])


def _zip_logs(source: Source, zeek_head: HeadTest, max_expansion: float) -> Tuple[List[Source], int]:
    """(the members that are Zeek logs, how many members there are). A member that cannot be read here
    is left to the capture side, which names what is wrong with it."""
    logs: List[Source] = []
    try:
        with open_regular(source.path) as handle, zipfile.ZipFile(handle) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            for info in infos:
                try:
                    head = _log_head(archive, info, max_expansion)
                except Exception:  # encrypted, corrupt, a bomb: reported when read as a capture
                    continue
                if zeek_head(head):
                    logs.append(Source(f"{source.path}!{info.filename}", kind="zeek", size=info.compress_size,
                                       open=lambda name=info.filename: open_member(source.path, name, max_expansion)))
    except Exception:  # an unreadable archive: reported when read as a capture
        return [], 0
    return logs, len(infos)


def _log_head(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_expansion: float) -> bytes:
    """A member's first LOG_HEAD bytes, a gzip member's decompressed: read directly, so that a log cut
    mid-write still shows what it is (its reader names where it stops)."""
    with open_zip_member(archive, info, max_expansion) as raw:
        head = raw.read(LOG_HEAD_IN)
    return plain_head(head, LOG_HEAD)


def open_member(path: str, name: str, max_expansion: float) -> IO[bytes]:
    """One zip member's bytes, decompressed (a gzip member too) within the expansion bound."""
    handle = open_regular(path)
    try:
        archive = zipfile.ZipFile(handle)
        return _Owning(_member_stream(archive, archive.getinfo(name), max_expansion), handle)
    except BaseException:
        handle.close()
        raise


class _Owning(io.BufferedReader):
    """A member's stream that closes its archive's file with it."""

    def __init__(self, stream: IO[bytes], owned: IO[bytes]) -> None:
        super().__init__(stream, CHUNK)  # type: ignore[arg-type]
        self._owned = owned

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()


def members(source: Source, max_expansion: float) -> Iterator[Member]:
    """The captures a source holds: itself, its decompressed gzip stream, or each member of a zip (each
    expanding at most `max_expansion` times)."""
    if source.kind in ("pcap", "pcapng"):
        yield Member(source.path, source.path)
    elif source.kind == "gzip":
        yield Member(source.path, source.path,
                     open=lambda: checked(gunzip(open_regular(source.path), max_expansion)))
    elif source.kind == "zip":
        yield from _zip_members(source, max_expansion)


def _zip_members(source: Source, max_expansion: float) -> Iterator[Member]:
    try:
        handle = open_regular(source.path)
    except (OSError, InputError) as exc:
        yield Member(source.path, source.path, error=reason(exc))
        return
    with handle:
        try:
            archive = zipfile.ZipFile(handle)
        except Exception as exc:  # BadZipFile, and whatever a hostile central directory raises
            detail = exc if isinstance(exc, zipfile.BadZipFile) else reason(exc)
            yield Member(source.path, source.path, error=f"not a readable zip archive ({detail})")
            return
        yield from _each_member(source, archive, max_expansion)


def _each_member(source: Source, archive: zipfile.ZipFile, max_expansion: float) -> Iterator[Member]:
    with archive:
        for info in archive.infolist():
            if info.is_dir() or info.filename in source.skip:
                continue
            name = f"{source.path}!{info.filename}"
            yield Member(name, source.path,
                         open=lambda info=info: checked(_member_stream(archive, info, max_expansion)))


def _member_stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_expansion: float) -> IO[bytes]:
    raw = open_zip_member(archive, info, max_expansion)
    head = read_exactly(raw, 2)
    stream = Prefixed(head, raw)
    return gunzip(stream, max_expansion) if head == GZIP_MAGIC else stream  # type: ignore[return-value]


def checked(stream: IO[bytes]) -> IO[bytes]:
    """The stream, once its first bytes show a readable pcap or pcapng (else InputError)."""
    try:
        head = read_exactly(stream, 12)
        kind = kind_of(head)
        if kind not in ("pcap", "pcapng"):
            raise InputError("not a capture (no pcap/pcapng signature after decompression)")
        want = PCAP_HEADER if kind == "pcap" else _first_block_length(head)
        head += read_exactly(stream, max(0, want - len(head)))
        problem = header_problem(kind, head, len(head))
        if problem:
            raise InputError(problem)
    except BaseException:
        stream.close()
        raise
    return io.BufferedReader(Prefixed(head, stream), CHUNK)  # type: ignore[arg-type]


def _first_block_length(head: bytes) -> int:
    if len(head) < 12 or head[8:12] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
        return len(head)
    length = struct.unpack("<I" if head[8] == 0x4D else ">I", head[4:8])[0]
    return min(length, MAX_FIRST_BLOCK)


@contextmanager
def readable_files(source: Source, max_expansion: float
                   ) -> Iterator[List[Tuple[str, Optional[str], Optional[str]]]]:
    """(display name, path on disk or None, problem) per member, for tools that need a real file
    (`coverage` rewrites captures): streamed members are copied to a private temp dir removed after."""
    tmp: Optional[LockedTempdir] = None
    found: List[Tuple[str, Optional[str], Optional[str]]] = []
    try:
        for number, member in enumerate(members(source, max_expansion)):
            if member.error or member.open is None:
                found.append((member.name, None if member.error else member.path, member.error))
                continue
            tmp = tmp or LockedTempdir(ZIP)
            target = os.path.join(tmp.path, f"{number}-{os.path.basename(member.name.split('!')[-1])}")
            try:
                with member.open() as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                found.append((member.name, target, None))
            except Exception as exc:  # a bad member costs itself only
                found.append((member.name, None, reason(exc)))
        yield found
    finally:
        if tmp:
            tmp.close()
