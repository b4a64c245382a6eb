"""How much of the user's own trail survives SMB3 encryption: the paper's Tables 3-4 for their network.

Each capture is rewritten as a sensor would have seen it with no encryption, share-only encryption
(IPC$ in clear) and server-wide encryption (rewrite.py). The cleartext trail (with any
keys the user gave, so already-encrypted sessions count too) is the reference; under each setting
every command of it is looked for again, once in the network records alone (no secrets: the sensor
has none) and once in the records fused with the host logs.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from contextlib import ExitStack
from datetime import datetime
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..engine import Options, analyze, network_records
from ..output import printable
from ..pydantic_api import BaseModel, Field
from ..records import COMMAND, ENCRYPTED_ACTIVITY, ERROR, FILE, OPERATION, SESSION, TREE, Record
from ..tempdirs import COVERAGE, LockedTempdir
from .rewrite import SCOPES, RewriteStats, WhatIfError, rewrite_capture

OBTAINED, INFERRED, LOST, PENDING, NO_HOSTLOG = "obtained", "inferred", "not-obtained", "pending", "no-hostlog"


class TrailItem(BaseModel):
    """One command of the cleartext trail and whether it is still obtained under each setting."""

    time: datetime
    command: str
    action: Optional[str] = None
    user: Optional[str] = None
    src: Optional[str] = None
    dest: Optional[str] = None
    transport: Optional[str] = None
    network: Dict[str, str] = Field(default_factory=dict)  # scope -> obtained | inferred | not-obtained
    fused: Dict[str, str] = Field(default_factory=dict)  # scope -> obtained | not-obtained | pending


class ScopeResult(BaseModel):
    scope: str
    commands: int = 0
    network_obtained: int = 0
    network_inferred: int = 0  # recognized only from encrypted message sizes
    fused_obtained: Optional[int] = None  # None: no host logs, or fusion not available
    counts: Dict[str, List[int]] = Field(default_factory=dict)  # kind -> [visible, in the cleartext]
    encrypted_activity: int = 0
    encrypted_activity_with_user: int = 0
    rewrites: List[RewriteStats] = Field(default_factory=list)


class CoverageReport(BaseModel):
    captures: List[str]
    hostlogs: List[str] = Field(default_factory=list)
    scopes: List[str]
    fusion: str = "no host logs"  # ok | no host logs | pending: <why>
    items: List[TrailItem] = Field(default_factory=list)
    results: List[ScopeResult] = Field(default_factory=list)
    errors: List[str] = Field(default_factory=list)
    shown: Dict[str, str] = Field(default_factory=dict, exclude=True)  # rewritten file -> name the user gave

    def result(self, scope: str) -> ScopeResult:
        return next(r for r in self.results if r.scope == scope)

    def markdown(self) -> str:
        return render_markdown(self)

    def text(self) -> str:
        return render_text(self)


# ---------------------------------------------------------------- matching commands across runs

def _places(rec: Record) -> set:
    """Where a command ran: its target address and name (empty when neither is known)."""
    return {p for p in (rec.dest_ip, (rec.dest_host or "").lower()) if p}


class _Pool:
    """Commands of one run, each usable once, found by command name and a shared target."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.by_name: Dict[str, List[list]] = defaultdict(list)
        for rec in records:
            self.by_name[(rec.command or "").lower()].append([_places(rec), False])

    def take(self, item: Record) -> bool:
        places = _places(item)
        for entry in self.by_name.get((item.command or "").lower(), []):
            if not entry[1] and (entry[0] & places or not entry[0] or not places):
                entry[1] = True
                return True
        return False


def _commands(records: Sequence[Record], inferred: bool = False) -> List[Record]:
    return [r for r in records if r.kind == COMMAND and r.command and bool(r.inferred) == inferred]


def _scope_network(items: List[TrailItem], reference: List[Record], records: List[Record],
                   result: ScopeResult) -> None:
    seen, guessed = _Pool(_commands(records)), _Pool(_commands(records, inferred=True))
    for item, rec in zip(items, reference):
        state = OBTAINED if seen.take(rec) else INFERRED if guessed.take(rec) else LOST
        item.network[result.scope] = state
        result.network_obtained += state == OBTAINED
        result.network_inferred += state == INFERRED


def _scope_fused(items: List[TrailItem], reference: List[Record], records: Optional[List[Record]],
                 result: ScopeResult, hostlogs: bool) -> None:
    if records is None:
        for item in items:
            item.fused[result.scope] = PENDING if hostlogs else NO_HOSTLOG
        return
    pool = _Pool(r for r in records if r.kind == COMMAND and r.command and (not r.inferred or "host" in r.evidence))
    result.fused_obtained = 0
    for item, rec in zip(items, reference):
        found = pool.take(rec) or item.network.get(result.scope) == OBTAINED  # host logs never take away
        item.fused[result.scope] = OBTAINED if found else LOST
        result.fused_obtained += found


