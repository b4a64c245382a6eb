#!/usr/bin/env python3
"""Generate docs/paper-matrix.csv and docs/paper-matrix.md: the paper's Tables 3-4 reproduced.

For every cell (command x encryption scope x RPC transport) of ../shared/seed/paper-matrix.csv, the
cleartext captures that show the command -- the lab's (tests/fixtures/lab/manifest.csv, modes plain
and addc) and the OTRF pairs in ../shared/data -- are rewritten as a sensor would see them under that
scope (smbtrail.whatif.rewrite) and analysed:
  smbtrail_network            network records alone, no secrets
  smbtrail_network_with_keys  the lab's real encrypted capture of that scope opened with its logged
                              keys (OTRF pairs: no encrypted capture exists; the cleartext is what
                              decryption gives, and is used)
  smbtrail_fused              the rewritten capture fused with the host logs of the same run (lab: Samba's
                              vfs_full_audit log, and on the AD DC its JSON audit; OTRF: the Windows logs).
                              A source counts only where the network obtains the command or its host log
                              holds evidence of it (the host records alone name it); the others are listed
                              in the note, and a cell none of whose sources can show it is "not reproducible"
  lab_real_network            the lab's real encrypted capture without keys, as a check of the what-if
Cells no source reproduces are listed with the reason (tests/fixtures/lab/coverage.csv).

Usage: python scripts/paper_matrix.py [--out docs] [--shared ../shared] [--lab DIR]   (about 5 minutes)
(--lab: another copy of the lab fixtures, e.g. `git archive HEAD tests/fixtures/lab` unpacked while
the lab is regenerating the working tree's copy.)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smbtrail.whatif.rewrite import WhatIfError, rewrite_capture  # noqa: E402
from smbtrail.engine import Options, analyze, host_records, network_records  # noqa: E402
from smbtrail.fusion.hostcommands import host_command  # noqa: E402
from smbtrail.records import COMMAND, HOST_EVENT, Record  # noqa: E402

LAB = ROOT / "tests" / "fixtures" / "lab"
CLEARTEXT_MODES = ("plain", "addc")
REAL_MODE = {"server": "enc-global", "share": "enc-share"}
OTRF_PAIRS = {  # pair -> (paper command, transport, tactic folder); what each run's adversary_view shows
    "covenant_sc_query_dcerpc_smb_svcctl": ("sc", "NCACN_NP", "lateral_movement"),
    "covenant_sharpsc_create_dcerpc_smb_svcctl": ("sc", "NCACN_NP", "lateral_movement"),
    "empire_psexec_dcerpc_tcp_svcctl": ("sc", "NCACN_IP_TCP", "lateral_movement"),
    "schtask_create": ("schtasks", "NCACN_IP_TCP", "lateral_movement"),
    "covenant_copy_smb_CreateRequest": ("write file", "NCACN_NP", "lateral_movement"),
    "empire_shell_rpc_samr_smb_group_domain_admins_standard_user": ("net group", "NCACN_NP", "discovery"),
}
ALIASES = {  # paper command -> names smbtrail gives the same operations (the wire cannot tell them apart)
    "psservice": ("sc",),  # psservice drives the service control manager exactly like sc
    "schtasks": ("atexec",),  # over the atsvc pipe, ITaskSchedulerService is what impacket atexec calls
}
OBTAINED, LOST, NA = "obtained", "not-obtained", "n/a"
NO_HOST_EVIDENCE = "not reproducible"  # fused column: no source's host log can show the command
DS_OBJECT_DELETED = 5141
DS_DELETE_NOTE = ("the DC logs the delete only as a directory object Delete without its object class (5141), "
                  "which cannot be told from a group's, so it is not counted as the command")
WHY_NO_HOST_EVIDENCE = {  # what the host log of a source that shows nothing of its command is, by origin
    "lab": "the lab has no Windows host: Samba's full_audit logs SMB share connects and file opens (RPC over a "
           "named pipe or TCP bypasses it) and the AD DC's audit logs logons and directory changes; Samba writes "
           "no service, task, registry, eventlog, shutdown or account-query event",
    "otrf": "the Windows logs of the run hold no event of the command",
}
INFERRED = "not-obtained (inferred)"  # not read, but guessed from encrypted message sizes (encryption/inference)
COLUMNS = ["command", "kind", "encryption_scope", "transport", "paper_network_result", "smbtrail_network",
           "smbtrail_network_with_keys", "smbtrail_fused", "lab_real_network", "agrees_with_paper", "sources", "note"]


@dataclass
class Source:
    name: str
    command: str
    transport: str
    cleartext: List[str]
    keys: str = ""  # the lab logs SMB3 keys even for its "cleartext" runs (impacket may encrypt anyway)
    hostlogs: List[str] = field(default_factory=list)
    real: Dict[str, Tuple[str, str, str]] = field(default_factory=dict)  # scope -> (capture, keys, observed)
    origin: str = "lab"


def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def lab_sources(lab: Path) -> List[Source]:
    global LAB
    LAB = lab
    rows = read_csv(LAB / "manifest.csv")
    real = {(r["scenario"], r["mode"]): r for r in rows}
    found = []
    for row in rows:
        if row["mode"] not in CLEARTEXT_MODES or not (LAB / row["capture"]).exists():
            continue
        src = Source(f"lab:{row['mode']}/{row['scenario']}", row["command"], row["transport"],
                     [str(LAB / row["capture"])], _lab_path(row.get("keys")))
        src.hostlogs = [p for p in (_lab_path(row.get("audit_log")), _lab_path(row.get("vfs_audit_log"))) if p]
        for scope, mode in REAL_MODE.items():
            enc = real.get((row["scenario"], mode))
            if enc and (LAB / enc["capture"]).exists():
                src.real[scope] = (str(LAB / enc["capture"]), _lab_path(enc.get("keys")),
                                   enc.get("observed_encryption", ""))
        found.append(src)
    return found


def _lab_path(relative: Optional[str]) -> str:
    return str(LAB / relative) if relative and (LAB / relative).exists() else ""


def otrf_sources(shared: Path, workdir: Path) -> List[Source]:
    base = shared / "data" / "otrf-security-datasets" / "windows"
    found = []
    for name, (command, transport, tactic) in OTRF_PAIRS.items():
        halves = []
        for half in ("network", "host"):
            archive = base / tactic / half / f"{name}.zip"
            if not archive.exists():
                break
            target = workdir / "otrf" / half / name
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(target)
            halves.append([str(p) for p in sorted(target.rglob("*")) if p.is_file()])
        if len(halves) == 2:
            found.append(Source(f"otrf:{name}", command, transport, halves[0], hostlogs=halves[1], origin="otrf"))
    return found


def names_of(command: str) -> Set[str]:
    return {command} | set(ALIASES.get(command, ()))


def named(records: Sequence[Record], command: str) -> List[Record]:
    names = names_of(command)
    return [r for r in records if r.kind == COMMAND and (r.command or "").lower() in names]


def verdict(records: Sequence[Record], command: str) -> str:
    """A command is obtained when read from the network, or (fused) confirmed by a host event."""
    found = named(records, command)
    if any(not r.inferred or "host" in r.evidence for r in found):
        return OBTAINED
    return INFERRED if found else LOST


def host_verdict(records: Sequence[Record], command: str) -> str:
    """Whether host records alone show the command: a command the host-log engine built, or an event fusion
    reads as one (a 4688 command line naming it, e.g.)."""
    shown = (host_command(r) for r in records if r.kind == HOST_EVENT)
    return OBTAINED if named(records, command) or any(c and c.command in names_of(command) for c in shown) else LOST


def joins(records: Sequence[Record], command: str) -> str:
    """How fusion tied the host evidence of the command to the capture: join reasons and confidence."""
    seen = sorted({f"{'+'.join(r.join) or 'not joined'} ({r.confidence if r.confidence is not None else '-'})"
                   for r in named(records, command) if "host" in r.evidence})
    return ", ".join(seen)


def evaluate(src: Source, workdir: str) -> Dict[str, Dict[str, str]]:
    """Every verdict for one source: its cleartext, and per scope network / fused / real / with keys."""
    try:
        return _evaluate(src, workdir)
    except (WhatIfError, OSError) as exc:  # e.g. a lab fixture being regenerated right now
        return {"": {"clear": f"error: {exc}", "already_encrypted": "False"}}


def _evaluate(src: Source, workdir: str) -> Dict[str, Dict[str, str]]:
    command = src.command.lower()
    clear = verdict(list(network_records(src.cleartext, Options(keys_file=src.keys or None))), command)
    sensor = verdict(list(network_records(src.cleartext, Options())), command)
    out: Dict[str, Dict[str, str]] = {"": {"clear": clear, "already_encrypted": str(clear == OBTAINED != sensor)}}
    host = list(host_records(src.hostlogs, Options()))  # a lab run over TCP leaves Samba no log entry: none
    out[""]["host"] = host_verdict(host, command)
    if any(r.event_id == DS_OBJECT_DELETED and r.channel == "Samba" for r in host):
        out[""]["host_note"] = DS_DELETE_NOTE
    for scope in REAL_MODE:
        rewritten = []
        for index, path in enumerate(src.cleartext):
            dst = os.path.join(workdir, f"{src.name.replace('/', '_').replace(':', '_')}-{scope}-{index}.pcapng")
            rewrite_capture(path, dst, scope)
            rewritten.append(dst)
        res = {"network": verdict(list(network_records(rewritten, Options())), command)}
        fused = list(analyze(rewritten, src.hostlogs, Options()))
        res["fused"], res["joins"] = verdict(fused, command), joins(fused, command)
        if res["network"] == OBTAINED:
            res["fused"] = OBTAINED  # host logs add to the network, never take away
        elif res["fused"] != OBTAINED and out[""]["host"] == LOST:
            res["fused"] = NO_HOST_EVIDENCE  # nothing for fusion to add: the host log shows nothing of it
        real = src.real.get(scope)
        if real:
            capture, keys, observed = real
            res["real"] = verdict(list(network_records([capture], Options())), command)
            res["observed"] = observed or "?"
            res["keys"] = verdict(list(network_records([capture], Options(keys_file=keys or None))), command)
        elif src.origin == "otrf":
            res["keys"] = clear
        out[scope] = res
    return out


def combine(values: List[str]) -> str:
    """One cell from several sources: the common verdict, or how many obtained; guesses counted apart."""
    values = [v for v in values if v]
    if not values:
        return ""
    bases = [v.split(" (")[0] for v in values]
    text = bases[0] if len(set(bases)) == 1 else f"mixed: {bases.count(OBTAINED)}/{len(values)} obtained"
    guessed = sum(v == INFERRED for v in values)
    if guessed:
        text += f" ({guessed}/{len(values)} inferred from sizes)"
    return text


def unreproducible_reasons() -> Dict[Tuple[str, str, str], str]:
    path = LAB / "coverage.csv"
    if not path.exists():
        return {}
    return {(r["command"], r["encryption_scope"], r["transport"]): r["reason"] for r in read_csv(path) if r["reason"]}


def cell_row(cell: Dict[str, str], sources: List[Source], results: Dict[str, Dict], reasons) -> Dict[str, str]:
    row = {k: cell[k] for k in COLUMNS[:5]}
    key = (cell["command"], cell["encryption_scope"], cell["transport"])
    scope = cell["encryption_scope"]
    usable = [s for s in sources if results[s.name][""]["clear"] == OBTAINED]
    if not usable:
        why = reasons.get(key) or "no lab scenario or public pair runs this command over this transport"
        if sources:
            why = "; ".join(_unusable(s, results[s.name][""]["clear"]) for s in sources)
        row.update({c: "" for c in COLUMNS[5:]}, note=f"not reproduced: {why}")
        return row
    clear = [s for s in usable if results[s.name][""]["already_encrypted"] != "True"]
    row["sources"] = " ".join(s.name for s in usable)
    row["smbtrail_network"] = combine([results[s.name][scope]["network"] for s in clear])
    row["smbtrail_network_with_keys"] = combine([results[s.name][scope].get("keys", "") for s in usable])
    fusable = usable if scope == "server" else clear
    shown = [s for s in fusable if results[s.name][scope]["fused"] != NO_HOST_EVIDENCE]
    row["smbtrail_fused"] = combine([results[s.name][scope]["fused"] for s in shown]) or NO_HOST_EVIDENCE
    row["lab_real_network"] = combine([results[s.name][scope].get("real", "") for s in usable])
    observed = sorted({results[s.name][scope]["observed"] for s in usable if "observed" in results[s.name][scope]})
    if observed:
        row["lab_real_network"] += f" [lab saw encryption: {', '.join(observed)}]"
    notes = []
    if cell["paper_network_result"] == NA:
        notes.append("paper: n/a (no such transport for the Windows command); the lab emulates it")
    notes += [f"{s.name} is encrypted as captured (impacket encrypts when Samba offers it): used with its keys "
              f"and, server-wide, for the fused column" for s in usable if s not in clear]
    notes += [_unusable(s, results[s.name][""]["clear"]) for s in sources if s not in usable]
    blind = [s for s in fusable if s not in shown]
    for origin in sorted({s.origin for s in blind}):
        names = " ".join(s.name for s in blind if s.origin == origin)
        notes.append(f"fused, not reproducible for {names}: {WHY_NO_HOST_EVIDENCE[origin]}")
    notes += [f"{s.name}: {results[s.name]['']['host_note']}" for s in blind if results[s.name][""].get("host_note")]
    tied = [f"{s.name} {results[s.name][scope]['joins']}" for s in shown if results[s.name][scope]["joins"]]
    if tied:
        notes.append("fused via " + "; ".join(tied))
    notes += [f"counted when smbtrail names it '{a}' (same operations on the wire)"
              for a in ALIASES.get(cell["command"], ())]
    row["agrees_with_paper"] = "" if cell["paper_network_result"] == NA or not row["smbtrail_network"] else \
        ("yes" if row["smbtrail_network"].split(" (")[0] == cell["paper_network_result"] else "no")
    row["note"] = "; ".join(notes)
    return row


def _unusable(src: Source, clear: str) -> str:
    if clear.startswith("error"):
        return f"{src.name}: {clear}"
    return f"{src.name}: smbtrail does not name '{src.command}' even in the cleartext"


def extra_rows(sources: List[Source], results: Dict[str, Dict]) -> List[Dict[str, str]]:
    """Lab scenarios whose command is not one of the paper's 22 (psexec, smbexec, at, net time...)."""
    rows = []
    for src in sources:
        for scope in REAL_MODE:
            res = results[src.name].get(scope, {"network": results[src.name][""]["clear"], "fused": ""})
            rows.append({"command": src.command, "encryption_scope": scope, "transport": src.transport,
                         "source": src.name, "cleartext": results[src.name][""]["clear"], "network": res["network"],
                         "with_keys": res.get("keys", ""), "fused": res["fused"],
                         "real": f"{res['real']} [lab saw encryption: {res['observed']}]" if "real" in res else ""})
    return rows


