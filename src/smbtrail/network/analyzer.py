"""Frames -> protocol handlers -> records: the per-capture state the handlers report to, and the records
each protocol event becomes."""

from __future__ import annotations

from typing import AbstractSet, Any, Dict, List, Optional, Sequence

from .. import interfaces, lookups, windows_names
from ..capture import tshark
from ..capture.fields import Frame, Row, to_int
from ..protocols.auth import Identity, Refusal, Ticket, TicketIndex
from ..protocols.codes import Pdu, Status, status_code
from ..protocols.connections import Burst, Call, Channel, Conn, ConnectionTable, Session
from ..protocols.dcerpc import DcerpcHandler
from ..protocols.events import ProtocolEvents
from ..protocols.files import Open
from ..protocols.names import HostNames
from ..protocols.smb1 import Smb1Handler
from ..protocols.smb2 import Smb2Handler
from ..protocols.smb3_transform import EncryptedActivity, nonce_style, wire_order
from ..pydantic_api import construct
from ..records import ENCRYPTED_ACTIVITY, FILE, OPERATION, SESSION, TREE, Provenance, Record, from_epoch

CLIENT_PDUS = (Pdu.REQUEST, Pdu.BIND, Pdu.ALTER_CONTEXT, Pdu.AUTH3)  # the side that sends these is the client


class RunState:
    """What outlives one file: Kerberos tickets, host names and EPM answers seen so far."""

    def __init__(self) -> None:
        self.tickets = TicketIndex()
        self.hosts = HostNames()
        self.epm_ports: Dict[tuple, str] = {}


