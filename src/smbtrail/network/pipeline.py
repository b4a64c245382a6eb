"""Captures (and Zeek logs) -> network records: tcpdump's selection, tshark passes run ahead on every core
(long captures in pieces), rows handed back in the serial order; each file's failure contained."""

from __future__ import annotations

import os
from functools import partial
from typing import Callable, Iterator, List, Optional, Sequence

from .. import interfaces
from ..capture import tshark
from ..capture.fields import field_list, make_frame, to_row
from ..capture.inputs import Member, Source, expand, members
from ..encryption.keys import TsharkSecrets, tshark_secrets
from ..input_files import is_environment_fault, reason
from ..options import Options
from ..progress import Progress
from ..records import ERROR, Provenance, Record, from_epoch
from ..tempdirs import sweep_stale
from ..zeek.logs import LogFile, is_zeek_head, is_zeek_log
from .analyzer import Analyzer, RunState
from .dissect import Dissection, Job

IDLE_FLUSH = 900.0  # seconds of silence after which a connection's open state is flushed
FLUSH_EVERY = 20000  # frames (of the original file) between idle checks


def analyze_captures(paths: Sequence[str], options: Options, progress: Optional[Progress] = None
                     ) -> Iterator[Record]:
    """All network records of all inputs (captures and Zeek logs, told apart by content); unreadable
    inputs become error records, never exceptions."""
    from ..encryption.inference import infer
    from ..recognize import recognize

    sources = expand(paths, options.max_expansion, is_zeek_log, is_zeek_head)
    zeek_logs = [LogFile(s.path, s.open, options.max_expansion) for s in sources if s.kind == "zeek"]
    captures = [s for s in sources if s.kind != "zeek"]
    stream: Optional[Iterator[Record]] = _raw_records(captures, options, progress) if captures or not zeek_logs else None
    if zeek_logs:
        from ..zeek import network_records

        stream = network_records(stream, zeek_logs)
    return recognize(infer(stream))


def captures_among(paths: Sequence[str], options: Options) -> bool:
    """Whether any input is (or claims to be) a capture rather than a Zeek log: tshark is needed then."""
    return any(source.kind != "zeek" for source in expand(paths, options.max_expansion, is_zeek_log, is_zeek_head))


def _raw_records(sources: Sequence[Source], options: Options, progress: Optional[Progress] = None
                 ) -> Iterator[Record]:
    progress = progress or Progress()
    run = RunState()
    try:
        binary = tshark.check_tshark(options.tshark)
    except tshark.TsharkMissing as exc:
        yield _error(sources[0].path if sources else "-", str(exc))
        return
    names = field_list(_decoder_fields())
    sweep_stale()  # what runs killed before this one left in the temporary directory
    with tshark_secrets(options) as secrets:
        for message in secrets.errors:
            path, _, why = message.partition(": ")
            yield _error(path, why)
        on_disk = [s for s in sources if s.kind in ("pcap", "pcapng") and not s.error]
        dissected = {id(s) for s in on_disk}
        dissection = Dissection(on_disk, partial(_command, binary, names, secrets), names, secrets,
                                options.workers, options.prefilter)
        progress.plan(len(sources), sum(s.size for s in sources))
        try:
            dissection.start()
            done = 0
            for source in sources:
                if source.error:
                    yield _error(source.path, source.error)
                elif id(source) in dissected:
                    job = dissection.job(done)
                    done += 1
                    yield from _guarded(_from_job(dissection, job, names, run, secrets, progress), source.path)
                    dissection.done(job)
                else:
                    yield from _streamed(binary, source, names, run, secrets, options.max_expansion)
                progress.file_done(source.size)
        finally:
            dissection.close()


def _streamed(binary: str, source: Source, names: List[str], run: RunState, secrets: TsharkSecrets,
              max_expansion: float) -> Iterator[Record]:
    """gzip captures and zip members: decompressed here and fed to one tshark, one after another."""
    for member in members(source, max_expansion):
        if member.error:
            yield _error(member.name, member.error)
            continue
        yield from _guarded(_one_file(binary, member, names, run, secrets), member.name)


