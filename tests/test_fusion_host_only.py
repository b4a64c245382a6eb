"""Trails from host logs alone (no capture): the public Windows logs chain into trails with the members that
belong together, the same stages and scores as fused trails, and the outputs (table, HTML, the Splunk
command over Windows events) show them."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import List

import evtx

from smbtrail.cli import main
from smbtrail.engine import Options, analyze
from smbtrail.records import Record

ATSVC = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
FILE_COPY = "evtx-attack-samples/Lateral Movement/LM_5145_Remote_FileCopy.evtx"
SC_QUERY = "otrf-security-datasets/windows/lateral_movement/host/covenant_sc_query_dcerpc_smb_svcctl.zip"
SAMR = "otrf-security-datasets/windows/discovery/host/empire_shell_rpc_samr_smb_group_domain_admins_standard_user.zip"
SHARPSC = "otrf-security-datasets/windows/lateral_movement/host/covenant_sharpsc_create_dcerpc_smb_svcctl.zip"
FAILURES = ("omerbenamram-evtx/samples/Security_with_size_t.evtx", "omerbenamram-evtx/samples/Security_short_selected.evtx")
LOCAL = ("", "-", "127.0.0.1", "::1")


def _run(*paths: Path) -> List[Record]:
    return list(analyze([], [str(p) for p in paths], Options()))


def _trails(records: List[Record]) -> List[Record]:
    return [r for r in records if r.kind == "trail"]


def _members(records: List[Record], trail_id: str) -> Counter:
    return Counter(r.event_id for r in records if r.kind == "host_event" and r.trail_id == trail_id)


def test_atexec_on_the_target_is_one_trail_of_its_logons_pipe_task_and_files(shared_data):
    """impacket atexec seen only in the target's Security log: the SMB logons from 10.0.2.17 (joined by source
    and account), the RPC logon over \\atsvc (no address: joined by account and time), the task events of
    that logon id, the share accesses of the output file: one trail, stage execution."""
    records = _run(shared_data / ATSVC)
    trails = [t for t in _trails(records) if t.src_ip == "10.0.2.17" and t.user == "administrator"]
    assert len(trails) == 1
    trail = trails[0]
    members = _members(records, trail.trail_id)
    assert members == Counter({4624: 3, 4672: 3, 5140: 4, 5145: 5, 4698: 1, 4699: 1}), members
    logons = {r.logon_id for r in records if r.trail_id == trail.trail_id and r.event_id == 4624}
    assert logons == {"0x17e2aa", "0x17e2c0", "0x17e2d2"}
    rpc_logon = [r for r in records if r.event_id == 4624 and r.logon_id == "0x17e2d2"][0]
    assert rpc_logon.src_ip is None and rpc_logon.join == ["pipe_account_time"]
    assert [c["command"] for c in trail.args["commands"]] == [
        "atexec run", "schtasks delete", "net use map", "read file read", "delete file delete"]
    assert trail.args["stage"] == "execution" and trail.args["score"] >= 55
    assert trail.evidence == ["host"] and {"host_logon", "logon_id", "pipe_account_time"} <= set(trail.join)
    assert trail.trail_id.startswith("host-") and trail.dest_host == "WIN-77LTAPHIQ1R.example.corp"
    anonymous = [t for t in _trails(records) if t.user == "anonymous logon"]
    assert anonymous and anonymous[0].trail_id != trail.trail_id  # another account, another trail
    assert not [t for t in _trails(records) if t.user == "win-77ltaphiq1r$"]  # the host logging on to itself


def test_share_accesses_without_a_logon_form_the_trail_of_their_session(shared_data):
    """5145s alone (no 4624 in the file): their client ip:port and logon id make the trail."""
    records = _run(shared_data / FILE_COPY)
    trails = _trails(records)
    assert len(trails) == 1 and trails[0].src_ip == "10.0.2.15" and trails[0].user == "administrator"
    assert _members(records, trails[0].trail_id) == Counter({5145: 869})
    commands = Counter(c["command"] for c in trails[0].args["commands"])
    assert commands["write file write"] >= 2 and trails[0].args["stage"] == "lateral_movement"


def test_source_command_line_and_target_logon_are_one_trail(shared_data):
    """sc.exe \\\\MORDORDC query on WORKSTATION5 (4688) and MORDORDC's network logon from WORKSTATION5's
    address: the trail runs from the source to the target and holds both sides' events."""
    records = _run(shared_data / SC_QUERY)
    trails = [t for t in _trails(records) if t.args.get("commands")]
    assert len(trails) == 1
    trail = trails[0]
    assert trail.args["commands"][0]["command"] == "sc query"
    assert trail.args["commands"][0]["args"]["service_name"] == "IKEEXT"
    assert (trail.src_host or "").lower().startswith("workstation5") and trail.dest_host.lower().startswith("mordordc")
    hosts = {r.dest_host.split(".")[0].upper() for r in records if r.kind == "host_event" and r.trail_id == trail.trail_id}
    assert hosts == {"WORKSTATION5", "MORDORDC"}
    assert {"command_line", "host_logon"} <= set(trail.join) and trail.args["stage"] == "discovery"


