"""Failed logons: one trail per source and target for a burst of failures, with every account tried and
how each attempt failed.

A failure is a 4625 (the target refused a logon), a 4771 (the KDC refused Kerberos pre-authentication), a
4776 or 4768 with a failure status (the DC refused NTLM validation or a TGT), or Samba's failed
Authentication. Failures from one source (its address, else the workstation it named) against one target
with less than GAP between them are one burst; when it ends it becomes a `logon` command whose action says
what it looks like: `spray` (SPRAY_ACCOUNTS or more accounts), `brute_force` (one or two accounts, BRUTE_ATTEMPTS
or more failures), else `failed`. A later successful logon of a tried account from the same source is
listed (`succeeded`). Network-side failures get the same command from the recognizer (recognize/failures.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ..records import COMMAND, Provenance, Record, from_epoch
from .hostside import HostTrails, Opened, account, host_trail_id, iso_seconds
from .identity import host_key

GAP = 1800.0  # seconds between two failures of one burst (sprays go slowly to stay under lockout)
SPRAY_ACCOUNTS = 3
BRUTE_ATTEMPTS = 5
MAX_PROVENANCE = 12  # record ids kept per file
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
    attempts: Counter = field(default_factory=Counter)  # (account, status name) -> failures
    succeeded: List[str] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    provenance: Dict[str, List[int]] = field(default_factory=dict)
    domain: Optional[str] = None


class Failures:
    def __init__(self, hosts: HostTrails) -> None:
        self.hosts = hosts
        self.bursts: Dict[Tuple[str, str], Burst] = {}  # (source, target) -> its open burst
        self.ended: List[Burst] = []  # bursts a later failure of the same source closed, not yet flushed

    def add(self, rec: Record, host: str, when: float) -> Optional[Opened]:
        """The burst a failed logon belongs to; None for a local one (console, service: no other host)."""
        user, workstation = account(rec.user), host_key(rec.args.get("workstation"))
        source = self.hosts.node(rec.src_ip, workstation)
        if not user or not source or source == host or (workstation == host and not rec.src_ip):
            return None
        burst = self.bursts.pop((source, host), None)
        if burst is None or when > burst.opened.last + GAP:
            if burst is not None:
                self.ended.append(burst)
            opened = Opened(host_trail_id(host, ("failed", source, iso_seconds(when))), when, when, rec.src_ip,
                            source, rec.dest_host, None)
            burst = Burst(opened, source, host)
        burst.opened.last = max(burst.opened.last, when)
        burst.opened.src_ip = burst.opened.src_ip or rec.src_ip
        burst.attempts[(user, _reason(rec))] += 1
        burst.events[rec.event_id or 0] += 1
        burst.domain = burst.domain or rec.domain
        for prov in rec.provenance:
            kept = burst.provenance.setdefault(prov.file, [])
            kept.extend(i for i in prov.record_ids[: MAX_PROVENANCE - len(kept)] if i not in kept)
        self.bursts[(source, host)] = burst
        return burst.opened

    def succeeded(self, rec: Record, host: str) -> None:
        """A logon after failures: the account the burst was after, when it was one of those tried."""
        source = self.hosts.node(rec.src_ip, host_key(rec.args.get("workstation")))
        burst = self.bursts.get((source or "", host))
        user = account(rec.user)
        if burst is not None and user and user not in burst.succeeded and any(a == user for a, _ in burst.attempts):
            burst.succeeded.append(user)

    def flush(self, before: float) -> Iterator[Record]:
        """The command of every burst that ended before `before` (its last failure GAP earlier)."""
        ended, self.ended = self.ended, []
        for key in [k for k, b in self.bursts.items() if b.opened.last + GAP < before]:
            ended.append(self.bursts.pop(key))
        for burst in sorted(ended, key=lambda b: b.opened.first):
            yield _command(burst)


def _reason(rec: Record) -> str:
    args = rec.args
    sub = args.get("sub_status_name")
    if sub and sub != "STATUS_SUCCESS":  # 4625: Status is the category, SubStatus the cause
        return sub
    return str(args.get("status_name") or args.get("status") or args.get("failure_reason") or "failed")


def _command(burst: Burst) -> Record:
    accounts = list(dict.fromkeys(a for a, _ in burst.attempts))
    failures = sum(burst.attempts.values())
    if len(accounts) >= SPRAY_ACCOUNTS:
        action = "spray"
    elif failures >= BRUTE_ATTEMPTS:
        action = "brute_force"
    else:
        action = "failed"
    attempts = [{"account": a, "status": s, "count": n} for (a, s), n in burst.attempts.items()]
    args = {"action": action, "accounts": accounts, "failures": failures, "attempts": attempts,
            "host_events": sorted(burst.events)}
    if burst.succeeded:
        args["succeeded"] = burst.succeeded
    opened = burst.opened
    return Record(
        time=from_epoch(opened.first), kind=COMMAND, command="logon", operation=action, args=args,
        src_ip=opened.src_ip, src_host=None if opened.src_ip else burst.source, dest_host=opened.dest_host,
        domain=burst.domain, user=accounts[0] if len(accounts) == 1 else None, evidence=["host"],
        join=["failed_logon"], confidence=1.0, trail_id=opened.trail_id, inferred=False,
        provenance=[Provenance(file=f, record_ids=ids) for f, ids in burst.provenance.items()],
        message=f"{failures} failed logon(s) of {len(accounts)} account(s) from {burst.source}",
    )
