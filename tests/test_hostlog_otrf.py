"""OTRF Security-Datasets host halves (zip of flattened JSON lines from NXLog): facts and times."""

from __future__ import annotations

from datetime import timedelta

import pytest

from smbtrail.hostlog import read_hostlogs, recognize_host

pytestmark = pytest.mark.shared
LATERAL = "otrf-security-datasets/windows/lateral_movement/host"


def test_sharpsc_service_and_svcctl_pipe(shared_data):
    path = str(shared_data / LATERAL / "covenant_sharpsc_create_dcerpc_smb_svcctl.zip")
    records = list(read_hostlogs([path]))
    assert not [r for r in records if r.kind == "error"]
    installed = {(r.event_id, r.args["service_name"]): r for r in records if r.event_id in (4697, 7045)}
    assert installed[(7045, "OTR")].args["binary_path"] == "C:\\Windows\\System32\\GruntHTTP2.exe"
    assert installed[(7045, "OTR")].user == "pgustavo"  # NXLog's AccountName is the acting user
    assert {r.args["binary_path"] for r in installed.values()} == {"C:\\Windows\\System32\\GruntHTTP2.exe"}
    pipes = [r for r in records if r.event_id == 5145 and r.path == "svcctl"]
    assert 54736 in {r.src_port for r in pipes}
    assert all(r.share == "IPC$" and r.src_ip == "172.18.39.5" for r in pipes)
    assert all(r.provenance[0].file == path + "!covenant_sharpsc_create_dcerpc_smb_svcctl_2020-08-06022635.json"
               for r in records)


def test_sharpsc_recognized_as_remote_service_creation(shared_data):
    path = str(shared_data / LATERAL / "covenant_sharpsc_create_dcerpc_smb_svcctl.zip")
    commands = [r for r in recognize_host(read_hostlogs([path])) if r.kind == "command"]
    created = {c.args["service_name"]: c for c in commands if (c.command, c.operation) == ("sc", "create")}
    assert set(created) == {"OTR", "Cyb3rWard0g"}
    four_697 = created["Cyb3rWard0g"]  # 4697 carries the logon id of the svcctl pipe session
    assert (four_697.src_ip, four_697.src_port, four_697.args["remote"]) == ("172.18.39.5", 54736, True)


def test_event_time_is_the_hosts_not_the_collectors(shared_data):
    """NXLog's EventTime is host-local without a zone: the record keeps the event's own second, in UTC,
    the zone inferred from @timestamp; the collector time stays beside it."""
    path = str(shared_data / LATERAL / "covenant_sharpsc_create_dcerpc_smb_svcctl.zip")
    otr = [r for r in read_hostlogs([path]) if r.event_id == 7045][0]
    assert otr.time.isoformat() == "2020-08-06T06:27:29+00:00"  # EventTime 02:27:29 at UTC-4
    assert otr.collector_time.isoformat() == "2020-08-06T06:27:31.787000+00:00"
    assert "-04:00" in otr.args["time_note"]
    assert timedelta(0) < otr.collector_time - otr.time < timedelta(seconds=15)


def test_copy_and_psexec_and_schtask(shared_data):
    copy_zip = str(shared_data / LATERAL / "covenant_copy_smb_CreateRequest.zip")
    copy = list(recognize_host(read_hostlogs([copy_zip])))
    writes = [r for r in copy if r.kind == "command" and r.command == "write file"]
    assert [(w.share, w.path, w.src_ip) for w in writes] == [("C$", "ProgramData\\GruntHTTP.exe", "172.18.39.5")]
    opened = [r for r in copy if r.event_id == 5145 and r.args.get("access_mask") == "0x17019f"]
    assert opened and "delete" in opened[0].access  # the copy's open asks DELETE among write rights
    assert not [r for r in copy if r.command == "delete file"], "a copy is no delete"
    psexec = list(read_hostlogs([str(shared_data / LATERAL / "empire_psexec_dcerpc_tcp_svcctl.zip")]))
    assert {r.args["service_name"] for r in psexec if r.event_id in (4697, 7045)} == {"Updater"}
    task = [r for r in read_hostlogs([str(shared_data / LATERAL / "schtask_create.zip")]) if r.event_id == 4698]
    assert len(task) == 1 and task[0].args["task_command"].endswith("notepad.exe")


def test_directory_of_zips(shared_data):
    folder = shared_data / "otrf-security-datasets/windows/discovery/host"
    records = list(read_hostlogs([str(folder)]))
    assert not [r for r in records if r.kind == "error"]
    assert len({r.provenance[0].file.split("!")[0] for r in records}) == 2