def test_sam_group_opened_on_the_dc_names_the_group(shared_data):
    """net group "domain admins" /domain: the DC's 4661 on the RID-512 group is a `net group query` of
    sbeavers' trail from 172.18.39.6, the group named."""
    records = _run(shared_data / SAMR)
    trail = [t for t in _trails(records) if t.user == "sbeavers" and t.src_ip == "172.18.39.6"][0]
    queries = [c for c in trail.args["commands"] if c["command"] == "net group query"]
    assert queries and queries[0]["args"]["object_well_known"] == "Domain Admins"
    assert _members(records, trail.trail_id)[4661] == 4  # the domain, then the group, twice
    assert trail.args["stage"] == "discovery"


def test_service_creation_trail_holds_the_7045_and_not_the_routine_7040(shared_data):
    records = _run(shared_data / SHARPSC)
    trail = [t for t in _trails(records) if any(c["command"] == "sc create" for c in t.args.get("commands", []))][0]
    assert trail.user == "pgustavo" and trail.args["stage"] == "lateral_movement"
    members = _members(records, trail.trail_id)
    assert members[4624] >= 1 and members[4697] == 1 and members[7045] == 1
    assert not [r for r in records if r.kind == "command" and r.command == "sc" and r.operation == "config"]


def _expected_failures(path: Path) -> Counter:
    """(source, account, failure) of every remote failed logon, from the evtx package's own reading."""
    found: Counter = Counter()
    for rec in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(rec["data"])["Event"]
        code = event["System"]["EventID"]
        if int(code["#text"] if isinstance(code, dict) else code) != 4625:
            continue
        data = event["EventData"]
        source = data.get("IpAddress") if data.get("IpAddress") not in LOCAL else None
        if source is None:
            continue
        cause = data["SubStatus"] if int(data["SubStatus"], 16) else data["Status"]
        found[(source, data["TargetUserName"].lower(), int(cause, 16))] += 1
    return found


def test_failed_logons_are_a_trail_per_source_with_every_account_and_status(shared_data):
    from smbtrail.windows_names import status

    for name in FAILURES:
        path = shared_data / name
        records = _run(path)
        commands = [r for r in records if r.kind == "command" and r.command == "logon"]
        got: Counter = Counter()
        for cmd in commands:
            assert cmd.trail_id in {t.trail_id for t in _trails(records)}
            for attempt in cmd.args["host_attempts"]:
                got[(cmd.src_ip, attempt["account"], attempt["status"])] += attempt["count"]
        expected = Counter({(s, a, status(hex(c))): n for (s, a, c), n in _expected_failures(path).items()})
        assert got == expected and expected, name
    records = _run(shared_data / FAILURES[0])
    student = [r for r in records if r.kind == "command" and r.command == "logon"]
    assert [(c.src_ip, c.args["accounts"], c.operation) for c in student] == [("10.20.0.118", ["student"], "failed")]
    trail = [t for t in _trails(records) if t.trail_id == student[0].trail_id][0]
    assert _members(records, trail.trail_id) == Counter({4625: 4}) and trail.join == ["failed_logon"]


