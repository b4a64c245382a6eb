"""Trails from host events alone: the joins of host events that no captured connection explains.

A trail is one account's activity from one source on one target while it continues (GAP, as on the
network side, whose trails are client, server and account). A host trail opens on a remote logon (4624 network
or remote interactive, Samba's logon) or share access (5140/5145 from a remote address), or on a 4648 on
the source host (explicit credentials for a logon to TargetServerName). Later events join it by
  logon id         the events of the same logon session on that host (Joiner.logons holds these links)
  pipe_account_time  a network logon that logs no address (RPC over a named pipe) joins the one trail of
                   its account on that host active just before
  client ip:port   an event logged with the client socket of the trail's logon
  account_source_time   the same account from the same source on the same target within GAP (the next
                   logon of a tool that opens several sessions; Samba's file audit, which logs no session)
  explicit_process the 4688 of the process that used the explicit credentials (WMIC.exe, sc.exe ...)
A source is a host name when one is known for its address, so that the 4648 on the source (A -> B) and
the 4624 on the target (from A's address) meet in one trail. Failed logons have their own trails
(failures.py). Memory: the trails, sockets and processes of the last GAP (plus KEEP for logons).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..records import Record, account_key, from_epoch, iso, stable_id
from .identity import Identity, host_key

GAP = 300.0  # seconds of silence that end a trail (the network side's TRAIL_GAP)
PROCESS_WINDOW = 600.0  # a 4688 and the 4648 of the same process lie this close
PIPE_WINDOW = 20.0  # an RPC logon follows the pipe access of its SMB session by this much at most
REMOTE_LOGON_TYPES = frozenset(("3", "8", "10"))  # network, network cleartext, remote interactive
LOCAL = frozenset(("localhost", "127.0.0.1", "::1", "-", ""))
OPENING_EVENTS = frozenset((4624, 5140, 5145))
Key = Tuple[str, str, str]  # source node, target node, account


@dataclass
class Opened:
    """A host trail: its id and the ends it joins."""

    trail_id: str
    first: float
    last: float
    src_ip: Optional[str]
    src_host: Optional[str]
    dest_host: Optional[str]
    user: Optional[str]


class HostTrails:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.open: Dict[Key, Opened] = OrderedDict()  # oldest activity first
        self.sockets: Dict[Tuple[str, str, int], Opened] = OrderedDict()  # (target, client ip, port)
        self.processes: Dict[Tuple[str, str], Tuple[float, Opened]] = OrderedDict()  # (source host, pid)

    def node(self, address: Optional[str], name: Optional[str]) -> Optional[str]:
        """A host as a trail end: its address (when the event or the identity knows one), else its short name.
        Addresses first: a name learned in mid-trail must not split it."""
        if address:
            return address
        key = host_key(name)
        addresses = self.identity.addresses_of(key) if key else set()
        return next(iter(addresses)) if len(addresses) == 1 else key

    def remote_logon(self, rec: Record, host: str, when: float) -> Optional[Opened]:
        """The trail of a logon or share access from another host (opened, or continued within GAP)."""
        if rec.event_id not in OPENING_EVENTS or not _remote(rec, host):
            return None
        user, workstation = account_key(rec.user), host_key(rec.args.get("workstation"))
        source = self.node(rec.src_ip, workstation)
        if not source or source == host or workstation == host or not user or user == host + "$":
            return None
        trail = self._trail((source, self.node(None, host), user), when, rec.src_ip, workstation, rec.dest_host,
                            rec.user)
        if rec.src_ip and rec.src_port:
            self.sockets[(host, rec.src_ip, rec.src_port)] = trail
        return trail

    def pipe_logon(self, rec: Record, host: str, when: float) -> Optional[Opened]:
        """A network logon with no address (an RPC logon over a named pipe of an SMB session): the one trail
        of that account on that host active in the PIPE_WINDOW before it, if exactly one is."""
        user = account_key(rec.user)
        target = self.node(None, host)
        found = {t.trail_id: t for (_, to, who), t in self.open.items()
                 if to == target and who == user and when - PIPE_WINDOW <= t.last <= when + 1.0}
        return next(iter(found.values())) if len(found) == 1 else None

    def explicit(self, rec: Record, host: str, when: float) -> Optional[Opened]:
        """A 4648 on the source host: a logon to TargetServerName as `account` (the trail it opens or
        continues), remembered for the process that used the credentials."""
        target = host_key(rec.args.get("target_server"))
        user = account_key(rec.args.get("account"))
        if not target or target in LOCAL or target == host or not user:
            return None
        trail = self._trail((self.node(None, host), self.node(None, target), user), when, None, rec.dest_host,
                            rec.args.get("target_server"), rec.args.get("account"))
        if rec.args.get("process_id"):
            self.processes[(host, rec.args["process_id"])] = (when, trail)
        return trail

    def source_command(self, rec: Record, host: str, target: str, when: float) -> Optional[Opened]:
        """A command line on the source host that names its target (sc \\\\B create ...)."""
        user, target_key = account_key(rec.user), host_key(target)
        if not target_key or target_key in LOCAL or target_key == host or not user:
            return None
        return self._trail((self.node(None, host), self.node(None, target_key), user), when, None, rec.dest_host,
                           target, rec.user)

    def outgoing(self, rec: Record, host: str, when: float) -> Optional[Opened]:
        """A source-side event that names no target (net group /domain): the one trail of its account
        from this host active within GAP, if exactly one is."""
        source, user = self.node(None, host), account_key(rec.user)
        found = {t.trail_id: t for (origin, _, who), t in self.open.items()
                 if origin == source and who == user and t.first - GAP <= when <= t.last + GAP}
        return next(iter(found.values())) if len(found) == 1 else None

    def joined(self, rec: Record, host: str, when: float) -> Optional[Tuple[Opened, str]]:
        """The open trail an event belongs to by socket, by process or by account and source, with the reason."""
        if rec.src_ip and rec.src_port and (host, rec.src_ip, rec.src_port) in self.sockets:
            return self.sockets[(host, rec.src_ip, rec.src_port)], "ip_port"
        if rec.event_id == 4688 and rec.args.get("process_id"):
            found = self.processes.get((host, rec.args["process_id"]))
            if found and abs(found[0] - when) <= PROCESS_WINDOW:
                return found[1], "explicit_process"
        user = account_key(rec.user)
        source = self.node(rec.src_ip, None)
        trail = self.open.get((source, self.node(None, host), user)) if source and user else None
        if trail is not None and trail.first - GAP <= when <= trail.last + GAP:
            return trail, "account_source_time"
        return None

    def _trail(self, key: Key, when: float, src_ip: Optional[str], src_host: Optional[str],
               dest_host: Optional[str], user: Optional[str]) -> Opened:
        trail = self.open.get(key)
        if trail is None or not trail.first - GAP <= when <= trail.last + GAP:
            trail = Opened(host_trail_id(key[1], (key[0], key[2], iso_seconds(when))), when, when, src_ip,
                           src_host, dest_host, user)
        trail.first, trail.last = min(trail.first, when), max(trail.last, when)
        trail.src_ip = trail.src_ip or src_ip
        self.open.pop(key, None)
        self.open[key] = trail  # most recent last: eviction reads from the front
        return trail

    def forget_before(self, when: float) -> None:
        for index in (self.open, self.sockets):
            while index and next(iter(index.values())).last < when:
                index.pop(next(iter(index)))
        while self.processes and next(iter(self.processes.values()))[0] < when:
            self.processes.pop(next(iter(self.processes)))


def _remote(rec: Record, host: str) -> bool:
    if rec.event_id == 4624 and rec.channel != "Samba":
        return str(rec.args.get("logon_type", "")) in REMOTE_LOGON_TYPES and bool(
            rec.src_ip or (host_key(rec.args.get("workstation")) not in (None, host)))
    return bool(rec.src_ip)


def host_trail_id(host: Optional[str], key: object) -> str:
    """The trail of host evidence no capture saw."""
    return "host-" + stable_id(host, key)


def iso_seconds(when: float) -> str:
    return iso(from_epoch(int(when)))
