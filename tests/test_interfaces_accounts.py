"""atsvc, samr and lsarpc on real captures: `at` with mimikatz, `net user`, `net group` enumeration."""

from __future__ import annotations

from helpers.rpc_calls import cached_calls, calls_of, otrf_capture, suricata

ATSVC = "1ff70682-0a51-30e8-076d-740be8cee98b"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"
LSARPC = "12345778-1234-abcd-ef00-0123456789ab"


def test_at_job_add_ndr64(shared_data):
    calls = cached_calls(suricata(shared_data, "smb2-04"), True)
    (add,) = calls_of(calls, ATSVC, 0)
    assert add.ndr64
    args = add.decode()
    assert args["job_command"] == "c:\\mimikatz.exe"
    assert (args["job_time"], args["job_clock"]) == (47100000, "13:05")  # ms after midnight
    assert args["server"] == "\\\\admin-pc"
    assert args["job_flags"] == 0x10  # JOB_NONINTERACTIVE: read after the 8-byte NDR64 JobTime (DWORD_PTR)
    fields = add.decode(with_fields=True)
    assert (fields["job_command"], fields["job_time"]) == (args["job_command"], args["job_time"])
    (answer,) = calls_of(calls, ATSVC, 0, request=False)
    assert answer.decode()["job_id"] == answer.decode(with_fields=True)["job_id"] == 2


def test_net_user_query(shared_data):
    calls = cached_calls(suricata(shared_data, "smb2-06"), True)
    assert [c.decode()["names"] for c in calls_of(calls, SAMR, 17)] == [["ronhd"]] * 2
    assert [c.decode()["rids"] for c in calls_of(calls, SAMR, 17, request=False)] == [[1110]] * 2
    assert calls_of(calls, SAMR, 34)[0].decode()["rid"] == 1110
    assert calls_of(calls, SAMR, 5)[0].decode()["domain"] == "CONTOSO"
    assert calls_of(calls, SAMR, 5, request=False)[0].decode()["sids"] == [
        "S-1-5-21-758758874-3121976374-3713154392"]
    groups = [c.decode()["names"] for c in calls_of(calls, SAMR, 18, request=False)]
    assert ["Domain Users", "Helpdesk"] in groups
    (lookup,) = calls_of(calls, LSARPC, 68)
    assert lookup.decode()["names"] == lookup.decode(with_fields=True)["names"] == ["CONTOSO\\ronhd"]
    assert calls_of(calls, LSARPC, 44)[0].decode()["server"] == "DC1.contoso.local"
    (translated,) = calls_of(calls, LSARPC, 68, request=False)  # NDR64 LSAPR_TRANSLATED_SIDS_EX2
    assert translated.decode()["sids"] == ["S-1-5-21-758758874-3121976374-3713154392-1110"]  # samr's RID 1110
    assert translated.decode()["domains"] == ["CONTOSO"]


def test_net_group_domain_admins(shared_data, tmp_path):
    pcap = otrf_capture(shared_data, tmp_path, "empire_shell_rpc_samr_smb_group_domain_admins_standard_user",
                        tactic="discovery")
    calls = cached_calls(str(pcap))
    assert calls_of(calls, SAMR, 17)[0].decode()["names"] == ["Domain Admins"]
    assert calls_of(calls, SAMR, 19)[0].decode()["rid"] == 512
    (members,) = calls_of(calls, SAMR, 25, request=False)
    (names,) = calls_of(calls, SAMR, 18, request=False)
    (rids,) = calls_of(calls, SAMR, 18)
    assert rids.decode()["rids"] == members.decode()["rids"] == [500, 1104, 1109]
    assert names.decode()["names"] == ["wardog", "pgustavo", "mscott"]
    domains = calls_of(calls, SAMR, 6, request=False)[0].decode()["names"]
    assert domains == ["THESHIRE", "Builtin"]
