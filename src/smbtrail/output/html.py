"""A self-contained HTML report: host graph (A->B->C, inline SVG), attack timeline, and each trail with
its commands, evidence, joins and provenance. No scripts, no external files.

Every string that came from a capture or a log (host names, accounts, service names, paths, file
names, messages) is attacker-controlled and goes through `html.escape` before it is written.
Memory: trail records are kept (one per trail); commands and errors shown are capped.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import IO, Any, Dict, Iterable, List, Optional, Tuple

from .. import lookups
from ..records import COMMAND, ERROR, TRAIL, Record
from . import printable

MAX_ERRORS = 200
MAX_TRAILS_SHOWN = 2000
MAX_COMMANDS_PER_TRAIL = 60


def e(value: Any) -> str:
    """Escaped for HTML, control characters and undecodable name bytes shown as escapes (never raw ESC/BEL)."""
    return html.escape("" if value is None else printable(value), quote=True)


def write_html(records: Iterable[Record], out: IO[str]) -> int:
    count, kinds, trails, errors, files, commands = 0, Counter(), [], [], Counter(), []
    for rec in records:
        count += 1
        kinds[rec.kind] += 1
        if rec.kind == TRAIL:
            trails.append(rec)
        elif rec.kind == ERROR and len(errors) < MAX_ERRORS:
            errors.append(rec)
        elif rec.kind == COMMAND and len(commands) < MAX_TRAILS_SHOWN:
            commands.append(rec)
        if rec.kind != TRAIL:
            for prov in rec.provenance[:2]:
                files[prov.file] += 1
    trails.sort(key=lambda t: t.time)
    out.write(_page(trails, errors, kinds, files, count, commands))
    return count


def _page(trails: List[Record], errors: List[Record], kinds: Counter, files: Counter, count: int,
          commands: List[Record]) -> str:
    active = [t for t in trails if t.args.get("commands")]
    quiet = [t for t in trails if not t.args.get("commands")]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>smbtrail report</title><style>", CSS, "</style></head><body>",
        f"<header><h1>smbtrail</h1><p class='sub'>lateral movement trails from SMB/MS-RPC captures and Windows "
        f"event logs &middot; generated {e(now)}</p>{_stats(kinds, count, active, trails)}</header><main>",
        "<section><h2>Host graph</h2>", _graph(active), "</section>",
        "<section><h2>Attack timeline</h2>", _timeline(active), "</section>",
        "" if active else _unfused(commands),
        "<section><h2>Trails</h2>", "".join(_card(t) for t in active[:MAX_TRAILS_SHOWN]),
        _more(len(active) - MAX_TRAILS_SHOWN), _quiet(quiet), "</section>",
        _errors(errors), _sources(files), "</main></body></html>",
    ]
    return "".join(parts)


def _stats(kinds: Counter, count: int, active: List[Record], trails: List[Record]) -> str:
    both = sum(1 for t in active if {"network", "host"} <= set(t.evidence))
    top = max((t.args.get("score", 0) for t in active), default=0)
    cells = [("records", count), ("trails with commands", len(active)), ("all trails", len(trails)),
             ("network + host", both), ("host events", kinds.get("host_event", 0)),
             ("encrypted bursts", kinds.get("encrypted_activity", 0)), ("errors", kinds.get(ERROR, 0)),
             ("highest score", top)]
    return "<div class='stats'>" + "".join(
        f"<div class='stat'><b>{e(v)}</b><span>{e(k)}</span></div>" for k, v in cells) + "</div>"


# -- host graph ------------------------------------------------------------------------------------------
def _graph(trails: List[Record]) -> str:
    edges: Dict[Tuple[str, str], List[Record]] = defaultdict(list)
    labels: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    for t in trails:
        src = t.args.get("src_node") or t.src_ip or "unknown source"
        dest = t.args.get("dest_node") or t.dest_ip or "unknown target"
        edges[(src, dest)].append(t)
        labels.setdefault(src, (t.src_host, t.src_ip))
        labels.setdefault(dest, (t.dest_host, t.dest_ip))
    if not edges:
        return "<p class='muted'>No trail with a command.</p>"
    level = _levels(list(edges))
    columns: Dict[int, List[str]] = defaultdict(list)
    for node in sorted(level, key=lambda n: (level[n], n)):
        columns[level[node]].append(node)
    row, col_w, top = 96, 290, 90
    width = 60 + (max(columns) + 1) * col_w
    height = top + max(len(c) for c in columns.values()) * row + 50
    pos = {n: (30 + lvl * col_w, top + i * row + (lvl % 2) * 34)
           for lvl, nodes in columns.items() for i, n in enumerate(nodes)}
    svg = [f"<svg class='graph' viewBox='0 0 {width} {height}' width='{width}' role='img' "
           "aria-label='hosts and the trails between them'><defs><marker id='arrow' viewBox='0 0 10 10' "
           "refX='9' refY='5' markerWidth='7' markerHeight='7' orient='auto-start-reverse'>"
           "<path d='M0,0 L10,5 L0,10 z' fill='#64748b'/></marker></defs>"]
    for (src, dest), items in edges.items():
        svg.append(_edge(pos[src], pos[dest], items))
    for node, (x, y) in pos.items():
        name, ip = labels.get(node, (None, None))
        svg.append(f"<g class='node'><title>{e(name or node)}</title>"
                   f"<rect x='{x}' y='{y}' width='200' height='52' rx='10'/>"
                   f"<text x='{x + 100}' y='{y + 22}' class='name'>{e(_clip(_short(name) or node, 24))}</text>"
                   f"<text x='{x + 100}' y='{y + 40}' class='ip'>{e(ip or '')}</text></g>")
    return "".join(svg) + "</svg>"


def _levels(edges: List[Tuple[str, str]]) -> Dict[str, int]:
    """Column of each host: sources left, each hop one column right (cycles stop at the node count)."""
    nodes = {n for edge in edges for n in edge}
    level = {n: 0 for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for src, dest in edges:
            if src != dest and level[dest] < level[src] + 1 <= len(nodes):
                level[dest], changed = level[src] + 1, True
        if not changed:
            break
    return level


def _edge(a: Tuple[int, int], b: Tuple[int, int], items: List[Record]) -> str:
    (x1, y1), (x2, y2) = (a[0] + 200, a[1] + 26), (b[0], b[1] + 26)
    skip = max(0, round((b[0] - a[0]) / 290) - 1)  # columns jumped over: arc above the hosts between
    if x2 <= x1:  # same column or backwards: leave from the bottom, arrive on top
        x1, y1, x2, y2 = a[0] + 100, a[1] + 52, b[0] + 100, b[1]
    bend = 70 * skip
    mid_x, mid_y = (x1 + x2) / 2, min(y1, y2) - bend - 10
    score = max(t.args.get("score", 0) for t in items)
    names = Counter(c["command"] for t in items for c in t.args.get("commands", []))
    label = ", ".join(f"{n}" + (f" ×{k}" if k > 1 else "") for n, k in names.most_common(3))
    return (f"<g class='edge {_level(score)}'><path d='M{x1},{y1} C{x1 + 40},{y1 - bend * 1.3} {x2 - 40},"
            f"{y2 - bend * 1.3} {x2},{y2}' marker-end='url(#arrow)'/><text x='{mid_x}' y='{mid_y}'>"
            f"{e(_clip(label, 34))}</text><title>{e(label)} (score {e(score)})</title></g>")


# -- timeline ---------------------------------------------------------------------------------------------
def _timeline(trails: List[Record]) -> str:
    if not trails:
        return "<p class='muted'>Nothing to show.</p>"
    rows = []
    for t in trails[:MAX_TRAILS_SHOWN]:
        a = t.args
        hop = f"hop {a.get('hop', 0)}" + (" &larr; pivot" if a.get("previous_trail_id") else "")
        rows.append(
            f"<tr><td class='time'>{e(_when(t.time))}</td><td>{hop}</td>"
            f"<td><a href='#t-{e(t.trail_id)}'>{e(_short(t.src_host) or t.src_ip or '?')} &rarr; "
            f"{e(_short(t.dest_host) or t.dest_ip or '?')}</a></td><td>{e(_account(t))}</td>"
            f"<td><code class='nowrap'>{e(t.command or '')}</code></td><td>{_stage(a.get('stage'))}</td>"
            f"<td>{_score(a.get('score', 0))}</td><td>{_evidence(t.evidence)}</td></tr>")
    return ("<table class='timeline'><thead><tr><th>start (UTC)</th><th>chain</th><th>source &rarr; target</th>"
            "<th>account</th><th>command</th><th>stage</th><th>suspicion</th><th>evidence</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


# -- trail cards --------------------------------------------------------------------------------------------
def _card(t: Record) -> str:
    a = t.args
    reasons = "".join(f"<li>{e(r)}</li>" for r in a.get("reasons", []))
    joins = ", ".join(e(j) for j in t.join) or "none (one side only)"
    conf = f" &middot; confidence {t.confidence:.2f}" if t.confidence is not None else ""
    extra = []
    if a.get("pipes"):
        extra.append("<p><b>named pipes</b> " + ", ".join(f"<code>{e(p)}</code>" for p in a["pipes"]) + "</p>")
    if a.get("conflicts"):
        extra.append("<p class='warn'><b>conflicts</b> " + e(_flat(a["conflicts"])) + "</p>")
    flags = [f for f, on in (("sealed RPC", t.sealed), ("SMB3 encrypted", t.encrypted), ("partial input", t.partial))
             if on]
    if flags:
        extra.append("<p>" + " ".join(f"<span class='flag'>{e(f)}</span>" for f in flags) + "</p>")
    return (
        f"<article class='card {_level(a.get('score', 0))}' id='t-{e(t.trail_id)}'>"
        f"<div class='head'><h3>{e(_host(t.src_host, t.src_ip))} &rarr; {e(_host(t.dest_host, t.dest_ip))}</h3>"
        f"{_score(a.get('score', 0))}</div>"
        f"<p class='meta'>{e(_account(t))} &middot; {e(_when(t.time))} &ndash; {e(_when_text(a.get('end')))} "
        f"&middot; {_stage(a.get('stage'))} &middot; {_evidence(t.evidence)} &middot; trail <code>{e(t.trail_id)}"
        f"</code></p><p class='meta'>joined on: {joins}{conf}</p>"
        + (f"<ul class='reasons'>{reasons}</ul>" if reasons else "") + "".join(extra)
        + _commands(a.get("commands", [])) + _provenance(t) + "</article>")


def _commands(commands: List[Dict[str, Any]]) -> str:
    rows = []
    for c in commands[:MAX_COMMANDS_PER_TRAIL]:
        args = c.get("args") or {}
        shown = "".join(f"<div><span class='k'>{e(k)}</span> <code>{e(_clip(args[k], 400))}</code></div>"
                        for k in lookups.argument_names("report") if args.get(k))
        rows.append(f"<tr><td class='time'>{e(_when_text(c.get('time')))}</td><td><code class='nowrap'>"
                    f"{e(c.get('command'))}</code></td><td>{shown}</td><td>{_evidence(c.get('evidence') or [])}</td></tr>")
    more = len(commands) - MAX_COMMANDS_PER_TRAIL
    tail = f"<tr><td colspan='4' class='muted'>{more} more</td></tr>" if more > 0 else ""
    return ("<table class='cmds'><thead><tr><th>time</th><th>command</th><th>arguments</th><th>evidence</th></tr>"
            "</thead><tbody>" + "".join(rows) + tail + "</tbody></table>")


def _unfused(commands: List[Record]) -> str:
    """Commands of a run that made no trail (captures or host logs alone are not fused)."""
    if not commands:
        return ""
    rows = []
    for c in sorted(commands, key=lambda r: r.time)[:MAX_TRAILS_SHOWN]:
        args = c.args or {}
        shown = "".join(f"<div><span class='k'>{e(k)}</span> <code>{e(_clip(args[k], 400))}</code></div>"
                        for k in lookups.argument_names("report") if args.get(k))
        rows.append(f"<tr><td class='time'>{e(_when(c.time))}</td><td>{e(_host(c.src_host, c.src_ip))} &rarr; "
                    f"{e(_host(c.dest_host, c.dest_ip))}</td><td>{e(_account(c))}</td><td><code class='nowrap'>"
                    f"{e(_command_text(c))}</code></td><td>{shown}</td><td>{_evidence(c.evidence)}</td></tr>")
    return ("<section><h2>Commands</h2><p class='muted'>Recognised commands of inputs that were not fused "
            "into trails (captures or host logs alone).</p><table class='cmds'><thead><tr><th>time (UTC)</th>"
            "<th>source &rarr; target</th><th>account</th><th>command</th><th>arguments</th><th>evidence</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>")


def _command_text(rec: Record) -> str:
    return f"{rec.command or ''} {rec.args.get('action', '')}".strip()


def _provenance(t: Record) -> str:
    items = []
    for p in t.provenance:
        where = []
        if p.frames:
            where.append("frames " + ", ".join(map(str, p.frames[:12])) + (" …" if len(p.frames) > 12 else ""))
        if p.record_ids:
            where.append("records " + ", ".join(map(str, p.record_ids[:12])) + (" …" if len(p.record_ids) > 12 else ""))
        items.append(f"<li><code>{e(p.file)}</code> <span class='muted'>{e('; '.join(where))}</span></li>")
    return f"<details><summary>provenance ({len(items)} files)</summary><ul class='prov'>{''.join(items)}</ul></details>"


def _quiet(trails: List[Record]) -> str:
    if not trails:
        return ""
    rows = "".join(f"<li>{e(_when(t.time))} {e(_host(t.src_host, t.src_ip))} &rarr; "
                   f"{e(_host(t.dest_host, t.dest_ip))} {e(_account(t))} {_evidence(t.evidence)}</li>"
                   for t in trails[:MAX_TRAILS_SHOWN])
    return f"<details class='quiet'><summary>{len(trails)} trails without a command</summary><ul>{rows}</ul></details>"


def _errors(errors: List[Record]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li class='{'partial' if r.partial else 'error'}'>{e(r.message)}</li>" for r in errors)
    return f"<section><h2>Inputs not fully read</h2><ul class='errors'>{items}</ul></section>"


def _sources(files: Counter) -> str:
    items = "".join(f"<li><code>{e(f)}</code> <span class='muted'>{n} records</span></li>"
                    for f, n in files.most_common(50))
    return f"<section><h2>Inputs</h2><ul class='prov'>{items}</ul></section>" if items else ""


def _more(n: int) -> str:
    return f"<p class='muted'>{n} more trails not shown.</p>" if n > 0 else ""


# -- small pieces ---------------------------------------------------------------------------------------------
def _level(score: int) -> str:
    return "high" if score >= 50 else "mid" if score >= 25 else "low" if score >= 10 else "info"


def _score(score: int) -> str:
    score = max(0, min(100, int(score or 0)))
    return (f"<span class='score {_level(score)}' title='suspicion {score}/100'><i style='width:{score}%'></i>"
            f"<b>{score}</b></span>")


def _stage(stage: Optional[str]) -> str:
    return f"<span class='stage'>{e((stage or 'none').replace('_', ' '))}</span>"


def _evidence(evidence: Iterable[str]) -> str:
    return "".join(f"<span class='ev {e(x)}'>{e(x)}</span>" for x in sorted(evidence))


def _host(name: Optional[str], ip: Optional[str]) -> str:
    if name and ip and name != ip:
        return f"{name} ({ip})"
    return name or ip or "?"


def _short(name: Optional[str]) -> Optional[str]:
    return name.split(".", 1)[0] if name and not name.replace(".", "").isdigit() else name


def _account(t: Record) -> str:
    if t.user and t.domain:
        return f"{t.domain}\\{t.user}"
    return t.user or "unknown account"


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _when_text(value: Optional[str]) -> str:
    return (value or "").replace("T", " ")[:19]


def _clip(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {' / '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items())
    return str(value)


CSS = """
:root{--bg:#f6f7fb;--card:#fff;--ink:#1e293b;--muted:#64748b;--line:#e2e8f0;--high:#dc2626;--mid:#ea580c;
--low:#ca8a04;--info:#94a3b8;--net:#2563eb;--host:#059669}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{background:linear-gradient(120deg,#0f172a,#1e3a8a);color:#fff;padding:28px 40px 22px}
h1{margin:0;font-size:28px;letter-spacing:.5px}.sub{margin:4px 0 18px;color:#cbd5e1}
.stats{display:flex;flex-wrap:wrap;gap:12px}.stat{background:rgba(255,255,255,.1);border-radius:10px;padding:8px 14px;
min-width:110px}.stat b{display:block;font-size:20px}.stat span{font-size:12px;color:#cbd5e1}
main{padding:10px 40px 40px;max-width:1280px}h2{margin:28px 0 12px;font-size:19px}
section>table,.card,.graph{background:var(--card);border-radius:12px;box-shadow:0 1px 3px rgba(15,23,42,.08)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);
vertical-align:top}th{font-size:12px;text-transform:uppercase;color:var(--muted);letter-spacing:.4px}
td.time{white-space:nowrap;color:var(--muted);font-variant-numeric:tabular-nums}a{color:#1d4ed8;text-decoration:none}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f5f9;border-radius:4px;
padding:1px 4px;word-break:break-all}
.graph{padding:6px;max-width:100%;height:auto;display:block}.graph .node rect{fill:#eef2ff;stroke:#6366f1;stroke-width:1.5}
.graph text{text-anchor:middle;font-size:13px;fill:var(--ink)}.graph .ip{font-size:11px;fill:var(--muted)}
.graph .name{font-weight:600}.graph .edge path{fill:none;stroke:#94a3b8;stroke-width:2.2}
.graph .edge text{font-size:11.5px;fill:#334155;paint-order:stroke;stroke:#fff;stroke-width:4px}
.graph .edge.high path{stroke:var(--high)}.graph .edge.mid path{stroke:var(--mid)}.graph .edge.low path{stroke:var(--low)}
.card{padding:16px 20px;margin:0 0 16px;border-left:5px solid var(--info)}.card.high{border-left-color:var(--high)}
.card.mid{border-left-color:var(--mid)}.card.low{border-left-color:var(--low)}
.card .head{display:flex;justify-content:space-between;align-items:center}.card h3{margin:0;font-size:16px}
.meta{margin:4px 0;color:var(--muted)}.reasons{margin:6px 0 8px;padding-left:20px}
.cmds{margin-top:8px}.cmds td{font-size:13px}.k{color:var(--muted);font-size:12px}
.score{position:relative;display:inline-block;width:92px;height:18px;border-radius:9px;background:#e2e8f0;
overflow:hidden;vertical-align:middle}.score i{position:absolute;left:0;top:0;bottom:0;background:var(--info)}
.score.high i{background:var(--high)}.score.mid i{background:var(--mid)}.score.low i{background:var(--low)}
.score b{position:relative;display:block;text-align:center;font-size:11px;line-height:18px;color:#0f172a}
.stage{background:#ede9fe;color:#5b21b6;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.ev{border-radius:10px;padding:1px 7px;font-size:11.5px;margin-right:3px;color:#fff;background:var(--info)}
.ev.network{background:var(--net)}.ev.host{background:var(--host)}
.flag{background:#fef3c7;color:#92400e;border-radius:10px;padding:1px 8px;font-size:12px}
.warn{color:#9a3412}.muted{color:var(--muted)}details{margin-top:8px}summary{cursor:pointer;color:var(--muted)}
.prov{margin:6px 0;padding-left:18px}.errors li.error{color:var(--high)}.errors li.partial{color:var(--mid)}
.quiet ul{columns:2}code.nowrap{white-space:nowrap;word-break:normal}
"""
