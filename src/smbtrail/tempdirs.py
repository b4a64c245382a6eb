"""Private temporary directories that a killed run cannot leave behind for good.

Each holds an flock on `<dir>/.lock` while in use; the kernel drops it when the process dies, even on
SIGKILL, so the next capture run removes this user's directories whose lock nobody holds (sweep_stale).
A killed run's tcpdump or tshark lives on until its pass ends and may create its output file after a sweep
emptied the directory; such a directory has no lock, so it is removed once it has not changed for ORPHANED
seconds (a live run's directory is without its lock only between mkdtemp and the next call).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from typing import Iterable, Optional

DISSECT, ZIP, COVERAGE, SECRETS = "smbtrail-dissect-", "smbtrail-zip-", "smbtrail-coverage-", "smbtrail-tshark-"
PREFIXES = (DISSECT, ZIP, COVERAGE, SECRETS)
LOCK = ".lock"
ORPHANED = 60.0

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: removal on exit and on signals only, no sweep
    fcntl = None  # type: ignore[assignment]


class LockedTempdir:
    """A 0700 directory locked while open; `close` releases the lock and removes the directory."""

    def __init__(self, prefix: str) -> None:
        while True:
            self.path = tempfile.mkdtemp(prefix=prefix)  # 0700
            self._lock = _hold_lock(os.path.join(self.path, LOCK))
            if self._lock is not None or fcntl is None:
                return

    def __enter__(self) -> LockedTempdir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _hold_lock(path: str) -> Optional[int]:
    """The held lock's fd; None when a sweep removed the fresh directory before the lock was taken."""
    if fcntl is None:  # pragma: no cover
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            return fd
    except OSError:
        pass
    os.close(fd)  # swept between creation and locking: the caller makes another
    return None


def sweep_stale(prefixes: Iterable[str] = PREFIXES, tmp: Optional[str] = None) -> int:
    """Remove this user's directories with one of `prefixes` that a killed run left (nobody holds their
    lock). Returns how many were removed."""
    if fcntl is None:  # pragma: no cover
        return 0
    tmp = tmp or tempfile.gettempdir()
    starts = tuple(prefixes)
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(starts)]
    except OSError:
        return 0
    return sum(_sweep_one(os.path.join(tmp, name)) for name in names)


def _sweep_one(path: str) -> int:
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
        return 0  # another user's, or not a directory we made (a symlink is never followed)
    try:
        fd = os.open(os.path.join(path, LOCK), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _remove_orphaned(path, info.st_mtime)
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # a live run holds it
    else:
        _remove_lock_last(path)
        return 1
    finally:
        os.close(fd)


def _remove_lock_last(path: str) -> None:
    """So that a directory emptied only in part keeps its lock file and the next sweep tries again."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        if name != LOCK:
            target = os.path.join(path, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                _unlink(target)
    _unlink(os.path.join(path, LOCK))
    try:
        os.rmdir(path)
    except OSError:
        pass  # a killed run's child wrote a file meanwhile: _remove_orphaned takes it later


def _remove_orphaned(path: str, mtime: float) -> int:
    if time.time() - mtime < ORPHANED:
        return 0
    shutil.rmtree(path, ignore_errors=True)
    return 1


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
