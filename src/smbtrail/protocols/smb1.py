"""SMB1 (NT LM 0.12): sessions, trees, NT_CREATE opens, reads/writes, TRANS on named pipes."""

from __future__ import annotations

from typing import Optional

from ..capture.fields import Frame, Row, first, split, to_int
from .auth import Identity, ntlm_identity
from .codes import SUCCESS_TEXT, Smb1, Status, status_code
from .connections import Conn, PendingAuth, Request, Session
from .dcerpc import DcerpcHandler
from .events import ProtocolEvents
from .files import Open
from .names import HostNames

WRITES = (Smb1.WRITE_ANDX, Smb1.WRITE)
READS = (Smb1.READ_ANDX, Smb1.READ)
FILE_COMMANDS = WRITES + READS + (Smb1.TRANSACTION, Smb1.CLOSE)


class Smb1Handler:
    """Consumes the SMB1 part of a frame: pipes' payloads go to `rpc`, what is complete to `events`."""

    def __init__(self, events: ProtocolEvents, rpc: DcerpcHandler, hosts: HostNames) -> None:
        self.events = events
        self.rpc = rpc
        self.hosts = hosts

    def handle(self, frame: Frame, conn: Conn) -> None:
        row = frame.row
        cmds = [to_int(c, -1) for c in split(row.get("smb.cmd", ""))]
        if not cmds:
            return
        is_response = first(row, "smb.flags.response") in ("1", "True")
        uid = first(row, "smb.uid")
        tree = first(row, "smb.path") or None
        if tree:
            conn.trees[(uid, row.get("smb.tid", ""))] = tree
            self.hosts.learn_unc(conn.server_ip, tree)
        status = first(row, "smb.nt_status", SUCCESS_TEXT)
        ok = status_code(status) == Status.SUCCESS
        key = f"smb1/{uid}/{row.get('smb.mid', '')}"
        if len(conn.frames) < 4:
            conn.frames.append(frame.number)
        for cmd in cmds:
            if cmd == Smb1.NO_ANDX_COMMAND:
                continue
            if cmd == Smb1.NEGOTIATE:
                self._negotiate(conn, row, is_response)
                continue
            if is_response and not ok:
                conn.negotiate["last_status"] = status
            if is_response:
                self._response(frame, conn, cmd, key, uid, tree, status)
            else:
                self._request(frame, conn, cmd, key, uid, tree)

    def _negotiate(self, conn: Conn, row: Row, is_response: bool) -> None:
        offered = [d for d in split(row.get("smb.dialect.name", "")) if d]
        if not is_response and offered:
            conn.negotiate["offered"] = offered
        elif is_response:
            index = to_int(row.get("smb.dialect.index", ""), -1)
            chosen = conn.negotiate.get("offered", [])
            conn.negotiate["dialect_smb1"] = chosen[index] if 0 <= index < len(chosen) else "NT LM 0.12"
            conn.negotiate.setdefault("dialect", "1")

    def _request(self, frame: Frame, conn: Conn, cmd: int, key: str, uid: str, tree: Optional[str]) -> None:
        row = frame.row
        if cmd == Smb1.SESSION_SETUP_ANDX:
            ident = ntlm_identity(row)
            if not ident and row.get("smb.account"):
                ident = Identity(user=row["smb.account"], domain=row.get("smb.primary_domain"), method="ntlm")
            if ident:
                conn.pending_auth = PendingAuth(ident, frame.time, frame.number)
        elif cmd == Smb1.NT_CREATE_ANDX:
            name = row.get("smb.file", "")
            is_pipe = bool(tree) and tree.upper().endswith("\\IPC$")
            opened = Open(name=name.lstrip("\\"), share=tree, is_pipe=is_pipe, session=uid, time=frame.time,
                          disposition=to_int(row.get("smb.create.disposition", ""), -1),
                          access=to_int(row.get("smb.access_mask", "")))
            conn.requests[key] = Request(cmd, opened=opened)
        elif cmd in FILE_COMMANDS:
            opened = conn.opens.get(first(row, "smb.fid"))
            if opened is None:
                return
            opened.add_frame(frame.number)
            if cmd in WRITES:
                opened.bytes_written += to_int(row.get("smb.data_len_low", ""))
                opened.writes += 1
            conn.requests[key] = Request(cmd, opened=opened)
            if cmd in (Smb1.WRITE_ANDX, Smb1.TRANSACTION):
                self._rpc(frame, conn, opened)

    def _response(self, frame: Frame, conn: Conn, cmd: int, key: str, uid: str, tree: Optional[str],
                  status: str) -> None:
        row = frame.row
        ok = status_code(status) == Status.SUCCESS
        pending = conn.requests.pop(key, None)
        auth = conn.pending_auth
        if cmd == Smb1.SESSION_SETUP_ANDX and not ok and auth is not None and (
                status_code(first(row, "smb.nt_status")) != Status.MORE_PROCESSING_REQUIRED):
            self.events.session_failed(frame, conn, first(row, "smb.nt_status"))
        elif cmd == Smb1.SESSION_SETUP_ANDX and ok and auth is not None:
            session = Session(sesid=uid, identity=auth.identity, time=auth.time, dialect="1")
            conn.sessions[uid] = session
            conn.pending_auth = None
            self.events.session_started(frame, conn, session)
        elif cmd == Smb1.TREE_CONNECT_ANDX and ok and tree:
            self.events.tree_connected(frame, conn, uid, tree, row)
        elif cmd == Smb1.NT_CREATE_ANDX and pending is not None and pending.command == Smb1.NT_CREATE_ANDX:
            self._created(frame, conn, pending, key, ok)
        elif pending is not None and pending.command != Smb1.NT_CREATE_ANDX and pending.opened is not None:
            self._completed(frame, conn, pending, ok)

    def _created(self, frame: Frame, conn: Conn, pending: Request, key: str, ok: bool) -> None:
        opened = pending.opened
        assert opened is not None
        opened.add_frame(frame.number)
        if not ok:
            self.events.file_closed(conn, opened)
            return
        opened.fid = first(frame.row, "smb.fid") or key
        conn.opens[opened.fid] = opened
        if opened.is_pipe:
            self.rpc.pipe_opened(conn, opened)

    def _completed(self, frame: Frame, conn: Conn, pending: Request, ok: bool) -> None:
        opened = pending.opened
        assert opened is not None
        opened.add_frame(frame.number)
        if pending.command == Smb1.CLOSE:
            conn.opens.pop(opened.fid or "", None)
            self.events.file_closed(conn, opened)
        elif pending.command in READS and ok:
            opened.bytes_read += to_int(frame.row.get("smb.data_len_low", ""))
            opened.reads += 1
        if pending.command in (Smb1.READ_ANDX, Smb1.TRANSACTION):
            self._rpc(frame, conn, opened)

    def _rpc(self, frame: Frame, conn: Conn, opened: Open) -> None:
        if "dcerpc.pkt_type" not in frame.row:
            return
        if not opened.is_pipe:  # tree connect not captured, but the payload is DCE/RPC
            opened.is_pipe = True
            self.rpc.pipe_opened(conn, opened)
        self.rpc.handle(frame, conn, channel=f"np:{opened.fid}", pipe=opened)
