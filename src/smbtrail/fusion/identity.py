"""Which names belong to which addresses: learned from captures, host logs and lookups/assets.csv.

A host is keyed by its short lower-case name (WORKSTATION6.theshire.local -> workstation6); addresses
stay whole. Names come from the network side (session netname, dest_host/src_host the engine took from
NTLM, Kerberos, tree UNC and name answers), from 4624 WorkstationName + IpAddress, from exact joins
(the target whose log holds the client's ip:port), from computer accounts (`NAME$` logging on from
an address), and from the optional asset table.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Dict, Iterable, Optional, Set

from .. import lookups
from ..records import HOST_EVENT, Record

ASSETS = "assets.csv"
NOT_NAMES = frozenset(("", "-", "localhost", "*"))


@lru_cache(maxsize=1 << 16)
def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1 << 16)
def host_key(name: Optional[str]) -> Optional[str]:
    """Short lower-case host name; addresses unchanged; None for placeholders."""
    if not name:
        return None
    name = name.strip().strip("\\").rstrip("$")
    if name.lower() in NOT_NAMES:
        return None
    if is_address(name):
        return name
    return name.split(".", 1)[0].lower() or None


def event_host(rec: Record) -> Optional[str]:
    """The host that logged an event: its Computer, else the server address (Samba writes no Computer)."""
    return host_key(rec.dest_host) or host_key(rec.dest_ip)


class Identity:
    def __init__(self, assets: Optional[str] = None) -> None:
        self.names: Dict[str, Set[str]] = {}  # address -> host keys
        self.addresses: Dict[str, Set[str]] = {}  # host key -> addresses
        self.display: Dict[str, str] = {}  # host key -> longest name seen (FQDN when known)
        self._noted: Set[str] = set()
        self._load_assets(assets)

    def _load_assets(self, path: Optional[str]) -> None:
        try:
            rows = [r for r in lookups.rows(ASSETS, path) if not (r.get("ip") or "").startswith("#")]
        except OSError:
            return
        for row in rows:
            if row.get("ip") and row.get("name"):
                self.bind(row["ip"].strip(), row["name"].strip())

    def bind(self, address: Optional[str], name: Optional[str]) -> None:
        key = host_key(name)
        if not address or not key or key == address or key in self.names.get(address, ()):
            return
        if not is_address(address):
            return
        self.names.setdefault(address, set()).add(key)
        self.addresses.setdefault(key, set()).add(address)
        self.note_name(name)

    def note_name(self, name: Optional[str]) -> None:
        if not name or name in self._noted:
            return
        self._noted.add(name)
        key = host_key(name)
        if key and len(name) > len(self.display.get(key, "")) and not is_address(name):
            self.display[key] = name.strip()

    def learn(self, rec: Record) -> None:
        user = rec.user
        if user and user[-1] == "$" and rec.src_ip:
            self.bind(rec.src_ip, user.split("@")[0])  # a computer account logs on from its own address
        if rec.kind == HOST_EVENT:
            self.note_name(rec.dest_host)
            if rec.event_id == 4624 and rec.args.get("workstation"):
                self.bind(rec.src_ip, rec.args["workstation"])
            return
        if rec.dest_host:
            self.bind(rec.dest_ip, rec.dest_host)
        if rec.src_host:
            self.bind(rec.src_ip, rec.src_host)
        if rec.kind == "session" and isinstance(rec.args.get("netname"), str):
            self.bind(rec.dest_ip, rec.args["netname"])

    def keys_of(self, address: Optional[str]) -> Set[str]:
        return self.names.get(address or "", set())

    def addresses_of(self, name: Optional[str]) -> Set[str]:
        key = host_key(name)
        if key is None:
            return set()
        if is_address(key):
            return {key}
        return self.addresses.get(key, set())

    def compatible(self, address: Optional[str], name: Optional[str], also: Iterable[str] = ()) -> Optional[bool]:
        """True when `name` is known for `address`, False when other names are, None when nothing is known."""
        key = host_key(name)
        known = self.keys_of(address) | {k for k in (host_key(a) for a in also) if k}
        if key is None:
            return None
        if is_address(key):
            return key == address
        if not known:
            return None
        return key in known

    def name_of(self, address: Optional[str]) -> Optional[str]:
        keys = sorted(self.keys_of(address))
        if len(keys) != 1:
            return None
        return self.display.get(keys[0], keys[0])
