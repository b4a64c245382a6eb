"""tshark passes over the capture files, run ahead of the analysis on every free core, their rows handed
back in the serial order.

A thread prepares the files on disk one after another (tcpdump's selection, pieces for a long capture)
and queues one tshark pass per file or piece; at most `workers` tshark processes run at once, each
writing its rows to a spool file in the file's work directory. The analysis reads the passes of the
file it is at, as they are written, merged by frame number: the rows are those of one tshark pass over
the whole file, in the same order, so the records and their ids are those of a serial run. At most
`workers` files are prepared ahead of the one being analysed (their spools are the disk this costs).
"""

from __future__ import annotations

import heapq
import os
import threading
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence

from ..capture import tshark
from ..capture.inputs import Source
from ..capture.pieces import split
from ..capture.prefilter import select
from ..encryption.keys import TsharkSecrets
from ..input_files import reason
from ..tempdirs import DISSECT, LockedTempdir

PIECE_BYTES = 96 * 1024 * 1024  # a tshark per piece of about this much capture: ~2.5x as much memory each
PUMP_EVERY = 4096  # rows read between checks for a free core


def worker_count(asked: int = 0) -> int:
    """`asked`, else one per core but the one the analysis itself keeps busy: on 2 cores a second tshark
    only competes with the analysis (all-SMB 262 MB: 13.1 s wall with one, 15.8 s with two)."""
    if asked > 0:
        return asked
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass
class Pass:
    """One tshark run over a file or a piece of it."""

    cmd: List[str]
    spool: str
    frames: Optional[array]  # original frame number of each packet tshark reads (None: the same)
    first: int  # the lowest frame number it can give a row for
    index: int = 0  # its piece number, and how many pieces the file has: tcp.stream ids made distinct
    count: int = 1
    run: tshark.TsharkRun = field(default_factory=tshark.TsharkRun)
    proc: Optional[object] = None


@dataclass
class Job:
    """A capture file made ready: its passes queued (or why it could not be prepared)."""

    source: Source
    dir: LockedTempdir  # holds the selection, the pieces and the spools
    passes: List[Pass] = field(default_factory=list)
    packets: int = 0  # the original file's last frame number, when known (progress)
    error: Optional[str] = None
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def workdir(self) -> str:
        return self.dir.path


