"""svcctl decoding on real captures: PsExec (WOW64 create), sc/Metasploit/Covenant creates, handles."""

from __future__ import annotations

import pytest

from helpers.rpc_calls import cached_calls, calls_of, otrf_capture, suricata

SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"


def test_psexec_create_service_wow64_from_stub(shared_data):
    calls = cached_calls(suricata(shared_data, "smb2-07"))
    (create,) = calls_of(calls, SVCCTL, 45)
    args = create.decode()
    assert args["service_name"] == "PSEXESVC"
    assert args["binary_path"] == "%SystemRoot%\\PSEXESVC.exe"
    assert (args["service_type"], args["start_type"]) == (0x10, 3)  # own process, demand start
    assert "_decode_error" not in args


def test_psexec_handles_link_open_service_to_start_stop_delete(shared_data):
    calls = cached_calls(suricata(shared_data, "smb2-07"))
    opened = {}
    for response in calls_of(calls, SVCCTL, 16, request=False):
        request = next(c for c in calls if c.request and c.opnum == 16 and c.frame < response.frame
                       and c.frame >= response.frame - 2)
        opened[response.decode()["_handle_out"]] = request.decode()["service_name"]
    started = [opened[c.decode()["_handle_in"]] for c in calls_of(calls, SVCCTL, 19)]
    stopped = [(opened[c.decode()["_handle_in"]], c.decode()["control"]) for c in calls_of(calls, SVCCTL, 1)]
    deleted = [opened[c.decode()["_handle_in"]] for c in calls_of(calls, SVCCTL, 2)]
    assert started == ["PSEXESVC"]
    assert stopped == [("PSEXESVC", 1)]  # SERVICE_CONTROL_STOP
    assert deleted == ["PSEXESVC"]


def test_create_service_w_and_a_agree_with_tshark_fields(shared_data):
    calls = cached_calls(suricata(shared_data, "filestore-filecontainer-smb"), True)
    (create_w,) = calls_of(calls, SVCCTL, 12)
    from_stub, from_fields = create_w.decode(), create_w.decode(with_fields=True)
    assert from_stub["service_name"] == from_fields["service_name"] == "PSEXESVC"
    assert from_stub["display_name"] == from_fields["display_name"] == "PsExec"
    assert from_stub["binary_path"] == from_fields["binary_path"] == "%SystemRoot%\\PSEXESVC.EXE"
    assert from_stub["start_type"] == from_fields["start_type"] == 3
    (create_a,) = calls_of(calls, SVCCTL, 24)
    assert create_a.decode()["service_name"] == "PSKLLSVC"
    assert create_a.decode()["binary_path"] == "%SystemRoot%\\PSKLLSVC.EXE"


def test_change_service_config_reports_only_what_changes(shared_data):
    calls = cached_calls(suricata(shared_data, "filestore-filecontainer-smb"))
    (change,) = calls_of(calls, SVCCTL, 11)
    args = change.decode()
    assert args["start_type"] == 4  # disabled
    assert args["display_name"] == "Terminal Services"
    assert "service_type" not in args and "binary_path" not in args  # SERVICE_NO_CHANGE / NULL


def test_covenant_open_scmanager2_then_create_service_a(shared_data, tmp_path):
    pcap = otrf_capture(shared_data, tmp_path, "covenant_sharpsc_create_dcerpc_smb_svcctl")
    calls = cached_calls(str(pcap))
    scm = {c.decode()["_handle_out"] for c in calls_of(calls, SVCCTL, 64, request=False)}
    assert [c.decode()["access_mask"] for c in calls_of(calls, SVCCTL, 64)] == [2, 2]  # SC_MANAGER_CREATE_SERVICE
    (create,) = calls_of(calls, SVCCTL, 24)
    args = create.decode()
    assert args["_handle_in"] in scm
    assert args["service_name"] == "Cyb3rWard0g"
    assert args["binary_path"] == "C:\\Windows\\System32\\GruntHTTP2.exe"
    assert args["start_type"] == 2  # auto start


def test_sc_query_over_pipe(shared_data, tmp_path):
    pcap = otrf_capture(shared_data, tmp_path, "covenant_sc_query_dcerpc_smb_svcctl")
    calls = cached_calls(str(pcap))
    assert [c.decode()["service_name"] for c in calls_of(calls, SVCCTL, 16)] == ["IKEEXT"]
    (status,) = calls_of(calls, SVCCTL, 6, request=False)
    assert status.decode()["service_state"] == 1  # SERVICE_STOPPED


@pytest.mark.parametrize("test", ["bug-5133"])
def test_sealed_calls_decode_to_nothing_without_error(shared_data, test):
    calls = [c for c in cached_calls(suricata(shared_data, test)) if c.uuid == SVCCTL]
    assert {c.opnum for c in calls} >= {24, 27, 31, 2}
    for call in calls:
        assert call.stub is None  # packet privacy: tshark has no key, so no stub
        assert call.decode() == {}


def test_enum_services_lists_names_from_the_reassembled_answer(shared_data):
    calls = cached_calls(suricata(shared_data, "filestore-filecontainer-smb"))
    answers = [c.decode() for c in calls_of(calls, SVCCTL, 14, request=False) if not c.partial]
    sized = [a for a in answers if a.get("return_code") == 234]  # ERROR_MORE_DATA: the size probe
    listed = [a["names"] for a in answers if a.get("return_code") == 0]
    assert sized and all(a["names"] == [] for a in sized)
    assert listed and all({"Eventlog", "Dnscache", "RemoteRegistry"} <= set(names) for names in listed)
