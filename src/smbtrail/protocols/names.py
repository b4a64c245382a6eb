"""Host names as the traffic shows them: NTLM challenge, tree UNC, negotiate netname, DNS/NBNS answers."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Dict, Optional, Tuple

from ..capture.fields import Row, split

# the first name a stronger source gives wins over weaker ones
STRENGTH = {"ntlm_challenge": 5, "kerberos_sname": 4, "netname": 3, "tree_unc": 3, "ntlm_workstation": 4,
            "dns": 2, "nbns": 2}


@lru_cache(maxsize=4096)
def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class HostNames:
    def __init__(self) -> None:
        self.names: Dict[str, Tuple[str, int, str]] = {}

    def learn(self, ip: str, name: Optional[str], source: str) -> None:
        if not ip or not name or name in ("*", "NULL", "localhost"):
            return
        strength = STRENGTH.get(source, 1)
        current = self.names.get(ip)
        if (current is None or strength > current[1]) and not is_address(name):
            self.names[ip] = (name, strength, source)

    def learn_unc(self, ip: str, unc: Optional[str]) -> None:
        if unc and unc.startswith("\\\\"):
            self.learn(ip, unc[2:].split("\\", 1)[0], "tree_unc")

    def learn_dns(self, row: Row) -> None:
        names = split(row.get("dns.resp.name", ""))
        addrs = split(row.get("dns.a", "")) + split(row.get("dns.aaaa", ""))
        if names and addrs:
            for addr in addrs:
                self.learn(addr, names[0], "dns")
        nb_names = split(row.get("nbns.name", ""))
        nb_addrs = split(row.get("nbns.addr", ""))
        if nb_names and nb_addrs:
            self.learn(nb_addrs[0], nb_names[0].split("<", 1)[0].strip(), "nbns")

    def name(self, ip: Optional[str]) -> Optional[str]:
        entry = self.names.get(ip or "")
        return entry[0] if entry else None