def _visibility(reference: List[Record], records: List[Record], result: ScopeResult) -> None:
    for kind in (SESSION, TREE, FILE, OPERATION):
        result.counts[kind] = [sum(r.kind == kind and not r.inferred for r in records),
                               sum(r.kind == kind for r in reference)]
    activity = [r for r in records if r.kind == ENCRYPTED_ACTIVITY]
    result.encrypted_activity = len(activity)
    result.encrypted_activity_with_user = sum(bool(r.user) for r in activity)


def _item(rec: Record) -> TrailItem:
    return TrailItem(time=rec.time, command=rec.command or "", action=rec.args.get("action") or rec.operation,
                     user=rec.user, src=rec.src_ip or rec.src_host, dest=rec.dest_ip or rec.dest_host,
                     transport=rec.transport)


# ---------------------------------------------------------------- running the engine per setting

def _without_secrets(options: Options) -> Options:
    """The sensor of the what-if has no keys: anything encrypted stays encrypted."""
    return options.model_copy(update={"keys_file": None, "passwords": [], "nt_hashes": [], "keytab": None})


def _fused(captures: List[str], hostlogs: Sequence[str], options: Options, report: CoverageReport
           ) -> Optional[List[Record]]:
    if not hostlogs or not report.fusion.startswith(("ok", "no host")):
        return None
    try:
        records = list(analyze(captures, hostlogs, options.model_copy(update={"fuse": True})))
    except (ImportError, NotImplementedError) as exc:
        report.fusion = f"pending: fusion engine not available ({type(exc).__name__}: {exc})"
        return None
    except Exception as exc:  # a fusion failure must not cost the network-only answer
        report.fusion = f"pending: fusion failed ({type(exc).__name__}: {exc})"
        report.errors.append(report.fusion)
        return None
    report.fusion = "ok"
    return records


def _rewrite_all(captures: List[Tuple[str, str]], scope: str, workdir: str, report: CoverageReport,
                 result: ScopeResult) -> List[str]:
    if scope == "none":
        return [path for _, path in captures]
    out = []
    for index, (shown, path) in enumerate(captures):
        dst = os.path.join(workdir, scope, f"{index:04d}-{os.path.basename(path)}")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            stats = rewrite_capture(path, dst, scope)
        except WhatIfError as exc:
            report.errors.append(f"{shown}: {scope} what-if: {exc}")
            continue
        stats.src, stats.dst = shown, dst
        result.rewrites.append(stats)
        report.errors += [f"{scope} what-if: {w.replace(path, shown)}" for w in stats.warnings]
        report.shown[dst] = shown
        out.append(dst)
    return out


def _readable(captures: Sequence[str], max_expansion: float, stack: ExitStack, report: CoverageReport
              ) -> List[Tuple[str, str]]:
    from ..capture.inputs import expand, readable_files

    found: List[Tuple[str, str]] = []
    for source in expand(captures, max_expansion):
        if source.error:
            report.errors.append(f"{source.path}: {source.error}")
            continue
        if source.kind == "zeek":
            report.errors.append(f"{source.path}: a Zeek log: what-if encryption rewrites captures only")
            continue
        for display, path, problem in stack.enter_context(readable_files(source, max_expansion)):
            if problem or path is None:
                report.errors.append(f"{display}: {problem}")
            else:
                found.append((display, path))
    return found


def coverage_report(captures: Sequence[str], hostlogs: Sequence[str] = (), options: Optional[Options] = None,
                    scopes: Sequence[str] = SCOPES, keep_dir: Optional[str] = None) -> CoverageReport:
    """The cleartext trail of `captures`, and which of its commands each encryption setting leaves
    obtainable from the network alone and from the network fused with `hostlogs`."""
    options = options or Options()
    report = CoverageReport(captures=list(captures), hostlogs=list(hostlogs), scopes=list(scopes))
    with ExitStack() as stack:
        workdir = keep_dir or stack.enter_context(LockedTempdir(COVERAGE)).path
        inputs = _readable(captures, options.max_expansion, stack, report)
        reference = _errors_out(list(network_records([p for _, p in inputs], options)), report)
        commands = sorted(_commands(reference), key=lambda r: r.time)
        report.items = [_item(r) for r in commands]
        for scope in scopes:
            result = ScopeResult(scope=scope, commands=len(commands))
            paths = _rewrite_all(inputs, scope, workdir, report, result)
            sensor = options if scope == "none" else _without_secrets(options)
            records = _errors_out(list(network_records(paths, sensor)), report) if paths else []
            _scope_network(report.items, commands, records, result)
            _scope_fused(report.items, commands, _fused(paths, hostlogs, sensor, report), result, bool(hostlogs))
            _visibility(reference, records, result)
            report.results.append(result)
    return report


