"""winreg and srvsvc on real captures (PsTools remote registry reads, net session, net share)."""

from __future__ import annotations

import pytest

from helpers.rpc_calls import cached_calls, calls_of, otrf_capture, suricata
from smbtrail.interfaces import decoder_for

WINREG = "338cd001-2244-31f1-aaaa-900038001003"
SRVSVC = "4b324fc8-1670-01d3-1278-5a47bf6ee188"


def test_open_key_under_hklm_via_handles(shared_data):
    calls = cached_calls(suricata(shared_data, "filestore-filecontainer-smb"), True)
    hives = {}
    for request, response in zip(calls_of(calls, WINREG, 2), calls_of(calls, WINREG, 2, request=False)):
        hives[response.decode()["_handle_out"]] = request.decode()["hive"]
    keys = [(hives.get(c.decode()["_handle_in"]), c.decode()["key"]) for c in calls_of(calls, WINREG, 15)]
    assert ("HKLM", "System\\CurrentControlSet\\Control\\Server Applications") in keys
    for call in calls_of(calls, WINREG, 15):
        assert call.decode()["key"] == call.decode(with_fields=True)["key"]


def test_performance_data_query(shared_data):
    calls = cached_calls(suricata(shared_data, "filestore-filecontainer-smb"), True)
    assert calls_of(calls, WINREG, 3)[0].decode()["hive"] == "HKPD"
    values = {c.decode()["value"] for c in calls_of(calls, WINREG, 17)}
    assert "238 " in values  # pslist-style counter index query
    answers = [c.decode() for c in calls_of(calls, WINREG, 17, request=False)]
    assert any(a.get("value_type") == "REG_BINARY" and a.get("data", "").startswith("50004500520046")
               for a in answers)  # "PERF" data block


class _RecordingDce:
    def request(self, call, *args, **kwargs):
        self.stub = call.getData()
        return {}


def test_set_value_stub_from_impacket():
    """reg.py add: impacket's hBaseRegSetValue marshals the stub (with its own padding bytes)."""
    rrp = pytest.importorskip("impacket.dcerpc.v5.rrp")
    handle = rrp.RPC_HKEY()
    handle.fromString(bytes(range(20)))
    dce = _RecordingDce()
    rrp.hBaseRegSetValue(dce, handle, "Debugger\x00", rrp.REG_SZ, "C:\\Windows\\System32\\cmd.exe\x00")
    args = decoder_for(WINREG).decode(22, True, {}, dce.stub)
    assert args == {"_handle_in": bytes(range(20)).hex(), "value": "Debugger", "value_type": "REG_SZ",
                    "data_size": 56, "data": "C:\\Windows\\System32\\cmd.exe"}
    dce = _RecordingDce()
    rrp.hBaseRegSetValue(dce, handle, "Start\x00", rrp.REG_DWORD, 4)
    assert decoder_for(WINREG).decode(22, True, {}, dce.stub)["data"] == 4


def test_net_session(shared_data, tmp_path):
    pcap = otrf_capture(shared_data, tmp_path, "empire_getsession_dcerpc_smb_srvsvc_NetSessEnum", "discovery")
    calls = cached_calls(str(pcap))
    (request,) = calls_of(calls, SRVSVC, 12)
    (response,) = calls_of(calls, SRVSVC, 12, request=False)
    assert request.ndr64 and request.decode()["server"] == "MORDORDC"
    assert response.decode()["clients"] == ["\\\\172.18.39.5"]
    assert response.decode()["accounts"] == ["pgustavo"]


def test_share_get_info(shared_data):
    calls = cached_calls(suricata(shared_data, "smb2-03-rule"), True)
    (request, *_) = calls_of(calls, SRVSVC, 16)
    assert request.decode()["share_name"] == request.decode(with_fields=True)["share_name"] == "smb2"
