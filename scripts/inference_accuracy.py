#!/usr/bin/env python3
"""Leave-one-source-out accuracy of the size inference under SMB3 encryption; fits the shipped lookups.

    scripts/inference_accuracy.py [--shared DIR] [--out docs/inference-accuracy.md] [--write-lookups]

Corpus: every public capture with SMB in ../shared/data (suricata-verify, pcap-attack, samr-enum-lab, the
OTRF network halves, Zeek traces) and the lab's recordings. A cleartext capture is rewritten as a sensor
would see it under server-wide and under share-only encryption (whatif/rewrite.py: same plaintext sizes);
a capture already encrypted is read as it is, its reference with the published key or password.
Scoring is per (client, server, command label): a label counts as expected when the reference run (clear, or
decrypted) recognises the command and the sensor's run does not see it anyway; an inferred label is right
when expected, or when the reference shows the same file operation inside a larger command (PsExec's upload
is a file written to ADMIN$).

Fitted on the corpus, never on the source being scored: the RPC size fingerprints measured by lining up
encrypted exchanges with the reference operations, and per label the score threshold at which it is shown
(nested: thresholds come from scoring each training source with fingerprints of the other training
sources). `--write-lookups` stores both, fitted on every source, in lookups/rpc_size_fingerprints.csv and
lookups/inference_calibration.csv.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smbtrail.encryption.fingerprints import FIELDS, Fingerprint, calibrate, load, to_rows  # noqa: E402
from smbtrail.encryption.inference import ANY_LABEL, GATE_FIELDS, Gate, Gates, gate_for, gate_rows, infer, templates  # noqa: E402
from smbtrail.whatif.rewrite import rewrite_capture  # noqa: E402
from smbtrail.engine import Options, network_records  # noqa: E402
from smbtrail.lookups import lookup_path  # noqa: E402
from smbtrail.records import COMMAND, ENCRYPTED_ACTIVITY, FILE, OPERATION, Record  # noqa: E402

LAB = ROOT / "tests" / "fixtures" / "lab"
SCOPES = ("server", "share")
REAL = "real"  # a capture encrypted when it was recorded

# dataset -> capture globs under ../shared/data
PUBLIC = {
    "suricata-verify": ["suricata-verify/**/*.pcap"],
    "pcap-attack": ["pcap-attack/**/*.pcapng"],
    "samr-enum-lab": ["samr-enum-lab/Resources/*.pcapng"],
    "otrf": ["otrf-security-datasets/windows/*/network/*.zip"],
    "zeek": ["zeek/Traces/**/*.pcap", "zeek/Traces/**/*.cap"],
}
# recorded between the same two hosts as pcap-attack's captures (172.16.66.1 -> 172.16.66.36): one source
MOVED = {"suricata-verify/bug-5133/input.pcap": "pcap-attack",
         "suricata-verify/dcerpc/dcerpc-auth3-5133/input.pcap": "pcap-attack"}
# published secrets of the public encrypted captures (../shared/data/README.md)
KEYS = {"suricata-verify/smb3-01/input.pcap": "3d00009400480000 28f2847263c83dc00621f742dd3f2e7b",
        "zeek/Traces/smb/smb3.pcap": "3d00009400480000 28f2847263c83dc00621f742dd3f2e7b"}
PASSWORDS = {"samr-enum-lab/Resources/": "LabAdm1!"}

MIN_PRECISION = 0.9  # a label is shown by default only at a threshold where it was right this often
MIN_RIGHT = 2  # ... and right at least this many times
WINDOW = 0.1  # width of the score bands the common threshold is judged on
MAX_CONFIDENCE = 0.99  # an inference from sizes is never shown as certain
PRIOR_WEIGHT = 2.0  # confidence: the label's precision shrunk toward the pooled precision by this many cases

Key = Tuple[str, str, str]  # client, server, "command action"


# ---------------------------------------------------------------------------------------------- the corpus

@dataclass
class Capture:
    name: str
    source: str
    path: str
    options: Options = field(default_factory=Options)  # the secrets of the reference run


@dataclass
class Case:
    """One capture as the sensor saw it under one encryption setting, with its reference."""

    capture: str
    source: str
    scope: str  # server | share | real
    records: List[Record]  # the sensor's records (no secrets), inference left out
    expected: Set[Key]
    facts: Set[Key]  # file operations of the reference, also inside larger commands
    visible: Set[Key]  # recognised by the sensor without inference
    operations: List[Record]  # RPC operations of the reference run
    prints: List[Fingerprint] = field(default_factory=list)  # measured on this case

    def measure(self) -> None:
        activity = [r for r in self.records if r.kind == ENCRYPTED_ACTIVITY and not r.decrypted]
        self.prints = [_tagged(p, self.source) for p in calibrate(activity, self.operations)[0]]


def label(rec: Record) -> str:
    return f"{rec.command} {rec.operation or rec.args.get('action', '')}".strip()


def key(rec: Record) -> Key:
    return rec.src_ip or "", rec.dest_ip or "", label(rec)


FILE_LABELS = {"write": "write file write", "read": "read file read", "delete": "delete file delete"}


def public_captures(shared: Path, unpack: str) -> List[Capture]:
    """Every public capture, each once (identical files in two data sets count once), with its source."""
    seen: Set[str] = set()
    out = []
    for dataset, patterns in PUBLIC.items():
        for path in sorted({p for pattern in patterns for p in shared.glob(pattern)}):
            rel = path.relative_to(shared).as_posix()
            readable = _unzipped(path, unpack) if path.suffix == ".zip" else str(path)
            digest = hashlib.sha256(Path(readable).read_bytes()).hexdigest() if readable else ""
            if not digest or digest in seen:
                continue
            seen.add(digest)
            out.append(Capture(rel, MOVED.get(rel, dataset), readable, _secrets(rel, unpack)))
    return out


def _unzipped(path: Path, unpack: str) -> Optional[str]:
    with zipfile.ZipFile(path) as archive:
        member = next((i for i in archive.infolist() if not i.is_dir()), None)
        if member is None:
            return None
        target = os.path.join(unpack, f"{path.stem}-{os.path.basename(member.filename)}")
        with archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def _secrets(rel: str, unpack: str) -> Options:
    if rel in KEYS:
        keyfile = os.path.join(unpack, hashlib.sha1(rel.encode()).hexdigest() + ".keys")
        Path(keyfile).write_text(KEYS[rel] + "\n", encoding="ascii")
        return Options(keys_file=keyfile)
    password = next((p for prefix, p in PASSWORDS.items() if rel.startswith(prefix)), None)
    return Options(passwords=[SecretStr(password)]) if password else Options()


def lab_captures(lab: Path = LAB) -> List[Capture]:
    """The lab's cleartext recordings, and its AD DC recordings (encrypted, with their keys)."""
    out = [Capture(f"lab/plain/{p.stem}", "lab", str(p)) for p in sorted((lab / "plain").glob("*.pcapng"))]
    for pcap in sorted((lab / "addc").glob("*.pcapng")):
        keys = pcap.with_suffix(".keys")
        if keys.is_file() and keys.stat().st_size:
            out.append(Capture(f"lab/addc/{pcap.stem}", "lab", str(pcap), Options(keys_file=str(keys))))
    return out


