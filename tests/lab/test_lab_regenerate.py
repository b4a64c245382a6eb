"""Regenerate the lab into a temporary directory and check the result (slow, root, Debian 12).
Runs only with SMBTRAIL_LAB_REGEN=1, e.g. `SMBTRAIL_LAB_REGEN=1 pytest -m lab tests/lab` (about 5 minutes)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import labcheck  # noqa: E402
import scenarios  # noqa: E402

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.environ.get("SMBTRAIL_LAB_REGEN") != "1", reason="set SMBTRAIL_LAB_REGEN=1 to regenerate"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


def test_regenerate_all_modes(tmp_path):
    subprocess.run([str(HERE / "run.sh"), "--out", str(tmp_path)], check=True, timeout=1800)
    rows = labcheck.read_manifest(tmp_path)
    assert len(rows) == 3 * len(scenarios.STANDALONE) + len(scenarios.ADDC)
    for row in rows:
        if row["observed_encryption"] == "none":
            continue
        opened = labcheck.summary(tmp_path / row["capture"], labcheck.row_secrets(tmp_path, row))
        assert opened.sealed <= 4, f"{row['mode']}/{row['scenario']}: {opened.sealed} frames stay sealed"
        missing = [op for op in row["expected_operations"].split(";") if op and op not in opened.operations]
        assert len(missing) <= 1, f"{row['mode']}/{row['scenario']}: missing {missing}"
    assert_full_audit_logs(tmp_path, rows)
    ip = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "smbt_" not in ip, "lab namespaces left behind"


def assert_full_audit_logs(out: Path, rows) -> None:
    """Every SMB scenario has Samba's full_audit entries, read without error; file scenarios show their file."""
    from smbtrail.engine import host_records

    for row in rows:
        tcp_only = row["transport"] == "NCACN_IP_TCP" or row["scenario"] == "krb_kinit_kvno"
        assert bool(row["vfs_audit_log"]) != tcp_only, f"{row['mode']}/{row['scenario']}: vfs_audit_log"
        if tcp_only:
            continue
        records = list(host_records([str(out / row["vfs_audit_log"])]))
        assert records and not [r for r in records if r.kind == "error"], row["vfs_audit_log"]
        if row["command"] in ("read file", "write file", "delete file"):
            assert row["command"] in {r.command for r in records if r.kind == "command"}, row["vfs_audit_log"]
