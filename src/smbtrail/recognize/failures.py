"""Failed logons seen on the wire, as one `logon` command per source, target and burst.

Every SMB SESSION_SETUP the server refused and every Kerberos request the KDC answered with an error
(KDC_ERR_PREAUTH_REQUIRED aside: that is the first step of every logon) is a `session` record with the
account tried and how it failed. The recognizer puts a source's failures against one target in one trail
(whatever the account) and, when the trail goes quiet, makes its command: `spray` (SPRAY_ACCOUNTS or more
accounts), `brute_force` (BRUTE_ATTEMPTS or more failures of fewer accounts), else `failed`. Host logs give
the same command for their failed-logon events (fusion/failures.py), and fusion merges the two.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterable, List, Optional

from ..records import COMMAND, SESSION, Provenance, Record, account_key

SPRAY_ACCOUNTS = 3
BRUTE_ATTEMPTS = 5
FAILED = "\x00failed logons"  # the trail key's account slot for failures: no account name collides with it
MAX_FRAMES = 16  # frames kept per capture file in the command's provenance


def is_failed_logon(rec: Record) -> bool:
    return rec.kind == SESSION and rec.operation in ("session_setup", "as_req", "tgs_req") and (
        rec.status not in (None, "ok") and rec.user is not None)


def action(attempts: Counter) -> str:
    """spray, brute_force or failed, from (account, how it failed) -> count."""
    accounts = {a for a, _ in attempts}
    if len(accounts) >= SPRAY_ACCOUNTS:
        return "spray"
    return "brute_force" if sum(attempts.values()) >= BRUTE_ATTEMPTS else "failed"


def attempt_args(attempts: Counter, succeeded: Iterable[str] = ()) -> Dict[str, Any]:
    """accounts (in the order tried), every (account, status, count), the failure count, and the tried
    accounts that then logged on."""
    args: Dict[str, Any] = {
        "accounts": list(dict.fromkeys(a for a, _ in attempts)), "failures": sum(attempts.values()),
        "attempts": [{"account": a, "status": s, "count": n} for (a, s), n in attempts.items()]}
    succeeded = list(succeeded)
    if succeeded:
        args["succeeded"] = succeeded
    return args


def logon_command(records: List[Record]) -> Optional[Record]:
    """The `logon` command of one trail's failed logons (records in time order), None when there are none."""
    failed = [r for r in records if is_failed_logon(r)]
    if not failed:
        return None
    attempts: Counter = Counter()
    for rec in failed:
        attempts[(account_key(rec.user) or "?", str(rec.args.get("status_name") or rec.status))] += 1
    args = attempt_args(attempts)
    name = action(attempts)
    args["action"] = name
    args["protocols"] = sorted({r.protocol for r in failed if r.protocol})
    first = failed[0]
    frames: Dict[str, List[int]] = {}
    for rec in failed:
        for prov in rec.provenance:
            kept = frames.setdefault(prov.file, [])
            kept.extend(f for f in prov.frames[: MAX_FRAMES - len(kept)] if f not in kept)
    return Record(
        time=first.time, kind=COMMAND, command="logon", operation=name, args=args, src_ip=first.src_ip,
        dest_ip=first.dest_ip, dest_port=first.dest_port, src_host=first.src_host, dest_host=first.dest_host,
        user=args["accounts"][0] if len(args["accounts"]) == 1 else None, domain=first.domain,
        protocol=first.protocol, evidence=["network"], trail_id=first.trail_id, confidence=1.0,
        provenance=[Provenance(file=f, frames=fr) for f, fr in frames.items()],
        message=f"{args['failures']} failed logon(s) of {len(args['accounts'])} account(s)",
    )