def read_capture(capture: Capture, workdir: str) -> List[Case]:
    """The reference run and the sensor's runs (rewritten under each scope, or as recorded if encrypted)."""
    reference = list(network_records([capture.path], capture.options))
    plain = list(network_records([capture.path], Options()))
    if any(r.kind == ENCRYPTED_ACTIVITY for r in plain):
        return [_case(capture, REAL, reference, plain)]
    cases = []
    for scope in SCOPES:
        target = os.path.join(workdir, f"{scope}-{hashlib.sha1(capture.name.encode()).hexdigest()}.pcapng")
        rewrite_capture(capture.path, target, scope)
        cases.append(_case(capture, scope, reference, list(network_records([target], Options()))))
        os.unlink(target)
    return cases


def _case(capture: Capture, scope: str, reference: List[Record], sensor: List[Record]) -> Case:
    records = [r for r in sensor if not r.inferred]
    visible = {key(r) for r in records if r.kind == COMMAND}
    truth = {key(r) for r in reference if r.kind == COMMAND and not r.inferred}
    facts = {(r.src_ip or "", r.dest_ip or "", FILE_LABELS[r.operation]) for r in reference
             if r.kind == FILE and r.operation in FILE_LABELS and (r.share or "").upper() != "IPC$"}
    case = Case(capture.name, capture.source, scope, records, truth - visible, facts, visible,
                [r for r in reference if r.kind == OPERATION])
    case.measure()
    return case


