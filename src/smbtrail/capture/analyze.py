"""Captures -> protocol state -> network records, one tshark pass per file, streamed."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence

from .. import interfaces, windows_names
from ..encryption.observe import EncryptedActivity
from ..input_files import is_environment_fault, reason
from ..protocols.auth import TicketIndex
from ..protocols.connections import Conn, ConnectionTable, Frame, make_frame
from ..protocols.dcerpc import DcerpcHandler
from ..protocols.names import HostNames
from ..protocols.smb1 import Smb1Handler
from ..protocols.smb2 import Smb2Handler
from ..records import ERROR, FILE, OPERATION, SESSION, TREE, Provenance, Record, from_epoch
from . import tshark
from .fields import field_list, to_row
from .inputs import Member, Source, expand, members
from .prefilter import Selection, select

IDLE_FLUSH = 900.0  # seconds of silence after which a connection's open state is flushed
FLUSH_EVERY = 20000  # frames (of the original file) between idle checks


class RunState:
    """What outlives one file: Kerberos tickets, host names and EPM answers seen so far."""

    def __init__(self) -> None:
        self.tickets = TicketIndex()
        self.hosts = HostNames()
        self.epm_ports: Dict[tuple, str] = {}


class Analyzer:
    """Per-capture state; protocol handlers call back into it to emit records."""

    def __init__(self, file: str, run: RunState, decrypting: bool = False, keyed_sessions=frozenset()) -> None:
        self.file = file
        self.decrypting = decrypting  # without secrets, a "decrypted" transform is tshark misreading noise
        self.keyed_sessions = keyed_sessions  # session ids (wire order) the key file names
        self.run = run
        self.tickets = run.tickets
        self.hosts = run.hosts
        self.table = ConnectionTable(file)
        self.out: List[Record] = []
        self.smb2 = Smb2Handler(self)
        self.smb1 = Smb1Handler(self)
        self.rpc = DcerpcHandler(self)
        self.encrypted = EncryptedActivity(self)

    # -- frame dispatch
    def feed(self, frame: Frame) -> None:
        row = frame.row
        if "kerberos.msg_type" in row:
            ticket = self.tickets.observe(frame)
            if ticket:
                self._ticket(frame, ticket)
            refused = self.tickets.refused(frame)
            if refused:
                self._kdc_refused(frame, refused)
        if "dns.resp.name" in row or "nbns.name" in row:
            self.hosts.learn_dns(row)
        if frame.stream < 0:
            return
        transform = "smb2.header.transform.msg_size" in row
        if "smb2.cmd" in row and (self.decrypting or not transform):
            conn = self.table.get(frame, row.get("smb2.flags.response", "").startswith("0"))
            self.smb2.handle(frame, conn)
        elif transform:
            conn = self.table.get(frame, None)
            self.encrypted.message(frame, conn)
        elif "smb.cmd" in row:
            conn = self.table.get(frame, row.get("smb.flags.response", "").startswith("0"))
            self.smb1.handle(frame, conn)
        elif "dcerpc.pkt_type" in row:
            first = row["dcerpc.pkt_type"].split(",", 1)[0]
            conn = self.table.get(frame, first in ("0", "11", "14", "16"))
            self.rpc.handle(frame, conn)

    def _ticket(self, frame: Frame, ticket: tuple) -> None:
        """A KDC reply: which account got a ticket for which service (the account behind Kerberos SMB)."""
        _, kind, cname, realm, sname = ticket
        self.out.append(Record(
            time=from_epoch(frame.time), kind=SESSION, protocol="kerberos", operation=f"{kind}_rep",
            src_ip=frame.dst, src_port=frame.dport, dest_ip=frame.src, dest_port=frame.sport, user=cname,
            domain=realm, src_host=self.hosts.name(frame.dst), dest_host=self.hosts.name(frame.src),
            args={"service": sname}, status="ok", evidence=["network"],
            provenance=[Provenance(file=self.file, frames=[frame.number])]))

    def _kdc_refused(self, frame: Frame, refused: tuple) -> None:
        """A KRB-ERROR: the account whose AS or TGS request the KDC refused, and why (a failed logon)."""
        kind, cname, realm, sname, code = refused
        name = windows_names.status(code, windows_names.KERBEROS)
        self.out.append(Record(
            time=from_epoch(frame.time), kind=SESSION, protocol="kerberos", operation=f"{kind}_req",
            src_ip=frame.dst, src_port=frame.dport, dest_ip=frame.src, dest_port=frame.sport, user=cname,
            domain=realm, src_host=self.hosts.name(frame.dst), dest_host=self.hosts.name(frame.src),
            args={"service": sname.lower(), "error_code": hex(code), "status_name": name or f"KRB error {code}"},
            status=name or hex(code), evidence=["network"], provenance=[Provenance(file=self.file, frames=[frame.number])]))

    def session_failed(self, frame: Frame, conn: Conn, status: str) -> None:
        """A SESSION_SETUP the server refused: the account, domain and workstation that tried, and the status
        (a spray shows as many of these, from one client)."""
        pending, conn.pending_auth = conn.pending_auth, {}
        ident = pending.get("identity")
        if ident is not None and ident.method == "kerberos" and not ident.user:
            ident = self.tickets.lookup(conn.client_ip, frame.time, ident.service) or ident
        frames = [f for f in (pending.get("frame"), frame.number) if f]
        rec = self.base_fields(conn, pending.get("time", frame.time), SESSION, frames, ident=ident)
        args = {k: v for k, v in conn.negotiate.items() if k not in ("server_names", "last_status")}
        args.update(auth=ident.method if ident else None, nt_status=status,
                    status_name=windows_names.status(status) or status)
        if ident is not None and ident.workstation:
            args["workstation"] = ident.workstation
        dialect = conn.negotiate.get("dialect")
        rec.update(protocol="smb1" if dialect == "1" else _smb_protocol(dialect), transport="smb",
                   operation="session_setup", args={k: v for k, v in args.items() if v is not None},
                   status=args["status_name"])
        conn.failed_logons += 1
        self.out.append(Record(**rec))

    def flush(self, conns: Sequence[Conn]) -> None:
        """End of a connection's life (idle or end of file): emit what is still open."""
        for conn in list(conns):
            for chan in conn.channels.values():
                for call in list(chan.calls.values()):
                    self.rpc_call_done(conn, chan, call, "no_response")
                chan.calls.clear()
            for opened in list(conn.opens.values()):
                self.file_closed(conn, opened, partial=True)
            conn.opens.clear()
            self.encrypted.flush(conn)
            if conn.negotiate and not conn.sessions and not conn.failed_logons:
                self._no_session(conn)
            self.table.drop(conn)

    def _no_session(self, conn: Conn) -> None:
        """Negotiated but never authenticated (failed or abandoned logon): still a fact worth a record."""
        rec = self.base_fields(conn, conn.first_time, SESSION, conn.frames[:4])
        dialect = conn.negotiate.get("dialect")
        args = {k: v for k, v in conn.negotiate.items() if k != "server_names"}
        rec.update(protocol=_smb_protocol(dialect), transport="smb", operation="session_setup", args=args,
                   status=conn.negotiate.get("last_status") or "no_session")
        self.out.append(Record(**rec))

    # -- record building
    def base_fields(self, conn: Conn, when: float, kind: str, frames: Sequence[int], sesid: Optional[str] = None,
              ident=None) -> Dict[str, Any]:
        session = conn.sessions.get(sesid) if sesid is not None else None
        ident = ident or (session.identity if session else None)
        base: Dict[str, Any] = dict(
            time=from_epoch(when), kind=kind, src_ip=conn.client_ip, src_port=conn.client_port,
            dest_ip=conn.server_ip, dest_port=conn.server_port, src_host=self._client_name(conn, ident),
            dest_host=self.hosts.name(conn.server_ip), evidence=["network"],
            provenance=[Provenance(file=self.file, frames=list(frames)[:16])],
        )
        if ident and ident.user:
            base["user"] = ident.user
            base["domain"] = ident.domain
        if session is not None:
            base["session_id"] = session.sesid
            base["encrypted"] = session.encrypt or session.decrypted
            base["decrypted"] = session.decrypted
        return base

    def _client_name(self, conn: Conn, ident) -> Optional[str]:
        if ident and ident.workstation:
            self.hosts.learn(conn.client_ip, ident.workstation, "ntlm_workstation")
        return self.hosts.name(conn.client_ip)

    def session_started(self, frame: Frame, conn: Conn, session) -> None:
        ident = session.identity
        args = {k: v for k, v in conn.negotiate.items() if k not in ("server_names",)}
        args.update(auth=ident.method, session_encrypted=session.encrypt)
        if ident.service:
            args["service"] = ident.service
            self.hosts.learn(conn.server_ip, ident.service.split("/")[-1], "kerberos_sname")
        if conn.negotiate.get("netname"):
            self.hosts.learn(conn.server_ip, conn.negotiate["netname"], "netname")
        rec = self.base_fields(conn, session.time, SESSION, session.frames, sesid=session.sesid)
        rec.update(protocol="smb1" if session.dialect == "1" else _smb_protocol(session.dialect),
                   transport="smb", operation="session_setup", args=args, status="ok")
        self.out.append(Record(**rec))

    def session_closed(self, conn: Conn, sesid: str) -> None:
        self.encrypted.flush(conn, sesid)

    def tree_connected(self, frame: Frame, conn: Conn, sesid: str, tree: Optional[str], row) -> None:
        self.hosts.learn_unc(conn.server_ip, tree)
        rec = self.base_fields(conn, frame.time, TREE, [frame.number], sesid=sesid)
        share = tshark.share_of(tree) if tree else None
        args: Dict[str, Any] = {"unc": tree}
        if row.get("smb2.share_flags.encrypt_data", "") in ("1", "True"):
            args["share_encrypted"] = True
            rec["encrypted"] = True
        rec.update(protocol=_smb_protocol(conn.negotiate.get("dialect")), transport="smb", share=share,
                   operation="tree_connect", args=args, status="ok")
        self.out.append(Record(**rec))

    def file_closed(self, conn: Conn, opened, partial: bool = False) -> None:
        if opened.is_directory() and not opened.deleted:
            return
        if not opened.name and not opened.is_pipe:
            return
        rec = self.base_fields(conn, opened.time, FILE, opened.frames, sesid=opened.session)
        share = tshark.share_of(opened.share) if opened.share else None
        status = "ok" if opened.status in (None, "0x00000000") else opened.status
        rec.update(protocol=_smb_protocol(conn.negotiate.get("dialect")), transport="smb", share=share,
                   path=opened.name, operation=opened.operation(), args=opened.args(), status=status,
                   partial=partial, access=_access(opened.access))
        self.out.append(Record(**rec))

    def rpc_call_done(self, conn: Conn, chan, call, status: Optional[str]) -> None:
        pipe = chan.pipe_open
        ident = None
        if pipe is None or not (conn.sessions.get(pipe.session) and conn.sessions[pipe.session].identity.user):
            ident = chan.identity
        rec = self.base_fields(conn, call.time, OPERATION, call.frames, sesid=pipe.session if pipe else None,
                         ident=ident)
        args = {k: v for k, v in call.args.items() if not k.startswith("_") or k == "_decode_error"}
        if call.alloc_hint:
            args.setdefault("stub_size", call.alloc_hint)
        via = self.run.epm_ports.get((conn.server_ip, conn.server_port))
        if chan.transport == "ncacn_ip_tcp" and via:
            args["epm_mapped"] = True
        sealed = call.sealed and not call.decrypted
        rec.update(protocol="dcerpc", transport=chan.transport, share="IPC$" if pipe else None,
                   path=chan.pipe, rpc_uuid=call.uuid, opnum=call.opnum, args=args,
                   rpc_interface=interfaces_name(call.uuid), operation=operation_name(call.uuid, call.opnum),
                   status=status or "ok", sealed=sealed)
        if call.decrypted:
            rec["decrypted"] = True
        if chan.auth_level:
            args["auth_level"] = chan.auth_level
        self.out.append(Record(**rec))

    def epm_mapped(self, server_ip: str, args: Dict[str, Any]) -> None:
        port = args.get("port")
        uuid = args.get("interface_uuid")
        if port:
            self.run.epm_ports[(server_ip, int(port))] = str(uuid or "")


