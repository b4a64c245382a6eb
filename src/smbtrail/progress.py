"""How far a run over captures is: files and bytes done, rate, time left. The engine reports; a terminal
line (the command line) or a Splunk health event (the modular input) shows it."""

from __future__ import annotations

import time
from typing import IO, Any, Callable, Dict, Optional

SHOW_AFTER, SHOW_EVERY = 3.0, 0.5  # seconds: a run shorter than SHOW_AFTER shows nothing


class Progress:
    """Counts; `changed` is called at most every `every` seconds, from `after` seconds into the run."""

    def __init__(self, changed: Optional[Callable[[Progress], None]] = None, after: Optional[float] = None,
                 every: Optional[float] = None) -> None:
        self.changed = changed
        self.after = SHOW_AFTER if after is None else after
        self.every = SHOW_EVERY if every is None else every
        self.files = self.files_done = 0
        self.bytes = self.bytes_done = 0
        self.in_file = 0  # bytes of the current file done
        self.started = time.monotonic()
        self.shown = 0.0

    def plan(self, files: int, total_bytes: int) -> None:
        self.files, self.bytes = files, total_bytes

    def at(self, done_in_file: int) -> None:
        self.in_file = done_in_file
        self._maybe_show()

    def file_done(self, size: int) -> None:
        self.files_done += 1
        self.bytes_done += size
        self.in_file = 0
        self._maybe_show()

    def _maybe_show(self) -> None:
        now = time.monotonic()
        if self.changed and now - self.started >= self.after and now - self.shown >= self.every:
            self.shown = now
            self.changed(self)

    def figures(self) -> Dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        done = self.bytes_done + self.in_file
        rate = done / elapsed
        left = (self.bytes - done) / rate if rate > 0 and self.bytes >= done else None
        return {"files_done": self.files_done, "files": self.files, "bytes_done": done, "bytes": self.bytes,
                "bytes_per_second": round(rate), "seconds_left": round(left) if left is not None else None,
                "seconds": round(elapsed, 1)}


class TerminalLine:
    """The progress as one line rewritten in place on a terminal (stderr); cleared before anything else
    is written there and at the end."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.visible = False

    def __call__(self, progress: Progress) -> None:
        f = progress.figures()
        left = f"{f['seconds_left'] // 60}:{f['seconds_left'] % 60:02d} left" if f["seconds_left"] is not None else ""
        self.stream.write(f"\r\x1b[Ksmbtrail: {f['files_done']}/{f['files']} files, {f['bytes_done'] / 1e6:.0f}/"
                          f"{f['bytes'] / 1e6:.0f} MB, {f['bytes_per_second'] / 1e6:.1f} MB/s, {left}")
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.visible = False