def _tagged(p: Fingerprint, source: str) -> Fingerprint:
    return Fingerprint(p.pipe, p.interface, p.opnum, p.operation, p.request, p.response, source, p.count)


def check_sources(captures: Sequence[Capture], cases: Sequence[Case]) -> None:
    """Two sources recorded between the same pair of hosts would leak into each other's folds."""
    owner: Dict[Tuple[str, str], str] = {}
    for case in cases:
        for client, server, _ in case.expected | case.facts | case.visible:
            other = owner.setdefault((client, server), case.source)
            if other != case.source:
                raise SystemExit(f"{client} -> {server} is in sources {other} and {case.source}: assign one source "
                                 f"(MOVED) before evaluating")


# ---------------------------------------------------------------------------------------------- fitting

class LeakError(RuntimeError):
    """A case was about to be scored with fingerprints or thresholds fitted on its own source."""


@dataclass
class Model:
    prints: List[Fingerprint]
    gates: Gates
    fitted_on: FrozenSet[str]


def derived() -> List[Fingerprint]:
    """Rows fixed by the IDL (source `ndr`): written by hand, never measured, so every fold has them."""
    return [p for p in load() if p.source == "ndr"]


def merge(groups: Iterable[Iterable[Fingerprint]]) -> List[Fingerprint]:
    """Equal sizes of one operation from several cases become one row: counts add up, sources are listed."""
    counts: Dict[tuple, int] = defaultdict(int)
    sources: Dict[tuple, Set[str]] = defaultdict(set)
    for group in groups:
        for p in group:
            k = (p.pipe, p.interface, p.opnum, p.operation, p.request, p.response, p.source == "ndr")
            counts[k] += p.count
            sources[k].update(p.source.split(";"))
    return [Fingerprint(*k[:6], ";".join(sorted(sources[k])), counts[k]) for k in sorted(counts)]


def fingerprints(cases: Sequence[Case], train: FrozenSet[str]) -> List[Fingerprint]:
    return merge([derived()] + [c.prints for c in cases if c.source in train])


@dataclass
class Outcome:
    case: Case
    key: Key
    score: float
    right: bool
    confidence: float = 0.0  # as shown (0: not shown by default)


def candidates(case: Case, model: Model) -> List[Outcome]:
    """Every label the templates give this case (shown or not), with its best score and whether it is right."""
    if case.source in model.fitted_on or any(case.source in p.source.split(";") for p in model.prints):
        raise LeakError(f"{case.capture} ({case.source}) scored with a model fitted on {sorted(model.fitted_on)}")
    best: Dict[Key, Tuple[float, float]] = {}
    for rec in infer(case.records, model.prints, calibration=model.gates, show_all=True):
        if rec.inferred and key(rec) not in case.visible:
            score, shown = rec.args["score"], rec.confidence or 0.0
            old = best.get(key(rec), (0.0, 0.0))
            best[key(rec)] = (max(old[0], score), max(old[1], shown))
    return [Outcome(case, k, s, k in case.expected or k in case.facts, c) for k, (s, c) in sorted(best.items())]


