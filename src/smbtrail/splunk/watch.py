"""Which files of a sensor's rotation are complete: matched by a glob, unchanged for a settle interval."""

from __future__ import annotations

import glob
import hashlib
import os
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

HEAD_BYTES = 65536


@dataclass(frozen=True)
class FileIdentity:
    """Same path, size, mtime and first bytes: the same file (a rotated-over name is a new file)."""

    path: str
    size: int
    mtime_ns: int
    head_sha256: str

    def key(self) -> str:
        return f"{self.path}|{self.size}|{self.mtime_ns}|{self.head_sha256}"


def identify(path: str) -> FileIdentity:
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(HEAD_BYTES))
    return FileIdentity(path, st.st_size, st.st_mtime_ns, digest.hexdigest())


def expand(pattern: str) -> List[str]:
    """A directory means every file in it; otherwise a glob (** allowed). Sorted oldest first."""
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*")
    paths = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
    return sorted(paths, key=_age_key)


def _age_key(path: str) -> Tuple[float, str]:
    try:
        return (os.stat(path).st_mtime, path)
    except OSError:
        return (0.0, path)


def settled(path: str, settle_seconds: float, now: Optional[float] = None) -> bool:
    """True when size and mtime have not changed for `settle_seconds`: the writer has moved on.

    Any append changes the mtime, so an mtime older than the interval means size and mtime both held
    still across it. A file that vanished between listing and stat is not settled.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    now = time.time() if now is None else now
    return now - st.st_mtime >= settle_seconds


def partial_name(path: str) -> bool:
    """Names writers use while a file is open (dumpcap/tcpdump temp names, browser-style .part)."""
    base = os.path.basename(path)
    return base.startswith(".") or base.endswith((".tmp", ".part", ".partial", ".inprogress"))
