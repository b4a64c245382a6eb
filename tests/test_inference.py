"""Size-based inference on the lab's encrypted captures, checked against their decrypted ground truth."""

from collections import Counter
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import pytest

from smbtrail.encryption.fingerprints import calibrate
from smbtrail.encryption.inference import ANY_LABEL, Gate, commands_for, infer
from smbtrail.encryption.sizes import create_request, structure, tree_connect_request
from smbtrail.engine import Options, network_records
from smbtrail.records import COMMAND, ENCRYPTED_ACTIVITY, Record

LAB = Path(__file__).resolve().parent / "fixtures" / "lab" / "enc-global"
# the size model itself, before the calibration decides which labels are shown by default
EVERYTHING = {ANY_LABEL: Gate("*", "*", 0.0, confidence=0.5)}

# scenarios where the size model claims to recover the trail of the impacket/Samba lab clients
CLAIMED = [
    "psexec_impacket", "smbexec_impacket", "schtasks_atexec", "at_netrjobadd", "sc_create_start_stop_delete",
    "sc_query_services", "psservice_status", "psinfo_rpcclient_reg", "reg_query_impacket", "reg_add_impacket",
    "reg_delete_impacket",
    "reg_save_impacket",
    "net_user_impacket", "net_view_smbclient", "net_time_tod", "pspasswd_changepasswd",
    "file_write_smbclient", "file_read_smbclient", "file_delete_smbclient", "file_write_impacket",
    "file_read_impacket", "file_delete_impacket", "net_use_smbclient",
]


def _capture(name: str) -> Path:
    path = LAB / f"{name}.pcapng"
    if not path.is_file() or not path.with_suffix(".keys").is_file():
        pytest.skip(f"lab fixture {path.name} (with its .keys) not present")
    return path


@cache
def encrypted(name: str):
    return tuple(r for r in network_records([str(_capture(name))], Options()) if r.kind == ENCRYPTED_ACTIVITY)


@cache
def decrypted(name: str):
    path = _capture(name)
    return tuple(network_records([str(path)], Options(keys_file=str(path.with_suffix(".keys")))))


def truth(name: str) -> Counter:
    sessions = {r.session_id for r in encrypted(name)}
    return Counter((r.command, r.operation) for r in decrypted(name) if r.kind == COMMAND and r.session_id in sessions)


def inferred(name: str, prints=None) -> Counter:
    return Counter((r.command, r.operation) for rec in encrypted(name)
                   for r in commands_for(rec, prints, calibration=EVERYTHING))


@pytest.mark.parametrize("name", CLAIMED)
def test_inferred_commands_equal_decrypted_ground_truth(name):
    expected = truth(name)
    assert expected, f"{name}: the decrypted run recognizes no command"
    assert inferred(name) == expected


def test_inference_tells_scenarios_apart():
    """Fails if inference said the same thing (or nothing) whatever the traffic."""
    names = [n for n in CLAIMED if isinstance(n, str) and (LAB / f"{n}.pcapng").is_file()]
    if len(names) < 4:
        pytest.skip("too few lab fixtures")
    answers = {n: frozenset(inferred(n).items()) for n in names}
    expected = {n: frozenset(truth(n).items()) for n in names}
    assert len(set(answers.values())) == len(set(expected.values())) > 3
    for a in names:
        for b in names:
            if expected[a] != expected[b]:
                assert answers[a] != answers[b], (a, b)


def test_psexec_recognized_with_fingerprints_from_other_captures():
    """Held out: calibrated on sc create/start/stop/delete only, scored on the PsExec capture."""
    prints, lined_up, _ = calibrate(encrypted("sc_create_start_stop_delete"), decrypted("sc_create_start_stop_delete"))
    assert lined_up >= 10
    found = [r for rec in encrypted("psexec_impacket") for r in commands_for(rec, prints, calibration=EVERYTHING)]
    assert [(r.command, r.operation) for r in found] == [("psexec", "run")]
    uploaded = sum(r.args["bytes_written"] for r in decrypted("psexec_impacket")
                   if r.kind == "file" and r.operation == "write")
    assert found[0].args["bytes_written"] == uploaded
    assert found[0].share == "ADMIN$"


def test_size_model_matches_decrypted_messages():
    """TREE_CONNECT and CREATE sizes computed from the decrypted UNC paths and pipe names are on the wire."""
    checked = 0
    for name in ("psexec_impacket", "reg_add_impacket", "net_user_impacket"):
        sizes = {abs(s) for rec in encrypted(name) for s in rec.args["message_sizes"]}
        for rec in decrypted(name):
            if rec.kind == "tree" and rec.args.get("unc"):
                assert tree_connect_request(rec.args["unc"]) in sizes, rec.args["unc"]
                checked += 1
            if rec.kind == "file" and rec.operation == "pipe_open":
                assert create_request(rec.path) in sizes, rec.path
                checked += 1
    assert checked >= 6