def fit_gates(outcomes: Sequence[Outcome], fitted_on: FrozenSet[str]) -> Gates:
    """First the threshold of all labels together (_floor). Per label, the lowest score from there up at which
    the label was never wrong, or right at least MIN_PRECISION of the time (and MIN_RIGHT times); none: never
    shown. A confidence is the label's precision there, shrunk toward the pooled one (a label without outcomes
    gets the pooled one)."""
    by_label: Dict[str, List[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_label[o.key[2]].append(o)
    floor = _floor(outcomes)
    sources = ";".join(sorted(fitted_on))
    above = [o for o in outcomes if floor is not None and o.score >= floor]
    right, count = sum(o.right for o in above), len(above)
    if floor is None or not count:
        return {ANY_LABEL: Gate("*", "*", None, 0, 0, 0.0, sources)}
    pooled = (right + 1) / (count + 2)  # Laplace: no error seen yet is not certainty
    gates: Gates = {ANY_LABEL: Gate("*", "*", floor, right, count, _shown_confidence(pooled), sources)}
    for name, found in by_label.items():
        command, _, action = name.rpartition(" ")
        low, right, count = _threshold(found, floor)
        confidence = (right + PRIOR_WEIGHT * pooled) / (count + PRIOR_WEIGHT) if low is not None else 0.0
        gates[(command, action)] = Gate(command, action, low, right, count, _shown_confidence(confidence), sources)
    return gates


def _shown_confidence(value: float) -> float:
    return min(round(value, 2), MAX_CONFIDENCE)


def _floor(outcomes: Sequence[Outcome]) -> Optional[float]:
    """The lowest score from which up every WINDOW-wide band of scores was right MIN_PRECISION of the time
    (a band of easy high scores must not vouch for the low ones)."""
    scores = sorted({o.score for o in outcomes}, reverse=True)
    floor = None
    for low in scores:
        band = [o for o in outcomes if low <= o.score < low + WINDOW]
        if sum(o.right for o in band) < MIN_PRECISION * len(band):
            break
        floor = low
    return floor


def _threshold(found: Sequence[Outcome], floor: float) -> Tuple[Optional[float], int, int]:
    """(threshold, right, shown) at the lowest passing score from `floor` up; (None, right, all) if none passes."""
    for low in sorted({floor} | {o.score for o in found if o.score > floor}):
        above = [o for o in found if o.score >= low]
        right = sum(o.right for o in above)
        if right == len(above) or (right >= MIN_RIGHT and right >= MIN_PRECISION * len(above)):
            return low, right, len(above)
    return None, sum(o.right for o in found), len(found)


def out_of_fold(cases: Sequence[Case], sources: FrozenSet[str]) -> List[Outcome]:
    """Each of `sources` scored (all labels) with fingerprints fitted on the others."""
    out = []
    for held in sorted(sources):
        model = Model(fingerprints(cases, sources - {held}), {}, sources - {held})
        out += [o for c in cases if c.source == held for o in candidates(c, model)]
    return out


def fit(cases: Sequence[Case], sources: FrozenSet[str]) -> Model:
    """Fingerprints from every case of `sources`; thresholds from their out-of-fold scores."""
    return Model(fingerprints(cases, sources), fit_gates(out_of_fold(cases, sources), sources), sources)


def by_default(gates: Gates, cases: Sequence[Case], outcomes: Sequence[Outcome]) -> Gates:
    """One row per label. A label is shown by default only if the leave-one-source-out run showed it and it was
    right at least MIN_PRECISION of those times; it keeps the threshold and confidence fitted on every source.
    Any other label: never shown by default. `right`/`shown`: the leave-one-source-out counts."""
    measured = tally(cases, outcomes)
    labels = {f"{t.command} {t.action}" for t in templates()} | set(measured)
    out: Gates = {}
    for name in sorted(labels):
        command, _, action = name.rpartition(" ")
        gate, seen = gate_for(gates, (command, action)), measured.get(name, Tally())
        proven = seen.shown > 0 and seen.right >= MIN_PRECISION * seen.shown
        if gate is not None and gate.min_score is not None and proven:
            out[(command, action)] = Gate(command, action, gate.min_score, seen.right, seen.shown, gate.confidence,
                                          gate.sources)
        else:
            out[(command, action)] = Gate(command, action, None, seen.right, seen.shown, 0.0,
                                          gate.sources if gate else "")
    return out


def shown_labels(gates: Gates) -> Set[str]:
    return {f"{c} {a}" for (c, a), g in gates.items() if g.min_score is not None}


def leave_one_source_out(cases: Sequence[Case]) -> Tuple[List[Outcome], Dict[str, Model]]:
    everything = frozenset(c.source for c in cases)
    outcomes, models = [], {}
    for held in sorted(everything):
        model = models[held] = fit(cases, everything - {held})
        outcomes += [o for c in cases if c.source == held for o in candidates(c, model)]
    return outcomes, models


# ---------------------------------------------------------------------------------------------- scoring

@dataclass
class Tally:
    right: int = 0
    shown: int = 0
    expected: int = 0
    found: int = 0  # expected and shown

    def add(self, other: Tally) -> None:
        self.right += other.right
        self.shown += other.shown
        self.expected += other.expected
        self.found += other.found

    def precision(self) -> str:
        return _ratio(self.right, self.shown)

    def recall(self) -> str:
        return _ratio(self.found, self.expected)


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.2f} ({num}/{den})" if den else "-"


def tally(cases: Sequence[Case], outcomes: Sequence[Outcome], labels: Optional[Set[str]] = None
          ) -> Dict[str, Tally]:
    """Per label, over `cases`: shown and right (precision), expected and shown (recall); `labels`: only these
    count as shown (those the shipped calibration shows by default)."""
    ids = {id(c) for c in cases}
    out: Dict[str, Tally] = defaultdict(Tally)
    shown: Set[Tuple[int, Key]] = set()
    for o in outcomes:
        if id(o.case) in ids and o.confidence > 0 and (labels is None or o.key[2] in labels):
            shown.add((id(o.case), o.key))
            out[o.key[2]].shown += 1
            out[o.key[2]].right += o.right
    for case in cases:
        for k in case.expected:
            out[k[2]].expected += 1
            out[k[2]].found += (id(case), k) in shown
    return out


def total(tallies: Dict[str, Tally]) -> Tally:
    whole = Tally()
    for t in tallies.values():
        whole.add(t)
    return whole


# ---------------------------------------------------------------------------------------------- report

def _select(cases: Sequence[Case], public: Optional[bool] = None, scope: Optional[str] = None) -> List[Case]:
    return [c for c in cases if (public is None or (c.source != "lab") == public) and (scope is None or c.scope == scope)]


def summary_rows(cases: Sequence[Case], outcomes: Sequence[Outcome], labels: Set[str]) -> List[str]:
    rows = ["| captures | encryption | precision | recall | precision, every label the folds showed | recall, same |",
            "|---|---|---|---|---|---|"]
    for name, public in (("public", True), ("lab", False), ("all", None)):
        for scope in (*SCOPES, REAL, None):
            chosen = _select(cases, public, scope)
            if not chosen:
                continue
            default, every = total(tally(chosen, outcomes, labels)), total(tally(chosen, outcomes))
            rows.append(f"| {name} | {SCOPE_NAMES[scope]} | {default.precision()} | {default.recall()} "
                        f"| {every.precision()} | {every.recall()} |")
    return rows


SCOPE_NAMES = {"server": "server-wide (rewritten)", "share": "share-only (rewritten)",
               REAL: "as recorded (keys published)", None: "all"}


def label_rows(cases: Sequence[Case], outcomes: Sequence[Outcome], shipped: Gates) -> List[str]:
    public, everywhere = tally(_select(cases, True), outcomes), tally(cases, outcomes)
    rows = ["| label | shown by default (score threshold, confidence) | public precision | public recall "
            "| all precision | all recall |", "|---|---|---|---|---|---|"]
    for name in sorted(set(public) | set(everywhere)):
        command, _, action = name.rpartition(" ")
        gate = gate_for(shipped, (command, action))
        state = f"yes (>= {gate.min_score:g}, {gate.confidence:.2f})" if gate and gate.min_score is not None else "no"
        p, a = public.get(name, Tally()), everywhere.get(name, Tally())
        rows.append(f"| {name} | {state} | {p.precision()} | {p.recall()} | {a.precision()} | {a.recall()} |")
    return rows


BINS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.01)]


