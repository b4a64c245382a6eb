"""The network engine on the public captures: every fact their expected outputs name is in our records."""

from __future__ import annotations

import glob
import hashlib
import os
from collections import Counter
from typing import Dict

import pytest

from helpers.network import kinds, records, tshark_dcerpc

SV = "suricata-verify"
SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"
TSCH = "86d35949-83c9-4044-b424-db363231fd0c"
ATSVC = "1ff70682-0a51-30e8-076d-740be8cee98b"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"
LSARPC = "12345778-1234-abcd-ef00-0123456789ab"


def ops(recs, uuid, opnum):
    return [r for r in recs if r.kind == "operation" and r.rpc_uuid == uuid and r.opnum == opnum]


def commands(recs, name):
    return [r for r in recs if r.kind == "command" and r.command == name]


def test_psexec_smb2_07(shared_data):
    recs = records(shared_data / SV / "smb2-07" / "20171220_smb_psexec_add_user.pcap")
    files = kinds(recs, "file")
    uploads = [f for f in files if f.path == "PSEXESVC.exe" and f.operation == "write"]
    assert uploads and uploads[0].share == "ADMIN$" and uploads[0].args["disposition"] == "overwrite_if"
    assert uploads[0].args["bytes_written"] > 100000
    assert any(f.path == "PSEXESVC.exe" and f.operation == "delete" for f in files)
    create = ops(recs, SVCCTL, 45)
    assert create and create[0].args["service_name"] == "PSEXESVC"
    assert create[0].args["binary_path"] == "%SystemRoot%\\PSEXESVC.exe"
    assert create[0].transport == "ncacn_np" and create[0].operation
    for opnum in (19, 1, 2):  # start, stop, delete
        assert any(r.args.get("service_name") == "PSEXESVC" for r in ops(recs, SVCCTL, opnum)), opnum
    pipes = {f.path for f in files if f.operation == "pipe_open"}
    for suffix in ("stdin", "stdout", "stderr"):
        assert f"PSEXESVC-VICTIM-PC-2412-{suffix}" in pipes
    psexec = commands(recs, "psexec")
    assert psexec and psexec[0].args["service_name"] == "PSEXESVC"
    assert psexec[0].dest_host and psexec[0].dest_host.lower().startswith("dc1")
    assert psexec[0].args.get("action") == "run"


def test_at_smb2_04(shared_data):
    recs = records(shared_data / SV / "smb2-04" / "20171220_smb_at_schedule.pcap")
    job = ops(recs, ATSVC, 0)
    assert job and job[0].args["job_command"].lower() == "c:\\mimikatz.exe"
    at = commands(recs, "at")
    assert at and at[0].args["job_command"].lower() == "c:\\mimikatz.exe"


def test_net_user_smb2_06(shared_data):
    recs = records(shared_data / SV / "smb2-06" / "20171220_smb_net_user.pcap")
    uuids = {r.rpc_uuid for r in kinds(recs, "operation")}
    assert SAMR in uuids and LSARPC in uuids
    assert commands(recs, "net user")


def test_remote_file_read_write_delete(shared_data):
    read = records(shared_data / SV / "smb2-05" / "20171220_smb_mimikatz_copy_to_host.pcap")
    assert any(r.kind == "file" and r.operation in ("read", "write") for r in read)
    deleted = records(*glob.glob(str(shared_data / SV / "smb2-delete" / "*.pcap")))
    assert any(r.kind == "file" and r.operation == "delete" for r in deleted)


def _otrf(shared_data, name):
    return records(shared_data / "otrf-security-datasets/windows/lateral_movement/network" / f"{name}.zip")


def test_sc_create_over_named_pipe(shared_data):
    recs = _otrf(shared_data, "covenant_sharpsc_create_dcerpc_smb_svcctl")
    creates = [r for r in commands(recs, "sc") if r.args.get("action") == "create"]
    assert creates and creates[0].transport == "ncacn_np"
    assert creates[0].args.get("service_name") and creates[0].args.get("binary_path")
    assert ops(recs, SVCCTL, 64), "OpenSCManager2 (opnum 64) must be an operation of its own"
    assert any(r.kind == "error" and r.partial for r in recs), "the last packet is truncated: say so"


def test_sc_create_over_tcp_sealed(shared_data):
    recs = _otrf(shared_data, "empire_psexec_dcerpc_tcp_svcctl")
    creates = [r for r in commands(recs, "sc") if r.args.get("action") == "create"]
    assert creates and creates[0].transport == "ncacn_ip_tcp" and creates[0].sealed
    assert any(r.user == "pgustavo" for r in creates), "Kerberos account from the TGS exchange"
    assert any(r.args.get("epm_mapped") for r in kinds(recs, "operation") if r.transport == "ncacn_ip_tcp")


def test_schtasks_create_over_tcp(shared_data):
    recs = _otrf(shared_data, "schtask_create")
    tsch = [r.opnum for r in kinds(recs, "operation") if r.rpc_uuid == TSCH]
    assert tsch[:3] == [0, 7, 1]
    assert all(r.sealed for r in kinds(recs, "operation") if r.rpc_uuid == TSCH)
    created = [r for r in commands(recs, "schtasks") if r.args.get("action") == "create"]
    assert created and created[0].transport == "ncacn_ip_tcp"


def test_file_written_to_c_share(shared_data):
    recs = _otrf(shared_data, "covenant_copy_smb_CreateRequest")
    writes = [r for r in commands(recs, "write file") if r.share == "C$"]
    assert writes and writes[0].path.endswith("GruntHTTP.exe") and writes[0].user == "pgustavo"


