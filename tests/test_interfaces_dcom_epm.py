"""DCOM activation, IDispatch arguments and endpoint-mapper answers on real captures."""

from __future__ import annotations

from helpers.rpc_calls import cached_calls, calls_of, otrf_capture, suricata
from smbtrail.interfaces import decoder_for, identify

ACTIVATOR = "000001a0-0000-0000-c000-000000000046"
DISPATCH = "00020400-0000-0000-c000-000000000046"
EPM = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"


def _ctxids(shared_data):
    return cached_calls(str(shared_data / "suricata-verify/dcerpc/dcerpc-ctxids/input.pcap"), True)


def test_mmc20_activation(shared_data):
    calls = _ctxids(shared_data)
    (request,) = calls_of(calls, ACTIVATOR, 3)
    args = request.decode()
    assert args["clsid"] == "49b2791a-b1ae-4c90-9b8e-e860ba07f889"
    assert args["clsid_name"] == "MMC20.Application"
    assert args["iid"] == "00000001-0000-0000-c000-000000000046"
    fields = request.decode(with_fields=True)
    assert (fields["clsid"], fields["clsid_name"]) == (args["clsid"], args["clsid_name"])
    (response,) = calls_of(calls, ACTIVATOR, 3, request=False)
    assert response.decode()["port"] == response.decode(with_fields=True)["port"] == 49724
    assert "DC1[49724]" in response.decode()["bindings"]


def test_execute_shell_command_arguments(shared_data):
    invokes = [c.decode() for c in calls_of(_ctxids(shared_data), DISPATCH, 6)]
    with_strings = [args for args in invokes if args.get("bstrs")]
    assert len(with_strings) == 1
    assert with_strings[0]["bstrs"] == ["cmd", "", "/c hostname", "7"]  # Command, Directory, Parameters, Window
    fields = [c.decode(with_fields=True) for c in calls_of(_ctxids(shared_data), DISPATCH, 6)]
    assert [args["bstrs"] for args in fields if args.get("bstrs")] == [["cmd", "/c hostname", "7"]]


def test_epm_map_ties_tcp_port_to_interface(shared_data, tmp_path):
    calls = cached_calls(suricata(shared_data, "smb2-07"))
    (request,) = calls_of(calls, EPM, 3)
    (response,) = calls_of(calls, EPM, 3, request=False)
    assert request.decode()["interface_uuid"] == SVCCTL and request.decode()["interface"] == "svcctl"
    assert response.decode()["port"] == 49163
    pcap = otrf_capture(shared_data, tmp_path, "schtask_create")
    (answer,) = calls_of(cached_calls(str(pcap), True), EPM, 3, request=False)
    for args in (answer.decode(), answer.decode(with_fields=True)):
        assert args["interface"] == "ITaskSchedulerService"
        assert args["port"] == 49671


def test_identify_dcom_calls_whose_bind_was_not_captured(shared_data):
    pcap = shared_data / "pcap-attack/Lateral Movement/LM_dcom_mmc20.application_dcerpc.pcapng"
    calls = [c for c in cached_calls(str(pcap)) if c.request and c.stub]
    assert all(c.uuid is None for c in calls)  # the capture starts after the binds
    found = {c.frame: identify(c.opnum, c.request, c.stub) for c in calls}
    activations = [c for c in calls if found[c.frame] == ACTIVATOR]
    invokes = [c for c in calls if found[c.frame] == DISPATCH]
    assert [decoder_for(ACTIVATOR).decode(c.opnum, True, {}, c.stub)["clsid_name"] for c in activations] == [
        "MMC20.Application"]
    assert [decoder_for(DISPATCH).decode(6, True, {}, c.stub)["bstrs"] for c in invokes] == [
        ["c:\\windows\\system32\\cmd.exe", "/c notepad.exe", "7"]]


def test_identify_claims_no_other_call(shared_data):
    """Every request of a bound context in the dev captures: identify() names only real activations
    and IDispatch::Invoke calls with strings, never ITypeInfo, IRemUnknown2, svcctl, samr ..."""
    pcaps = [shared_data / "suricata-verify/dcerpc/dcerpc-ctxids/input.pcap",
             shared_data / "suricata-verify/filestore-filecontainer-smb/filecontainer-smb.pcap",
             shared_data / "suricata-verify/smb2-06/20171220_smb_net_user.pcap"]
    for pcap in pcaps:
        for call in cached_calls(str(pcap)):
            if call.uuid and call.stub:
                guess = identify(call.opnum, call.request, call.stub)
                assert guess in (None, call.uuid), (pcap.name, call.frame, call.uuid, call.opnum)
                if call.uuid not in (ACTIVATOR, DISPATCH):
                    assert guess is None
