"""A readable timeline: one line per command, operation or host event, newest state last."""

from __future__ import annotations

from typing import IO, Iterable, List

from .. import lookups
from ..records import COMMAND, ENCRYPTED_ACTIVITY, ERROR, HOST_EVENT, OPERATION, SESSION, TRAIL, Record
from . import printable


def summary(rec: Record) -> str:
    if rec.kind == COMMAND:
        what = f"{rec.command} {rec.args.get('action', '')}".strip()
    elif rec.kind == OPERATION:
        what = f"{rec.rpc_interface or rec.rpc_uuid or '?'}.{rec.operation}"
    elif rec.kind == HOST_EVENT:
        what = f"event {rec.event_id} {rec.command or ''}".strip()
    elif rec.kind == ENCRYPTED_ACTIVITY:
        a = rec.args
        what = (f"encrypted: {a.get('messages_to_server', 0)}+{a.get('messages_to_client', 0)} msgs, "
                f"{a.get('bytes_to_server', 0)}/{a.get('bytes_to_client', 0)} B")
        if a.get("observed"):
            what += " | " + "; ".join(str(n) for n in a["observed"])
    elif rec.kind == TRAIL:
        cmds = ", ".join(c.get("command", "?") for c in rec.args.get("commands", [])) or "no command"
        what = (f"TRAIL {cmds} | stage={rec.args.get('stage', '-')} score={rec.args.get('score', '-')} "
                f"evidence={'+'.join(rec.evidence)} joins={','.join(rec.join) or '-'}")
        return printable(what, 300)
    elif rec.kind == ERROR:
        return f"ERROR {printable(rec.message, 300)}"
    else:
        what = f"{rec.kind} {rec.operation or ''} {rec.share or ''} {rec.path or ''}".strip()
    details = [f"{k}={printable(rec.args[k], 120)}" for k in lookups.argument_names("timeline")
               if rec.args.get(k) not in (None, "", [])]
    flags = [f for f, on in (("sealed", rec.sealed), ("encrypted", rec.encrypted), ("decrypted", rec.decrypted),
                             ("inferred", rec.inferred), ("partial", rec.partial)) if on]
    if rec.inferred and rec.confidence:
        flags.append(f"confidence={rec.confidence:.2f}")
    if rec.status and rec.status != "ok":
        flags.append(f"status={rec.status}")
    limit = 300 if rec.kind == ENCRYPTED_ACTIVITY else 120
    return " ".join([printable(what, limit)] + details + ([f"[{','.join(flags)}]"] if flags else []))


def write_table(records: Iterable[Record], out: IO[str], verbose: bool = False) -> int:
    count = 0
    header = f"{'time (UTC)':<24} {'account':<22} {'source':<22} {'target':<22} what"
    out.write(header + "\n" + "-" * len(header) + "\n")
    for rec in records:
        count += 1
        if not verbose and not _shown(rec):
            continue
        out.write(_line(rec) + "\n")
    return count


def _shown(rec: Record) -> bool:
    """The default view: what was done (commands, unexplained operations) and what hides it."""
    if rec.kind in (COMMAND, ERROR, ENCRYPTED_ACTIVITY, TRAIL):
        return True
    if rec.kind == OPERATION:
        return rec.command is None
    if rec.kind == SESSION:
        return rec.protocol != "kerberos"
    return False


def _line(rec: Record) -> str:
    account = f"{rec.domain}\\{rec.user}" if rec.domain and rec.user else (rec.user or "-")
    src = rec.src_host or rec.src_ip or "-"
    dst = rec.dest_host or rec.dest_ip or "-"
    cols: List[str] = [rec.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:23], printable(account, 22),
                       printable(src, 22), printable(dst, 22)]
    return f"{cols[0]:<24} {cols[1]:<22} {cols[2]:<22} {cols[3]:<22} {summary(rec)}"
