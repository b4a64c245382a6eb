"""The five joins that tie a Windows event to what the capture saw, strongest first.

1 `ip_port`: the client ip:port of 4624/5140/5145 on the target (or of any event that logs one: Samba's
   audit records) = a TCP connection's client socket.
2 `logon_id`: SubjectLogonId of 4672, 5145, 4697, 4698, 4688 ... = a logon joined by 1 or 3. An event
   that names no host (Samba's dsdb records) finds its logon by the id alone when one host holds it
   (Samba's sessionId is a GUID).
3 `pipe_account_time`: an RPC logon over a named pipe logs IpAddress `-`; account + target + time
   to a pipe open in the capture.
4 `service_name_time`: 7045 and 7040 have no logon id; the service name / image path + time to a 4697, a
   captured svcctl call or a 5145 `svcctl` access on the same host.
5 `account_host_time`: the last resort: the same account on the same host (target or, for a 4688
   command line, source) within a time window; lower confidence.
An event none of these ties to a captured connection joins a host trail (hostside.py: `host_logon`,
`logon_id`, `ip_port`, `account_source_time`, `explicit_credentials`, `explicit_process`, `command_line`)
or, a failed logon, the trail of its source's burst of failures (failures.py: `failed_logon`).
Every join records its reason and confidence; when more than one trail fits, the link is marked
ambiguous with its candidates and nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..records import Record, account_key, stable_id
from .clocks import Clocks
from .connections import BUCKET, Conn, NetIndex, add_user
from .failures import Failures, failed
from .hostcommands import HostCommand
from .hostside import HostTrails, Opened, host_trail_id
from .identity import Identity, event_host

LOGON_EVENTS = (4624,)
EXPLICIT_CREDENTIALS = 4648
SERVICE_EVENTS = (7045, 7040)  # System log: no logon id, joined by service name and time
SOCKET_EVENTS = (4624, 5140, 5145)
SOCKET_SLACK = 60.0  # a logged logon lies within its connection's lifetime +- this, once clocks are corrected
PIPE_WINDOW = (-20.0, 5.0)  # pipe open relative to the RPC logon
SERVICE_WINDOW = 120.0
ACCOUNT_WINDOW = {"target": (-120.0, 30.0), "source": (-30.0, 120.0)}  # connection relative to the event
PLUMBING_PORTS = (135,)  # endpoint mapper: never carries a command
ROUTINE_USERS = frozenset(("system", "local service", "network service", "anonymous logon", "-"))

CONFIDENCE = {"ip_port": 1.0, "logon_id": 1.0, "pipe_account_time": 0.75, "service_name_time": 0.7,
              "account_host_time": 0.5, "host_logon": 1.0, "explicit_process": 1.0, "explicit_credentials": 0.9,
              "account_source_time": 0.8, "command_line": 0.8, "failed_logon": 1.0}


@dataclass
class Link:
    trail_id: Optional[str]
    reasons: List[str]
    confidence: float
    conn: Optional[Conn] = None
    user: Optional[str] = None
    candidates: List[str] = field(default_factory=list)  # set when ambiguous
    conflicts: Dict[str, List[str]] = field(default_factory=dict)
    ends: Optional[Opened] = None  # a host trail's source and target (a captured one has `conn`)

    @property
    def ambiguous(self) -> bool:
        return bool(self.candidates)

    def via(self, reason: str) -> Link:
        """The same trail reached through one more join (reasons read strongest-last: direct first)."""
        return Link(self.trail_id, [reason] + [r for r in self.reasons if r != reason],
                    min(self.confidence, CONFIDENCE[reason]), self.conn, self.user, list(self.candidates),
                    dict(self.conflicts), self.ends)


def host_link(trail: Optional[Opened], reason: str) -> Optional[Link]:
    if trail is None:
        return None
    return Link(trail.trail_id, [reason], CONFIDENCE[reason], user=account_key(trail.user), ends=trail)


def _seconds(rec: Record) -> float:
    return rec.time.timestamp()


class Joiner:
    def __init__(self, net: NetIndex, identity: Identity, clocks: Clocks) -> None:
        self.net = net
        self.identity = identity
        self.clocks = clocks
        self.logons: Dict[Tuple[str, str], Link] = {}
        self.logged: Dict[Tuple[str, str], float] = {}  # when each logon was logged, oldest first
        self.logon_hosts: Dict[str, Set[str]] = {}  # logon id -> hosts that hold it
        self.host_services: Dict[Tuple[str, int], List[Tuple[float, Optional[str], Optional[str], str]]] = {}
        self.svcctl_opens: Dict[Tuple[str, int], List[Tuple[float, str]]] = {}
        self.hosts = HostTrails(identity)
        self.failures = Failures(self.hosts)
        self._explicit: Dict[int, Link] = {}  # 4648 events registered, by id, until they are linked

    # -- on arrival: logons and the host-side indexes the later joins read --------------------------------
    def register(self, rec: Record) -> None:
        host = event_host(rec)
        if not host:
            return
        when = _seconds(rec)
        if rec.event_id in SOCKET_EVENTS and rec.logon_id and (host, rec.logon_id) not in self.logons:
            link = self._socket(rec, host, when)
            if link is None and rec.event_id in LOGON_EVENTS and not rec.src_ip and _network_logon(rec):
                link = self._pipe(rec, host, when)
            if link is None:
                link = host_link(self.hosts.remote_logon(rec, host, when), "host_logon")
            if link is None and rec.event_id in LOGON_EVENTS and not rec.src_ip and _network_logon(rec):
                link = host_link(self.hosts.pipe_logon(rec, host, when), "pipe_account_time")
            if link is not None:
                self.logons[(host, rec.logon_id)] = link
                self.logged[(host, rec.logon_id)] = when
                self.logon_hosts.setdefault(rec.logon_id, set()).add(host)
        if rec.event_id == EXPLICIT_CREDENTIALS:
            link = host_link(self.hosts.explicit(rec, host, when), "explicit_credentials")
            if link is not None:
                self._explicit[id(rec)] = link
        if rec.event_id == 4697 and rec.logon_id:
            entry = (when, _lower(rec.args.get("service_name")), _lower(rec.args.get("binary_path")), rec.logon_id)
            self.host_services.setdefault((host, int(when // BUCKET)), []).append(entry)
        if rec.event_id == 5145 and rec.logon_id and (rec.path or "").lower().endswith("svcctl"):
            self.svcctl_opens.setdefault((host, int(when // BUCKET)), []).append((when, rec.logon_id))

    def forget_before(self, when: float, logons: float) -> None:
        """Evict host-side index entries older than `when` (the reorder window has passed them) and
        logons logged before `logons` (their sessions' later events then join by socket or not at all)."""
        bucket = int(when // BUCKET)
        self.hosts.forget_before(when)
        self.failures.forget_before(when)
        for index in (self.host_services, self.svcctl_opens):
            for key in [k for k in index if k[1] < bucket]:
                del index[key]
        while self.logged:
            key, logged = next(iter(self.logged.items()))
            if logged >= logons:
                break
            del self.logged[key], self.logons[key]
            hosts = self.logon_hosts.get(key[1], set())
            hosts.discard(key[0])
            if not hosts:
                self.logon_hosts.pop(key[1], None)

    # -- on processing: the strongest join that holds --------------------------------------------------
    def link(self, rec: Record) -> Optional[Link]:
        host = self.host_of(rec)
        if rec.logon_id and (host, rec.logon_id) in self.logons:
            link = self.logons[(host, rec.logon_id)]
            if rec.event_id in LOGON_EVENTS or (rec.src_port and (rec.event_id in SOCKET_EVENTS or _on_socket(rec, link))):
                return link  # the event that made the link, or one on its socket
            return link.via("logon_id")
        if rec.src_port:
            link = self._socket(rec, host, _seconds(rec))
            if link is not None or rec.event_id in SOCKET_EVENTS:
                return link
        if host and rec.event_id in SERVICE_EVENTS:
            return self._service(rec, host, _seconds(rec))
        return None

    def host_only(self, rec: Record, cmd: Optional[HostCommand]) -> Optional[Link]:
        """The host trail of an event no captured connection explains (asked after every network join)."""
        if id(rec) in self._explicit:
            return self._explicit.pop(id(rec))
        host, when = self.host_of(rec), _seconds(rec)
        if failed(rec):  # Samba's KDC logs no server address: the burst's target may stay unknown
            burst = self.failures.burst(rec, host or "", when)
            return host_link(burst.opened if burst else None, "failed_logon")
        if not host:
            return None
        found = self.hosts.joined(rec, host, when)
        if found is not None:
            return host_link(*found)
        if rec.event_id in SOCKET_EVENTS and not rec.logon_id and not rec.src_port:  # Samba's file audit
            link = self.by_account(rec, "target")
            if link is not None:
                return link
        if cmd is not None and cmd.side == "source":
            if not cmd.target:
                return host_link(self.hosts.outgoing(rec, host, when), "account_source_time")
            return host_link(self.hosts.source_command(rec, host, cmd.target, when), "command_line")
        return host_link(self.hosts.remote_logon(rec, host, when), "host_logon")

    def host_of(self, rec: Record) -> Optional[str]:
        """The event's host; for one that names none, the one host that holds its logon id."""
        host = event_host(rec)
        if host or not rec.logon_id:
            return host
        hosts = self.logon_hosts.get(rec.logon_id, ())
        return next(iter(hosts)) if len(hosts) == 1 else None

    def by_account(self, rec: Record, side: str, cmd: Optional[HostCommand] = None) -> Optional[Link]:
        """Join 5: for events that show a command, and for file audit records that name no session."""
        host, user = event_host(rec), account_key(rec.user)
        if not host or not user or user in ROUTINE_USERS or user.endswith("$"):
            return None
        when = self.clocks.to_capture_time(host, _seconds(rec))
        before, after = ACCOUNT_WINDOW[side]
        start, end = when + before, when + after
        ips = self.identity.addresses_of(host)
        if side == "target":
            conns = [c for ip in ips for c in self.net.to_server(ip, start, end)]
        elif ips:
            conns = [c for ip in ips for c in self.net.from_client(ip, start, end)]
        else:  # the source host's address is not known yet: any client of that account, learned if unique
            conns = list(self.net.active(start, end))
        if side == "source" and cmd is not None and cmd.target:
            conns = [c for c in conns if self.identity.compatible(c.server_ip, cmd.target, c.names) is not False]
        conns = [c for c in conns if c.key[3] not in PLUMBING_PORTS]
        if side == "target" and rec.src_ip:  # the target logged its client's address (no port): keep to it
            conns = [c for c in conns if c.client_ip == rec.src_ip]
        named = [c for c in conns if user in c.users]
        conns = named if named or not ips else [c for c in conns if not c.users]
        same = [c for c in conns if cmd is not None and cmd.command in c.commands]
        link = self._choose(same or conns, "account_host_time", user)
        if link is not None and link.conn is not None and side == "source" and not ips:
            self.identity.bind(link.conn.client_ip, rec.dest_host)
        return link

    # -- the joins -----------------------------------------------------------------------------------
    def _socket(self, rec: Record, host: Optional[str], when: float) -> Optional[Link]:
        if not rec.src_ip or not rec.src_port:
            return None
        conns = [c for c in self.net.at_socket(rec.src_ip, rec.src_port)
                 if self.identity.compatible(c.server_ip, host, c.names) is not False]
        if not conns:
            return None
        at = self.clocks.to_capture_time(host, when)
        fitting = [c for c in conns if c.first - SOCKET_SLACK <= at <= c.last + SOCKET_SLACK]
        jumped = not fitting and len(conns) == 1  # one connection ever on this socket: the clock moved
        if not fitting and not jumped:
            return None
        conn = min(fitting or conns, key=lambda c: abs(c.start_near(at) - at))
        named = self.identity.compatible(conn.server_ip, host, conn.names)
        if named is None:
            self.identity.bind(conn.server_ip, rec.dest_host)
        if rec.event_id in LOGON_EVENTS:
            self.clocks.add(host, when, conn.start_near(conn.first if jumped else at))
        return self._on_conn(conn, rec, host, "ip_port", (1.0 if named else 0.9) - (0.1 if jumped else 0.0))

    def _on_conn(self, conn: Conn, rec: Record, host: Optional[str], reason: str, confidence: float) -> Link:
        """A logon on a captured connection; another account on the same connection is another trail."""
        user = account_key(rec.user)
        net_user = conn.user_near(self.clocks.to_capture_time(host, _seconds(rec)))
        trail = conn.trail_id
        conflicts: Dict[str, List[str]] = {}
        if user and net_user and user != net_user:
            conflicts["user"] = [net_user, user]
            trail = "net-" + stable_id(conn.trail_id, user)
        elif user and not conn.users:
            add_user(conn, user)
        return Link(trail, [reason], confidence, conn, user, conflicts=conflicts)

    def _pipe(self, rec: Record, host: str, when: float) -> Optional[Link]:
        user = account_key(rec.user)
        at = self.clocks.to_capture_time(host, when)
        opens = [p for ip in self.identity.addresses_of(host)
                 for p in self.net.pipe_opens(ip, at + PIPE_WINDOW[0], at + PIPE_WINDOW[1])
                 if p.user is None or account_key(p.user) == user]
        return self._choose([p.conn for p in opens], "pipe_account_time", user)

    def _service(self, rec: Record, host: str, when: float) -> Optional[Link]:
        name = _lower(rec.args.get("service_key") or rec.args.get("service_name"))  # 7040 names the key too
        path = _lower(rec.args.get("binary_path"))
        same = _matcher(name, path)
        logged = [(self.logons.get((host, logon)), logon) for t, n, p, logon in self._near(self.host_services, host, when)
                  if same(n, p)]
        links = [k.via("service_name_time") if k is not None and k.trail_id else
                 Link(host_trail_id(host, logon), ["service_name_time"], CONFIDENCE["service_name_time"])
                 for k, logon in logged]
        if not links:
            at = self.clocks.to_capture_time(host, when)
            conns = [s.conn for ip in self.identity.addresses_of(host)
                     for s in self.net.service_ops(ip, at - SERVICE_WINDOW, at + 30.0) if same(s.name, s.path)]
            if conns:
                return self._choose(conns, "service_name_time", account_key(rec.user))
            opened = [self.logons.get((host, logon)) for t, logon in self._near(self.svcctl_opens, host, when)
                      if when - SERVICE_WINDOW <= t <= when + 10.0]
            links = [k.via("service_name_time") for k in opened if k is not None and k.trail_id]
        return _one(links, "service_name_time")

    def _near(self, index: dict, host: str, when: float) -> Iterable[tuple]:
        for bucket in range(int((when - SERVICE_WINDOW) // BUCKET), int((when + SERVICE_WINDOW) // BUCKET) + 1):
            for entry in index.get((host, bucket), ()):
                if abs(entry[0] - when) <= SERVICE_WINDOW:
                    yield entry

    def _choose(self, conns: List[Conn], reason: str, user: Optional[str]) -> Optional[Link]:
        trails: Dict[str, Conn] = {}
        for conn in conns:
            trails.setdefault(conn.trail_id, conn)
        if not trails:
            return None
        if len(trails) > 1:
            return Link(None, [reason], 0.0, candidates=sorted(trails))
        conn = next(iter(trails.values()))
        if user and not conn.users:
            add_user(conn, user)
        return Link(conn.trail_id, [reason], CONFIDENCE[reason], conn, user)


def _one(links: List[Link], reason: str) -> Optional[Link]:
    trails: Set[str] = {k.trail_id for k in links if k.trail_id}
    if not trails:
        return None
    if len(trails) > 1:
        return Link(None, [reason], 0.0, candidates=sorted(trails))
    return links[0]


def _matcher(name: Optional[str], path: Optional[str]):
    def same(other_name: Optional[str], other_path: Optional[str]) -> bool:
        return bool((name and name == other_name) or (path and path == other_path))
    return same


def _on_socket(rec: Record, link: Link) -> bool:
    return link.conn is not None and (link.conn.client_ip, link.conn.key[1]) == (rec.src_ip, rec.src_port)


def _network_logon(rec: Record) -> bool:
    return str(rec.args.get("logon_type", "3")) == "3"


def _lower(value) -> Optional[str]:
    return value.lower() if isinstance(value, str) and value else None
