#!/usr/bin/env python3
"""Precision and recall of size-based inference on encrypted SMB3, against the decrypted ground truth.

    scripts/inference_accuracy.py [--lab DIR ...] [--shared DIR] [--out docs/inference-accuracy.md]
                                  [--write-fingerprints]

Each capture is read twice: without secrets (encrypted_activity records -> inferred commands) and with its
key file or password (decrypted command records = ground truth). RPC size fingerprints are calibrated
leave-one-scenario-out: no capture of the scenario being scored (in any lab mode) contributes to the
fingerprints it is scored with.
`--write-fingerprints` stores the fingerprints of all captures in lookups/rpc_size_fingerprints.csv.
Ground truth counts only commands of sessions that were encrypted (ncacn_ip_tcp scenarios do not count).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smbtrail.encryption.fingerprints import FIELDS, Fingerprint, calibrate, load, to_rows  # noqa: E402
from smbtrail.encryption.inference import infer  # noqa: E402
from smbtrail.engine import Options, network_records  # noqa: E402
from smbtrail.lookups import lookup_path  # noqa: E402
from smbtrail.records import COMMAND, ENCRYPTED_ACTIVITY, Record  # noqa: E402

# public test keys, documented with the data set (../shared/data/README.md)
LAB = ROOT / "tests" / "fixtures" / "lab"
LAB_MODES = ("enc-global", "enc-share", "addc")
SMB3_01 = ("zeek/Traces/smb/smb3.pcap", "3d00009400480000 28f2847263c83dc00621f742dd3f2e7b")
# cleartext SMB2/3 captures of Windows (and other) clients: encryption is simulated from their message sizes
CLEARTEXT = [
    "pcap-attack/Lateral Movement/LM_psexec_smb_dcerpc_epm_svcctl.pcapng",
    "pcap-attack/Discovery/Discovery_privgroups_domain_admins_samr_lookupnames_req.pcapng",
    "suricata-verify/smb2-04/20171220_smb_at_schedule.pcap",
    "suricata-verify/smb2-05/20171220_smb_mimikatz_copy_to_host.pcap",
    "suricata-verify/smb2-06/20171220_smb_net_user.pcap", "suricata-verify/smb2-07/20171220_smb_psexec_add_user.pcap",
    "suricata-verify/smb2-delete/input.pcap", "suricata-verify/bug-5133/input.pcap", "zeek/Traces/smb/smb2.pcap",
    "samr-enum-lab/Resources/net.exe_user__domain.pcapng",
    "samr-enum-lab/Resources/net.exe_group__domain_admins__domain.pcapng",
]
SAMR_ENUM = ("samr-enum-lab/Resources", "python.exe_impacket_net.py_*.pcapng", "LabAdm1!")

Key = Tuple[str, str]


@dataclass
class Capture:
    name: str
    path: Path
    options: Options
    scenario: str  # captures of one scenario (in several lab modes) are left out together
    plain: List[Record] = field(default_factory=list)  # the run without secrets
    activity: List[Record] = field(default_factory=list)
    truth: List[Record] = field(default_factory=list)
    prints: List[Fingerprint] = field(default_factory=list)
    visible: Counter = field(default_factory=Counter)  # commands recognized without secrets (cleartext parts)
    simulated: bool = False  # a cleartext capture whose SMB sessions stand for encrypted ones

    def expected(self) -> Counter:
        """Commands of the encrypted sessions that only the decrypted run shows."""
        sessions = {r.session_id for r in self.activity}
        truth = [r for r in self.truth if r.kind == COMMAND and not r.inferred and self._over_smb(r, sessions)]
        return Counter(_key(r) for r in truth) - self.visible

    def _over_smb(self, rec: Record, sessions: set) -> bool:
        if rec.session_id in sessions:
            return True
        return self.simulated and rec.session_id is None and rec.transport != "ncacn_ip_tcp"


def _key(rec: Record) -> Key:
    return (rec.command or "", rec.operation or rec.args.get("action", ""))


def corpus(labs: List[Path], shared: Path, tmp: str) -> List[Capture]:
    out = []
    for lab in labs:
        for pcap in sorted(lab.glob("*.pcapng")):
            keys = pcap.with_suffix(".keys")
            if keys.is_file() and keys.stat().st_size:
                out.append(Capture(f"{lab.name}/{pcap.stem}", pcap, Options(keys_file=str(keys)), pcap.stem))
    smb3 = shared / SMB3_01[0]
    if smb3.is_file():
        keyfile = os.path.join(tmp, "smb3-01.keys")
        with open(keyfile, "w", encoding="ascii") as handle:
            handle.write(SMB3_01[1] + "\n")
        out.append(Capture("zeek/smb3", smb3, Options(keys_file=keyfile), "zeek/smb3"))
    for pcap in sorted((shared / SAMR_ENUM[0]).glob(SAMR_ENUM[1])):
        name = "samr-enum/" + pcap.stem.replace("python.exe_impacket_", "")
        out.append(Capture(name, pcap, Options(passwords=[SecretStr(SAMR_ENUM[2])]), name))
    return out


def windows_corpus(shared: Path) -> List[Capture]:
    out = []
    for rel in CLEARTEXT:
        path = shared / rel
        if path.is_file():
            name = "clear/" + rel.split("/")[-2 if rel.endswith("input.pcap") else -1]
            out.append(Capture(name, path, Options(), name, simulated=True))
    return out


def read_cleartext(capture: Capture) -> None:
    """Ground truth from the readable capture; the inference input is its simulated encrypted version,
    with the names an encrypted session still shows (server name from NTLM, user)."""
    capture.truth = list(network_records([str(capture.path)], Options()))
    known = {r.session_id: r for r in capture.truth if r.kind == "session" and r.session_id}
    capture.activity = simulated(capture.path)
    for rec in capture.activity:
        session = known.get(rec.session_id)
        if session is not None:
            rec.dest_host, rec.user, rec.src_port = session.dest_host, session.user, session.src_port
    capture.plain = list(capture.activity)


def read_capture(capture: Capture) -> None:
    # the engine already adds inferred commands (shipped fingerprints): drop them, inference is rerun per fold
    capture.plain = [r for r in network_records([str(capture.path)], Options()) if not r.inferred]
    capture.activity = [r for r in capture.plain if r.kind == ENCRYPTED_ACTIVITY and not r.decrypted]
    capture.visible = Counter(_key(r) for r in capture.plain if r.kind == COMMAND)
    capture.truth = list(network_records([str(capture.path)], capture.options))
    capture.prints = calibrate(capture.activity, capture.truth)[0]


SIM_FIELDS = ["frame.time_epoch", "tcp.stream", "tcp.dstport", "ip.src", "ip.dst", "nbss.length", "smb2.cmd",
              "smb2.sesid"]


def simulated(path: Path) -> List[Record]:
    """Cleartext SMB2/3 as if the session were encrypted: OriginalMessageSize equals the NetBIOS length of
    the message (or compound chain), so the sizes after SESSION_SETUP are what encryption would leave."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "smb2", "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in SIM_FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    sessions: Dict[Tuple[str, str], Record] = {}
    for line in out.splitlines():
        when, stream, dport, src, dst, lengths, cmds, sesids = (line.split("|") + [""] * 8)[:8]
        commands = {c for c in cmds.split(",") if c}
        sesid = next((x for x in sesids.split(",") if x and int(x, 16)), "")
        if not lengths or not sesid or commands <= {"0", "1"}:
            continue
        to_server = dport == "445"
        key = (stream, sesid)
        if key not in sessions:
            client, server = (src, dst) if to_server else (dst, src)
            sessions[key] = Record(time=float(when), kind=ENCRYPTED_ACTIVITY, src_ip=client, dest_ip=server,
                                   dest_port=445, protocol="smb3", session_id=sesid, encrypted=True,
                                   args={"message_sizes": [], "simulated": True})
        sizes = sessions[key].args["message_sizes"]
        sizes.extend(int(n) if to_server else -int(n) for n in lengths.split(",") if n.isdigit())
    return list(sessions.values())


