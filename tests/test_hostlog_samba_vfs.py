"""Samba vfs_full_audit logs the lab recorded (tests/fixtures/lab/*/*.full_audit.log, made by tests/lab/run.sh)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List

import pytest

from smbtrail.engine import Options, analyze, host_records
from smbtrail.hostlog import read_hostlogs
from smbtrail.hostlog.sources import sniff

LAB = Path(__file__).resolve().parent / "fixtures" / "lab"
ROWS: List[Dict[str, str]] = list(csv.DictReader(open(LAB / "manifest.csv", encoding="utf-8"))) if (
    LAB / "manifest.csv").exists() else []
FILE_ROWS = [r for r in ROWS if r["command"] in ("read file", "write file", "delete file") and r.get("vfs_audit_log")]
ACCESS = {"read file": "read_data", "write file": "write_data", "delete file": "delete"}

pytestmark = pytest.mark.skipif(not FILE_ROWS, reason="no lab full_audit logs: run tests/lab/run.sh")


def _ids(rows):
    return [f"{r['mode']}/{r['scenario']}" for r in rows]


def test_the_format_is_told_by_content():
    row = FILE_ROWS[0]
    assert sniff((LAB / row["vfs_audit_log"]).read_bytes()[:4096]) == "samba_full_audit"
    assert sniff(b"[2026/11/26 00:42:12.012957,  1] ../../source3/smbd/server.c:1(main)\n  smbd started\n") \
        == "samba_log"


@pytest.mark.parametrize("row", FILE_ROWS, ids=_ids(FILE_ROWS))
def test_file_operation_with_user_client_share_path_access(row):
    records = list(read_hostlogs([str(LAB / row["vfs_audit_log"])]))
    assert not [r for r in records if r.kind == "error"]
    args = json.loads(row["expected_args"])
    opened = [r for r in records if r.event_id == 5145 and r.path == args["file"]]
    assert opened, f"no 5145 for {args['file']}"
    for rec in opened:
        assert (rec.user.lower(), rec.src_ip, rec.dest_ip, rec.share) == (
            row["account"].lower(), row["client_ip"], row["server_ip"], args["share"])
        assert rec.channel == "Samba" and rec.provider == "samba:full_audit" and rec.inferred
    assert any(ACCESS[row["command"]] in r.access for r in opened)
    connects = [r for r in records if r.event_id == 5140]
    assert args["share"] in {r.share for r in connects}
    assert records[0].time <= opened[0].time


@pytest.mark.parametrize("row", FILE_ROWS, ids=_ids(FILE_ROWS))
def test_host_log_alone_names_the_command(row):
    commands = [r for r in host_records([str(LAB / row["vfs_audit_log"])]) if r.kind == "command"]
    assert row["command"] in {c.command for c in commands}


ENCRYPTED = [r for r in FILE_ROWS if r["mode"] == "enc-global" and r["observed_encryption"] == "all"]


@pytest.mark.parametrize("row", ENCRYPTED, ids=_ids(ENCRYPTED))
def test_fusion_joins_the_encrypted_session_by_account_and_time(row):
    """Server-wide encryption hides the file operation; the full_audit log of the same run shows it, and
    fusion ties it to the capture's connection by account, server and time (no client port in the log)."""
    out = list(analyze([str(LAB / row["capture"])], [str(LAB / row["vfs_audit_log"])], Options()))
    fused = [r for r in out if r.kind == "command" and r.command == row["command"] and "host" in r.evidence]
    assert fused
    joined = [r for r in fused if "network" in r.evidence]
    assert joined and all(r.join == ["account_host_time"] for r in joined)
    assert all(r.src_ip == row["client_ip"] and r.dest_ip == row["server_ip"] and r.src_port for r in joined)
    events = [r for r in out if r.kind == "host_event" and r.command == row["command"]]
    assert events and all((r.join, r.confidence) == (["account_host_time"], 0.5) for r in events)  # the weak join


def test_a_logged_client_address_that_no_connection_has_is_not_joined(tmp_path):
    """The log names its client: the weak join keeps to connections from that address, so the same
    entries said to come from another host stay single-sided."""
    row = ENCRYPTED[0]
    text = (LAB / row["vfs_audit_log"]).read_text(encoding="utf-8")
    assert f"|{row['client_ip']}|" in text
    moved = tmp_path / "moved.log"
    moved.write_text(text.replace(f"|{row['client_ip']}|", "|10.99.99.99|"), encoding="utf-8")
    out = list(analyze([str(LAB / row["capture"])], [str(moved)], Options()))
    events = [r for r in out if r.kind == "host_event" and r.command == row["command"]]
    assert events and all(r.trail_id.startswith("host-") for r in events)  # a host trail of their own
    assert not [r for r in events if set(r.join) - {"host_logon", "account_source_time"}]
    assert not [r for r in out if r.kind == "command" and {"host", "network"} <= set(r.evidence)]


def test_a_cut_entry_costs_that_entry(tmp_path):
    """A truncated line (log rotated mid-write): one error naming the file and line, every other entry read."""
    lines = (LAB / FILE_ROWS[0]["vfs_audit_log"]).read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if b"|create_file|" in line)
    lines[cut] = lines[cut][:12] + b"\n"
    broken = tmp_path / "log.smbd"
    broken.write_bytes(b"".join(lines))
    whole = list(read_hostlogs([str(LAB / FILE_ROWS[0]["vfs_audit_log"])], all_events=True))
    records = list(read_hostlogs([str(broken)], all_events=True))
    errors = [r for r in records if r.kind == "error"]
    kept = len(lines[cut].strip())
    assert [e.message for e in errors] == [f"{broken}: line {cut + 1}: not a full_audit entry ({kept} characters)"]
    assert len(records) == len(whole)  # the cut entry's place is taken by its error
