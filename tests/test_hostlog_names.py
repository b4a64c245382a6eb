"""Windows' own names for what events leave raw (access rights, directory GUIDs, failure codes, SIDs), on the
public logs, and the covered-events table (docs/covered-events.md) as the lookup says."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import evtx

from smbtrail import windows_names as names
from smbtrail.hostlog import read_hostlogs
from smbtrail.lookups import lookup_path

ROOT = Path(__file__).resolve().parents[1]
ATSVC = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
SAMR_GROUP = "otrf-security-datasets/windows/discovery/host/empire_shell_rpc_samr_smb_group_domain_admins_standard_user.zip"
FAILURES = "omerbenamram-evtx/samples/Security_with_size_t.evtx"
SYSTEM = "python-evtx/tests/data/system.evtx"
UNRENDERED = re.compile(r"%%\d+")


def _events(path: Path, event_id: int):
    return [r for r in read_hostlogs([str(path)]) if r.kind == "host_event" and r.event_id == event_id]


def _evtx_data(path: Path, event_id: int):
    """EventData of every record of `event_id`, as the evtx package reads it."""
    for rec in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(rec["data"])["Event"]
        code = event["System"]["EventID"]
        if int(code["#text"] if isinstance(code, dict) else code) == event_id:
            yield event.get("EventData") or {}


def test_covered_events_table_is_generated_from_the_lookup():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "covered_events.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(lookup_path("windows_events.csv"), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    page = (ROOT / "docs" / "covered-events.md").read_text(encoding="utf-8")
    for row in rows:
        assert f"| {row['event_id']} | {row['channel']} | `{row['name']}` |" in page


def test_access_rights_follow_windows_numbering():
    """Each object type's message ids are consecutive with its mask bits (%%7680 + bit): a typo in the table
    shows as a gap."""
    with open(lookup_path("windows_messages.csv"), newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["kind"] == "access" and r["object_type"] != "*"]
    by_type: dict = {}
    for row in rows:
        mask = int(row["mask"], 16)
        assert mask & (mask - 1) == 0, row
        by_type.setdefault(row["object_type"], []).append((int(row["code"][2:]) - mask.bit_length() + 1, row))
    for object_type, entries in by_type.items():
        assert len({base for base, _ in entries}) == 1, object_type
    assert names.message("%%7688") == "Control Access" and names.message("%%5649") == "Query secret value"
    assert names.access_from_mask("DS", 0x100) == ["Control Access"]
    assert names.access_from_mask("SAM_GROUP", 0x20014) == ["AddMember", "ListMembers", "READ_CONTROL"]


def test_replication_rights_and_classes_are_named():
    assert names.guid("1131f6aa-9c07-11d1-f79f-00c04fc2dcd2") == "DS-Replication-Get-Changes"
    assert names.guid("{1131F6AD-9C07-11D1-F79F-00C04FC2DCD2}") == "DS-Replication-Get-Changes-All"
    assert names.guid("89e95b76-444d-4c62-991a-0facbeda640c") == "DS-Replication-Get-Changes-In-Filtered-Set"
    assert names.substitute("%{19195a5b-6da0-11d0-afd3-00c04fd930c9}") == "domainDNS"
    assert names.names("%%7688 {1131f6ad-9c07-11d1-f79f-00c04fc2dcd2} {19195a5b-6da0-11d0-afd3-00c04fd930c9}") == [
        "Control Access", "DS-Replication-Get-Changes-All", "domainDNS"]


def test_sam_handles_name_the_group_and_the_rights(shared_data):
    """`net group "domain admins" /domain`: the DC's 4661 opens the RID-512 group; its rights and properties
    by name, none left as %%N."""
    groups = [r for r in _events(shared_data / SAMR_GROUP, 4661) if r.args["object_type"] == "SAM_GROUP"]
    assert groups and {r.args["object_well_known"] for r in groups} == {"Domain Admins"}
    assert {r.user for r in groups} == {"sbeavers"} and {r.logon_id for r in groups} == {"0x5b0d6fa"}
    assert groups[0].access == ["READ_CONTROL", "AddMember", "ListMembers", "Undefined Access (no effect) Bit 7"]
    assert {"group", "member", "Membership", "sAMAccountName"} <= set(groups[0].args["properties"])
    domains = [r for r in _events(shared_data / SAMR_GROUP, 4661) if r.args["object_type"] == "SAM_DOMAIN"]
    assert domains and "GetLocalGroupMembership" in domains[0].access
    users = [r for r in _events(shared_data / ATSVC, 4661) if r.args["object_type"] == "SAM_USER"]
    assert users and users[0].args["object_well_known"] == "Administrator"
    assert "SetPassword (without knowledge of old password)" in users[0].access
    for rec in _events(shared_data / SAMR_GROUP, 4661) + _events(shared_data / ATSVC, 4661):
        assert not UNRENDERED.search(json.dumps([rec.access, rec.args])), rec.record_id


def test_lsa_secret_read_is_named(shared_data):
    secrets = _events(shared_data / SAMR_GROUP, 4662)
    assert [(r.args["object_type"], r.args["object_name"], r.access) for r in secrets] == [
        ("SecretObject", "Policy\\Secrets\\$MACHINE.ACC", ["Query secret value"])]


def test_failed_logons_name_their_codes_as_often_as_windows_logged_them(shared_data):
    """Every 4625 and 4776 failure keeps its code and gets its name; per code, as many as the evtx package
    counts."""
    path = shared_data / FAILURES
    for event_id in (4625, 4776):
        raw = Counter(int(d["Status"], 16) for d in _evtx_data(path, event_id))
        ours = _events(path, event_id)
        assert Counter(int(r.args["status"], 16) for r in ours) == raw
        for rec in ours:
            assert rec.args["status_name"] == names.status(rec.args["status"])
            assert rec.args["status_name"].startswith("STATUS_")
    failed = _events(path, 4625)
    assert {r.args["status_name"] for r in failed} >= {"STATUS_LOGON_FAILURE"}
    assert all(not UNRENDERED.search(r.args.get("failure_reason", "")) for r in failed)
    assert "Unknown user name or bad password." in {r.args.get("failure_reason") for r in failed}
    assert {r.args["logon_type_name"] for r in failed} <= {"Interactive", "Network", "RemoteInteractive",
                                                           "NetworkCleartext", "Unlock", "CachedInteractive"}


def test_kerberos_and_samba_codes_have_their_own_names():
    assert names.status("0x18", names.KERBEROS) == "KDC_ERR_PREAUTH_FAILED"
    assert names.status("24", names.KERBEROS) == "KDC_ERR_PREAUTH_FAILED"
    assert names.status("0x6", names.KERBEROS) == "KDC_ERR_C_PRINCIPAL_UNKNOWN"
    assert names.status("0xC000006A") == "STATUS_WRONG_PASSWORD"
    assert names.status("NT_STATUS_NO_SUCH_USER") == "STATUS_NO_SUCH_USER"
    assert names.sid("S-1-5-21-1-2-3-512") == "Domain Admins" and names.sid("S-1-5-32-544") == "Administrators"
    assert names.sid("S-1-5-21-1-2-3-1106") is None


def test_service_start_type_changes(shared_data):
    path = shared_data / SYSTEM
    ours = _events(path, 7040)
    assert len(ours) == len(list(_evtx_data(path, 7040))) == 102
    bits = [r for r in ours if r.args["service_name"] == "Background Intelligent Transfer Service"]
    assert bits and bits[0].args["start_type"] == "auto start" and bits[0].args["old_start_type"] == "demand start"
    assert bits[0].args["service_key"] == "BITS"


ISSUE_EVENTS = (4648, 4661, 4662, 4688, 4625, 4776, 5145, 7040)


def test_each_issue_event_is_read_from_the_public_logs(shared_data):
    """The events the issue names: every one in the public .evtx files (as many as the evtx package counts)
    and in the OTRF JSON logs (as many as their lines say) is read."""
    counts: Counter = Counter()
    for path in sorted(shared_data.rglob("*.evtx")):
        for rec in evtx.PyEvtxParser(str(path)).records_json():
            code = json.loads(rec["data"])["Event"]["System"]["EventID"]
            counts[("evtx", int(code["#text"] if isinstance(code, dict) else code))] += 1
        for rec in read_hostlogs([str(path)]):
            counts[("evtx read", rec.event_id)] += rec.kind == "host_event"
    for path in sorted((shared_data / "otrf-security-datasets").rglob("host/*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                for line in archive.open(name):
                    if line.strip():
                        counts[("json", json.loads(line).get("EventID"))] += 1
        for rec in read_hostlogs([str(path)]):
            counts[("json read", rec.event_id)] += rec.kind == "host_event"
    for event_id in ISSUE_EVENTS:
        assert counts[("evtx", event_id)] + counts[("json", event_id)] > 0, event_id
        assert counts[("evtx read", event_id)] == counts[("evtx", event_id)], event_id
        assert counts[("json read", event_id)] == counts[("json", event_id)], event_id