def merge(groups: List[List[Fingerprint]]) -> List[Fingerprint]:
    counts: Dict[Fingerprint, int] = {}
    for group in groups:
        for p in group:
            key = Fingerprint(p.pipe, p.interface, p.opnum, p.operation, p.request, p.response, p.source)
            counts[key] = counts.get(key, 0) + p.count
    return [Fingerprint(k.pipe, k.interface, k.opnum, k.operation, k.request, k.response, k.source, n)
            for k, n in sorted(counts.items(), key=lambda kv: (kv[0].pipe, kv[0].interface, kv[0].opnum,
                                                              kv[0].request, kv[0].response))]


def inferred(capture: Capture, prints: List[Fingerprint]) -> Counter:
    return Counter(_key(r) for r in infer(capture.plain, prints) if r.inferred)


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    seen: List[str] = field(default_factory=list)
    wrong: List[str] = field(default_factory=list)

    def precision(self) -> str:
        return _ratio(self.tp, self.tp + self.fp)

    def recall(self) -> str:
        return _ratio(self.tp, self.tp + self.fn)


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.2f} ({num}/{den})" if den else "-"


def derived() -> List[Fingerprint]:
    """Rows fixed by the IDL (source `ndr`): written by hand, never measured, so every fold has them."""
    return [p for p in load() if p.source == "ndr"]