def _dev_captures(root):
    """Each capture once: zeek and suricata-verify ship two of the same files."""
    distinct: Dict[str, str] = {}
    for pattern in ("suricata-verify/**/*.pcap", "zeek/Traces/**/*.pcap", "zeek/Traces/**/*.cap",
                    "pcap-attack/**/*.pcapng", "samr-enum-lab/**/*.pcapng"):
        for path in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
            with open(path, "rb") as handle:
                distinct.setdefault(hashlib.sha256(handle.read()).hexdigest(), path)
    return list(distinct.values())


def test_every_dcerpc_request_is_one_record(shared_data):
    """Count equality over all dev captures: each request PDU tshark shows is one operation record."""
    checked = 0
    for path in _dev_captures(str(shared_data)):
        expected, acked = tshark_dcerpc(path)
        operations = kinds(records(path), "operation")
        assert Counter(r.opnum for r in operations) == expected, os.path.relpath(path, shared_data)
        missing_uuid = [r for r in operations if not r.rpc_uuid]
        if acked:  # a capture that starts after the binds cannot name the interfaces
            assert len(missing_uuid) <= sum(expected.values()) // 10, os.path.relpath(path, shared_data)
        checked += bool(expected)
    assert checked >= 10


@pytest.mark.parametrize("name,user", [("zeek/Traces/smb/smb3.pcap", "administrator")])
def test_encrypted_session_without_keys(shared_data, name, user):
    recs = records(shared_data / name)
    sessions = kinds(recs, "session")
    assert sessions and sessions[0].user.lower() == user and sessions[0].domain.upper() == "SUSE"
    activity = kinds(recs, "encrypted_activity")
    assert activity and all(r.encrypted and not r.decrypted for r in activity)
    assert sum(r.args["messages_to_server"] + r.args["messages_to_client"] for r in activity) == 44
    trees = [r for r in kinds(recs, "tree") if r.args.get("share_encrypted")]
    assert trees and trees[0].args["unc"].lower() == "\\\\ws2016\\encrypted"


def test_encrypted_session_with_key(shared_data, tmp_path):
    keys = tmp_path / "smb3.keys"
    keys.write_text("# from the data README\n3d00009400480000 28f2847263c83dc00621f742dd3f2e7b\n")
    recs = records(shared_data / "zeek/Traces/smb/smb3.pcap", keys=str(keys))
    assert not kinds(recs, "encrypted_activity")
    decrypted = [r for r in recs if r.decrypted]
    assert decrypted and all(r.encrypted for r in decrypted)


def test_wrong_key_is_reported_never_decrypted(shared_data, tmp_path):
    keys = tmp_path / "wrong.keys"
    keys.write_text("3d00009400480000 00112233445566778899aabbccddeeff\nnot a key line\n")
    recs = records(shared_data / "zeek/Traces/smb/smb3.pcap", keys=str(keys))
    activity = kinds(recs, "encrypted_activity")
    assert activity and not any(r.decrypted for r in recs)
    assert {r.args["decryption"] for r in activity} == {"failed_with_given_key"}
    errors = [r for r in kinds(recs, "error") if "wrong.keys: line 2" in r.message]
    assert errors and "00112233" not in errors[0].message


SAMR_ENUM = "samr-enum-lab/Resources"


@pytest.mark.parametrize("name", ["user", "group", "localgroup_admins"])
def test_impacket_net_encrypted_without_and_with_password(shared_data, name):
    path = shared_data / SAMR_ENUM / f"python.exe_impacket_net.py_{name}.pcapng"
    sealed = records(path)
    activity = kinds(sealed, "encrypted_activity")
    assert activity and all(r.user == "enum" for r in activity if r.user)
    assert any(r.user == "enum" for r in activity)
    assert not [r for r in kinds(sealed, "operation") if r.rpc_uuid == SAMR]
    opened = records(path, password="LabAdm1!")
    samr = [r for r in kinds(opened, "operation") if r.rpc_uuid == SAMR]
    assert samr and all(r.decrypted for r in samr)
    shown = (shared_data / SAMR_ENUM / f"python.exe_impacket_net.py_{name}__output.txt").read_text(errors="replace")
    names = {n for r in opened for n in r.args.get("names", []) if isinstance(n, str)}
    names |= {r.args.get("account") for r in opened if isinstance(r.args.get("account"), str)}
    assert any(n and n in shown for n in names), "a name the operator saw is in the decrypted trail"


def test_nt_hash_and_second_password_open_the_session_too(shared_data):
    """NT hashes (and every password after the first) reach tshark as an RC4 keytab."""
    from pydantic import SecretStr

    from smbtrail.encryption.keys import nt_hash
    from smbtrail.engine import Options, network_records

    path = str(shared_data / SAMR_ENUM / "python.exe_impacket_net.py_user.pcapng")
    by_password = {r.opnum for r in records(path, password="LabAdm1!") if r.kind == "operation" and r.decrypted}
    for options in (Options(nt_hashes=[SecretStr(nt_hash("LabAdm1!").hex())]),
                    Options(passwords=[SecretStr("not-it"), SecretStr("LabAdm1!")])):
        recs = list(network_records([path], options))
        assert {r.opnum for r in recs if r.kind == "operation" and r.decrypted} == by_password != set()
        assert not [r for r in recs if r.kind == "encrypted_activity"]
