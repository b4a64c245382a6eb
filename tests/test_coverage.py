"""smbtrail coverage: which commands of a cleartext trail survive share-only and server-wide SMB3
encryption, from the network alone and fused with host logs (the paper's Tables 3-4 for one network)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from smbtrail.cli import build_parser, run_coverage
from smbtrail.whatif.coverage import (
    INFERRED,
    LOST,
    NO_HOSTLOG,
    OBTAINED,
    CoverageReport,
    ScopeResult,
    TrailItem,
    coverage_report,
)

LAB = Path(__file__).resolve().parent / "fixtures" / "lab" / "plain"


def lab(name: str) -> str:
    path = LAB / f"{name}.pcapng"
    if not path.exists():
        pytest.skip(f"lab fixture {path.name} not generated")
    return str(path)


def states(report: CoverageReport, scope: str):
    return {item.network[scope] for item in report.items}


def test_ipc_rpc_survives_share_scope_only():
    """svcctl over \\PIPE\\svcctl rides on IPC$: readable when only file shares encrypt, hidden server-wide."""
    report = coverage_report([lab("sc_query_services")], scopes=("none", "share", "server"))
    assert report.items and all(item.command == "sc" for item in report.items)
    assert states(report, "none") == states(report, "share") == {OBTAINED}
    assert states(report, "server") <= {LOST, INFERRED}
    server = report.result("server")
    assert server.network_obtained == 0 and server.counts["operation"][0] == 0 < server.counts["operation"][1]
    assert server.encrypted_activity == server.encrypted_activity_with_user > 0
    assert report.result("share").counts["operation"] == report.result("none").counts["operation"]
    assert all(item.fused[s] == NO_HOSTLOG for item in report.items for s in report.scopes)


def test_file_copy_lost_once_the_share_encrypts():
    report = coverage_report([lab("file_write_smbclient")])
    writes = [item for item in report.items if item.command == "write file"]
    assert writes and all(item.network["none"] == OBTAINED for item in writes)
    assert all(item.network["share"] != OBTAINED and item.network["server"] != OBTAINED for item in writes)
    assert report.result("share").counts["file"][0] == 0 < report.result("share").counts["file"][1]


def test_rpc_over_tcp_survives_every_scope():
    report = coverage_report([lab("sc_tcp_privacy")])
    assert report.items
    for scope in report.scopes:
        assert states(report, scope) == {OBTAINED}
        assert not report.result(scope).rewrites or report.result(scope).rewrites[0].nbss_messages_encrypted == 0


def otrf_pair(shared_data: Path, tmp_path: Path, name: str):
    base = shared_data / "otrf-security-datasets" / "windows" / "lateral_movement"
    found = []
    for half in ("network", "host"):
        with zipfile.ZipFile(base / half / f"{name}.zip") as archive:
            archive.extractall(tmp_path / half)
        found.append([str(p) for p in sorted((tmp_path / half).rglob("*")) if p.is_file()])
    return found


@pytest.mark.parametrize("name", ["covenant_sc_query_dcerpc_smb_svcctl", "covenant_sharpsc_create_dcerpc_smb_svcctl",
                                  "covenant_copy_smb_CreateRequest"])
def test_host_logs_recover_what_server_wide_encryption_hides(name, shared_data, tmp_path):
    captures, hostlogs = otrf_pair(shared_data, tmp_path, name)
    report = coverage_report(captures, hostlogs, scopes=("none", "server"))
    if report.fusion != "ok":
        pytest.skip(report.fusion)
    assert report.items
    assert report.result("server").network_obtained < len(report.items)
    assert all(item.fused["server"] == OBTAINED for item in report.items), [i.model_dump() for i in report.items]
    assert report.result("server").fused_obtained == len(report.items)


def test_rendering_escapes_capture_strings():
    hostile = "<img src=x onerror=alert(1)>|evil\n"
    item = TrailItem(time=datetime(2020, 1, 1, tzinfo=timezone.utc), command="sc", action=hostile, user=hostile,
                     src="10.0.0.1", dest=hostile, network={"server": LOST}, fused={"server": OBTAINED})
    report = CoverageReport(captures=["x.pcap"], hostlogs=["h.json"], scopes=["server"], fusion="ok", items=[item],
                            results=[ScopeResult(scope="server", commands=1, fused_obtained=1)], errors=[hostile])
    markdown = report.markdown()
    assert "<img" not in markdown and "&lt;img" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| 2020")]
    assert len(table_rows) == 1 and table_rows[0].count(" | ") == 5  # the | in the strings is escaped
    assert "\n|evil" not in report.text() and "no / yes" in report.text()


def test_cli_json_and_partial_input(tmp_path):
    parser = build_parser()
    junk = tmp_path / "notes.pcap"
    junk.write_text("not a capture")
    args = parser.parse_args(["coverage", lab("sc_query_services"), str(junk), "--scope", "server", "--format", "json"])
    out, err = io.StringIO(), io.StringIO()
    assert run_coverage(args, out, err) == 1  # one input unreadable: the rest is still reported
    data = json.loads(out.getvalue())
    assert [r["scope"] for r in data["results"]] == ["server"] and data["items"]
    assert "notes.pcap" in err.getvalue() and "Lab-Passw0rd" not in out.getvalue() + err.getvalue()


def test_nothing_readable_is_a_usage_error(tmp_path):
    args = build_parser().parse_args(["coverage", str(tmp_path / "missing.pcap")])
    err = io.StringIO()
    assert run_coverage(args, io.StringIO(), err) == 2 and "missing.pcap" in err.getvalue()


def test_secret_options_are_those_of_analyze(monkeypatch):
    """One set of secret options for both commands: what analyze refuses, coverage refuses the same way."""
    def secret_options(command: str) -> set:
        parser = build_parser()
        sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[command]
        return {option for action in sub._actions for option in action.option_strings
                if action.container.title and action.container.title.startswith("decryption")}

    assert secret_options("coverage") == secret_options("analyze") >= {"--keys", "--password-env", "--keytab"}
    monkeypatch.delenv("SMBTRAIL_NO_SUCH_VAR", raising=False)
    args = build_parser().parse_args(["coverage", lab("sc_query_services"), "--password-env", "SMBTRAIL_NO_SUCH_VAR"])
    err = io.StringIO()
    assert run_coverage(args, io.StringIO(), err) == 2 and "SMBTRAIL_NO_SUCH_VAR" in err.getvalue()
