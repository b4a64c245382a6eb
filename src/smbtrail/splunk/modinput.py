"""Modular inputs `smbtrail_pcap://` and `smbtrail_hostlog://` (splunklib Script adapters).

Each run lists the completed files of the watched directory/glob, runs the engine over each file not
yet finished, and streams its records as events. See checkpoint.py for the no-loss/no-duplicate rule.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from splunklib.modularinput import Argument, Event, EventWriter, Scheme, Script

from ..input_files import InputError, is_environment_fault, reason
from ..output import printable
from ..progress import Progress
from ..records import ERROR, Record, iso, stable_id
from . import events, logs, secrets
from .checkpoint import CheckpointError, Checkpoints, Done
from .watch import FileIdentity, content_digest, expand, identity, partial_name, settled

DEFAULT_SETTLE = 60.0
Engine = Callable[[Sequence[str], Any, Any], Iterator[Record]]  # paths, Options, Progress
PROGRESS_AFTER, PROGRESS_EVERY = 30.0, 60.0  # a file read longer than this has health events while it is read


class SmbtrailInput(Script):
    scheme_name = ""
    title = ""
    description = ""
    sourcetype = ""

    # --- scheme ---------------------------------------------------------------------------------
    def get_scheme(self) -> Scheme:
        scheme = Scheme(self.title)
        scheme.description = self.description
        scheme.use_external_validation = True
        scheme.use_single_instance = False
        for arg in self.arguments():
            scheme.add_argument(arg)
        return scheme

    def arguments(self) -> List[Argument]:
        return [
            Argument("path", title="Directory or glob",
                     description="Directory or glob (** allowed) of completed files to read",
                     required_on_create=True),
            Argument("settle_seconds", title="Settle interval (s)",
                     description="A file is read once its size and mtime held still this long (default 60)",
                     data_type=Argument.data_type_number, required_on_create=False),
        ]

    # --- validation -----------------------------------------------------------------------------
    def validate_input(self, definition) -> None:
        problems = self.problems(definition.parameters)
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self, params: Dict[str, Any]) -> List[str]:
        found = []
        path = (params.get("path") or "").strip()
        if not path:
            found.append("path is required: a directory or a glob such as /data/pcap/*.pcapng")
        else:
            found.extend(_path_problems(path))
        try:
            if float(params.get("settle_seconds") or DEFAULT_SETTLE) < 0:
                found.append("settle_seconds must be 0 or more")
        except ValueError:
            found.append(f"settle_seconds must be a number, got {params.get('settle_seconds')!r}")
        return found

    # --- streaming ------------------------------------------------------------------------------
    def stream_events(self, inputs, ew: EventWriter) -> None:
        ew = logs.LoggedWriter(ew, self.scheme_name)  # also into the app's own log
        checkpoint_dir = inputs.metadata["checkpoint_dir"]
        for stanza, params in inputs.inputs.items():
            problems = self.problems(params)
            if problems:
                ew.log(EventWriter.ERROR, f"{stanza}: not run: {printable('; '.join(problems))}")
                continue
            try:
                ckpt = Checkpoints(checkpoint_dir, stanza)
            except CheckpointError as exc:  # sending what cannot be recorded would resend it on every run
                ew.log(EventWriter.ERROR, f"{stanza}: not run: {printable(exc.strerror)}; nothing is sent until "
                                          "its progress can be recorded")
                continue
            try:
                for problem in ckpt.problems:
                    ew.log(EventWriter.WARN, f"{stanza}: {printable(problem)}")
                self.run_stanza(stanza, params, ckpt, ew)
            finally:
                ckpt.close()

    def run_stanza(self, stanza: str, params: Dict[str, Any], ckpt: Checkpoints, ew: EventWriter) -> None:
        problem = self.not_ready(params)
        if problem:  # not any file's fault: every file waits, unread and unrecorded, for a fixed installation
            ew.log(EventWriter.ERROR, f"{stanza}: not run: {printable(problem)}; files are left for the next run")
            return
        try:
            options = self.options(params, ckpt)
        except Exception as exc:  # messages of SecretError never hold the secret
            ew.log(EventWriter.ERROR, f"{stanza}: not run: cannot read secrets: {printable(exc)}")
            return
        try:
            self.poll(stanza, params, ckpt, options, ew)
            ckpt.compact()
        except CheckpointError as exc:
            ew.log(EventWriter.ERROR, f"{stanza}: stopped: {printable(exc.strerror)}; the rest waits for the next run")
        except Exception as exc:
            if not is_environment_fault(exc):
                raise
            ckpt.abandon()
            ew.log(EventWriter.ERROR, f"{stanza}: stopped: {printable(reason(exc))} (not the file's fault: it is "
                                      "left unrecorded and read again next run)")
        finally:
            secrets.discard(options)

    def poll(self, stanza: str, params: Dict[str, Any], ckpt: Checkpoints, options, ew: EventWriter) -> None:
        """Each settled file that is new or changed; a known file is recognised by its stat alone (no read)."""
        settle = float(params.get("settle_seconds") or DEFAULT_SETTLE)
        for path, st in expand(params["path"].strip()):
            if partial_name(path) or not settled(st, settle):
                continue
            ident = identity(path, st)
            known = ckpt.done(path)
            if known is not None and known.stat == ident.stat_key():
                continue
            try:
                digest = content_digest(path)
            except (OSError, InputError) as exc:
                ew.log(EventWriter.ERROR, f"{stanza}: {printable(path)}: skipped: cannot read: {printable(reason(exc))}")
                continue
            if known is not None and known.digest == digest:
                ckpt.touch(replace(known, stat=ident.stat_key()))  # touched or moved back, same content
            elif ckpt.has_digest(digest):
                ckpt.touch(Done(path, ident.stat_key(), digest, "same_content", 0, iso_now()))
                ew.log(EventWriter.INFO, f"{stanza}: {printable(path)}: same content as a file already read; not sent again")
            else:
                self.process_file(stanza, params, ident, digest, options, ckpt, ew)

    def not_ready(self, params: Dict[str, Any]) -> Optional[str]:
        """Why this installation cannot read any file now (an engine part, a lookup or tshark missing)."""
        try:
            self.engine()
            self.preflight(params)
        except Exception as exc:
            if is_environment_fault(exc):
                return reason(exc)
            raise
        return None

    def preflight(self, params: Dict[str, Any]) -> None:
        from ..lookups import lookup_path

        lookup_path("rpc_operations.csv")  # a package cut without lookups/ stops here, before any file

    def options(self, params: Dict[str, Any], ckpt: Checkpoints):
        from ..engine import Options
        from ..options import max_expansion_from_environment

        return Options(max_expansion=max_expansion_from_environment())

    def engine(self) -> Engine:
        raise NotImplementedError

    def process_file(self, stanza: str, params: Dict[str, Any], ident: FileIdentity, digest: str, options,
                     ckpt: Checkpoints, ew: EventWriter) -> None:
        sent = ckpt.start(ident.path, digest)
        started = time.time()
        count = errors = 0
        status, problem = "ok", None
        progress = Progress(lambda p: self.reading(ew, stanza, params, ident, p), after=PROGRESS_AFTER,
                            every=PROGRESS_EVERY)
        try:
            for record in self.engine()([ident.path], options, progress):
                count += 1
                errors += record.kind == ERROR
                mark = sent.mark_of(record.uid())
                if not sent.is_new(mark):
                    continue  # sent before an interruption, or before the file changed
                if record.kind == ERROR and record.message:
                    ew.log(EventWriter.WARN, f"{stanza}: {printable(record.message)}")
                self.write(ew, stanza, params, ident.path, record)
                sent.record(mark)
        except CheckpointError:
            raise
        except Exception as exc:
            if is_environment_fault(exc):
                raise
            status, problem = "error", f"{exc.__class__.__name__}: {exc}"  # a bad file is logged and skipped
            ew.log(EventWriter.ERROR, f"{stanza}: {printable(ident.path)}: skipped after {count} records: "
                                      f"{printable(problem)}")
        if errors and status == "ok":
            status = "partial"
        self._changed_while_read(stanza, ident, ew)
        health = self.health(stanza, ident, digest, status, problem, count, errors, started)
        mark = sent.mark_of(health["uid"])
        if sent.is_new(mark):
            ew.write_event(Event(data=json.dumps(health, sort_keys=True), stanza=stanza, time=started,
                                 source=events.xml_safe(ident.path), sourcetype=events.HEALTH,
                                 index=params.get("index"), host=params.get("host"), done=True, unbroken=True))
            sent.record(mark)
        ckpt.finish(Done(ident.path, ident.stat_key(), digest, status, count, iso_now()))
        ew.log(EventWriter.INFO, f"{stanza}: {printable(ident.path)}: {status}, {count} records"
                                 + (f", {sent.resumed} sent before a restart" if sent.resumed else ""))

    def _changed_while_read(self, stanza: str, ident: FileIdentity, ew: EventWriter) -> None:
        try:
            now = identity(ident.path)
        except OSError:
            return
        if now.stat_key() != ident.stat_key():
            ew.log(EventWriter.WARN, f"{stanza}: {printable(ident.path)}: changed while it was read; it is read again "
                                     "next run and only its new events are sent")

    def write(self, ew: EventWriter, stanza: str, params: Dict[str, Any], source: str, record: Record) -> None:
        ew.write_event(Event(
            data=events.event_json(record), stanza=stanza, time=record.time.timestamp(), source=events.xml_safe(source),
            sourcetype=events.sourcetype_for(record, self.sourcetype), index=params.get("index"),
            host=params.get("host"), done=True, unbroken=True))

    def reading(self, ew: EventWriter, stanza: str, params: Dict[str, Any], ident: FileIdentity,
                progress: Progress) -> None:
        """A health event while a long file is read: how far, how fast, how long still (status `reading`)."""
        figures = progress.figures()
        health = {"input": stanza, "file": ident.path, "bytes": ident.size, "status": "reading", "time": iso_now(),
                  "bytes_done": figures["bytes_done"], "bytes_per_second": figures["bytes_per_second"],
                  "seconds": figures["seconds"], "seconds_left": figures["seconds_left"]}
        ew.write_event(Event(data=json.dumps(health, sort_keys=True), stanza=stanza, time=time.time(),
                             source=events.xml_safe(ident.path), sourcetype=events.HEALTH, index=params.get("index"),
                             host=params.get("host"), done=True, unbroken=True))

    def health(self, stanza: str, ident: FileIdentity, digest: str, status: str, problem: Optional[str], count: int,
               errors: int, started: float) -> Dict[str, Any]:
        return {
            "uid": stable_id("health", ident.path, digest), "input": stanza, "file": ident.path, "bytes": ident.size,
            "status": status, "problem": problem, "records": count, "error_records": errors,
            "seconds": round(time.time() - started, 3),
            "lag_seconds": round(started - ident.mtime_ns / 1e9, 3), "time": iso_now(),
        }


def iso_now() -> str:
    from ..records import from_epoch

    return iso(from_epoch(time.time()))


def _path_problems(path: str) -> List[str]:
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.X_OK):
            return [f"path {path}: directory is not readable by the Splunk user"]
        return []
    if glob.has_magic(path):
        base = _glob_base(path)
        if not os.path.isdir(base):
            return [f"path {path}: directory {base} does not exist"]
        if not os.access(base, os.R_OK | os.X_OK):
            return [f"path {path}: directory {base} is not readable by the Splunk user"]
        return []
    if os.path.isfile(path):
        return [] if os.access(path, os.R_OK) else [f"path {path}: file is not readable by the Splunk user"]
    return [f"path {path}: no such directory or file"]


def _glob_base(pattern: str) -> str:
    parts = []
    for part in pattern.split(os.sep):
        if glob.has_magic(part):
            break
        parts.append(part)
    return os.sep.join(parts) or "."


class PcapInput(SmbtrailInput):
    scheme_name = "smbtrail_pcap"
    title = "smbtrail: SMB/MS-RPC captures"
    description = "Reads completed pcap/pcapng files of a sensor's rotation and emits SMB/DCE-RPC trails"
    sourcetype = events.NETWORK

    def arguments(self) -> List[Argument]:
        return super().arguments() + [
            Argument("tshark", title="tshark path",
                     description="tshark binary (default: found on PATH); needed on this instance",
                     required_on_create=False),
            Argument("secrets", title="Decryption secrets",
                     description="Comma-separated usernames in storage/passwords realm smbtrail, or *",
                     required_on_create=False),
        ]

    def problems(self, params: Dict[str, Any]) -> List[str]:
        found = super().problems(params)
        problem = _tshark_problem((params.get("tshark") or "").strip())
        if problem:
            found.append(problem)
        return found

    def preflight(self, params: Dict[str, Any]) -> None:
        super().preflight(params)
        from ..capture.tshark import check_tshark
        from ..network import pipeline  # noqa: F401 (an engine part missing from this build shows here)

        check_tshark(_configured_tshark(params))

    def options(self, params: Dict[str, Any], ckpt: Checkpoints):
        from ..options import max_expansion_from_environment

        names = secrets.wanted(params.get("secrets") or "")
        options = secrets.to_options(secrets.fetch(self.service, names)) if names else super().options(params, ckpt)
        options.tshark = _configured_tshark(params)
        options.max_expansion = max_expansion_from_environment()
        return options

    def engine(self) -> Engine:
        from ..engine import network_records

        return network_records


class HostlogInput(SmbtrailInput):
    scheme_name = "smbtrail_hostlog"
    title = "smbtrail: Windows event log exports"
    description = "Reads completed .evtx, JSON-lines and XML event exports and emits host records"
    sourcetype = events.HOST

    def arguments(self) -> List[Argument]:
        return super().arguments() + [
            Argument("all_events", title="All events",
                     description="Also emit events outside the lateral-movement set (default false)",
                     data_type=Argument.data_type_boolean, required_on_create=False),
        ]

    def problems(self, params: Dict[str, Any]) -> List[str]:
        found = super().problems(params)
        if (params.get("all_events") or "0").strip().lower() not in BOOLEANS:
            found.append(f"all_events must be true or false, got {params.get('all_events')!r}")
        return found

    def preflight(self, params: Dict[str, Any]) -> None:
        super().preflight(params)
        from ..hostlog import commands, read_hostlogs  # noqa: F401 (an engine part missing shows here)

    def options(self, params: Dict[str, Any], ckpt: Checkpoints):
        options = super().options(params, ckpt)
        options.all_events = BOOLEANS.get((params.get("all_events") or "0").strip().lower(), False)
        return options

    def engine(self) -> Engine:
        from ..engine import host_records

        return lambda paths, options, progress: host_records(paths, options)  # event logs read fast


BOOLEANS = {"1": True, "true": True, "t": True, "yes": True, "0": False, "false": False, "f": False, "no": False}


def _configured_tshark(params: Dict[str, Any]) -> Optional[str]:
    return (params.get("tshark") or "").strip() or None


def _tshark_problem(configured: str) -> Optional[str]:
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return None
        return f"tshark {configured}: not an executable file"
    try:
        from ..capture.tshark import TsharkMissing, find_tshark
    except ImportError:
        return None if shutil.which("tshark") else "tshark not found on PATH: install it (apt install tshark)"
    try:
        find_tshark()
    except TsharkMissing as exc:
        return str(exc)
    return None


def main(cls, argv: List[str]) -> int:
    """Entry point for bin/<scheme>.py: the splunklib protocol on stdin/stdout."""
    return cls().run(argv)
