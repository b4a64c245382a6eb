"""SMB2/3: negotiate, sessions, trees, opens, reads/writes/deletes; pipes hand their PDUs to DCE/RPC."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from ..capture.fields import Frame, Row, first, nth, split, to_int
from .auth import Identity, TicketIndex, kerberos_service, ntlm_identity, ntlm_server_names
from .codes import SUCCESS_TEXT, Smb2, Status, status_code
from .connections import Conn, PendingAuth, Request, Session
from .dcerpc import DcerpcHandler
from .events import ProtocolEvents
from .files import Open
from .names import HostNames
from .smb3_transform import EncryptedActivity

FID_COMMANDS = {Smb2.CLOSE, Smb2.READ, Smb2.WRITE, Smb2.IOCTL, Smb2.QUERY_DIRECTORY, Smb2.QUERY_INFO, Smb2.SET_INFO,
                Smb2.FLUSH, Smb2.CHANGE_NOTIFY}
RELATED_FID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
SUCCESS = {Status.SUCCESS, Status.PENDING, Status.BUFFER_OVERFLOW}
CIPHERS = {1: "AES-128-CCM", 2: "AES-128-GCM", 3: "AES-256-CCM", 4: "AES-256-GCM"}
DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1", 0x02FF: "2.x"}
SMB2_0_INFO_FILE = 1
FILE_DISPOSITION = {13, 64}  # FileDispositionInformation(Ex)
FILE_RENAME = 10  # FileRenameInformation
TRUE = ("1", "True")


class Message(NamedTuple):
    """One message of a frame (a compound frame holds several)."""

    command: int
    index: int  # its place in the frame: which occurrence of a repeated field is its own
    key: str  # session id / message id: what pairs a response with its request
    sesid: str
    tree: Optional[str]  # the share of its tree id, when known


def dialect_name(value: str) -> Optional[str]:
    code = to_int(value, -1)
    return DIALECTS.get(code, hex(code)) if code >= 0 else None


class Smb2Handler:
    """Consumes the SMB2 part of a frame: pipes' payloads go to `rpc`, what is complete to `events`."""

    def __init__(self, events: ProtocolEvents, rpc: DcerpcHandler, encrypted: EncryptedActivity, hosts: HostNames,
                 tickets: TicketIndex) -> None:
        self.events = events
        self.rpc = rpc
        self.encrypted = encrypted
        self.hosts = hosts
        self.tickets = tickets

    def handle(self, frame: Frame, conn: Conn) -> None:
        row = frame.row
        cmds = [to_int(c, -1) for c in split(row.get("smb2.cmd", ""))]
        if not cmds:
            return
        msg = _Messages(row, len(cmds))
        decrypted = bool(row.get("smb2.header.transform.msg_size"))
        for i, cmd in enumerate(cmds):
            is_response = nth(row, "smb2.flags.response", i) in TRUE
            sesid = nth(row, "smb2.sesid", i)
            if decrypted and sesid in conn.sessions:
                conn.sessions[sesid].decrypted = True
            tree = self._tree(conn, row, sesid, nth(row, "smb2.tid", i))
            message = Message(cmd, i, f"{sesid}/{nth(row, 'smb2.msg_id', i)}", sesid, tree)
            if is_response:
                self._response(frame, conn, message, msg)
            else:
                self._request(frame, conn, message, msg)

    # -- requests: remember what was asked until the response says how it went
    def _request(self, frame: Frame, conn: Conn, m: Message, msg: _Messages) -> None:
        row = frame.row
        cmd, key = m.command, m.key
        if cmd == Smb2.NEGOTIATE:
            conn.negotiate["offered"] = [d for d in (dialect_name(v) for v in split(row.get("smb2.dialect", ""))) if d]
            if row.get("smb2.negotiate_context.netname"):
                conn.negotiate["netname"] = row["smb2.negotiate_context.netname"]
            if row.get("smb2.client_guid"):
                conn.negotiate["client_guid"] = row["smb2.client_guid"]
        elif cmd == Smb2.SESSION_SETUP:
            ident = ntlm_identity(row)
            service = kerberos_service(row)
            if ident or service:
                conn.pending_auth = PendingAuth(ident or Identity(method="kerberos", service=service), frame.time,
                                                frame.number)
        elif cmd == Smb2.TREE_CONNECT:
            conn.requests[key] = Request(cmd, unc=first(row, "smb2.tree"))
        elif cmd == Smb2.CREATE:
            name = msg.once("smb2.filename") or ""
            opened = Open(
                name=name, share=m.tree, is_pipe=_is_pipe(m.tree, row), session=m.sesid, time=frame.time,
                disposition=to_int(msg.once("smb2.create.disposition"), -1),
                access=to_int(msg.once("smb.access_mask")), create_options=to_int(msg.once("smb.create_options")),
            )
            opened.add_frame(frame.number)
            conn.requests[key] = Request(cmd, opened=opened)
            conn.last_create = key
        elif cmd in FID_COMMANDS:
            fid: Optional[str] = msg.take("smb2.fid")
            if fid == RELATED_FID:
                fid = conn.last_create
            conn.requests[key] = self._fid_request(cmd, fid, msg)
            self._apply_request(frame, conn, cmd, fid)

    def _fid_request(self, cmd: int, fid: Optional[str], msg: _Messages) -> Request:
        if cmd == Smb2.WRITE:
            return Request(cmd, fid=fid, length=to_int(msg.take("smb2.write_length")))
        if cmd == Smb2.READ:
            return Request(cmd, fid=fid, length=to_int(msg.take("smb2.read_length")))
        if cmd == Smb2.SET_INFO:
            return Request(cmd, fid=fid, info_class=to_int(msg.take("smb2.class")),
                           info_level=to_int(msg.take("smb2.file_info.infolevel")),
                           delete=msg.take("smb2.disposition.delete_on_close") in TRUE)
        return Request(cmd, fid=fid)

    def _apply_request(self, frame: Frame, conn: Conn, cmd: int, fid: Optional[str]) -> None:
        opened = self._open(conn, fid) or self._unseen_pipe(frame, conn, fid)
        if opened is None:
            return
        opened.add_frame(frame.number)
        if cmd in (Smb2.WRITE, Smb2.IOCTL):
            self._rpc(frame, conn, opened)

    def _unseen_pipe(self, frame: Frame, conn: Conn, fid: Optional[str]) -> Optional[Open]:
        """A pipe opened before the capture started: its RPC is still worth reading."""
        if not fid or "dcerpc.pkt_type" not in frame.row:
            return None
        opened = conn.opens[fid] = Open(name="", share=None, is_pipe=False, session=None, time=frame.time, fid=fid)
        return opened

    def _rpc(self, frame: Frame, conn: Conn, opened: Open) -> None:
        if "dcerpc.pkt_type" not in frame.row:
            return
        if not opened.is_pipe:  # tree not seen (capture started mid-session), but the payload is DCE/RPC
            opened.is_pipe = True
            self.rpc.pipe_opened(conn, opened)
        self.rpc.handle(frame, conn, channel=f"np:{opened.fid}", pipe=opened)

    # -- responses
    def _response(self, frame: Frame, conn: Conn, m: Message, msg: _Messages) -> None:
        row = frame.row
        cmd, key, sesid = m.command, m.key, m.sesid
        status = nth(row, "smb2.nt_status", m.index) or SUCCESS_TEXT
        code = status_code(status)
        ok = code in SUCCESS
        if cmd == Smb2.NEGOTIATE:
            self._negotiated(conn, row)
        elif cmd == Smb2.SESSION_SETUP:
            names = ntlm_server_names(row)
            if names:
                self.hosts.learn(conn.server_ip, names.get("dns") or names.get("netbios"), "ntlm_challenge")
                conn.negotiate.setdefault("server_names", names)
            if code == Status.SUCCESS:
                self._session_up(frame, conn, sesid, row)
            elif not ok and code != Status.MORE_PROCESSING_REQUIRED and conn.pending_auth is not None:
                self.events.session_failed(frame, conn, status)
        elif cmd == Smb2.LOGOFF:
            self.encrypted.flush(conn, sesid)
        elif cmd == Smb2.TREE_CONNECT:
            pending = conn.requests.pop(key, None)
            unc = pending.unc if pending is not None and pending.command == Smb2.TREE_CONNECT else m.tree
            if ok and unc:
                conn.trees[(sesid, nth(row, "smb2.tid", m.index))] = unc
                self.events.tree_connected(frame, conn, sesid, unc, row)
        elif cmd == Smb2.CREATE:
            pending = conn.requests.pop(key, None)
            if pending is not None and pending.opened is not None and pending.command == Smb2.CREATE:
                self._created(frame, conn, pending.opened, key, status, msg)
        elif code == Status.PENDING:  # interim async response: the real one follows
            return
        else:
            pending = conn.requests.pop(key, None)
            if pending is not None and pending.command in FID_COMMANDS:
                self._completed(frame, conn, pending, ok)

    def _created(self, frame: Frame, conn: Conn, opened: Open, key: str, status: str, msg: _Messages) -> None:
        opened.status = status
        opened.add_frame(frame.number)
        if status_code(status) not in SUCCESS:
            self.events.file_closed(conn, opened)
            return
        opened.fid = msg.take("smb2.fid") or key
        opened.action = to_int(msg.once("smb2.create.action"), -1)
        conn.opens[opened.fid] = opened
        conn.aliases[key] = opened.fid  # compounds name it by its CREATE
        if opened.is_pipe:
            self.rpc.pipe_opened(conn, opened)

    def _completed(self, frame: Frame, conn: Conn, request: Request, ok: bool) -> None:
        opened = self._open(conn, request.fid)
        if opened is None:
            return
        opened.add_frame(frame.number)
        cmd = request.command
        if cmd == Smb2.CLOSE:
            conn.opens.pop(opened.fid or "", None)
            conn.aliases.pop(request.fid or "", None)
            self.events.file_closed(conn, opened)
        elif not ok:
            return
        elif cmd == Smb2.WRITE:
            opened.bytes_written += request.length
            opened.writes += 1
        elif cmd == Smb2.READ:
            opened.bytes_read += request.length
            opened.reads += 1
            self._rpc(frame, conn, opened)
        elif cmd == Smb2.IOCTL:
            self._rpc(frame, conn, opened)
        elif cmd == Smb2.SET_INFO and request.info_class == SMB2_0_INFO_FILE:
            if request.info_level in FILE_DISPOSITION and request.delete:
                opened.deleted = True
            elif request.info_level == FILE_RENAME:
                opened.renamed_to = frame.row.get("smb2.filename") or "?"

    def _open(self, conn: Conn, fid: Optional[str]) -> Optional[Open]:
        if not fid:
            return None
        return conn.opens.get(conn.aliases.get(fid, fid))

    def _negotiated(self, conn: Conn, row: Row) -> None:
        dialect = dialect_name(row.get("smb2.dialect", ""))
        if dialect:
            conn.negotiate["dialect"] = dialect
        cipher = to_int(row.get("smb2.negotiate_context.cipher_id", ""), 0)
        if cipher:
            conn.negotiate["cipher"] = CIPHERS.get(cipher, str(cipher))
        for name, key in (("smb2.capabilities.encryption", "encryption_capable"),
                          ("smb2.sec_mode.sign_required", "signing_required")):
            if row.get(name):
                conn.negotiate[key] = first(row, name) in TRUE
        if row.get("smb2.server_guid"):
            conn.negotiate["server_guid"] = row["smb2.server_guid"]

    def _session_up(self, frame: Frame, conn: Conn, sesid: str, row: Row) -> None:
        auth = conn.pending_auth
        ident = auth.identity if auth is not None else Identity()
        if ident.method == "kerberos" and not ident.user:
            found = self.tickets.lookup(conn.client_ip, frame.time, ident.service)
            ident = found or ident
        if not ident.user and row.get("smb2.acct"):
            ident = Identity(user=row.get("smb2.acct"), domain=row.get("smb2.domain"),
                             workstation=row.get("smb2.host"), method="ntlm")
        session = Session(sesid=sesid, identity=ident, time=auth.time if auth is not None else frame.time,
                          encrypt=row.get("smb2.ses_flags.encrypt", "") in TRUE,
                          dialect=conn.negotiate.get("dialect"))
        session.frames = [f for f in (auth.frame if auth is not None else None, frame.number) if f]
        conn.sessions[sesid] = session
        conn.pending_auth = None
        self.events.session_started(frame, conn, session)

    def _tree(self, conn: Conn, row: Row, sesid: str, tid: str) -> Optional[str]:
        tree = row.get("smb2.tree")
        key = (sesid, tid)
        if tree and "," not in tree:
            conn.trees[key] = tree
            return tree
        return conn.trees.get(key)


def _is_pipe(tree: Optional[str], row: Row) -> bool:
    if to_int(row.get("smb2.share_type", "")) == 2:
        return True
    return bool(tree) and tree.upper().endswith("\\IPC$")


class _Messages:
    """Per-message values of a compound frame; tshark comma-joins repeated fields."""

    def __init__(self, row: Row, count: int) -> None:
        self.row = row
        self.count = count
        self.queues: Dict[str, List[str]] = {}

    def take(self, name: str) -> str:
        """Next unconsumed occurrence: each command of a compound owns one occurrence of its fields."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = split(self.row.get(name, ""))
        return queue.pop(0) if queue else ""

    def once(self, name: str) -> str:
        """A field that only one command of the frame carries (strings may contain commas)."""
        value = self.row.get(name, "")
        return value if self.count == 1 else first(self.row, name)
