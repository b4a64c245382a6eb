"""Failed logons recorded by the lab (real Samba, real smbclient and MIT kinit): wrong passwords over NTLM
against the standalone server and the AD DC, over Kerberos against the DC's KDC, with the DC's own audit log.
The trail lists every account tried with its status, from the capture, from the log, and from both fused."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest

from helpers import network
from helpers.zeek_logs import write_logs
from smbtrail.engine import Options, analyze
from smbtrail.records import Record

LAB = Path(__file__).parent / "fixtures" / "lab"
sys.path.insert(0, str(Path(__file__).parent / "lab"))
import scenarios  # noqa: E402

ROWS = {(r["mode"], r["scenario"]): r for r in csv.DictReader(open(LAB / "manifest.csv", encoding="utf-8"))
        if r["scenario"].startswith("failed_logon_")}
DC = [key for key in ROWS if key[0] == "addc"]


def _row(mode: str, scenario: str) -> Dict[str, str]:
    return ROWS[(mode, scenario)]


def _audited_failures(row) -> Counter:
    """(account, status) of every failure the DC audited, from its JSON audit records."""
    found: Counter = Counter()
    for line in (LAB / row["audit_log"]).read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc = json.loads(line)
            body = doc.get("Authentication") or {}
            if body.get("eventId") == 4625:
                found[(body["clientAccount"].split("@")[0].lower(), "STATUS_" + body["status"][len("NT_STATUS_"):])] += 1
    return found


def _logons(records: List[Record]) -> List[Record]:
    return [r for r in records if r.kind == "command" and r.command == "logon"]


def _pairs(attempts) -> Counter:
    return Counter({(a["account"], a["status"]): a["count"] for a in attempts})


def _stage(logon: Record) -> str:
    """Guessing is credential access; a guess that then logged on is lateral movement."""
    return "lateral_movement" if logon.args.get("succeeded") else "credential_access"


def test_every_lab_scenario_is_there():
    assert set(ROWS) == {("plain", "failed_logon_ntlm_spray"), ("addc", "failed_logon_ntlm_spray"),
                         ("addc", "failed_logon_ntlm_brute"), ("addc", "failed_logon_krb_spray")}


def test_ntlm_spray_on_the_wire_names_every_account_domain_and_workstation():
    row = _row("plain", "failed_logon_ntlm_spray")
    records = network.records(LAB / row["capture"])
    refused = [r for r in records if r.kind == "session" and r.status != "ok"]
    tried = [a.format(USER=row["account"]).lower() for a in scenarios.STANDALONE_SPRAYED]
    assert [r.user.lower() for r in refused] == tried
    for rec in refused:
        assert rec.status == "STATUS_LOGON_FAILURE" and rec.args["nt_status"] == "0xc000006d"
        assert rec.domain == "SMBTLAB" and rec.args["workstation"] and rec.args["auth"] == "ntlm"
        assert rec.src_ip == row["client_ip"] and rec.dest_ip == row["server_ip"] and rec.src_port
    assert len({r.src_port for r in refused}) == len(tried)  # one connection per attempt, as smbclient does
    (logon,) = _logons(records)
    assert logon.operation == "spray" and logon.args["accounts"] == tried
    assert _pairs(logon.args["attempts"]) == Counter({(a, "STATUS_LOGON_FAILURE"): 1 for a in tried})
    assert len({r.trail_id for r in refused} | {logon.trail_id}) == 1  # one trail for the source
    assert not [r for r in records if r.kind == "session" and r.status == "no_session"]


def test_kerberos_spray_on_the_wire_names_every_account_and_kdc_error():
    row = _row("addc", "failed_logon_krb_spray")
    records = network.records(LAB / row["capture"])
    refused = [r for r in records if r.kind == "session" and r.protocol == "kerberos"]
    assert {r.user.lower(): r.status for r in refused} == {
        "administrator": "KDC_ERR_PREAUTH_FAILED", "guest": "KDC_ERR_ETYPE_NOSUPP",
        "smbtnobody": "KDC_ERR_C_PRINCIPAL_UNKNOWN", "smbtsvc": "KDC_ERR_C_PRINCIPAL_UNKNOWN"}
    assert all(r.operation == "as_req" and r.domain == "SMBTLAB.TEST" and r.args["service"] == "krbtgt/smbtlab.test"
               for r in refused)  # KDC_ERR_PREAUTH_REQUIRED, the first answer to every client, is not a failure
    (logon,) = _logons(records)
    assert logon.operation == "spray" and logon.args["protocols"] == ["kerberos"]
    assert [a.lower() for a in scenarios.DC_SPRAYED] == logon.args["accounts"]


@pytest.mark.parametrize("key", DC, ids="/".join)
def test_dc_audit_log_alone_gives_the_trail(key):
    """No capture: the DC's audit records of the failures make the trail, each account with the cause the
    DC logged (wrong password, no such user ...)."""
    row = _row(*key)
    records = list(analyze([], [str(LAB / row["audit_log"])], Options()))
    (logon,) = _logons(records)
    expected = _audited_failures(row)
    assert expected and _pairs(logon.args["host_attempts"]) == expected
    assert logon.evidence == ["host"] and logon.src_ip == row["client_ip"] and logon.join == ["failed_logon"]
    trail = [t for t in records if t.kind == "trail" and t.trail_id == logon.trail_id]
    assert trail and trail[0].args["stage"] == _stage(logon)
    assert [c["command"] for c in trail[0].args["commands"]] == [f"logon {logon.operation}"]


@pytest.mark.parametrize("key", DC, ids="/".join)
def test_capture_and_dc_log_fuse_into_one_trail_with_both_views(key):
    row = _row(*key)
    records = list(analyze([str(LAB / row["capture"])], [str(LAB / row["audit_log"])], Options()))
    (logon,) = _logons(records)
    assert set(logon.evidence) == {"network", "host"} and "ip_port" in logon.join
    assert _pairs(logon.args["host_attempts"]) == _audited_failures(row)  # the log's cause of each failure
    wire = _pairs(logon.args["attempts"])  # and what the wire said
    assert {a for a, _ in wire} == {a for a, _ in _audited_failures(row)}
    assert sum(wire.values()) == logon.args["host_failures"] == logon.args["failures"]
    failures = [r for r in records if r.kind == "host_event" and r.event_id == 4625]
    assert failures and {r.trail_id for r in failures} == {logon.trail_id}
    trail = [t for t in records if t.kind == "trail" and t.trail_id == logon.trail_id][0]
    assert trail.args["stage"] == _stage(logon) and set(trail.evidence) == {"network", "host"}
    if logon.operation == "spray":
        assert trail.user is None  # the accounts a spray tries are not the trail's account


def test_brute_force_that_worked_says_so():
    row = _row("addc", "failed_logon_ntlm_brute")
    records = list(analyze([str(LAB / row["capture"])], [str(LAB / row["audit_log"])], Options()))
    (logon,) = _logons(records)
    assert logon.operation == "brute_force" and logon.args["accounts"] == ["administrator"]
    assert logon.args["succeeded"] == ["administrator"] and logon.args["failures"] == 5
    trail = [t for t in records if t.kind == "trail" and t.trail_id == logon.trail_id][0]
    assert any("logged on" in reason for reason in trail.args["reasons"]) and trail.args["score"] >= 60


# -- the same failures from Zeek's logs ----------------------------------------------------------------
def _facts(logon: Record, with_status: bool) -> tuple:
    attempts = sorted((a["account"], a["status"] if with_status else "", a["count"]) for a in logon.args["attempts"])
    return (logon.operation, logon.args["accounts"], logon.args["failures"], logon.src_ip, logon.dest_ip, attempts)


def _refused(records: List[Record]) -> List[tuple]:
    return sorted((r.user, r.domain, r.src_ip, r.src_port, r.dest_ip, r.args.get("workstation"))
                  for r in records if r.kind == "session" and r.status != "ok")


@pytest.mark.parametrize("key", sorted(ROWS), ids="/".join)
def test_zeek_logs_of_the_failures_give_the_captures_failed_logon_facts(key, tmp_path):
    """ntlm.log `success` F and kerberos.log `success` F with its `error_msg` (Zeek's logs of the capture,
    derived from its records: helpers/zeek_logs.py) give the failed logons and the `logon` command the
    capture gives: accounts, counts, source, target. NTLM's refusal status is not in ntlm.log: said absent."""
    row = _row(*key)
    captured = network.records(LAB / row["capture"])
    logs = write_logs(captured, str(tmp_path))
    zeek = list(analyze(logs, [], Options()))
    assert _refused(zeek) == _refused(captured)
    (from_capture,), (from_zeek,) = _logons(captured), _logons(zeek)
    kerberos = "kerberos" in from_capture.args["protocols"]
    assert _facts(from_zeek, kerberos) == _facts(from_capture, kerberos)
    refused = [r for r in zeek if r.kind == "session" and r.status != "ok"]
    assert all("zeek" in r.evidence and (kerberos or "status" in r.args["absent"]) for r in refused)
    both = list(analyze([str(LAB / row["capture"])] + logs, [], Options()))
    (logon,) = _logons(both)
    assert _facts(logon, True) == _facts(from_capture, True), "capture and Zeek together: each failure once"
    if row["audit_log"]:
        fused = list(analyze(logs, [str(LAB / row["audit_log"])], Options()))
        (logon,) = _logons(fused)
        assert set(logon.evidence) == {"network", "host"} and "ip_port" in logon.join
        assert _pairs(logon.args["host_attempts"]) == _audited_failures(row), "the DC's cause of each failure"
        assert _facts(logon, kerberos) == _facts(from_zeek, kerberos)
