"""Which files of a sensor's rotation are complete (matched by a glob, unchanged for a settle interval), and
how a file is told apart from its earlier self without reading it."""

from __future__ import annotations

import glob
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..input_files import open_regular


@dataclass(frozen=True)
class FileIdentity:
    """A file as stat sees it. Same path and the same size, mtime, inode and ctime: the same file, known without
    opening it. A replacement gets a new ctime (the kernel sets it; utime cannot), even with the same size,
    mtime and inode; then the content digest decides."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    def stat_key(self) -> List[int]:
        return [self.size, self.mtime_ns, self.inode, self.ctime_ns]


def identity(path: str, st: Optional[os.stat_result] = None) -> FileIdentity:
    st = st or os.stat(path)
    return FileIdentity(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def content_digest(path: str) -> str:
    """SHA-256 of the whole file: read only for a new or changed file (which the engine reads next anyway)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expand(pattern: str) -> List[Tuple[str, os.stat_result]]:
    """(path, stat) of the regular files a directory or glob (** allowed) names, oldest first; one stat each."""
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*")
    found = []
    for path in glob.glob(pattern, recursive=True):
        try:
            st = os.stat(path)
        except OSError:
            continue  # vanished between listing and stat
        if stat.S_ISREG(st.st_mode):
            found.append((path, st))
    return sorted(found, key=lambda item: (item[1].st_mtime, item[0]))


def settled(st: os.stat_result, settle_seconds: float, now: Optional[float] = None) -> bool:
    """True when size and mtime have not changed for `settle_seconds`: the writer has moved on.

    Any append changes the mtime, so an mtime older than the interval means size and mtime both held
    still across it.
    """
    now = time.time() if now is None else now
    return now - st.st_mtime >= settle_seconds


def partial_name(path: str) -> bool:
    """Names writers use while a file is open (dumpcap/tcpdump temp names, browser-style .part)."""
    base = os.path.basename(path)
    return base.startswith(".") or base.endswith((".tmp", ".part", ".partial", ".inprogress"))