def _errors_out(records: List[Record], report: CoverageReport) -> List[Record]:
    for rec in records:
        if rec.kind != ERROR or not rec.message:
            continue
        message = rec.message
        for dst, shown in report.shown.items():
            message = message.replace(dst, shown)  # the rewrite copies the damage: one note for both
        if message not in report.errors:
            report.errors.append(message)
    return [r for r in records if r.kind != ERROR]


# ---------------------------------------------------------------- rendering

SYMBOL = {OBTAINED: "yes", INFERRED: "inferred", LOST: "no", PENDING: "pending", NO_HOSTLOG: "-"}


def _summary_rows(report: CoverageReport) -> List[List[str]]:
    rows = []
    for res in report.results:
        fused = f"{res.fused_obtained}/{res.commands}" if res.fused_obtained is not None else \
            "pending" if report.hostlogs else "-"
        counts = {k: f"{v[0]}/{v[1]}" for k, v in res.counts.items()}
        rows.append([res.scope, f"{res.network_obtained}/{res.commands}", str(res.network_inferred), fused,
                     counts.get(OPERATION, "-"), counts.get(FILE, "-"), counts.get(TREE, "-"),
                     f"{res.encrypted_activity_with_user}/{res.encrypted_activity}"])
    return rows


SUMMARY_HEAD = ["encryption", "commands, network only", "inferred from sizes", "commands, network + host logs",
                "RPC operations", "file operations", "share mappings", "encrypted bursts with account"]


def _item_rows(report: CoverageReport, escape: Callable[[str], str]) -> List[List[str]]:
    rows = []
    for item in report.items:
        cells = [item.time.strftime("%Y-%m-%d %H:%M:%S"), item.user or "?", f"{item.src or '?'} → {item.dest or '?'}",
                 f"{item.command} {item.action or ''}".strip(), item.transport or ""]
        for scope in report.scopes:
            cells.append(f"{SYMBOL[item.network.get(scope, LOST)]} / {SYMBOL[item.fused.get(scope, PENDING)]}")
        rows.append([escape(c) for c in cells])
    return rows


def _conclusion(report: CoverageReport) -> List[str]:
    lines = []
    for res in report.results:
        fused = "" if res.fused_obtained is None else f", {res.fused_obtained} with the host logs"
        lines.append(f"{res.scope}: {res.network_obtained} of {res.commands} commands from the network alone{fused}")
    return lines


def _md_escape(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: CoverageReport) -> str:
    out = ["# Trail coverage under SMB3 encryption", "",
           f"Captures: {len(report.captures)}; host logs: {len(report.hostlogs)}; fusion: {_md_escape(report.fusion)}",
           ""]
    out += _md_table(SUMMARY_HEAD, _summary_rows(report))
    out += ["", *[f"- {_md_escape(line)}" for line in _conclusion(report)], ""]
    head = ["time (UTC)", "account", "source → target", "command", "transport"]
    head += [f"{scope}: network / fused" for scope in report.scopes]
    out += ["## Commands of the cleartext trail", ""] + _md_table(head, _item_rows(report, _md_escape))
    notes = _notes(report)
    if notes:
        out += ["", "## Notes", "", *[f"- {_md_escape(n)}" for n in notes]]
    return "\n".join(out) + "\n"


def _md_table(head: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _notes(report: CoverageReport) -> List[str]:
    notes = list(report.errors)
    for res in report.results:
        for stats in res.rewrites:
            notes += [f"{stats.src}: {res.scope}: {n.client} -> {n.server} left as captured: {n.reason}"
                      for n in stats.untouched]
            if stats.smb2x_connections:
                notes.append(f"{stats.src}: {stats.smb2x_connections} connection(s) negotiated SMB 2.x, which "
                             "cannot encrypt: the what-if assumes the client would have used SMB 3")
    return notes


def render_text(report: CoverageReport) -> str:
    out = [f"trail coverage: {len(report.items)} command(s) in the cleartext trail; fusion: {report.fusion}", ""]
    rows = [SUMMARY_HEAD] + _summary_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_HEAD))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    out += [""] + _conclusion(report)
    head = ["time", "account", "source → target", "command", "transport"] + list(report.scopes)
    rows = [head] + _item_rows(report, printable)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out += [""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    out += [f"note: {n}" for n in (printable(n) for n in _notes(report))]
    return "\n".join(out) + "\n"
