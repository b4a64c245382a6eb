"""SMB1 (NT LM 0.12): sessions, trees, NT_CREATE opens, reads/writes, TRANS on named pipes."""

from __future__ import annotations

from ..capture.fields import Frame, split, to_int
from .auth import Identity, ntlm_identity
from .connections import Conn, Session
from .dcerpc import DcerpcHandler
from .events import ProtocolEvents
from .files import Open
from .names import HostNames

MORE_PROCESSING = "0xc0000016"
SESSION_SETUP, TREE_CONNECT, NT_CREATE, CLOSE, WRITE, READ, TRANS, LOGOFF = 0x73, 0x75, 0xA2, 0x04, 0x2F, 0x2E, 0x25, 0x74
WRITE_OLD, READ_OLD, DELETE, NEGOTIATE = 0x0B, 0x0A, 0x06, 0x72


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
        is_response = row.get("smb.flags.response", "").split(",")[0] in ("1", "True")
        uid = row.get("smb.uid", "").split(",")[0]
        tree = row.get("smb.path", "").split(",")[0] or None
        if tree:
            conn.trees[(uid, row.get("smb.tid", ""))] = tree
            self.hosts.learn_unc(conn.server_ip, tree)
        status = row.get("smb.nt_status", "0x00000000").split(",")[0]
        ok = status == "0x00000000"
        key = f"smb1/{uid}/{row.get('smb.mid', '')}"
        if len(conn.frames) < 4:
            conn.frames.append(frame.number)
        for cmd in cmds:
            if cmd == 0xFF:
                continue
            if cmd == NEGOTIATE:
                self._negotiate(conn, row, is_response)
                continue
            if is_response and not ok:
                conn.negotiate["last_status"] = status
            if is_response:
                self._response(frame, conn, cmd, key, uid, tree, ok)
            else:
                self._request(frame, conn, cmd, key, uid, tree)

    def _negotiate(self, conn: Conn, row, is_response: bool) -> None:
        offered = [d for d in row.get("smb.dialect.name", "").split(",") if d]
        if not is_response and offered:
            conn.negotiate["offered"] = offered
        elif is_response:
            index = to_int(row.get("smb.dialect.index", ""), -1)
            chosen = conn.negotiate.get("offered", [])
            conn.negotiate["dialect_smb1"] = chosen[index] if 0 <= index < len(chosen) else "NT LM 0.12"
            conn.negotiate.setdefault("dialect", "1")

    def _request(self, frame, conn, cmd, key, uid, tree) -> None:
        row = frame.row
        if cmd == SESSION_SETUP:
            ident = ntlm_identity(row)
            if not ident and row.get("smb.account"):
                ident = Identity(user=row["smb.account"], domain=row.get("smb.primary_domain"), method="ntlm")
            if ident:
                conn.pending_auth = {"identity": ident, "time": frame.time, "frame": frame.number}
        elif cmd == NT_CREATE:
            name = row.get("smb.file", "")
            is_pipe = bool(tree) and tree.upper().endswith("\\IPC$")
            conn.pending[key] = Open(name=name.lstrip("\\"), share=tree, is_pipe=is_pipe, session=uid,
                                     time=frame.time, disposition=to_int(row.get("smb.create.disposition", ""), -1),
                                     access=to_int(row.get("smb.access_mask", "")))
        elif cmd in (WRITE, WRITE_OLD, TRANS, READ, READ_OLD, CLOSE):
            opened = conn.opens.get(row.get("smb.fid", "").split(",")[0])
            if opened is None:
                return
            opened.add_frame(frame.number)
            if cmd in (WRITE, WRITE_OLD):
                opened.bytes_written += to_int(row.get("smb.data_len_low", ""))
                opened.writes += 1
            conn.pending[key] = (cmd, opened)
            if cmd in (WRITE, TRANS):
                self._rpc(frame, conn, opened)

    def _response(self, frame, conn, cmd, key, uid, tree, ok) -> None:
        row = frame.row
        pending = conn.pending.pop(key, None)
        if cmd == SESSION_SETUP and not ok and conn.pending_auth and (
                row.get("smb.nt_status", "").split(",")[0] != MORE_PROCESSING):
            self.events.session_failed(frame, conn, row["smb.nt_status"].split(",")[0])
        elif cmd == SESSION_SETUP and ok and conn.pending_auth:
            auth = conn.pending_auth
            session = Session(sesid=uid, identity=auth["identity"], time=auth["time"], dialect="1")
            conn.sessions[uid] = session
            conn.pending_auth = {}
            self.events.session_started(frame, conn, session)
        elif cmd == TREE_CONNECT and ok and tree:
            self.events.tree_connected(frame, conn, uid, tree, row)
        elif cmd == NT_CREATE and isinstance(pending, Open):
            pending.add_frame(frame.number)
            if ok:
                pending.fid = row.get("smb.fid", "").split(",")[0] or key
                conn.opens[pending.fid] = pending
                if pending.is_pipe:
                    self.rpc.pipe_opened(conn, pending)
            else:
                self.events.file_closed(conn, pending)
        elif isinstance(pending, tuple):
            pcmd, opened = pending
            opened.add_frame(frame.number)
            if pcmd == CLOSE:
                conn.opens.pop(opened.fid or "", None)
                self.events.file_closed(conn, opened)
            elif pcmd in (READ, READ_OLD) and ok:
                opened.bytes_read += to_int(row.get("smb.data_len_low", ""))
                opened.reads += 1
            if pcmd in (READ, TRANS):
                self._rpc(frame, conn, opened)

    def _rpc(self, frame: Frame, conn: Conn, opened: Open) -> None:
        if "dcerpc.pkt_type" not in frame.row:
            return
        if not opened.is_pipe:  # tree connect not captured, but the payload is DCE/RPC
            opened.is_pipe = True
            self.rpc.pipe_opened(conn, opened)
        self.rpc.handle(frame, conn, channel=f"np:{opened.fid}", pipe=opened)
