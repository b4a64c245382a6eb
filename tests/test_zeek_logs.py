"""Zeek logs as a network source, on real Zeek output.

zeek-real/: a real network's dce_rpc, smb_files, smb_mapping, ntlm and kerberos logs (TSV, gzip).
The expectations are read from the logs themselves by the small parser below (not by the reader under
test): one command per remote service and per remote task lifecycle, with the connection's source and
target, and the account where ntlm.log logged one for the same connection.
zeek/Baseline/: Zeek's own test logs (times masked) against the traces they were made from, analysed
as captures.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import pytest

from smbtrail.capture.inputs import sniff
from smbtrail.engine import network_records
from smbtrail.records import COMMAND, ERROR, FILE, OPERATION, TREE
from smbtrail.zeek import names
from smbtrail.zeek.logs import is_zeek_log

SERVICE_LIFECYCLE = {"CreateServiceW", "StartServiceW", "DeleteService"}
TASK_LIFECYCLE = {"SchRpcRegisterTask", "SchRpcRun", "SchRpcDelete"}
SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"
TSCH = "86d35949-83c9-4044-b424-db363231fd0c"


def zeek_rows(path: Path) -> List[Dict[str, str]]:
    """An independent reading of one Zeek TSV log (unset fields dropped, `\\\\` unescaped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows, fields = [], []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line and not line.startswith("#"):
                values = [v.replace("\\\\", "\\") for v in line.split("\t")]
                rows.append({k: v for k, v in zip(fields, values) if v != "-"})
    return rows


@pytest.fixture(scope="module")
def real(shared_data):
    return shared_data / "zeek-real"


@pytest.fixture(scope="module")
def real_records(real):
    return list(network_records([str(real)]))


def _uid(rec) -> str:
    return (rec.args.get("zeek") or {}).get("uid")


def _lifecycles(real: Path, calls: set) -> Dict[str, Dict[str, str]]:
    """uid -> the dce_rpc row that starts the lifecycle, for connections that made all its calls."""
    by_uid = defaultdict(list)
    for row in zeek_rows(real / "dce_rpc.log.gz"):
        by_uid[row["uid"]].append(row)
    return {uid: rows[0] for uid, rows in by_uid.items() if calls <= {r["operation"] for r in rows}}


def test_one_command_per_remote_service_and_task_lifecycle(real, real_records):
    accounts = {r["uid"]: (r["username"], r.get("domainname")) for r in zeek_rows(real / "ntlm.log.gz")
                if r.get("username")}
    for row in zeek_rows(real / "kerberos.log.gz"):  # a client name logged on the connection itself
        name, _, realm = row.get("client", "").rpartition("/")
        if name and row.get("success") != "F" and row.get("id.resp_p") != "88":
            accounts[row["uid"]] = (name, realm)
    commands = [r for r in real_records if r.kind == COMMAND]
    for calls, uuid in ((SERVICE_LIFECYCLE, SVCCTL), (TASK_LIFECYCLE, TSCH)):
        expected = _lifecycles(real, calls)
        assert expected, f"the real logs hold {sorted(calls)}"
        found = [c for c in commands if c.rpc_uuid == uuid]
        assert sorted(_uid(c) for c in found) == sorted(expected), "one command per lifecycle, none else"
        for command in found:
            row = expected[_uid(command)]
            assert (command.src_ip, command.src_port) == (row["id.orig_h"], int(row["id.orig_p"]))
            assert command.dest_ip == row["id.resp_h"]
            logged = accounts.get(_uid(command))
            assert (command.user, command.domain) == (logged or (None, None))
            if logged:
                assert command.dest_host, "the server's name from the NTLM exchange"
            assert "zeek" in command.evidence and "arguments" in command.args["absent"]
    kinds = {c.command + " " + c.args["action"] for c in commands if c.rpc_uuid in (SVCCTL, TSCH)}
    assert kinds == {"sc exec", "schtasks exec", "atexec run"}, kinds


def test_atexec_output_file_read_back_from_admin_share(real, real_records):
    """The task lifecycle whose smb_files lines show Temp\\<random>.tmp opened and deleted on ADMIN$."""
    temp = {r["uid"] for r in zeek_rows(real / "smb_files.log.gz") if r.get("name", "").startswith("Temp\\")}
    atexec = [r for r in real_records if r.kind == COMMAND and r.command == "atexec"]
    assert temp and {_uid(r) for r in atexec} == temp
    assert all(f.startswith("Temp\\") for r in atexec for f in r.args["files"])


def test_every_logged_call_is_a_record_with_uuid_and_opnum(real, real_records):
    rows = zeek_rows(real / "dce_rpc.log.gz")
    ops = [r for r in real_records if r.kind == OPERATION]
    assert len(ops) == len(rows)
    assert all(r.rpc_uuid and r.opnum is not None for r in ops), [r.args["zeek"] for r in ops if r.opnum is None]
    dcom = [r for r in ops if r.rpc_interface == "IRemoteSCMActivator"]
    assert len(dcom) == sum(r["operation"] == "RemoteCreateInstance" for r in rows) and all(r.opnum == 4 for r in dcom)
    assert all(r.transport == "ncacn_ip_tcp" for r in dcom) and not any(r.command for r in dcom)


def test_trees_and_files_are_records(real, real_records):
    trees = zeek_rows(real / "smb_mapping.log.gz")
    files = [r for r in zeek_rows(real / "smb_files.log.gz") if r.get("name") != "<share_root>"]
    assert len([r for r in real_records if r.kind == TREE]) == len(trees)
    got = [r for r in real_records if r.kind == FILE]
    assert len(got) == len(files)
    pipes = [r for r in got if r.operation == "pipe_open"]
    assert pipes and all(r.share == "IPC$" for r in pipes), "pipe opens logged without their tree"


def _jsonl(rows: List[Dict[str, str]], path: Path, log: str = "") -> None:
    """The rows as Zeek's JSON writer gives them: typed times, ports and flags."""
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            typed = dict(row, ts=float(row["ts"]))
            for key in ("id.orig_p", "id.resp_p"):
                typed[key] = int(row[key])
            for key in ("success", "forwardable", "renewable"):
                if key in row:
                    typed[key] = row[key] == "T"
            if log:
                typed = {"_path": log, **typed}
            out.write(json.dumps(typed) + "\n")


def _summary(records):
    return sorted((r.kind, str(r.time), r.src_ip, r.src_port, r.dest_ip, r.rpc_uuid, r.opnum, r.share, r.path,
                   r.operation, r.user, r.command) for r in records if r.kind != ERROR)


def test_json_lines_and_rotated_names_read_as_tsv(real, real_records, tmp_path):
    """The same logs as JSON lines (by fields, or `_path` as json-streaming-logs writes it), under rotation
    names, plain or gzip: the same records."""
    logs = sorted(real.glob("*.log.gz"))
    for i, path in enumerate(logs):
        log = path.name.split(".")[0]
        rows = zeek_rows(path)
        if i % 2:
            _jsonl(rows, tmp_path / f"json_streaming_{log}.1.log", log)
        else:
            plain = tmp_path / f"{log}.2018-03-24-17-00-00.log"
            _jsonl(rows, plain)
            with open(plain, "rb") as src, gzip.open(str(plain) + ".gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            plain.unlink()
    assert _summary(network_records([str(tmp_path)])) == _summary(real_records)


def test_zeek_gzip_and_capture_gzip_told_apart_by_content(shared_data, tmp_path):
    capture = tmp_path / "capture.gz"
    with open(shared_data / "zeek/Traces/smb/smb3.pcap", "rb") as src, gzip.open(capture, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert sniff(str(capture), is_zeek_log).kind == "gzip"
    assert sniff(str(shared_data / "zeek-real/dce_rpc.log.gz"), is_zeek_log).kind == "zeek"
    baseline = shared_data / "zeek/Baseline/scripts.base.protocols.smb.smb3/smb_mapping.log"
    assert sniff(str(baseline), is_zeek_log).kind == "zeek"


def test_names_in_the_real_logs_resolve_both_ways(real):
    for row in zeek_rows(real / "dce_rpc.log.gz"):
        uuid = names.interface_uuid(row["endpoint"])
        number = names.opnum(uuid, row["operation"])
        assert uuid and number is not None, row
        assert (names.zeek_endpoint(uuid), names.zeek_operation(uuid, number)) == (row["endpoint"], row["operation"])


# -- bad input ------------------------------------------------------------------------------------------
def test_cut_gzip_bad_lines_and_unknown_logs_cost_only_themselves(real, tmp_path):
    data = (real / "ntlm.log.gz").read_bytes()
    (tmp_path / "ntlm.log.gz").write_bytes(data[: len(data) // 2])  # a rotation cut mid-write
    lines = gzip.decompress((real / "dce_rpc.log.gz").read_bytes()).decode().splitlines(keepends=True)
    body = [i for i, line in enumerate(lines) if not line.startswith("#")]
    lines[body[3]] = "1521911754.6\tC6WWAQ2G8MqT1hrQHd\tgarbage\n"  # too few fields
    (tmp_path / "dce_rpc.log").write_text("".join(lines))
    (tmp_path / "dns.log").write_text("#separator \\x09\n#path\tdns\n#fields\tts\tuid\tquery\n1.0\tCx\tx.example\n")
    records = list(network_records([str(tmp_path)]))
    errors = [r.message for r in records if r.kind == ERROR]
    assert any("ntlm.log.gz: read stopped after line" in e for e in errors), errors
    assert any("dce_rpc.log: 1 unreadable line(s), the first at line" in e for e in errors), errors
    assert len(errors) == 2, "the dns log is not an error: it holds nothing smbtrail reads"
    assert len([r for r in records if r.kind == OPERATION]) == len(body) - 1
    assert any(r.kind == "session" and r.user for r in records), "the readable half of ntlm.log"


# -- Zeek's own baselines against the traces as captures ------------------------------------------------
BASELINES = {  # Baseline directory -> trace (zeek/TRACE_BASELINE_MAP.md)
    "scripts.base.protocols.dce-rpc.context": "dce-rpc/cs_window7-join_stream092.pcap",
    "scripts.base.protocols.smb.smb1-transaction-dcerpc":
        "smb/dssetup_DsRoleGetPrimaryDomainInformation_standalone_workstation.cap",
    "scripts.base.protocols.smb.smb2": "smb/smb2.pcap",
    "scripts.base.protocols.smb.smb3": "smb/smb3.pcap",
}


def _key(rec):
    detail = {OPERATION: (rec.rpc_uuid, rec.opnum), TREE: ((rec.share or "").lower(),),
              FILE: ((rec.path or "").lower(),)}[rec.kind]
    return (rec.kind, rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port) + detail


@pytest.mark.parametrize("baseline", sorted(BASELINES))
def test_baseline_logs_against_the_trace_as_capture(shared_data, baseline):
    logs = shared_data / "zeek" / "Baseline" / baseline
    zeek = list(network_records([str(logs)]))
    capture = list(network_records([str(shared_data / "zeek" / "Traces" / BASELINES[baseline])]))
    rows = {log: zeek_rows(logs / f"{log}.log") for log in ("dce_rpc", "smb_mapping", "smb_files", "files")
            if (logs / f"{log}.log").exists()}
    counts = {OPERATION: len(rows.get("dce_rpc", [])), TREE: len(rows.get("smb_mapping", [])),
              FILE: len([r for r in rows.get("smb_files", []) if r["name"] != "<share_root>"])
              + len(rows.get("files", []))}
    assert sum(counts.values()), f"{baseline}: no rows"
    for kind, count in counts.items():
        assert len([r for r in zeek if r.kind == kind]) == count, kind  # every logged call, tree and file
    seen = {_key(r) for r in capture if r.kind in counts}
    for rec in (r for r in zeek if r.kind in counts):
        assert _key(rec) in seen, f"{baseline}: Zeek's {_key(rec)} not in the capture's records"
        assert rec.partial and rec.args.get("time_unknown"), "times masked in the baseline: marked"
    wanted = sorted((c.command, c.args["action"], c.src_ip, c.dest_ip) for c in capture if c.kind == COMMAND)
    got = sorted((c.command, c.args["action"], c.src_ip, c.dest_ip) for c in zeek if c.kind == COMMAND)
    assert got == wanted, f"{baseline}: commands from the logs {got} vs the trace {wanted}"


# -- Zeek logs inside zip archives ---------------------------------------------------------------------
def _cli_jsonl(*paths) -> List[dict]:
    done = subprocess.run([sys.executable, "-m", "smbtrail.cli", "analyze", "--format", "jsonl", *map(str, paths)],
                          capture_output=True, text=True, timeout=600)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _without_file_names(records: List[dict]) -> List[str]:
    """Records as text with each provenance reduced to the log's own name (and the id, a hash of it, dropped)."""
    out = []
    for rec in records:
        rec = dict(rec, provenance=[dict(p, file=p["file"].rsplit("!", 1)[-1].rsplit("/", 1)[-1].replace(".gz", ""))
                                    for p in rec.get("provenance", [])])
        rec.pop("id", None)
        out.append(json.dumps(rec, sort_keys=True))
    return out


def test_zeek_logs_inside_a_zip_give_the_records_of_the_unzipped_files(real, tmp_path):
    """The real logs zipped as a SOC ships them (gzip members, plain members, a folder inside the archive):
    the same jsonl as the files themselves, each record naming `archive.zip!member`."""
    archive = tmp_path / "zeek-logs.zip"
    unzipped = tmp_path / "unzipped"
    unzipped.mkdir()
    names = set()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for i, path in enumerate(sorted(real.glob("*.log.gz"))):
            if i % 2:
                names.add(path.name)
                out.write(path, path.name)  # rotated logs as Zeek leaves them, gzip inside the zip
                shutil.copy(path, unzipped / path.name)
            else:
                plain = gzip.decompress(path.read_bytes())
                names.add(f"2018-03-24/{path.name[:-3]}")
                out.writestr(f"2018-03-24/{path.name[:-3]}", plain)
                (unzipped / path.name[:-3]).write_bytes(plain)
    zipped = _cli_jsonl(archive)
    assert zipped and not [r for r in zipped if r["kind"] == ERROR]
    assert _without_file_names(zipped) == _without_file_names(_cli_jsonl(unzipped))
    assert {p["file"] for r in zipped for p in r.get("provenance", [])} == {f"{archive}!{name}" for name in names}


def test_bad_members_of_a_zip_of_zeek_logs_cost_only_themselves(real, tmp_path):
    """A member cut mid-write, a decompression bomb and a stray note beside good logs: each named, the rest read."""
    cut = (real / "ntlm.log.gz").read_bytes()
    header = "#separator \\x09\n#path\tdns\n#fields\tts\tuid\tquery\n"
    bomb = gzip.compress((header + "1.0\tCx\tx.example\n" * (2 << 20)).encode(), 9)  # 40 MiB of one line
    archive = tmp_path / "sensor.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(real / "dce_rpc.log.gz", "dce_rpc.log.gz")
        out.writestr("ntlm.log.gz", cut[: len(cut) // 2])
        out.writestr(zipfile.ZipInfo("dns.log.gz"), bomb)  # stored: only the gzip inside expands
        out.writestr("notes.txt", "rotated hourly\n")
    records = _cli_jsonl(archive)
    errors = {r["provenance"][0]["file"]: r["message"] for r in records if r["kind"] == ERROR}
    assert set(errors) == {f"{archive}!{name}" for name in ("ntlm.log.gz", "dns.log.gz", "notes.txt")}, errors
    assert "read stopped after line" in errors[f"{archive}!ntlm.log.gz"]
    assert "decompression bomb" in errors[f"{archive}!dns.log.gz"]
    assert "not a capture" in errors[f"{archive}!notes.txt"]
    assert len([r for r in records if r["kind"] == OPERATION]) == len(zeek_rows(real / "dce_rpc.log.gz"))
    assert any(r["kind"] == "session" and r.get("user") for r in records), "the readable half of ntlm.log"


def test_refused_kerberos_request_keeps_the_kdc_error(real, real_records):
    """kerberos.log's `success` F rows: the KDC's error as the record's status, as a capture's KRB-ERROR gives."""
    refused = {r["uid"]: r["error_msg"] for r in zeek_rows(real / "kerberos.log.gz") if r.get("success") == "F"}
    assert refused, "the real log holds a refused request"
    got = {_uid(r): r.status for r in real_records if r.kind == "session" and r.protocol == "kerberos"
           and r.status != "ok"}
    assert got == refused


def test_a_zip_holding_a_capture_and_its_zeek_logs_reads_both_once(shared_data, tmp_path):
    """A capture and the Zeek logs of the same traffic (derived from its records with their times, as Zeek
    writes them: tests/helpers/zeek_logs.py) in one archive: the capture goes to tshark, the logs to the
    Zeek reader, and each tree and call both saw is one record, the capture's, noting Zeek."""
    from helpers.zeek_logs import write_logs

    trace = shared_data / "zeek/Traces/smb/smb2.pcap"
    alone = [r for r in network_records([str(trace)]) if r.kind in (TREE, OPERATION)]
    logs = write_logs(alone, str(tmp_path / "logs"))
    archive = tmp_path / "sensor.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(trace, "smb2.pcap")
        for log in logs:
            out.write(log, Path(log).name)
    both = [r for r in network_records([str(archive)]) if r.kind in (TREE, OPERATION)]
    assert logs and len(both) == len(alone) > 0
    assert all(r.provenance[0].file == f"{archive}!smb2.pcap" and "zeek" in r.evidence for r in both)
    assert {p.file for r in both for p in r.provenance[1:]} <= {f"{archive}!{Path(log).name}" for log in logs}