def calibration_rows(outcomes: Sequence[Outcome], attr: str, head: str) -> List[str]:
    rows = [f"| {head} | labels | observed precision |", "|---|---|---|"]
    for low, high in BINS:
        inside = [o for o in outcomes if low <= getattr(o, attr) < high and (attr != "confidence" or o.confidence)]
        if inside:
            right = sum(o.right for o in inside)
            rows.append(f"| {low:.2f}-{min(high, 1):.2f} | {len(inside)} | {_ratio(right, len(inside))} |")
    return rows


def case_rows(cases: Sequence[Case], outcomes: Sequence[Outcome]) -> List[str]:
    by_case: Dict[int, List[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_case[id(o.case)].append(o)
    rows = ["| source | capture | scope | expected | shown (confidence) | not shown (score) |", "|---|---|---|---|---|---|"]
    for case in cases:
        found = by_case.get(id(case), [])
        if not case.expected and not found:
            continue
        shown = [f"{o.key[2]} ({o.confidence:.2f}){'' if o.right else ' WRONG'}" for o in found if o.confidence]
        held = [f"{o.key[2]} ({o.score:.2f}){'' if o.right else ' wrong'}" for o in found if not o.confidence]
        expected = ", ".join(sorted(k[2] for k in case.expected)) or "-"
        rows.append(f"| {case.source} | {case.capture} | {case.scope} | {expected} "
                    f"| {', '.join(shown) or '-'} | {', '.join(held) or '-'} |")
    return rows


def abstention_rows(cases: Sequence[Case], outcomes: Sequence[Outcome], models: Dict[str, Model],
                    labels: Set[str]) -> List[str]:
    """For each case with an expected label left unshown: what its encrypted_activity records say instead."""
    shown = {(id(o.case), o.key) for o in outcomes if o.confidence and o.key[2] in labels}
    rows = ["| capture | encryption | not shown | what the encrypted_activity says instead |", "|---|---|---|---|"]
    for case in cases:
        missed = sorted(k[2] for k in case.expected if (id(case), k) not in shown)
        if not missed or case.source not in models:
            continue
        notes = [n for r in infer(case.records, models[case.source].prints, calibration={})
                 if r.kind == ENCRYPTED_ACTIVITY for n in r.args.get("observed", [])]
        text = "; ".join(dict.fromkeys(notes)) or "(no size sequence)"
        rows.append(f"| {case.capture} | {SCOPE_NAMES[case.scope]} | {', '.join(missed)} | {_cell(text, 400)} |")
    return rows


def _cell(text: str, limit: int) -> str:
    text = text.replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def report(cases: Sequence[Case], outcomes: Sequence[Outcome], shipped: Gates,
           models: Optional[Dict[str, Model]] = None) -> str:
    sources = sorted({c.source for c in cases})
    captures = {c.capture for c in cases}
    return "\n".join([
        "# Inference from encrypted SMB3 message sizes: leave-one-source-out accuracy",
        "",
        "Produced by `scripts/inference_accuracy.py` (do not edit by hand). Every capture is scored with RPC",
        "size fingerprints and label thresholds fitted on the other sources only (thresholds nested: fitted",
        "on out-of-fold scores of the training sources). Scored per (client, server, command label).",
        "Precision: shown labels that the reference run has; recall: expected labels that were shown.",
        "",
        "What the folds do not cover: the hand-written knowledge (IDL size ranges in",
        "`lookups/rpc_size_fingerprints.csv` rows marked `ndr`, template steps, the size model's rules) is the same",
        "in every fold and was revised while these numbers were looked at, so for it the numbers are not",
        "held-out; the data set's own held-back cases are the test of that. Where a label is scored on one or",
        "two captures (most lab-only labels) its precision says little; the per-label counts are given for that.",
        "",
        f"Sources: {', '.join(f'{s} ({len({c.capture for c in cases if c.source == s})} captures)' for s in sources)};"
        f" {len(captures)} captures, {len(cases)} cases (capture x encryption setting).",
        "",
        "## Summary",
        "",
        *summary_rows(cases, outcomes, shown_labels(shipped)),
        "",
        "## Per label",
        "",
        "Shown by default: the shipped threshold (fitted on every source) and the confidence it gives.",
        "",
        *label_rows(cases, outcomes, shipped),
        "",
        "## Calibration",
        "",
        "Confidence of shown labels (each fold's own) against how often they were right:",
        "",
        *calibration_rows(outcomes, "confidence", "confidence"),
        "",
        "Raw template score of every label the templates gave, shown or not:",
        "",
        *calibration_rows(outcomes, "score", "score"),
        "",
        "## Per case",
        "",
        *case_rows(cases, outcomes),
        "",
        "## Abstentions",
        "",
        "Expected labels not shown by default, and the `observed` list their encrypted_activity record carries",
        "instead (sizes read with the fold's own fingerprints):",
        "",
        *abstention_rows(cases, outcomes, models or {}, shown_labels(shipped)),
        "",
    ])


README = ROOT / "README.md"
START, END = "<!-- inference-accuracy:start -->", "<!-- inference-accuracy:end -->"


def readme_section(cases: Sequence[Case], outcomes: Sequence[Outcome], shipped: Gates) -> List[str]:
    """The README's headline: the numbers against the goals; the tables stay in docs/inference-accuracy.md."""
    labels = shown_labels(shipped)
    public = _select(cases, True)
    everywhere, default = total(tally(cases, outcomes, labels)), total(tally(public, outcomes, labels))
    per_label = tally(cases, outcomes, labels)
    worst = min((t.right / t.shown, name) for name, t in per_label.items() if t.shown and name in labels)
    hidden = sorted(name for name in {f"{c} {a}" for c, a in shipped} - labels if name in tally(cases, outcomes))
    return [
        START,
        f"Leave-one-source-out over {len({c.source for c in cases})} sources (every public capture with SMB and "
        "the lab's recordings; cleartext",
        "captures rewritten under server-wide and under share-only encryption, encrypted ones read as recorded),",
        f"scored per (client, server, command label): precision {everywhere.precision()} and recall "
        f"{everywhere.recall()} over all",
        f"captures and settings, {default.precision()} and {default.recall()} on the public captures. "
        "Goals (public captures,",
        f"labels shown by default): precision per label at least 0.9 — lowest is {worst[1]} at {worst[0]:.2f}; "
        "recall overall",
        f"at least 0.6 — {default.recall()}. {len(labels)} labels are shown by default, {len(hidden)} never. "
        "Per label, per capture, the",
        "calibration, what is said instead of an unshown label and what the folds do not cover:",
        "[`docs/inference-accuracy.md`](docs/inference-accuracy.md), produced by",
        "`python scripts/inference_accuracy.py --write-lookups --readme` (it needs `../shared/data`).",
        END,
    ]


def write_readme(lines: List[str]) -> None:
    text = README.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{README}: markers {START} ... {END} not found")
    README.write_text(head + "\n".join(lines) + tail, encoding="utf-8")


def write_lookups(cases: Sequence[Case], shipped: Model) -> None:
    with open(lookup_path("rpc_size_fingerprints.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(to_rows(shipped.prints))
    with open(lookup_path("inference_calibration.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, GATE_FIELDS)
        writer.writeheader()
        writer.writerows(gate_rows(shipped.gates))


def load_cases(shared: Path, lab: Path = LAB) -> List[Case]:
    with tempfile.TemporaryDirectory(prefix="smbtrail-acc-") as tmp:
        captures = (public_captures(shared, tmp) if shared.is_dir() else []) + lab_captures(lab)
        cases = [c for capture in captures for c in read_capture(capture, tmp)]
    check_sources(captures, cases)
    return cases


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "inference-accuracy.md")
    parser.add_argument("--write-lookups", action="store_true", help="store the fingerprints and thresholds "
                        "fitted on every source in lookups/")
    parser.add_argument("--readme", action="store_true", help="rewrite the README's summary between its markers")
    args = parser.parse_args(argv)
    cases = load_cases(args.shared)
    if not cases:
        print("no captures found", file=sys.stderr)
        return 1
    outcomes, models = leave_one_source_out(cases)
    shipped = fit(cases, frozenset(c.source for c in cases))
    shipped.gates = by_default(shipped.gates, cases, outcomes)
    text = report(cases, outcomes, shipped.gates, models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    if args.write_lookups:
        write_lookups(cases, shipped)
    if args.readme:
        write_readme(readme_section(cases, outcomes, shipped.gates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
