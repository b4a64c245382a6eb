"""Failed logons in host logs: one burst per source and target, every account tried and how each attempt
failed, as a `logon` fact of the burst's trail.

A failure is a 4625 (the target refused a logon), a 4771 (the KDC refused Kerberos pre-authentication), a
4776 or 4768 with a failure status (the DC refused NTLM validation or a TGT), or Samba's failed
Authentication (4625, also for its KDC). Failures from one source (its address, else the workstation it
named) against one target with less than GAP between them are one burst. Its trail is the captured
connection's when the event joins one (the network side then has the same `logon` command,
recognize/failures.py, and the fact merges into it), else a host trail of its own. The fact's action is the
network side's classification (`spray`, `brute_force`, `failed`); its arguments are `host_attempts`
(account, status as the log names it, count), `host_failures` and `succeeded` (tried accounts that then
logged on from the same source). Local failures (console, services: no other host) are left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ..recognize.failures import action
from ..records import Record, account_key
from .hostside import HostTrails, Opened, host_trail_id, iso_seconds
from .identity import host_key

if TYPE_CHECKING:
    from .trails import Fact

GAP = 1800.0  # seconds between two failures of one burst (sprays go slowly to stay under lockout)
FAILED_EVENTS = frozenset((4625, 4771))
FAILED_IF_STATUS = frozenset((4776, 4768))
SUCCESS = frozenset(("0x0", "0", "NT_STATUS_OK"))


def failed(rec: Record) -> bool:
    if rec.kind != "host_event":
        return False
    if rec.event_id in FAILED_EVENTS:
        return True
    return rec.event_id in FAILED_IF_STATUS and str(rec.args.get("status", "0x0")) not in SUCCESS


@dataclass
class Burst:
    opened: Opened
    source: str
    target: str
    attempts: Counter = field(default_factory=Counter)  # (account, how it failed) -> failures
    succeeded: List[str] = field(default_factory=list)
    fact: Optional[Fact] = None  # the trail's `logon` fact, updated with each failure

    @property
    def action(self) -> str:
        return action(self.attempts)

    def args(self) -> Dict[str, object]:
        args: Dict[str, object] = {
            "accounts": list(dict.fromkeys(a for a, _ in self.attempts)),
            "host_failures": sum(self.attempts.values()),
            "host_attempts": [{"account": a, "status": s, "count": n} for (a, s), n in self.attempts.items()]}
        if self.succeeded:
            args["succeeded"] = list(self.succeeded)
        return args


class Failures:
    def __init__(self, hosts: HostTrails) -> None:
        self.hosts = hosts
        self.bursts: Dict[Tuple[str, str], Burst] = {}  # (source, target) -> its latest burst

    def _source(self, rec: Record, host: str) -> Optional[str]:
        workstation = host_key(rec.args.get("workstation"))
        source = self.hosts.node(rec.src_ip, workstation)
        if not source or source == host or (workstation == host and not rec.src_ip):
            return None
        return source

    def burst(self, rec: Record, host: str, when: float, trail_id: Optional[str] = None) -> Optional[Burst]:
        """The burst a failed logon belongs to (opened when the source's last one ended); None for a local one."""
        source = self._source(rec, host)
        if source is None or not account_key(rec.user):
            return None
        burst = self.bursts.get((source, host))
        if burst is None or when > burst.opened.last + GAP:
            trail = trail_id or host_trail_id(host, ("failed", source, iso_seconds(when)))
            burst = Burst(Opened(trail, when, when, rec.src_ip, source if not rec.src_ip else None, rec.dest_host,
                                 None), source, host)
            self.bursts[(source, host)] = burst
        burst.opened.last = max(burst.opened.last, when)
        burst.opened.src_ip = burst.opened.src_ip or rec.src_ip
        return burst

    def attempt(self, burst: Burst, rec: Record) -> None:
        burst.attempts[(account_key(rec.user) or "?", _reason(rec))] += 1

    def succeeded(self, rec: Record, host: str) -> None:
        """A logon after failures: noted when its account was one of those tried from the same source."""
        source = self.hosts.node(rec.src_ip, host_key(rec.args.get("workstation")))
        burst = self.bursts.get((source or "", host))
        user = account_key(rec.user)
        if burst is not None and user and user not in burst.succeeded and any(a == user for a, _ in burst.attempts):
            burst.succeeded.append(user)
            if burst.fact is not None:
                burst.fact.args["succeeded"] = list(burst.succeeded)

    def forget_before(self, when: float) -> None:
        for key in [k for k, b in self.bursts.items() if b.opened.last + GAP < when]:
            del self.bursts[key]


def _reason(rec: Record) -> str:
    args = rec.args
    sub = args.get("sub_status_name")
    if sub and sub != "STATUS_SUCCESS":  # 4625: Status is the category, SubStatus the cause
        return sub
    return str(args.get("status_name") or args.get("status") or args.get("failure_reason") or "failed")
