"""What one Zeek row cannot say, told per connection (Zeek's `uid`), over the rows in time order.

- The account: ntlm.log's or kerberos.log's line for the same connection, else a Kerberos ticket the
  KDC gave the client for this server (kerberos.log `client` + `service`), as a capture links them.
- Host names: the server's NTLM names, the client's workstation, a tree's `\\\\NAME\\share`.
- The share of a file open Zeek logged without its tree (SMB1, or a tree connected before the sensor
  started): the connection's last tree; opens on IPC$ are pipe opens.
- files.log rows of older Zeek name no ports: the connection's, and the direction from `tx_hosts`.
- conn.log rows: kept only for connections no other log names (encrypted SMB3: Zeek sees the
  connection and nothing in it), so fusion can still join a Windows logon's client ip:port.

Memory: per connection seen in the last IDLE seconds of log time (at most MAX_CONNECTIONS), a few
names; per client address, its last TICKETS Kerberos tickets; conn.log rows for HOLD seconds.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Deque, Dict, Iterable, Iterator, Optional, Tuple

from ..protocols.names import HostNames
from ..records import FILE, SESSION, TREE, Record

IDLE = 12 * 3600.0  # a connection silent this long is forgotten
MAX_CONNECTIONS = 200_000
HOLD = 60.0  # a conn.log row waits this long for another log to name its connection
TICKETS = 64
KDC_PORT = 88
TICKET_HORIZON = 10 * 3600.0  # a service ticket lives 10 hours by default
FILES_PER_CONNECTION = 64
Key = Tuple[Optional[str], Optional[int], Optional[str], Optional[int]]


class _Connection:
    __slots__ = ("key", "user", "domain", "workstation", "tree", "files", "last")

    def __init__(self, key: Key, when: float) -> None:
        self.key = key
        self.user: Optional[str] = None
        self.domain: Optional[str] = None
        self.workstation: Optional[str] = None
        self.tree: Optional[str] = None
        self.files: Dict[str, Optional[str]] = {}  # file name -> share
        self.last = when


class Connections:
    def __init__(self) -> None:
        self.conns: OrderedDict[str, _Connection] = OrderedDict()
        self.hosts = HostNames()
        self.tickets: Dict[str, Deque[Tuple[float, str, Optional[str], str]]] = {}
        self.held: OrderedDict[str, Tuple[float, Record]] = OrderedDict()

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        """Zeek's raw records in time order in; the same records out, completed, conn rows thinned."""
        for rec in records:
            uid = zeek_uid(rec)
            now = rec.time.timestamp()
            yield from self._due(now)
            if not uid or "zeek" not in rec.evidence:
                yield rec
                continue
            known = uid in self.conns
            conn = self._connection(uid, rec, now)
            if rec.args.get("connection"):
                if not known:  # else its connection is named by rows of its own
                    self.held[uid] = (now + HOLD, rec)
                continue
            self.held.pop(uid, None)
            self._complete(rec, conn)
            yield rec
        yield from (self._named(rec) for _, rec in self.held.values())
        self.held.clear()

    def _due(self, now: float) -> Iterator[Record]:
        while self.held:
            uid, (due, rec) = next(iter(self.held.items()))
            if due > now:
                return
            del self.held[uid]
            yield self._named(rec)

    def _connection(self, uid: str, rec: Record, now: float) -> _Connection:
        conn = self.conns.get(uid)
        if conn is None:
            conn = self.conns[uid] = _Connection((rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port), now)
            while self.conns and (len(self.conns) > MAX_CONNECTIONS
                                  or next(iter(self.conns.values())).last < now - IDLE):
                self.conns.popitem(last=False)
        else:
            self.conns.move_to_end(uid)
            conn.last = max(conn.last, now)
        return conn

    def _complete(self, rec: Record, conn: _Connection) -> None:
        if rec.src_port is None and conn.key[1] is not None:
            self._direction(rec, conn)
        if rec.kind == SESSION and rec.protocol == "kerberos":
            self._ticket(rec)
            if rec.dest_port != KDC_PORT and rec.user and rec.status == "ok":
                conn.user, conn.domain = rec.user, rec.domain  # Kerberos inside this connection's own logon
        elif rec.kind == SESSION and rec.args.get("auth") == "ntlm":
            self._ntlm(rec, conn)
        elif rec.kind == TREE:
            conn.tree = rec.share
            self.hosts.learn_unc(rec.dest_ip, rec.args.get("unc"))
        elif rec.kind == FILE:
            self._file(rec, conn)
        if rec.protocol != "kerberos":
            self._account(rec, conn)
        rec.src_host = rec.src_host or conn.workstation
        self._named(rec)

    def _named(self, rec: Record) -> Record:
        rec.src_host = rec.src_host or self.hosts.name(rec.src_ip)
        rec.dest_host = rec.dest_host or self.hosts.name(rec.dest_ip)
        return rec

    def _direction(self, rec: Record, conn: _Connection) -> None:
        """An older files.log row: the connection's socket, and who sent the file."""
        tx_host = rec.args.pop("tx_host", None)
        rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port = conn.key
        if tx_host and tx_host == conn.key[2] and rec.operation == "write":
            rec.operation = "read"
            if "bytes_written" in rec.args:
                rec.args["bytes_read"] = rec.args.pop("bytes_written")

    def _ntlm(self, rec: Record, conn: _Connection) -> None:
        self.hosts.learn(rec.dest_ip, rec.dest_host, "ntlm_challenge")
        self.hosts.learn(rec.src_ip, rec.src_host, "ntlm_workstation")
        if rec.status == "ok" and rec.user:
            conn.user, conn.domain, conn.workstation = rec.user, rec.domain, rec.src_host

    def _ticket(self, rec: Record) -> None:
        service = str(rec.args.get("service") or "")
        if rec.status != "ok" or not rec.user or "/" not in service or not rec.src_ip:
            return
        server = service.split("/")[1].split(".")[0].lower()
        entries = self.tickets.setdefault(rec.src_ip, deque(maxlen=TICKETS))
        entries.append((rec.time.timestamp(), rec.user, rec.domain, server))

    def _file(self, rec: Record, conn: _Connection) -> None:
        name = (rec.path or "").lower()
        if rec.share is None:
            rec.share = conn.files.get(name) or conn.tree
            if rec.operation == "open" and (rec.share or "").upper() == "IPC$":
                rec.operation = "pipe_open"
        if name and name not in conn.files:
            if len(conn.files) >= FILES_PER_CONNECTION:
                conn.files.pop(next(iter(conn.files)))
            conn.files[name] = rec.share

    def _account(self, rec: Record, conn: _Connection) -> None:
        """The connection's NTLM account, else the ticket the client got for this server (by name)."""
        if rec.user:
            return
        if conn.user:
            rec.user, rec.domain = conn.user, conn.domain
            return
        server = (self.hosts.name(rec.dest_ip) or "").split(".")[0].lower()
        when = rec.time.timestamp()
        for got, user, realm, service_host in reversed(self.tickets.get(rec.src_ip or "", ())):
            if server and service_host == server and 0 <= when - got <= TICKET_HORIZON:
                rec.user, rec.domain = user, realm
                rec.args["account_from"] = "kerberos_ticket"
                return


def zeek_uid(rec: Record) -> Optional[str]:
    zeek = rec.args.get("zeek")
    return zeek.get("uid") if isinstance(zeek, dict) else None


def complete(records: Iterable[Record]) -> Iterator[Record]:
    return Connections().run(records)
