"""SMB2/3: negotiate, sessions, trees, opens, reads/writes/deletes; pipes hand their PDUs to DCE/RPC."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..capture.fields import Frame, split, to_int
from .auth import Identity, TicketIndex, kerberos_service, ntlm_identity, ntlm_server_names
from .connections import Conn, Session
from .dcerpc import DcerpcHandler
from .events import ProtocolEvents
from .files import Open
from .names import HostNames
from .smb3_transform import EncryptedActivity

NEGOTIATE, SESSION_SETUP, LOGOFF, TREE_CONNECT, TREE_DISCONNECT = 0, 1, 2, 3, 4
CREATE, CLOSE, READ, WRITE, IOCTL, SET_INFO = 5, 6, 8, 9, 11, 17
FID_COMMANDS = {CLOSE, READ, WRITE, IOCTL, 14, 16, SET_INFO, 7, 15}
RELATED_FID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
STATUS_PENDING = "0x00000103"
MORE_PROCESSING = "0xc0000016"  # an interim SESSION_SETUP answer: authentication goes on
SUCCESS = {"0x00000000", STATUS_PENDING, "0x80000005"}  # success, pending, buffer overflow
CIPHERS = {1: "AES-128-CCM", 2: "AES-128-GCM", 3: "AES-256-CCM", 4: "AES-256-GCM"}
DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1", 0x02FF: "2.x"}
FILE_DISPOSITION = {13, 64}
FILE_RENAME = 10


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
            is_response = msg.at("smb2.flags.response", i) in ("1", "True")
            sesid = msg.at("smb2.sesid", i)
            if decrypted and sesid in conn.sessions:
                conn.sessions[sesid].decrypted = True
            tree = self._tree(conn, row, sesid, msg.at("smb2.tid", i))
            key = f"{sesid}/{msg.at('smb2.msg_id', i)}"
            if is_response:
                self._response(frame, conn, cmd, key, msg, i, sesid, tree)
            else:
                self._request(frame, conn, cmd, key, msg, i, sesid, tree)

    # -- requests: remember what was asked until the response says how it went
    def _request(self, frame, conn, cmd, key, msg, i, sesid, tree) -> None:
        row = frame.row
        if cmd == NEGOTIATE:
            conn.negotiate["offered"] = [d for d in (dialect_name(v) for v in split(row.get("smb2.dialect", ""))) if d]
            if row.get("smb2.negotiate_context.netname"):
                conn.negotiate["netname"] = row["smb2.negotiate_context.netname"]
            if row.get("smb2.client_guid"):
                conn.negotiate["client_guid"] = row["smb2.client_guid"]
        elif cmd == SESSION_SETUP:
            ident = ntlm_identity(row)
            service = kerberos_service(row)
            if ident or service:
                conn.pending_auth["identity"] = ident or Identity(method="kerberos", service=service)
                conn.pending_auth["time"] = frame.time
                conn.pending_auth["frame"] = frame.number
        elif cmd == TREE_CONNECT:
            conn.pending[key] = ("tree", row.get("smb2.tree", "").split(",")[0])
        elif cmd == CREATE:
            name = msg.once("smb2.filename") or ""
            conn.pending[key] = Open(
                name=name, share=tree, is_pipe=_is_pipe(tree, row), session=sesid, time=frame.time,
                disposition=to_int(msg.once("smb2.create.disposition"), -1),
                access=to_int(msg.once("smb.access_mask")), create_options=to_int(msg.once("smb.create_options")),
            )
            conn.pending[key].add_frame(frame.number)
            conn.pending["last_create"] = key
        elif cmd in FID_COMMANDS:
            fid = msg.take("smb2.fid")
            if fid == RELATED_FID:
                fid = conn.pending.get("last_create")
            conn.pending[key] = (cmd, fid, self._request_details(cmd, msg))
            self._apply_request(frame, conn, cmd, fid, msg)

    def _request_details(self, cmd: int, msg: _Messages) -> Dict[str, Any]:
        if cmd == WRITE:
            return {"length": to_int(msg.take("smb2.write_length"))}
        if cmd == READ:
            return {"length": to_int(msg.take("smb2.read_length"))}
        if cmd == SET_INFO:
            return {"class": to_int(msg.take("smb2.class")), "level": to_int(msg.take("smb2.file_info.infolevel")),
                    "delete": msg.take("smb2.disposition.delete_on_close") in ("1", "True")}
        return {}

    def _apply_request(self, frame: Frame, conn: Conn, cmd: int, fid: Optional[str], msg) -> None:
        opened = self._open(conn, fid) or self._unseen_pipe(frame, conn, fid)
        if opened is None:
            return
        opened.add_frame(frame.number)
        if cmd in (WRITE, IOCTL):
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
    def _response(self, frame, conn, cmd, key, msg, i, sesid, tree) -> None:
        row = frame.row
        status = msg.at("smb2.nt_status", i) or "0x00000000"
        ok = status in SUCCESS
        if cmd == NEGOTIATE:
            self._negotiated(conn, row)
        elif cmd == SESSION_SETUP:
            names = ntlm_server_names(row)
            if names:
                self.hosts.learn(conn.server_ip, names.get("dns") or names.get("netbios"), "ntlm_challenge")
                conn.negotiate.setdefault("server_names", names)
            if ok and status == "0x00000000":
                self._session_up(frame, conn, sesid, row)
            elif not ok and status != MORE_PROCESSING and conn.pending_auth:
                self.events.session_failed(frame, conn, status)
        elif cmd == LOGOFF:
            self.encrypted.flush(conn, sesid)
        elif cmd == TREE_CONNECT:
            pending = conn.pending.pop(key, None)
            unc = pending[1] if isinstance(pending, tuple) and pending[0] == "tree" else tree
            if ok and unc:
                conn.trees[(sesid, msg.at("smb2.tid", i))] = unc
                self.events.tree_connected(frame, conn, sesid, unc, row)
        elif cmd == CREATE:
            pending = conn.pending.pop(key, None)
            if isinstance(pending, Open):
                pending.status = status
                pending.add_frame(frame.number)
                if ok:
                    pending.fid = msg.take("smb2.fid") or key
                    pending.action = to_int(msg.once("smb2.create.action"), -1)
                    conn.opens[pending.fid] = pending
                    conn.pending[f"alias:{key}"] = pending.fid  # compounds name it by its CREATE
                    if pending.is_pipe:
                        self.rpc.pipe_opened(conn, pending)
                else:
                    self.events.file_closed(conn, pending)
        elif status == STATUS_PENDING:  # interim async response: the real one follows
            return
        else:
            pending = conn.pending.pop(key, None)
            if isinstance(pending, tuple):
                self._completed(frame, conn, pending, ok)

    def _completed(self, frame: Frame, conn: Conn, pending: tuple, ok: bool) -> None:
        cmd, fid, details = pending
        opened = self._open(conn, fid)
        if opened is None:
            return
        opened.add_frame(frame.number)
        if cmd == CLOSE:
            conn.opens.pop(opened.fid or "", None)
            conn.pending.pop(f"alias:{fid}", None)
            self.events.file_closed(conn, opened)
        elif not ok:
            return
        elif cmd == WRITE:
            opened.bytes_written += details.get("length", 0)
            opened.writes += 1
        elif cmd == READ:
            opened.bytes_read += details.get("length", 0)
            opened.reads += 1
            self._rpc(frame, conn, opened)
        elif cmd == IOCTL:
            self._rpc(frame, conn, opened)
        elif cmd == SET_INFO and details.get("class") == 1:
            if details.get("level") in FILE_DISPOSITION and details.get("delete"):
                opened.deleted = True
            elif details.get("level") == FILE_RENAME:
                opened.renamed_to = frame.row.get("smb2.filename") or "?"

    def _open(self, conn: Conn, fid: Optional[str]) -> Optional[Open]:
        if not fid:
            return None
        return conn.opens.get(conn.pending.get(f"alias:{fid}", fid))

    def _negotiated(self, conn: Conn, row) -> None:
        dialect = dialect_name(row.get("smb2.dialect", ""))
        if dialect:
            conn.negotiate["dialect"] = dialect
        cipher = to_int(row.get("smb2.negotiate_context.cipher_id", ""), 0)
        if cipher:
            conn.negotiate["cipher"] = CIPHERS.get(cipher, str(cipher))
        for name, key in (("smb2.capabilities.encryption", "encryption_capable"),
                          ("smb2.sec_mode.sign_required", "signing_required")):
            if row.get(name):
                conn.negotiate[key] = row[name].split(",")[0] in ("1", "True")
        if row.get("smb2.server_guid"):
            conn.negotiate["server_guid"] = row["smb2.server_guid"]

    def _session_up(self, frame: Frame, conn: Conn, sesid: str, row) -> None:
        pending = conn.pending_auth
        ident = pending.get("identity") or Identity()
        if ident.method == "kerberos" and not ident.user:
            found = self.tickets.lookup(conn.client_ip, frame.time, ident.service)
            ident = found or ident
        if not ident.user and row.get("smb2.acct"):
            ident = Identity(user=row.get("smb2.acct"), domain=row.get("smb2.domain"),
                             workstation=row.get("smb2.host"), method="ntlm")
        session = Session(sesid=sesid, identity=ident, time=pending.get("time", frame.time),
                          encrypt=row.get("smb2.ses_flags.encrypt", "") in ("1", "True"),
                          dialect=conn.negotiate.get("dialect"))
        session.frames = [f for f in (pending.get("frame"), frame.number) if f]
        conn.sessions[sesid] = session
        conn.pending_auth = {}
        self.events.session_started(frame, conn, session)

    def _tree(self, conn: Conn, row, sesid: str, tid: str) -> Optional[str]:
        tree = row.get("smb2.tree")
        key = (sesid, tid)
        if tree and "," not in tree:
            conn.trees[key] = tree
            return tree
        return conn.trees.get(key)


def _is_pipe(tree: Optional[str], row) -> bool:
    if to_int(row.get("smb2.share_type", "")) == 2:
        return True
    return bool(tree) and tree.upper().endswith("\\IPC$")


class _Messages:
    """Per-message values of a compound frame; tshark comma-joins repeated fields."""

    def __init__(self, row, count: int) -> None:
        self.row = row
        self.count = count
        self.queues: Dict[str, List[str]] = {}

    def at(self, name: str, index: int) -> str:
        values = split(self.row.get(name, ""))
        if not values:
            return ""
        return values[index] if index < len(values) else values[-1]

    def take(self, name: str) -> str:
        """Next unconsumed occurrence: each command of a compound owns one occurrence of its fields."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = split(self.row.get(name, ""))
        return queue.pop(0) if queue else ""

    def once(self, name: str) -> str:
        """A field that only one command of the frame carries (strings may contain commas)."""
        value = self.row.get(name, "")
        return value if self.count == 1 else value.split(",", 1)[0]