class Analyzer(ProtocolEvents):
    """One capture: frames dispatched to the protocol handlers, whose events (ProtocolEvents) become records."""

    def __init__(self, file: str, run: RunState, decrypting: bool = False,
                 keyed_sessions: AbstractSet[str] = frozenset()) -> None:
        self.file = file
        self.decrypting = decrypting  # without secrets, a "decrypted" transform is tshark misreading noise
        self.keyed_sessions = keyed_sessions  # session ids (wire order) the key file names
        self.run = run
        self.tickets = run.tickets
        self.hosts = run.hosts
        self.table = ConnectionTable(file)
        self.out: List[Record] = []
        self.rpc = DcerpcHandler(self, self.tickets)
        self.encrypted = EncryptedActivity(self)
        self.smb2 = Smb2Handler(self, self.rpc, self.encrypted, self.hosts, self.tickets)
        self.smb1 = Smb1Handler(self, self.rpc, self.hosts)

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
            conn = self.table.get(frame, to_int(row["dcerpc.pkt_type"], -1) in CLIENT_PDUS)
            self.rpc.handle(frame, conn)

    def _ticket(self, frame: Frame, ticket: Ticket) -> None:
        """A KDC reply: which account got a ticket for which service (the account behind Kerberos SMB)."""
        self.out.append(_record(dict(
            time=from_epoch(frame.time), kind=SESSION, protocol="kerberos", operation=f"{ticket.kind}_rep",
            src_ip=frame.dst, src_port=frame.dport, dest_ip=frame.src, dest_port=frame.sport, user=ticket.cname,
            domain=ticket.realm, src_host=self.hosts.name(frame.dst), dest_host=self.hosts.name(frame.src),
            args={"service": ticket.sname}, status="ok", evidence=["network"],
            provenance=[Provenance(file=self.file, frames=[frame.number])])))

    def _kdc_refused(self, frame: Frame, refused: Refusal) -> None:
        """A KRB-ERROR: the account whose AS or TGS request the KDC refused, and why (a failed logon)."""
        code = refused.code
        name = windows_names.status(code, windows_names.KERBEROS)
        self.out.append(_record(dict(
            time=from_epoch(frame.time), kind=SESSION, protocol="kerberos", operation=f"{refused.kind}_req",
            src_ip=frame.dst, src_port=frame.dport, dest_ip=frame.src, dest_port=frame.sport, user=refused.cname,
            domain=refused.realm, src_host=self.hosts.name(frame.dst), dest_host=self.hosts.name(frame.src),
            args={"service": refused.sname.lower(), "error_code": hex(code),
                  "status_name": name or f"KRB error {code}"},
            status=name or hex(code), evidence=["network"], provenance=[Provenance(file=self.file, frames=[frame.number])])))

    def session_failed(self, frame: Frame, conn: Conn, status: str) -> None:
        """A SESSION_SETUP the server refused: the account, domain and workstation that tried, and the status
        (a spray shows as many of these, from one client)."""
        auth, conn.pending_auth = conn.pending_auth, None
        ident = auth.identity if auth is not None else None
        if ident is not None and ident.method == "kerberos" and not ident.user:
            ident = self.tickets.lookup(conn.client_ip, frame.time, ident.service) or ident
        frames = [f for f in (auth.frame if auth is not None else None, frame.number) if f]
        rec = self.base_fields(conn, auth.time if auth is not None else frame.time, SESSION, frames, ident=ident)
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
        self.out.append(_record(rec))

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
        self.out.append(_record(rec))

    # -- record building
    def base_fields(self, conn: Conn, when: float, kind: str, frames: Sequence[int], sesid: Optional[str] = None,
                    ident: Optional[Identity] = None) -> Dict[str, Any]:
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

    def _client_name(self, conn: Conn, ident: Optional[Identity]) -> Optional[str]:
        if ident and ident.workstation:
            self.hosts.learn(conn.client_ip, ident.workstation, "ntlm_workstation")
        return self.hosts.name(conn.client_ip)

    def session_started(self, frame: Frame, conn: Conn, session: Session) -> None:
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
        self.out.append(_record(rec))

    def tree_connected(self, frame: Frame, conn: Conn, sesid: str, tree: Optional[str], row: Row) -> None:
        self.hosts.learn_unc(conn.server_ip, tree)
        rec = self.base_fields(conn, frame.time, TREE, [frame.number], sesid=sesid)
        share = tshark.share_of(tree) if tree else None
        args: Dict[str, Any] = {"unc": tree}
        if row.get("smb2.share_flags.encrypt_data", "") in ("1", "True"):
            args["share_encrypted"] = True
            rec["encrypted"] = True
        rec.update(protocol=_smb_protocol(conn.negotiate.get("dialect")), transport="smb", share=share,
                   operation="tree_connect", args=args, status="ok")
        self.out.append(_record(rec))

    def file_closed(self, conn: Conn, opened: Open, partial: bool = False) -> None:
        if opened.is_directory() and not opened.deleted:
            return
        if not opened.name and not opened.is_pipe:
            return
        rec = self.base_fields(conn, opened.time, FILE, opened.frames, sesid=opened.session)
        share = tshark.share_of(opened.share) if opened.share else None
        status = "ok" if opened.status is None or status_code(opened.status) == Status.SUCCESS else opened.status
        rec.update(protocol=_smb_protocol(conn.negotiate.get("dialect")), transport="smb", share=share,
                   path=opened.name, operation=opened.operation(), args=opened.args(), status=status,
                   partial=partial, access=_access(opened.access))
        self.out.append(_record(rec))

    def rpc_call_done(self, conn: Conn, chan: Channel, call: Call, status: Optional[str]) -> None:
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
        self.out.append(_record(rec))

    def epm_mapped(self, server_ip: str, args: Dict[str, Any]) -> None:
        port = args.get("port")
        uuid = args.get("interface_uuid")
        if port:
            self.run.epm_ports[(server_ip, int(port))] = str(uuid or "")

    def encrypted_burst(self, conn: Conn, burst: Burst) -> None:
        session = conn.sessions.get(burst.sesid)
        base = self.base_fields(conn, burst.start, ENCRYPTED_ACTIVITY, burst.frames, sesid=burst.sesid)
        args = {
            "messages_to_server": burst.to_server, "messages_to_client": burst.to_client,
            "bytes_to_server": burst.bytes_to_server, "bytes_to_client": burst.bytes_to_client,
            "duration": round(burst.end - burst.start, 6), "message_sizes": burst.sizes,
            "message_frames": burst.size_frames,
            "nonce_style": nonce_style(burst.nonces),
        }
        for key in ("dialect", "cipher", "client_guid", "netname"):
            if conn.negotiate.get(key):
                args[key] = conn.negotiate[key]
        if session is None:
            args["session_setup_seen"] = False  # started before the capture: no user, no key derivation
        args["decryption"] = self._decryption(burst.sesid, session is not None)
        base.update(protocol="smb3", transport="smb", encrypted=True, decrypted=False, args=args,
                    operation="encrypted_messages", session_id=burst.sesid,
                    partial=session is None)
        self.out.append(_record(base))

    def _decryption(self, sesid: str, setup_seen: bool) -> str:
        """Why these messages stayed encrypted: no secrets, or secrets that did not open them."""
        if not self.decrypting:
            return "no_secrets"
        if wire_order(sesid) in self.keyed_sessions:
            return "failed_with_given_key" if setup_seen else "failed_mid_session"
        return "no_matching_secret"


def _record(fields: Dict[str, Any]) -> Record:
    """A record of values this module gives the declared types (a test validates every one built from the lab
    recordings): pydantic's validation pass would cost as much as the rest of the record's making."""
    return construct(Record, fields)


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
    return lookups.access_names(mask, "network")