def interfaces_name(uuid: Optional[str]) -> Optional[str]:
    return interfaces.interface_name(uuid) if uuid else None


def operation_name(uuid: Optional[str], opnum: int) -> Optional[str]:
    name = interfaces.operation_name(uuid, opnum) if uuid else None
    return name or (f"opnum_{opnum}" if opnum >= 0 else None)


def _smb_protocol(dialect: Optional[str]) -> str:
    if dialect == "1":
        return "smb1"
    return "smb3" if dialect and dialect.startswith("3") else "smb2"


def _access(mask: int) -> List[str]:
    from ..protocols.files import access_names

    return access_names(mask)


def analyze_captures(paths: Sequence[str], options=None) -> Iterator[Record]:
    """All network records of all inputs (captures and Zeek logs, told apart by content); unreadable
    inputs become error records, never exceptions."""
    from ..encryption.inference import infer
    from ..recognize import recognize

    sources = expand(paths)
    zeek_logs = [s.path for s in sources if s.kind == "zeek"]
    captures = [s for s in sources if s.kind != "zeek"]
    stream: Optional[Iterator[Record]] = _raw_records(captures, options) if captures or not zeek_logs else None
    if zeek_logs:
        from ..zeek import network_records

        stream = network_records(stream, zeek_logs)
    return recognize(infer(stream))