def test_inferred_records_are_marked_and_cite_their_sizes():
    """The engine runs inference on captures read without secrets."""
    records = list(network_records([str(_capture("sc_create_start_stop_delete"))], Options()))
    activity = [r for r in records if r.kind == ENCRYPTED_ACTIVITY]
    guesses = [r for r in records if r.inferred]
    assert activity and guesses
    sessions = {r.session_id: r for r in activity}
    for rec in guesses:
        assert rec.kind == COMMAND and rec.encrypted and not rec.decrypted
        assert 0 < rec.confidence <= 1
        source = sessions[rec.session_id]
        assert rec.args["evidence_sizes"] and set(rec.args["evidence_sizes"]) <= set(source.args["message_sizes"])
        assert rec.user == source.user == "smbtadmin" and rec.dest_ip == source.dest_ip
    assert Counter((r.command, r.operation) for r in guesses) == inferred("sc_create_start_stop_delete")
    rerun = [r for r in infer(r for r in records if not r.inferred) if r.inferred]
    assert [r.to_dict() for r in rerun] == [r.to_dict() for r in guesses]


def test_decrypted_runs_get_no_guesses():
    records = decrypted("sc_create_start_stop_delete")
    assert not [r for r in infer(records) if r.inferred]


def test_odd_size_sequences_do_not_crash():
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for sizes in ([], [-80, -80], [113], [68, 5, -3, 999999, -1, 0], ["x", None, 104], [120] * 50):
        rec = Record(time=when, kind=ENCRYPTED_ACTIVITY, args={"message_sizes": sizes})
        assert isinstance(commands_for(rec), list)
        structure([s for s in sizes if isinstance(s, int)])


def _simulated(path: Path):
    """scripts/inference_accuracy.py's simulation: a cleartext capture's sizes as encryption would leave them."""
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "inference_accuracy.py"
    spec = importlib.util.spec_from_file_location("inference_accuracy", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("inference_accuracy", module)
    spec.loader.exec_module(module)
    return module.simulated(path)


def test_windows_at_job_recognized_from_sizes_alone(shared_data):
    """Held out (no fingerprint comes from this capture): Windows at.exe over \\atsvc, encryption simulated."""
    found = [r for r in infer(_simulated(shared_data / "suricata-verify/smb2-04/20171220_smb_at_schedule.pcap"))
             if r.inferred]
    assert [(r.command, r.operation) for r in found] == [("at", "add")]
    assert found[0].args["operations"] == ["atsvc.NetrJobAdd"]


def test_windows_file_copy_byte_counts_from_sizes_alone(shared_data):
    path = shared_data / "suricata-verify/smb2-05/20171220_smb_mimikatz_copy_to_host.pcap"
    found = [r for r in infer(_simulated(path)) if r.inferred]
    assert {(r.command, r.operation) for r in found} == {("read file", "read")}
    truth = sorted(r.args.get("bytes_read", 0) for r in network_records([str(path)], Options())
                   if r.kind == "file" and r.operation == "read")
    assert sorted(r.args["bytes_read"] for r in found) == truth


def test_bad_lookup_rows_are_left_out():
    from smbtrail.encryption.fingerprints import from_rows
    from smbtrail.encryption.inference import templates_from_rows

    good = {"command": "at", "action": "add", "priority": "50", "confidence": "0.8", "requires": "rpc:atsvc:0",
            "absorbs": "", "description": "AT job"}
    rules = templates_from_rows([good, dict(good, priority="x"), dict(good, requires="nonsense:1"),
                                 dict(good, requires="upload:(:1")])
    assert len(rules) == 1
    row = {"pipe": "atsvc", "interface": "atsvc", "opnum": "0", "operation": "NetrJobAdd", "request": "60-8000",
           "response": "32", "source": "ndr", "count": "1"}
    assert len(from_rows([row, dict(row, opnum=""), dict(row, request="a-b"), {"pipe": "x"}])) == 1


def test_windows_psexec_across_sessions_from_sizes_alone(shared_data):
    """Held out: Sysinternals PsExec uploads PSEXESVC.exe in one SMB session and creates its service over
    \\svcctl in another; the upload carries over to the later burst."""
    path = shared_data / "suricata-verify/smb2-07/20171220_smb_psexec_add_user.pcap"
    truth = list(network_records([str(path)], Options()))
    names = {r.session_id: r.dest_host for r in truth if r.kind == "session"}
    activity = _simulated(path)
    for rec in activity:
        rec.dest_host = names.get(rec.session_id)
    found = [r for r in infer(activity) if r.inferred and r.command == "psexec"]
    assert len(found) == 1 and found[0].share == "ADMIN$"
    uploaded = [r.args["bytes_written"] for r in truth if r.kind == "file" and r.operation == "write"
                and r.share == "ADMIN$"]
    assert found[0].args["bytes_written"] in uploaded
