"""Where every input file is opened (captures and host logs alike): regular files only, directory walks
that name what they cannot enter, and decompression that refuses to expand without bound.

- A FIFO, socket or device is refused before it is opened (opening a FIFO blocks until a writer comes),
  and the opened file is checked again, so a swap between the check and the open is caught too.
- A directory that cannot be read is named, never skipped in silence.
- A compressed stream (gzip, a zip member) may expand at most `max_expansion` times its compressed
  size once past EXPANSION_FLOOR bytes (`Options.max_expansion`, DEFAULT_MAX_EXPANSION; 0: no bound):
  the real captures and logs measured expand 2-135x; deflate's own ceiling is about 1,030x, which
  zero-filled bombs reach.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import zipfile
import zlib
from typing import IO, Iterator, Optional, Tuple

GZIP_MAGIC = b"\x1f\x8b"
EXPANSION_FLOOR = 16 << 20  # below this many bytes out, any ratio is harmless
DEFAULT_MAX_EXPANSION = 250.0
LIFT_HINT = "(SMBTRAIL_MAX_EXPANSION=0 reads it anyway)"  # how the command line and the Splunk inputs lift it
CHUNK = 1 << 20


class InputError(Exception):
    """An input that cannot be read as it stands; the message is one line, without the path."""


def _bound(max_expansion: float) -> float:
    return max_expansion if max_expansion > 0 else float("inf")


def plain_head(head: bytes, limit: int) -> bytes:
    """A file's first bytes as they read decompressed (a gzip stream's start inflated, at most `limit`);
    b"" when a gzip start cannot be inflated."""
    if head[:2] != GZIP_MAGIC:
        return head[:limit]
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, limit)
    except zlib.error:
        return b""


def special_kind(mode: int) -> Optional[str]:
    """What a non-regular file is, in words; None for a regular file."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_regular(path: str) -> IO[bytes]:
    """The file opened for reading, or InputError/OSError; never blocks on a FIFO, never opens a device."""
    kind = special_kind(os.stat(path).st_mode)
    if kind:
        raise InputError(f"not a regular file ({kind})")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind:
            raise InputError(f"not a regular file ({kind})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def reason(exc: BaseException) -> str:
    """One line for an exception met while opening or reading an input (never a traceback)."""
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
        return "encrypted (password-protected) archive member: not read"
    if isinstance(exc, (zipfile.BadZipFile, gzip.BadGzipFile, zlib.error)):
        return f"corrupt compressed data ({exc})"
    if isinstance(exc, EOFError):
        return "compressed data ends early (truncated)"
    return f"{exc.__class__.__name__}: {exc}"


def walk(root: str) -> Iterator[Tuple[str, Optional[str]]]:
    """(path, problem) of every file under `root` in a stable order; problem names a directory that could not
    be read or a file that is not a regular file (symbolic links to files are followed, to directories not)."""
    problems = []
    for folder, dirs, files in os.walk(root, onerror=problems.append):
        while problems:
            exc = problems.pop(0)
            yield exc.filename or folder, f"cannot read directory ({reason(exc)})"
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                kind = special_kind(os.stat(path).st_mode)
            except OSError as exc:
                yield path, f"cannot read ({reason(exc)})"
                continue
            yield path, (f"not a regular file ({kind})" if kind else None)
    for exc in problems:
        yield exc.filename or root, f"cannot read directory ({reason(exc)})"


class Counted(io.RawIOBase):
    """A read-only stream that counts the bytes taken from it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        return len(data)


class Bounded(io.RawIOBase):
    """Decompressed bytes of `stream`, refused once they pass the expansion bound over `compressed()` bytes in."""

    def __init__(self, stream: IO[bytes], compressed, what: str, max_expansion: float) -> None:
        self.stream = stream
        self.compressed = compressed  # callable: compressed bytes consumed (or declared) so far
        self.what = what
        self.out = 0
        self.limit = _bound(max_expansion)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.stream.read1(len(buffer))  # what is there: a stream cut later still gives what precedes the cut
        buffer[:len(data)] = data
        self.out += len(data)
        if self.out > EXPANSION_FLOOR and self.out > self.limit * max(1, self.compressed()):
            raise InputError(f"{self.what} expands more than {self.limit:g}x ({self.out >> 20} MiB from "
                             f"{max(1, self.compressed()) >> 10} KiB): refused as a decompression bomb {LIFT_HINT}")
        return len(data)

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            super().close()


def gunzip(raw: IO[bytes], max_expansion: float) -> IO[bytes]:
    """A bounded reader of a gzip stream (members concatenated are read on)."""
    counted = Counted(raw)
    inflated = gzip.GzipFile(fileobj=io.BufferedReader(counted, CHUNK), mode="rb")  # type: ignore[arg-type]
    bounded = Bounded(inflated, lambda: counted.count, "gzip data", max_expansion)
    return io.BufferedReader(bounded, CHUNK)  # type: ignore[arg-type]


def check_zip_member(info: zipfile.ZipInfo, max_expansion: float) -> None:
    """Refuse an encrypted member, or one whose declared size is a decompression bomb, before reading it."""
    if info.flag_bits & 0x1:
        raise InputError("encrypted (password-protected) archive member: not read")
    limit = _bound(max_expansion)
    if info.file_size > EXPANSION_FLOOR and info.file_size > limit * max(1, info.compress_size):
        raise InputError(f"archive member expands more than {limit:g}x ({info.file_size >> 20} MiB from "
                         f"{max(1, info.compress_size) >> 10} KiB): refused as a decompression bomb {LIFT_HINT}")


def open_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_expansion: float) -> IO[bytes]:
    """A member's bytes; zipfile itself stops at the declared size and checks the CRC at the end."""
    check_zip_member(info, max_expansion)
    return archive.open(info)


def read_exactly(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes, or fewer only at the end of the stream."""
    parts, left = [], size
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


class Prefixed(io.RawIOBase):
    """A binary stream with a few already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size], self._head = self._head[:size], self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._rest.close()
        finally:
            super().close()


def is_environment_fault(exc: BaseException) -> bool:
    """A failure that is not the input's fault (a module or lookup missing from the installation, tshark
    missing, memory exhausted): the input is not to be marked as read, it waits for a fixed install."""
    return isinstance(exc, (ImportError, MemoryError)) or bool(getattr(exc, "environment_fault", False))
