"""Calls no public capture holds in clear, marshalled by impacket (the NDR its tools put on the wire)
and decoded back: user creation, group changes, log clearing, share add, shutdown, secure channel.
Secrets passed to impacket (passwords) must never appear in what the decoders return."""

from __future__ import annotations

import pytest

from smbtrail.interfaces import decoder_for

pytest.importorskip("impacket")
from impacket.dcerpc.v5 import even, lsat, nrpc, rrp, samr, scmr, srvs, tsch  # noqa: E402
from impacket.dcerpc.v5.dtypes import NULL, RPC_SID  # noqa: E402

HANDLE = bytes(range(1, 21))
SECRET = "Sup3rS3cret!"


class RecordingDce:
    """Stands in for impacket's DCERPC_v5: keeps the opnum and NDR stub of each request."""

    def __init__(self) -> None:
        self.calls = []

    def request(self, call, *args, **kwargs):
        self.calls.append((call.opnum, call.getData()))
        return {}


def _handle(cls):
    value = cls()
    value.fromString(HANDLE)
    return value


def _decode(uuid: str, helper, *args, **kwargs) -> dict:
    dce = RecordingDce()
    helper(dce, *args, **kwargs)
    (opnum, stub), = dce.calls
    result = decoder_for(uuid).decode(opnum, True, {}, stub)
    assert "_decode_error" not in result, result
    assert SECRET not in repr(result)
    return result


def test_samr_user_and_group_changes():
    uuid = "12345778-1234-abcd-ef00-0123456789ac"
    handle = _handle(samr.SAMPR_HANDLE)
    created = _decode(uuid, samr.hSamrCreateUser2InDomain, handle, "backdoor")
    assert created["account"] == "backdoor" and created["account_flags"] == samr.USER_NORMAL_ACCOUNT
    sid = RPC_SID()
    sid.fromCanonical("S-1-5-21-1004336348-1177238915-682003330-1105")
    added = _decode(uuid, samr.hSamrAddMemberToAlias, handle, sid)
    assert added["member_sid"] == "S-1-5-21-1004336348-1177238915-682003330-1105"
    assert _decode(uuid, samr.hSamrAddMemberToGroup, handle, 1105, 7)["rid"] == 1105
    assert _decode(uuid, samr.hSamrDeleteUser, handle)["_handle_in"] == HANDLE.hex()
    assert _decode(uuid, samr.hSamrLookupNamesInDomain, handle, ["alice", "bob"])["names"] == ["alice", "bob"]
    changed = _decode(uuid, samr.hSamrUnicodeChangePasswordUser2, "\x00", "victim", "Old" + SECRET, SECRET)
    assert changed["account"] == "victim"


def test_lsa_lookup_sids_and_names():
    uuid = "12345778-1234-abcd-ef00-0123456789ab"
    handle = _handle(lsat.LSAPR_HANDLE)
    sids = ["S-1-5-21-1004336348-1177238915-682003330-500", "S-1-5-32-544"]
    assert _decode(uuid, lsat.hLsarLookupSids, handle, sids)["sids"] == sids
    assert _decode(uuid, lsat.hLsarLookupNames, handle, ["CONTOSO\\bob"])["names"] == ["CONTOSO\\bob"]


def test_registry_save_create_delete():
    uuid = "338cd001-2244-31f1-aaaa-900038001003"
    handle = _handle(rrp.RPC_HKEY)
    assert _decode(uuid, rrp.hBaseRegSaveKey, handle, "..\\Temp\\abcdefgh.tmp")["file"] == "..\\Temp\\abcdefgh.tmp"
    assert _decode(uuid, rrp.hBaseRegCreateKey, handle, "SOFTWARE\\Evil\x00")["key"] == "SOFTWARE\\Evil"
    assert _decode(uuid, rrp.hBaseRegDeleteValue, handle, "Debugger\x00")["value"] == "Debugger"


def test_share_delete_and_file_close():
    uuid = "4b324fc8-1670-01d3-1278-5a47bf6ee188"
    assert _decode(uuid, srvs.hNetrShareDel, "WMI_SHARE\x00")["share_name"] == "WMI_SHARE"
    assert _decode(uuid, srvs.hNetrFileClose, 42)["file_id"] == 42


def test_event_log_open_and_clear():
    uuid = "82273fdc-e32a-18c3-3f78-827929dc23ea"
    assert _decode(uuid, even.hElfrOpenELW, "Security\x00", "\x00")["log_name"] == "Security"
    cleared = _decode(uuid, even.hElfrClearELFW, _handle(even.IELF_HANDLE), "C:\\sec.evtx\x00")
    assert cleared["backup_file"] == "C:\\sec.evtx"


def test_netlogon_secure_channel_names():
    uuid = "12345678-1234-abcd-ef00-01234567cffb"
    challenge = _decode(uuid, nrpc.hNetrServerReqChallenge, "\\\\DC1\x00", "WS01\x00", b"12345678")
    assert challenge == {"server": "\\\\DC1", "machine": "WS01"}
    authenticate = _decode(uuid, nrpc.hNetrServerAuthenticate3, NULL, "WS01$\x00",
                           nrpc.NETLOGON_SECURE_CHANNEL_TYPE.WorkstationSecureChannel, "WS01\x00",
                           b"12345678", 0x212FFFFF)
    assert (authenticate["account"], authenticate["machine"], authenticate["channel_type"]) == ("WS01$", "WS01", 2)


def test_service_with_account_password_and_start_arguments():
    uuid = "367abb81-9844-35f1-ad32-98f038001003"
    handle = _handle(scmr.SC_RPC_HANDLE)
    password = (SECRET + "\x00").encode("utf-16-le")
    created = _decode(uuid, scmr.hRCreateServiceW, handle, "updater\x00", "Updater\x00",
                      lpBinaryPathName="C:\\Windows\\updater.exe\x00", lpServiceStartName=".\\svc\x00",
                      lpPassword=password, dwPwSize=len(password))
    assert (created["service_name"], created["start_name"]) == ("updater", ".\\svc")
    started = _decode(uuid, scmr.hRStartServiceW, handle, 2, ["-x\x00", "now\x00"])
    assert started["arguments"] == ["-x", "now"]


def test_task_registered_with_credentials():
    cred = tsch.TASK_USER_CRED()
    cred["userId"] = "CONTOSO\\svc\x00"
    cred["password"] = SECRET + "\x00"
    cred["flags"] = 0
    xml = "<Task><Actions><Exec><Command>calc.exe</Command></Exec></Actions></Task>"
    registered = _decode("86d35949-83c9-4044-b424-db363231fd0c", tsch.hSchRpcRegisterTask, "\\t1", xml,
                         tsch.TASK_CREATE, NULL, tsch.TASK_LOGON_PASSWORD, [cred])
    assert (registered["task_name"], registered["task_command"], registered["account"]) == (
        "\\t1", "calc.exe", "CONTOSO\\svc")
