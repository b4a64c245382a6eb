"""What the captures saw, indexed for joins: TCP connections (client socket -> server), the sessions
and accounts on each, named-pipe opens and service operations, bucketed by minute.

The index holds one entry per connection, pipe open and service operation, never whole records,
and `forget_before` drops what fell behind the join window, so it holds the connections of one
window, not of the whole run.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from ..records import FILE, SESSION, Record, stable_id
from .identity import host_key

BUCKET = 60.0  # seconds per index bucket
REUSE_GAP = 3600.0  # the same 4-tuple after this much silence is a new connection
PROVENANCE_FRAMES = 8  # frames kept per capture file and connection, for fused records
Socket = Tuple[str, int]
ConnKey = Tuple[str, int, str, int]
Buckets = Dict[int, Dict[str, list]]


class Conn:
    """One TCP connection the capture saw (slots: there is one per connection, and there can be many)."""

    __slots__ = ("key", "first", "last", "trail_id", "names", "src_host", "dest_host", "sessions", "users",
                 "commands", "provenance", "bucket")

    def __init__(self, key: ConnKey, first: float, last: float, trail_id: str) -> None:
        self.key, self.first, self.last, self.trail_id = key, first, last, trail_id
        # lists, not sets: a connection names one or two of each, and there are many connections
        self.names: List[str] = []  # server host keys named by the capture
        self.src_host: Optional[str] = None
        self.dest_host: Optional[str] = None
        self.sessions: List[Tuple[float, Optional[str], Optional[str]]] = []
        self.users: List[str] = []
        self.commands: List[str] = []  # command names the capture recognized on it
        self.provenance: Dict[str, List[int]] = {}  # capture file -> first frames
        self.bucket = -1  # the latest minute bucket the connection was indexed under

    @property
    def client_ip(self) -> str:
        return self.key[0]

    @property
    def server_ip(self) -> str:
        return self.key[2]

    def start_near(self, when: float) -> float:
        """The session setup nearest `when` (a logon is logged once per session), else the first packet."""
        if not self.sessions:
            return self.first
        return min((s[0] for s in self.sessions), key=lambda t: abs(t - when))

    def user_near(self, when: float) -> Optional[str]:
        named = [s for s in self.sessions if s[1]]
        if not named:
            return next(iter(self.users)) if len(self.users) == 1 else None
        return min(named, key=lambda s: abs(s[0] - when))[1]


class PipeOpen(NamedTuple):
    time: float
    user: Optional[str]
    pipe: str
    conn: Conn


class ServiceOp(NamedTuple):
    time: float
    name: Optional[str]
    path: Optional[str]
    conn: Conn


class NetIndex:
    def __init__(self) -> None:
        self.conns: Dict[ConnKey, List[Conn]] = {}
        self.by_socket: Dict[Socket, List[Conn]] = {}
        # bucket -> address -> entries, so that a whole minute is dropped at once
        self.by_server: Buckets = {}
        self.by_client: Buckets = {}
        self.by_time: Buckets = {}  # bucket -> "" -> every connection active then
        self.pipes: Buckets = {}
        self.services: Buckets = {}

    def add(self, rec: Record) -> Optional[Conn]:
        if not (rec.src_ip and rec.src_port and rec.dest_ip):
            return None
        when = rec.time.timestamp()
        conn = self._conn((rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port or 0), when, rec.trail_id)
        key = host_key(rec.dest_host)
        if key:
            _add(conn.names, key)
            conn.dest_host = conn.dest_host or rec.dest_host
        conn.src_host = conn.src_host or rec.src_host
        if rec.user:
            _add(conn.users, rec.user.lower())
        if rec.command:
            _add(conn.commands, rec.command)
        for prov in rec.provenance:
            frames = conn.provenance.setdefault(prov.file, [])
            if len(frames) < PROVENANCE_FRAMES:
                frames.extend(prov.frames[: PROVENANCE_FRAMES - len(frames)])
        if rec.kind == SESSION:
            conn.sessions.append((when, rec.user.lower() if rec.user else None, rec.domain))
        elif rec.kind == FILE and (rec.share or "").upper() == "IPC$" and rec.path:
            pipe = rec.path.rsplit("\\", 1)[-1].lower()
            _put(self.pipes, rec.dest_ip, when, PipeOpen(when, _lower(rec.user), pipe, conn))
        name, path = rec.args.get("service_name"), rec.args.get("binary_path")
        if name or path:
            _put(self.services, rec.dest_ip, when, ServiceOp(when, _lower(name), _lower(path), conn))
        return conn

    def _conn(self, key: ConnKey, when: float, trail_id: Optional[str]) -> Conn:
        seen = self.conns.setdefault(key, [])
        conn = next((c for c in reversed(seen) if c.first - REUSE_GAP <= when <= c.last + REUSE_GAP), None)
        if conn is None:
            conn = Conn(key, when, when, trail_id or "net-" + stable_id(key, int(when)))
            seen.append(conn)
            self.by_socket.setdefault(key[:2], []).append(conn)
        conn.first, conn.last = min(conn.first, when), max(conn.last, when)
        bucket = _bucket(when)
        if bucket != conn.bucket:
            conn.bucket = max(conn.bucket, bucket)
            _put(self.by_server, key[2], when, conn)
            _put(self.by_client, key[0], when, conn)
            _put(self.by_time, "", when, conn)
        return conn

    def forget_before(self, when: float) -> None:
        """Drop the connections silent since before `when`, and the index minutes before it."""
        first = _bucket(when)
        for bucket in [b for b in self.by_time if b < first]:
            for conn in self.by_time.pop(bucket)[""]:  # a connection is listed in its latest minute
                if conn.last < when and conn.bucket == bucket:
                    _remove(self.conns, conn.key, conn)
                    _remove(self.by_socket, conn.key[:2], conn)
        for index in (self.by_server, self.by_client, self.pipes, self.services):
            for bucket in [b for b in index if b < first]:
                del index[bucket]

    def at_socket(self, ip: str, port: int) -> List[Conn]:
        return self.by_socket.get((ip, port), [])

    def to_server(self, ip: str, start: float, end: float) -> Iterator[Conn]:
        return _unique(_scan(self.by_server, ip, start, end), lambda c: c.first <= end and c.last >= start)

    def from_client(self, ip: str, start: float, end: float) -> Iterator[Conn]:
        return _unique(_scan(self.by_client, ip, start, end), lambda c: c.first <= end and c.last >= start)

    def active(self, start: float, end: float) -> Iterator[Conn]:
        return _unique(_scan(self.by_time, "", start, end), lambda c: c.first <= end and c.last >= start)

    def pipe_opens(self, ip: str, start: float, end: float) -> Iterator[PipeOpen]:
        return (p for p in _scan(self.pipes, ip, start, end) if start <= p.time <= end)

    def service_ops(self, ip: str, start: float, end: float) -> Iterator[ServiceOp]:
        return (s for s in _scan(self.services, ip, start, end) if start <= s.time <= end)


def _add(items: List[str], item: str) -> None:
    if item not in items:
        items.append(item)


def add_user(conn: Conn, user: str) -> None:
    _add(conn.users, user)


def _remove(table: dict, key, conn: Conn) -> None:
    conns = table.get(key, [])
    if conn in conns:
        conns.remove(conn)
    if not conns:
        table.pop(key, None)


def _bucket(when: float) -> int:
    return int(when // BUCKET)


def _lower(value) -> Optional[str]:
    return value.lower() if isinstance(value, str) and value else None


def _put(index: Buckets, ip: str, when: float, value) -> None:
    bucket = _bucket(when)
    by_ip = index.get(bucket)
    if by_ip is None:
        by_ip = index[bucket] = {}
    entries = by_ip.get(ip)
    if entries is None:
        by_ip[ip] = [value]
    else:
        entries.append(value)


def _scan(index: Buckets, ip: str, start: float, end: float) -> Iterator:
    for bucket in range(_bucket(start), _bucket(end) + 1):
        yield from index.get(bucket, {}).get(ip, ())


def _unique(items, keep) -> Iterator[Conn]:
    seen: Set[int] = set()
    for conn in items:
        if id(conn) not in seen and keep(conn):
            seen.add(id(conn))
            yield conn