def score(captures: List[Capture], pool: List[Capture], leave_one_out: bool) -> Tuple[Dict[Key, Score], List[str]]:
    """Score `captures` with fingerprints calibrated on `pool` (less the scored scenario if leave_one_out)."""
    scores: Dict[Key, Score] = {}
    lines = []
    everything = merge([derived()] + [c.prints for c in pool])
    for capture in captures:
        others = [c.prints for c in pool if c.scenario != capture.scenario]
        prints = merge([derived()] + others) if leave_one_out else everything
        want, got = capture.expected(), inferred(capture, prints)
        for key in set(want) | set(got):
            entry = scores.setdefault(key, Score())
            hit = min(want[key], got[key])
            entry.tp += hit
            entry.fp += got[key] - hit
            entry.fn += want[key] - hit
            (entry.seen if want[key] else entry.wrong).append(capture.name)
        lines.append(f"| {capture.name} | {_show(want)} | {_show(got)} |")
    return scores, lines


def _show(counts: Counter) -> str:
    return ", ".join(f"{c} {a}" + (f" x{n}" if n > 1 else "") for (c, a), n in sorted(counts.items())) or "-"


def table(scores: Dict[Key, Score]) -> List[str]:
    rows = ["| template | precision | recall | ground truth in | inferred without ground truth in |",
            "|---|---|---|---|---|"]
    for (command, action), entry in sorted(scores.items()):
        rows.append(f"| {command} {action} | {entry.precision()} | {entry.recall()} | "
                    f"{', '.join(sorted(set(entry.seen))) or '-'} | {', '.join(sorted(set(entry.wrong))) or '-'} |")
    total = Score(sum(s.tp for s in scores.values()), sum(s.fp for s in scores.values()),
                  sum(s.fn for s in scores.values()))
    rows.append(f"| **all** | {total.precision()} | {total.recall()} | | |")
    return rows


def report(captures: List[Capture], cleartext: List[Capture]) -> str:
    loo, per_capture = score(captures, captures, leave_one_out=True)
    insample, _ = score(captures, captures, leave_one_out=False)
    held_out, per_clear = score(cleartext, captures, leave_one_out=False)
    return "\n".join([
        "# Inference from encrypted SMB3 message sizes: accuracy",
        "",
        "Produced by `scripts/inference_accuracy.py` (do not edit by hand). Each capture is analysed without",
        "secrets (inferred commands from `encrypted_activity` sizes) and with its key or password (decrypted",
        "command records: the ground truth). A template counts once per command; precision = inferred commands",
        "that the ground truth also has, recall = ground-truth commands that were inferred. Only commands of",
        "SMB3-encrypted sessions count, less those recognized without secrets from cleartext parts (with",
        "share-level encryption the TREE_CONNECT and IPC$ stay readable).",
        "",
        f"Captures: {len(captures)} ({', '.join(c.name for c in captures)}).",
        "",
        "## Leave-one-scenario-out (fingerprints: the IDL-derived rows plus those calibrated on other scenarios)",
        "",
        *table(loo),
        "",
        "## In-sample (fingerprints from all captures, as shipped in lookups/rpc_size_fingerprints.csv)",
        "",
        *table(insample),
        "",
        "## Per capture (leave-one-scenario-out)",
        "",
        "| capture | ground truth | inferred |",
        "|---|---|---|",
        *per_capture,
        "",
        "## Held out: other clients (Windows, Metasploit, smbclient), encryption simulated",
        "",
        "Public cleartext SMB2/3 captures: the sequence of NetBIOS message lengths after SESSION_SETUP is",
        "exactly the OriginalMessageSize sequence SMB3 encryption would leave (one transform per message or",
        "compound chain). Inference runs on that sequence with the shipped fingerprints (none measured on these",
        "captures); the ground truth is the engine's reading of the same cleartext capture.",
        "",
        f"Captures: {', '.join(c.name for c in cleartext) or 'none (../shared/data absent)'}.",
        "",
        *table(held_out),
        "",
        "| capture | ground truth | inferred |",
        "|---|---|---|",
        *per_clear,
        "",
        "Limits: the lab clients are impacket and Samba tools against Samba; a Windows client adds create",
        "contexts, compounds requests and sends other RPC request sizes (see the held-out table).",
        "Operations with equal request and response sizes (e.g. winreg OpenLocalMachine/OpenUsers, samr",
        "OpenAlias/EnumerateGroupsInDomain) cannot be told apart; file names are known only by length.",
        "",
    ])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", type=Path, action="append", help="a directory of lab captures with .keys files "
                        "(repeatable; default: the encrypted modes under tests/fixtures/lab)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "inference-accuracy.md")
    parser.add_argument("--write-fingerprints", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smbtrail-acc-") as tmp:
        labs = args.lab or [LAB / mode for mode in LAB_MODES if (LAB / mode).is_dir()]
        captures = corpus(labs, args.shared, tmp)
        if not captures:
            print(f"no captures with keys under {', '.join(map(str, labs))}", file=sys.stderr)
            return 1
        for capture in captures:
            read_capture(capture)
        cleartext = windows_corpus(args.shared)
        for capture in cleartext:
            read_cleartext(capture)
    text = report(captures, cleartext)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    if args.write_fingerprints:
        with open(lookup_path("rpc_size_fingerprints.csv"), "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, FIELDS)
            writer.writeheader()
            writer.writerows(to_rows(merge([derived()] + [c.prints for c in captures])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