class Dissection:
    def __init__(self, sources: Sequence[Source], build: Callable[[str], List[str]], names: List[str],
                 secrets: TsharkSecrets, workers: int = 0, prefilter: bool = True) -> None:
        self.sources = list(sources)
        self.build = build  # input path -> tshark command
        self.frame_at, self.stream_at = names.index("frame.number"), names.index("tcp.stream")
        self.nfields = len(names)
        self.env, self.pass_fds = secrets.env, secrets.pass_fds
        self.workers = worker_count(workers)
        self.prefilter = prefilter
        self.jobs: Dict[int, Job] = {}
        self.queue: Deque[Pass] = deque()
        self.running: List[Pass] = []
        self.lock = threading.Lock()
        self.ahead = threading.Semaphore(self.workers + 1)
        self.stop = threading.Event()
        self.changed = threading.Condition(self.lock)
        self.thread = threading.Thread(target=self._prepare_all, daemon=True)

    # -- preparation (its own thread)
    def start(self) -> Dissection:
        self.thread.start()
        return self

    def _prepare_all(self) -> None:
        for number, source in enumerate(self.sources):
            self.ahead.acquire()
            if self.stop.is_set():
                return
            job = Job(source, LockedTempdir(DISSECT))
            try:
                self._prepare(job)
            except Exception as exc:  # the file's own problem: reported as its error record
                job.error = reason(exc)
            with self.lock:
                self.jobs[number] = job
                self.queue.extend(job.passes)
                self._pump()
                self.changed.notify_all()
            job.ready.set()

    def _prepare(self, job: Job) -> None:
        path = job.source.path
        big = job.source.size > PIECE_BYTES
        selection = select(path, job.workdir, keep_all=big) if self.prefilter else None
        frames = selection.frames if selection else None
        target = selection.path if selection else path
        small = os.path.getsize(target) <= PIECE_BYTES  # a selection that small would be one piece: its copy
        pieces = split(target, frames, PIECE_BYTES, job.workdir) if big and not small else None
        if frames is not None:
            job.packets = frames[-1] if frames else 0
        if not pieces:
            job.passes = [Pass(self.build(target), os.path.join(job.workdir, "rows"), frames, 1)]
            return
        job.packets = max(job.packets, pieces[-1].frames[-1] if pieces[-1].frames else 0)
        for index, piece in enumerate(pieces):
            job.passes.append(Pass(self.build(piece.path), piece.path + ".rows", piece.frames, piece.first,
                                   index, len(pieces)))

    def _pump(self) -> None:
        """Start queued passes while fewer than `workers` run (the lock held)."""
        self.running = [p for p in self.running if p.proc.poll() is None]  # type: ignore[attr-defined]
        while self.queue and len(self.running) < self.workers and not self.stop.is_set():
            job_pass = self.queue.popleft()
            job_pass.proc = tshark.spool(job_pass.cmd, job_pass.spool, job_pass.run, self.env, self.pass_fds)
            self.running.append(job_pass)

    def _wait(self) -> None:
        with self.lock:
            self._pump()
            self.changed.wait(0.005)

    # -- consumption (the analysis thread)
    def job(self, number: int) -> Job:
        while True:
            with self.lock:
                job = self.jobs.get(number)
            if job is not None:
                job.ready.wait()
                return job
            if not self.thread.is_alive():
                raise RuntimeError("capture preparation stopped")
            self._wait()

    def rows(self, job: Job) -> Iterator[List[str]]:
        """The job's rows in frame order, original frame numbers, connection ids distinct across pieces."""
        if len(job.passes) == 1:  # nothing to merge
            yield from self._follow(job.passes[0])
            return
        pending = sorted(job.passes, key=lambda p: p.first)
        heap: list = []

        def add(job_pass: Pass) -> None:
            rows = self._follow(job_pass)
            values = next(rows, None)
            if values is not None:
                heapq.heappush(heap, (int(values[self.frame_at]), job_pass.index, values, rows))

        while heap or pending:
            while pending and (not heap or pending[0].first <= heap[0][0]):
                add(pending.pop(0))
            if not heap:
                continue
            _, index, values, rows = heapq.heappop(heap)
            yield values
            following = next(rows, None)
            if following is not None:
                heapq.heappush(heap, (int(following[self.frame_at]), index, following, rows))

    def _follow(self, job_pass: Pass) -> Iterator[List[str]]:
        while job_pass.proc is None:
            self._wait()
        frames, frame_at, stream_at = job_pass.frames, self.frame_at, self.stream_at
        rows = tshark.follow_rows(job_pass.proc, job_pass.spool, self.nfields, job_pass.run,  # type: ignore[arg-type]
                                  wait=self._wait)
        for count, values in enumerate(rows, 1):
            if not count % PUMP_EVERY:  # a pass that ended while the analysis was busy: start the next one now
                with self.lock:
                    self._pump()
            if frames is not None:
                values[frame_at] = str(frames[int(values[frame_at]) - 1])
            stream = values[stream_at]
            if job_pass.count > 1 and stream:
                values[stream_at] = (str(int(stream) * job_pass.count + job_pass.index) if "," not in stream else
                                     ",".join(str(int(s) * job_pass.count + job_pass.index) for s in stream.split(",")))
            yield values

    def done(self, job: Job) -> None:
        job.dir.close()
        self.ahead.release()

    def close(self) -> None:
        """Stop preparing, stop every tshark, remove every work directory."""
        self.stop.set()
        self.ahead.release()
        with self.lock:
            for job_pass in self.running + list(self.queue):
                if job_pass.proc is not None and job_pass.proc.poll() is None:  # type: ignore[attr-defined]
                    job_pass.proc.kill()  # type: ignore[attr-defined]
                    job_pass.proc.wait()  # type: ignore[attr-defined]
            self.queue.clear()
        self.thread.join(timeout=30)
        for job in self.jobs.values():
            job.dir.close()
