"""Captures (and Zeek logs) -> network records: one tshark pass per file, streamed, each file's failure
contained."""

from __future__ import annotations

import os
from typing import Iterator, List, Optional, Sequence

from .. import interfaces
from ..capture import tshark
from ..capture.fields import field_list, make_frame, to_row
from ..capture.inputs import Member, Source, expand, members
from ..encryption.keys import TsharkSecrets, tshark_secrets
from ..input_files import is_environment_fault, reason
from ..options import Options
from ..records import ERROR, Provenance, Record, from_epoch
from ..zeek.logs import is_zeek_log
from .analyzer import Analyzer, RunState

IDLE_FLUSH = 900.0  # seconds of silence after which a connection's open state is flushed
FLUSH_EVERY = 20000  # frames between idle checks


def analyze_captures(paths: Sequence[str], options: Options) -> Iterator[Record]:
    """All network records of all inputs (captures and Zeek logs, told apart by content); unreadable
    inputs become error records, never exceptions."""
    from ..encryption.inference import infer
    from ..recognize import recognize

    sources = expand(paths, is_zeek_log)
    zeek_logs = [s.path for s in sources if s.kind == "zeek"]
    captures = [s for s in sources if s.kind != "zeek"]
    stream: Optional[Iterator[Record]] = _raw_records(captures, options) if captures or not zeek_logs else None
    if zeek_logs:
        from ..zeek import network_records

        stream = network_records(stream, zeek_logs)
    return recognize(infer(stream))


def captures_among(paths: Sequence[str]) -> bool:
    """Whether any input is (or claims to be) a capture rather than a Zeek log: tshark is needed then."""
    return any(source.kind != "zeek" for source in expand(paths, is_zeek_log))


def _raw_records(sources: Sequence[Source], options: Options) -> Iterator[Record]:
    run = RunState()
    try:
        binary = tshark.check_tshark(options.tshark)
    except tshark.TsharkMissing as exc:
        yield _error(sources[0].path if sources else "-", str(exc))
        return
    names = field_list(_decoder_fields())
    with tshark_secrets(options) as secrets:
        for message in secrets.errors:
            path, _, why = message.partition(": ")
            yield _error(path, why)
        for source in sources:
            if source.error:
                yield _error(source.path, source.error)
                continue
            for member in members(source):
                if member.error:
                    yield _error(member.name, member.error)
                    continue
                yield from _guarded(_one_file(binary, member, names, run, secrets), member.name)


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
    display = member.name
    feed = None
    if member.open is not None:
        try:
            feed = member.open()
        except Exception as exc:
            yield _error(display, reason(exc))
            return
    analyzer = Analyzer(display, run, decrypting=secrets.decrypting, keyed_sessions=secrets.session_ids)
    status = tshark.TsharkRun()
    path = "-" if feed is not None else member.path
    cmd = tshark.build_command(binary, path, names, prefs=secrets.prefs, keytab=secrets.keytab,
                               disabled=interfaces.all_dissectors())
    count = 0
    last_time = 0.0
    for values in tshark.stream_rows(cmd, len(names), status, env=secrets.env, feed=feed, pass_fds=secrets.pass_fds):
        frame = make_frame(to_row(names, values))
        analyzer.feed(frame)
        count += 1
        last_time = max(last_time, frame.time)
        if count % FLUSH_EVERY == 0:
            analyzer.flush(analyzer.table.idle(last_time, IDLE_FLUSH))
        if analyzer.out:
            yield from analyzer.out
            analyzer.out.clear()
    analyzer.flush(list(analyzer.table.conns.values()))
    yield from analyzer.out
    problem = status.problem()
    if problem or status.bad_lines:
        why = problem or f"{status.bad_lines} unreadable tshark lines"
        yield _error(display, why, partial=count > 0)


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