def _command(binary: str, names: List[str], secrets: TsharkSecrets, path: str) -> List[str]:
    return tshark.build_command(binary, path, names, prefs=secrets.prefs, keytab=secrets.keytab,
                                disabled=interfaces.all_dissectors())


def _from_job(dissection: Dissection, job: Job, names: List[str], run: RunState, secrets: TsharkSecrets,
              progress: Progress) -> Iterator[Record]:
    if job.error:
        yield _error(job.source.path, job.error)
        return
    statuses = [p.run for p in job.passes]
    at = None
    if job.packets:
        at = lambda number: progress.at(job.source.size * min(number, job.packets) // job.packets)  # noqa: E731
    yield from _analysed(job.source.path, dissection.rows(job), statuses, names, run, secrets, at)


def _guarded(records: Iterator[Record], name: str) -> Iterator[Record]:
    """A file's records; an unexpected failure while reading it becomes its error record, the run goes on
    (faults of the installation, such as a missing module or lookup, still stop it)."""
    count = 0
    try:
        for rec in records:
            count += 1
            yield rec
    except Exception as exc:
        if is_environment_fault(exc):
            raise
        yield _error(name, f"reading stopped: {reason(exc)}", partial=count > 0)


def _one_file(binary: str, member: Member, names: List[str], run: RunState, secrets: TsharkSecrets
              ) -> Iterator[Record]:
    try:
        feed = member.open() if member.open is not None else None
    except Exception as exc:
        yield _error(member.name, reason(exc))
        return
    status = tshark.TsharkRun()
    cmd = _command(binary, names, secrets, "-" if feed is not None else member.path)
    rows = tshark.stream_rows(cmd, len(names), status, env=secrets.env, feed=feed, pass_fds=secrets.pass_fds)
    yield from _analysed(member.name, rows, [status], names, run, secrets)


def _analysed(display: str, rows: Iterator[List[str]], statuses: List[tshark.TsharkRun], names: List[str],
              run: RunState, secrets: TsharkSecrets, at: Optional[Callable[[int], None]] = None
              ) -> Iterator[Record]:
    """One file's tshark rows (original frame numbers, in frame order) through the analyzer."""
    analyzer = Analyzer(display, run, decrypting=secrets.decrypting, keyed_sessions=secrets.session_ids)
    count = checked = 0
    last_time = 0.0
    for values in rows:
        frame = make_frame(to_row(names, values))
        analyzer.feed(frame)
        count += 1
        last_time = max(last_time, frame.time)
        if at is not None and not count % 1024:
            at(frame.number)
        if frame.number // FLUSH_EVERY > checked:  # by frame number: the same with or without selection
            checked = frame.number // FLUSH_EVERY
            analyzer.flush(analyzer.table.idle(last_time, IDLE_FLUSH))
        if analyzer.out:
            yield from analyzer.out
            analyzer.out.clear()
    analyzer.flush(list(analyzer.table.conns.values()))
    yield from analyzer.out
    problem = next((p for p in (s.problem() for s in statuses) if p), None)
    bad_lines = sum(s.bad_lines for s in statuses)
    if problem or bad_lines:
        yield _error(display, problem or f"{bad_lines} unreadable tshark lines", partial=count > 0)


def _decoder_fields() -> List[str]:
    """Fields of the interfaces tshark still dissects (the disabled ones are parsed from stubs)."""
    disabled = tuple(f"{name}." for name in interfaces.all_dissectors())
    return [name for name in interfaces.all_fields() if not name.startswith(disabled)]


def _error(path: str, reason: str, partial: bool = False) -> Record:
    """Error records carry the file's mtime, so a replay yields the same record (and id)."""
    try:
        when = os.path.getmtime(path.split("!", 1)[0])
    except OSError:
        when = 0.0
    return Record(time=from_epoch(when), kind=ERROR, message=f"{path}: {reason}", partial=partial,
                  provenance=[Provenance(file=path)], status="partial" if partial else "error")
