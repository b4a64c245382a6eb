"""TCP connections: who is the client, and the per-connection protocol state hung off it.

Every kind of state a handler keeps is declared here: a connection (Conn) holds its SMB sessions
(Session), its RPC channels (Channel: one per pipe open or TCP association) with their calls (Call),
and the bursts of SMB3 messages no key opened (Burst). Opens of files and pipes are files.Open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, TypedDict

from ..capture.fields import Frame
from .auth import Identity
from .files import Open

SERVER_PORTS = {445, 139, 135, 88}
MAX_SIZES = 400  # OriginalMessageSize values kept per burst (direction-signed)


class PendingAuth(NamedTuple):
    """A SESSION_SETUP request that named its account (NTLM) or service (Kerberos), until the answer."""

    identity: Identity
    time: float
    frame: int


class Negotiated(TypedDict, total=False):
    """What NEGOTIATE told, by the names records show it (session records carry it as their args)."""

    offered: List[str]  # dialects the client offered
    dialect: str  # "1" for SMB1, else "2.0.2" .. "3.1.1"
    dialect_smb1: str  # the SMB1 dialect string chosen
    cipher: str
    encryption_capable: bool
    signing_required: bool
    client_guid: str
    server_guid: str
    netname: str  # the server name the client asked for (SMB 3.1.1 negotiate context)
    server_names: Dict[str, str]  # the NTLM challenge's names of the server (not shown in records)
    last_status: str  # SMB1: the last error a response carried (a logon that never succeeded)


@dataclass
class Request:
    """An SMB request awaiting its response (one kind for every command: `command` says which)."""

    command: int
    opened: Optional[Open] = None  # CREATE: the open it makes; SMB1 commands on a file: that file
    unc: Optional[str] = None  # TREE_CONNECT: the share asked for
    fid: Optional[str] = None  # SMB2 commands on a file: its id (in a compound, its CREATE's message key)
    length: int = 0  # READ, WRITE: bytes asked for
    info_class: int = 0  # SET_INFO
    info_level: int = 0
    delete: bool = False  # SET_INFO: delete on close asked


@dataclass
class Conn:
    stream: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    first_time: float
    last_time: float
    file: str
    # protocol state, filled by the handlers
    negotiate: Negotiated = field(default_factory=Negotiated)
    pending_auth: Optional[PendingAuth] = None
    sessions: Dict[str, Session] = field(default_factory=dict)  # by session id (SMB1: uid)
    trees: Dict[Tuple[str, str], str] = field(default_factory=dict)  # (session id, tree id) -> UNC
    opens: Dict[str, Open] = field(default_factory=dict)  # by file id
    requests: Dict[str, Request] = field(default_factory=dict)  # by message key, until answered
    aliases: Dict[str, str] = field(default_factory=dict)  # a CREATE's message key -> the file id it got
    last_create: Optional[str] = None  # message key of the last CREATE asked (a compound's related file)
    channels: Dict[str, Channel] = field(default_factory=dict)  # RPC: "np:<fid>" per pipe open, or "tcp"
    encrypted: Dict[str, Burst] = field(default_factory=dict)  # by session id: the burst going on
    frames: List[int] = field(default_factory=list)
    failed_logons: int = 0  # SESSION_SETUPs the server refused (each one a record of its own)

    def from_client(self, frame: Frame) -> bool:
        return frame.src == self.client_ip and frame.sport == self.client_port


class ConnectionTable:
    """Connections by tcp.stream, created on first sight with the client side guessed by role."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.conns: Dict[int, Conn] = {}

    def get(self, frame: Frame, sent_by_client: Optional[bool]) -> Conn:
        conn = self.conns.get(frame.stream)
        if conn is None:
            if sent_by_client is None:
                sent_by_client = frame.dport in SERVER_PORTS or (
                    frame.sport not in SERVER_PORTS and frame.dport < frame.sport)
            if sent_by_client:
                ends = (frame.src, frame.sport, frame.dst, frame.dport)
            else:
                ends = (frame.dst, frame.dport, frame.src, frame.sport)
            conn = Conn(frame.stream, *ends, first_time=frame.time, last_time=frame.time, file=self.file)
            self.conns[frame.stream] = conn
        conn.last_time = max(conn.last_time, frame.time)
        return conn

    def idle(self, now: float, horizon: float) -> List[Conn]:
        """Connections silent for longer than horizon seconds (their state can be flushed)."""
        return [c for c in self.conns.values() if now - c.last_time > horizon]

    def drop(self, conn: Conn) -> None:
        self.conns.pop(conn.stream, None)


@dataclass
class Session:
    sesid: str
    identity: Identity
    time: float
    status: Optional[str] = None
    encrypt: bool = False
    dialect: Optional[str] = None
    frames: List[int] = field(default_factory=list)
    decrypted: bool = False


class Offer(NamedTuple):
    """One presentation context a BIND or ALTER_CONTEXT offers."""

    ctx_id: int
    uuid: str
    version: str


class Binding(NamedTuple):
    """The interface an accepted context id stands for."""

    uuid: Optional[str]
    version: Optional[str]


@dataclass
class Call:
    call_id: int
    opnum: int
    uuid: Optional[str]
    version: Optional[str]
    time: float
    alloc_hint: int = 0
    sealed: bool = False
    decrypted: bool = False
    args: Dict[str, Any] = field(default_factory=dict)
    frames: List[int] = field(default_factory=list)


@dataclass
class Channel:
    key: str
    transport: str
    pipe: Optional[str] = None
    pipe_open: Optional[Open] = None
    contexts: Dict[int, Binding] = field(default_factory=dict)  # by context id, once the server accepted it
    offered: Dict[int, List[Offer]] = field(default_factory=dict)  # by call id of the BIND, until its ack
    auth_level: int = 0
    auth_type: int = 0
    identity: Optional[Identity] = None
    calls: Dict[int, Call] = field(default_factory=dict)  # by call id, until the response
    handles: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # context handle -> the arguments it stands for


@dataclass
class Burst:
    sesid: str
    start: float
    end: float
    frames: List[int] = field(default_factory=list)
    sizes: List[int] = field(default_factory=list)  # + client->server, - server->client
    size_frames: List[int] = field(default_factory=list)  # the frame of each kept size
    to_server: int = 0
    to_client: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    nonces: List[str] = field(default_factory=list)

    def add(self, frame: Frame, size: int, from_client: bool, nonce: str) -> None:
        self.end = frame.time
        if len(self.frames) < 16:
            self.frames.append(frame.number)
        if len(self.sizes) < MAX_SIZES:
            self.sizes.append(size if from_client else -size)
            self.size_frames.append(frame.number)
        if from_client:
            self.to_server += 1
            self.bytes_to_server += size
        else:
            self.to_client += 1
            self.bytes_to_client += size
        if nonce and len(self.nonces) < 8:
            self.nonces.append(nonce)