def write_csv(path: Path, rows: List[Dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def md_table(head: List[str], rows: List[List[str]]) -> List[str]:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in esc]


def summary(rows: List[Dict[str, str]]) -> List[str]:
    applicable = [r for r in rows if r["paper_network_result"] != NA]
    reproduced = [r for r in applicable if r["smbtrail_network"]]
    agree = [r for r in reproduced if r["agrees_with_paper"] == "yes"]
    keys = [r for r in reproduced if r["smbtrail_network_with_keys"] == OBTAINED]
    fused = [r for r in reproduced if r["smbtrail_fused"] == OBTAINED]
    blind = [r for r in reproduced if r["smbtrail_fused"] == NO_HOST_EVIDENCE]
    shown = [r for r in reproduced if r["smbtrail_fused"] != NO_HOST_EVIDENCE]
    beyond = [r for r in fused if r["smbtrail_network"] != OBTAINED]
    differ = [f"{r['command']} / {r['encryption_scope']} / {r['transport']}" for r in reproduced
              if r["agrees_with_paper"] == "no"]
    paper = sum(r["paper_network_result"] == OBTAINED for r in applicable)
    ours = sum(r["smbtrail_network"] == OBTAINED for r in reproduced)
    return [f"- Paper: {paper} of {len(applicable)} applicable cells obtainable from the network alone.",
            f"- Reproduced here: {len(reproduced)} of {len(applicable)} applicable cells; network-only result "
            f"equals the paper's in {len(agree)} of them ({ours} obtained).",
            f"- With the logged SMB3 keys: {len(keys)} of {len(reproduced)} reproduced cells obtained.",
            f"- Fused with the host logs of the same run: {len(fused)} of {len(reproduced)} reproduced cells obtained "
            f"({len(beyond)} of them beyond the network alone, through host evidence of the command); "
            f"{len(shown) - len(fused)} mixed; {len(blind)} not reproducible for fusion (no host log of the lab or "
            f"the pairs shows the command: {WHY_NO_HOST_EVIDENCE['lab']}).",
            f"- Network-only result differs from the paper's in: {', '.join(differ) or 'none'}."]


def write_md(path: Path, rows: List[Dict[str, str]], extras: List[Dict[str, str]]) -> None:
    out = ["# The paper's matrix (Tables 3-4), reproduced", "",
           "Generated by `scripts/paper_matrix.py`; do not edit. Network results come from the cleartext capture "
           "rewritten as seen under the cell's encryption scope (`smbtrail.whatif.rewrite`); see the script's "
           "docstring for every column.", ""] + summary(rows) + [""]
    done = [r for r in rows if r["smbtrail_network"]]
    head = ["command", "scope", "transport", "paper", "network", "with keys", "fused", "lab real capture",
            "agrees", "sources"]
    out += ["## Reproduced cells", ""] + md_table(head, [[r["command"], r["encryption_scope"], r["transport"],
                                                           r["paper_network_result"], r["smbtrail_network"],
                                                           r["smbtrail_network_with_keys"], r["smbtrail_fused"],
                                                           r["lab_real_network"], r["agrees_with_paper"],
                                                           r["sources"]] for r in done])
    noted = [r for r in done if r["note"]]
    if noted:
        out += ["", "Notes:", ""] + [f"- {r['command']} / {r['encryption_scope']} / {r['transport']}: {r['note']}"
                                     for r in noted]
    missing = [r for r in rows if not r["smbtrail_network"]]
    out += ["", "## Cells not reproduced", ""] + md_table(
        ["command", "scope", "transport", "paper", "why"],
        [[r["command"], r["encryption_scope"], r["transport"], r["paper_network_result"], r["note"]] for r in missing])
    if extras:
        out += ["", "## Lab scenarios beyond the paper's commands", ""] + md_table(
            ["command", "scope", "transport", "source", "cleartext", "network", "with keys", "fused", "lab real capture"],
            [[e["command"], e["encryption_scope"], e["transport"], e["source"], e["cleartext"], e["network"],
              e["with_keys"], e["fused"], e["real"]] for e in extras])
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--shared", default=os.environ.get("SMBTRAIL_SHARED", str(ROOT.parent / "shared")))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--lab", default=str(LAB), help="lab fixtures directory (manifest.csv and captures)")
    args = parser.parse_args(argv)
    shared = Path(args.shared)
    seed = shared / "seed" / "paper-matrix.csv"
    if not seed.exists():
        sys.stderr.write(f"paper_matrix: {seed} not found (the paper's table lives in ../shared/seed)\n")
        return 2
    cells = read_csv(seed)
    with tempfile.TemporaryDirectory(prefix="smbtrail-matrix-") as tmp:
        sources = lab_sources(Path(args.lab)) + otrf_sources(shared, Path(tmp))
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            done = pool.map(evaluate, sources, [tmp] * len(sources))
            results = {src.name: res for src, res in zip(sources, done)}
    reasons = unreproducible_reasons()
    rows = []
    for cell in cells:
        matching = [s for s in sources if (s.command, s.transport) == (cell["command"], cell["transport"])]
        rows.append(cell_row(cell, matching, results, reasons))
    in_paper = {(c["command"], c["transport"]) for c in cells}
    extras = extra_rows([s for s in sources if (s.command, s.transport) not in in_paper], results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "paper-matrix.csv", rows)
    write_md(out / "paper-matrix.md", rows, extras)
    sys.stdout.write("\n".join(summary(rows)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