def test_local_explicit_credentials_open_no_trail(shared_data):
    """4648 to `localhost` (winlogon, services.exe): a logon on the same host, not lateral movement."""
    records = _run(shared_data / "python-evtx/tests/data/security.evtx")
    explicit = [r for r in records if r.kind == "host_event" and r.event_id == 4648]
    assert len(explicit) == 45 and not [r for r in explicit if r.trail_id]


def test_cli_table_and_html_show_host_only_trails(shared_data, tmp_path):
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        code = main(["analyze", "--hostlog", str(shared_data / ATSVC)])
    assert code == 0
    lines = [line for line in out.getvalue().splitlines() if "TRAIL atexec run" in line]
    assert lines and "stage=execution" in lines[0] and "evidence=host" in lines[0] and "10.0.2.17" in lines[0]
    report = tmp_path / "report.html"
    assert main(["analyze", "--hostlog", str(shared_data / ATSVC), "--format", "html", "-o", str(report)]) == 0
    text = report.read_text(encoding="utf-8")
    assert "atexec run" in text and "10.0.2.17" in text and "execution" in text


def test_no_fuse_keeps_the_flat_event_list(shared_data):
    records = list(analyze([], [str(shared_data / ATSVC)], Options(fuse=False)))
    assert not _trails(records) and not [r for r in records if r.trail_id and r.kind == "host_event"]


def test_the_process_that_used_explicit_credentials_joins_their_trail(shared_data):
    """sc.exe \\\\MORDORDC on WORKSTATION5 (a real 4688) and a 4648 of that process toward MORDORDC. No public
    log holds a 4648 to another host (all are to localhost), so a real 4648 (services.exe's) is re-addressed
    to the sc.exe process: its host, logon session, process id, target server and account."""
    from smbtrail.fusion import fuse_records
    from smbtrail.hostlog import read_hostlogs
    from smbtrail.hostlog.evtx_reader import read_evtx_python
    from smbtrail.hostlog.normalize import normalize_flat

    host = [r for r in read_hostlogs([str(shared_data / SC_QUERY)]) if r.kind == "host_event"]
    sc = [r for r in host if r.event_id == 4688 and r.args["process"].endswith("sc.exe")][0]
    path = str(shared_data / FAILURES[0])
    flat = next(f for f in read_evtx_python(path, path) if isinstance(f, dict) and f.get("EventID") == 4648)
    flat.update(Computer=sc.dest_host, SubjectLogonId=sc.logon_id, ProcessId=sc.args["process_id"],
                ProcessName=sc.args["process"], TargetServerName="MORDORDC.theshire.local", TargetUserName="da_admin",
                TargetDomainName="THESHIRE", TimeCreated=sc.time.isoformat())
    explicit = normalize_flat(flat, path)
    records = list(fuse_records(sorted(host + [explicit], key=lambda r: r.time)))
    joined = [r for r in records if r.kind == "host_event" and r.trail_id and (
        r.event_id == 4648 or (r.event_id == 4688 and r.args["process_id"] == sc.args["process_id"]))]
    assert {r.event_id for r in joined} == {4648, 4688} and len({r.trail_id for r in joined}) == 1
    assert [r.join for r in joined if r.event_id == 4688][0] == ["explicit_process"]
    trail = [t for t in records if t.kind == "trail" and t.trail_id == joined[0].trail_id][0]
    assert trail.user == "da_admin" and trail.dest_host == "MORDORDC.theshire.local"
    assert trail.src_host.lower().startswith("workstation5")
    assert [c["command"] for c in trail.args["commands"]] == ["sc query"]
