"""Per-input checkpoints: which files were read (and as what content), and what was sent of the file in work.

Files in Splunk's checkpoint_dir, per input stanza:
- `<stanza>.done.log`: one JSON line per finished file, appended (a kill can tear only the last line, which
  costs that one file a re-read); the file's stat identity (size, mtime, inode, ctime), its content digest,
  outcome and count. Compacted into a fresh file (written aside, fsynced, renamed) when it holds more than
  twice the live entries, and entries of files the sensor's rotation deleted are dropped then.
- `<stanza>.progress`: the file in work (a header line: path and digest), then one 8-byte mark per event
  already written to splunkd, appended as each event goes out (one write(2) of 8 bytes, no rename). A mark
  is a hash of the record's uid and occurrence, so a restart after kill -9 re-runs the file (the engine is
  deterministic) and skips exactly the events sent before: nothing lost, nothing twice.
- `<stanza>.sent/`: the marks of the most recently finished files, so a file that changes after it was read
  (it grew past its settle interval, or was replaced) is read again and only its new events are sent.
A poll looks at the checkpoint before it reads anything: a file whose stat identity is unchanged is skipped
without opening it; only a new or changed file is hashed (and then read by the engine anyway).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

MARK = 8
KEEP_SENT = 64  # finished files whose marks are kept for a change after reading


class CheckpointError(OSError):
    """The checkpoint cannot be written: the input sends nothing it could not record (it would resend it)."""


@dataclass
class Done:
    path: str
    stat: List[int]  # size, mtime_ns, inode, ctime_ns
    digest: str
    status: str
    events: int
    finished: str


class Checkpoints:
    def __init__(self, checkpoint_dir: str, stanza: str):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stanza)[:80]
        tag = hashlib.sha1(stanza.encode("utf-8")).hexdigest()[:8]
        base = os.path.join(checkpoint_dir, f"{safe}.{tag}")
        self._done_path = base + ".done.log"
        self._progress_path = base + ".progress"
        self._sent_dir = base + ".sent"
        self.problems: List[str] = []  # what was unreadable in the checkpoint, for the input's log
        try:
            os.makedirs(self._sent_dir, exist_ok=True)
            self._probe()
        except OSError as exc:
            raise CheckpointError(exc.errno, f"checkpoint directory {checkpoint_dir} is not writable "
                                             f"({exc.strerror or exc})") from None
        self._done: Dict[str, Done] = {}
        self._digests: Set[str] = set()
        self._lines = 0
        self._torn = False  # the journal ends inside a line (a killed write): the next entry starts a new one
        self._load()
        self._progress_fd: Optional[int] = None

    # --- finished files ------------------------------------------------------------------------------------
    def done(self, path: str) -> Optional[Done]:
        return self._done.get(path)

    def has_digest(self, digest: str) -> bool:
        return digest in self._digests

    def finish(self, entry: Done) -> None:
        """Record a finished file (one appended line), then keep its marks for a later change."""
        self._append(entry)
        self._done[entry.path] = entry
        self._digests.add(entry.digest)
        self._keep_marks(entry.path)

    def touch(self, entry: Done) -> None:
        """A known file whose stat changed but whose content did not: remember the new stat (no event)."""
        self._append(entry)
        self._done[entry.path] = entry

    def compact(self) -> None:
        """Rewrite the journal with live entries when it has grown past twice their number."""
        live = {p: e for p, e in self._done.items() if os.path.lexists(p)}
        if self._lines <= 2 * len(live) + 100 and len(live) == len(self._done):
            return
        tmp = self._done_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            for entry in live.values():
                handle.write(json.dumps(asdict(entry)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._done_path)
        _sync_dir(self._done_path)
        self._done, self._lines = live, len(live)
        self._digests = {e.digest for e in live.values()}

    # --- the file in work -------------------------------------------------------------------------------------
    def start(self, path: str, digest: str) -> Sent:
        """What is known sent for this path: the marks of an interrupted run over this content, or (a fresh
        start) the marks kept from the file's earlier content, if it changed after it was read."""
        already = self._read_marks(self._progress_path, (path, digest))
        if already is not None:
            self._open_progress()
            return Sent(self, already)
        previous = self._read_marks(self._sent_path(path), None) or []
        self._write_header(path, digest, previous)
        return Sent(self, previous)

    def mark(self, value: bytes) -> None:
        try:
            os.write(self._progress_fd, value)  # type: ignore[arg-type]
        except OSError as exc:
            raise CheckpointError(exc.errno, f"cannot record progress ({exc.strerror})") from None

    def abandon(self) -> None:
        """Stop work on the current file, keeping its progress for the next run."""
        self._close_progress()

    # --- storage ----------------------------------------------------------------------------------------------
    def _probe(self) -> None:
        with open(self._done_path, "a", encoding="utf-8"):
            pass
        fd = os.open(self._progress_path + ".probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.remove(self._progress_path + ".probe")

    def _load(self) -> None:
        bad = 0
        with open(self._done_path, "rb") as handle:
            for raw in handle:
                self._lines += 1
                self._torn = not raw.endswith(b"\n")
                entry = _entry(raw)
                if entry is None:
                    bad += 1
                    continue
                self._done[entry.path] = entry
                self._digests.add(entry.digest)
        if bad:
            self.problems.append(f"{self._done_path}: {bad} unreadable line(s) ignored (a torn write or a hand "
                                 "edit); the files they named are read again")

    def _append(self, entry: Done) -> None:
        try:
            with open(self._done_path, "a", encoding="utf-8") as handle:
                handle.write(("\n" if self._torn else "") + json.dumps(asdict(entry)) + "\n")
            self._torn = False
        except OSError as exc:
            raise CheckpointError(exc.errno, f"cannot record a finished file ({exc.strerror})") from None
        self._lines += 1

    def _write_header(self, path: str, digest: str, marks: List[bytes]) -> None:
        self._close_progress()
        header = (json.dumps({"path": path, "digest": digest}) + "\n").encode("utf-8")
        tmp = self._progress_path + ".tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(header + b"".join(marks))
            os.replace(tmp, self._progress_path)
        except OSError as exc:
            raise CheckpointError(exc.errno, f"cannot record progress ({exc.strerror})") from None
        self._open_progress()

    def _open_progress(self) -> None:
        self._close_progress()
        try:
            self._progress_fd = os.open(self._progress_path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise CheckpointError(exc.errno, f"cannot record progress ({exc.strerror})") from None

    def _close_progress(self) -> None:
        if self._progress_fd is not None:
            os.close(self._progress_fd)
            self._progress_fd = None

    def _keep_marks(self, path: str) -> None:
        self._close_progress()
        try:
            os.replace(self._progress_path, self._sent_path(path))
        except OSError:
            return  # only the change-after-reading dedup needs them
        kept = sorted(os.scandir(self._sent_dir), key=lambda e: e.stat().st_mtime, reverse=True)
        for old in kept[KEEP_SENT:]:
            try:
                os.remove(old.path)
            except OSError:
                pass

    def _sent_path(self, path: str) -> str:
        return os.path.join(self._sent_dir, hashlib.sha1(os.fsencode(path)).hexdigest()[:24])

    @staticmethod
    def _read_marks(where: str, expect: Optional[Tuple[str, str]]) -> Optional[List[bytes]]:
        """The marks in a progress file (None when it is absent, unreadable, or for other content)."""
        try:
            with open(where, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        header, newline, body = data.partition(b"\n")
        try:
            head = json.loads(header)
        except ValueError:
            return None
        if not newline or not isinstance(head, dict):
            return None
        if expect is not None and (head.get("path"), head.get("digest")) != expect:
            return None
        usable = len(body) - len(body) % MARK  # a torn last mark is not a sent event
        return [body[i:i + MARK] for i in range(0, usable, MARK)]

    def close(self) -> None:
        self._close_progress()


class Sent:
    """What was sent of one file: marks, per record uid and occurrence."""

    def __init__(self, ckpt: Checkpoints, already: List[bytes]) -> None:
        self.ckpt = ckpt
        self.already = set(already)
        self.resumed = len(already)
        self._seen: Dict[str, int] = {}

    def mark_of(self, uid: str) -> bytes:
        occurrence = self._seen.get(uid, 0)
        self._seen[uid] = occurrence + 1
        return hashlib.sha1(f"{uid}#{occurrence}".encode()).digest()[:MARK]

    def is_new(self, mark: bytes) -> bool:
        return mark not in self.already

    def record(self, mark: bytes) -> None:
        self.ckpt.mark(mark)
        self.already.add(mark)


def _entry(raw: bytes) -> Optional[Done]:
    try:
        data: Any = json.loads(raw)
        entry = Done(path=str(data["path"]), stat=[int(x) for x in data["stat"]][:4], digest=str(data["digest"]),
                     status=str(data["status"]), events=int(data["events"]), finished=str(data["finished"]))
    except (ValueError, TypeError, KeyError):
        return None
    return entry if len(entry.stat) == 4 else None


def _sync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