def _raw_records(sources: Sequence[Source], options=None) -> Iterator[Record]:
    run = RunState()
    try:
        binary = tshark.check_tshark()
    except tshark.TsharkMissing as exc:
        yield _error(sources[0].path if sources else "-", str(exc))
        return
    names = field_list(_decoder_fields())
    prefilter = getattr(options, "prefilter", True)
    from ..encryption.keys import tshark_secrets

    with tshark_secrets(options) as secret_args:
        for message in secret_args["errors"]:
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
                yield from _guarded(_one_file(binary, member, names, run, secret_args, prefilter), member.name)


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


def _one_file(binary: str, member: Member, names: List[str], run: RunState, secret_args,
              prefilter: bool = True) -> Iterator[Record]:
    display = member.name
    feed = None
    if member.open is not None:
        try:
            feed = member.open()
        except Exception as exc:
            yield _error(display, reason(exc))
            return
    with tempfile.TemporaryDirectory(prefix="smbtrail-select-") as workdir:
        selection = select(member.path, workdir) if prefilter and feed is None else None
        path = "-" if feed is not None else selection.path if selection else member.path
        yield from _dissect(binary, display, path, feed, selection, names, run, secret_args)


def _dissect(binary: str, display: str, path: str, feed, selection: Optional[Selection], names: List[str],
             run: RunState, secret_args) -> Iterator[Record]:
    analyzer = Analyzer(display, run, decrypting=bool(secret_args.get("env")),
                        keyed_sessions=secret_args.get("session_ids") or frozenset())
    status = tshark.TsharkRun()
    prefs, keytab, env = secret_args.get("prefs", ()), secret_args.get("keytab"), secret_args.get("env")
    cmd = tshark.build_command(binary, path, names, prefs=prefs, keytab=keytab, disabled=interfaces.all_dissectors())
    frames = selection.frames if selection else None
    count = checked = 0
    last_time = 0.0
    for values in tshark.stream_rows(cmd, len(names), status, env=env, feed=feed,
                                     pass_fds=secret_args.get("pass_fds", ())):
        row = to_row(names, values)
        if frames is not None:  # tshark numbered the selected packets: back to the original's numbers
            row["frame.number"] = str(frames[int(row["frame.number"]) - 1])
        frame = make_frame(row)
        analyzer.feed(frame)
        count += 1
        last_time = max(last_time, frame.time)
        if frame.number // FLUSH_EVERY > checked:  # by frame number: the same with or without selection
            checked = frame.number // FLUSH_EVERY
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
