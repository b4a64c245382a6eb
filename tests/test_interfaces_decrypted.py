"""samr/lsarpc names decoded from the samr-enum-lab captures equal what the operator saw: impacket
net.py inside SMB 3.0 encryption (tshark decrypts with the lab's published password) and net.exe in
clear SMB (a ten-fragment answer that tshark reassembles)."""

from __future__ import annotations

import re

import pytest

from helpers.rpc_calls import cached_calls, calls_of

SAMR = "12345778-1234-abcd-ef00-0123456789ac"
LSARPC = "12345778-1234-abcd-ef00-0123456789ab"
DECRYPT = ("-o", "ntlmssp.nt_password:LabAdm1!")  # published by the samr-enum-lab repository


def _lab(shared_data, name):
    folder = shared_data / "samr-enum-lab" / "Resources"
    pcap = folder / f"python.exe_impacket_net.py_{name}.pcapng"
    if not pcap.is_file():
        pytest.skip(f"{pcap} not present")
    shown = (folder / f"python.exe_impacket_net.py_{name}__output.txt").read_text(encoding="utf-8")
    return cached_calls(str(pcap), False, DECRYPT), re.findall(r"^\s+\d+\. (.+?)\s*$", shown, re.M)


@pytest.mark.parametrize("name, opnum", [("group", 11), ("user", 13)])
def test_enumeration_equals_operator_output(shared_data, name, opnum):
    calls, shown = _lab(shared_data, name)
    (answer,) = calls_of(calls, SAMR, opnum, request=False)
    assert answer.decode()["names"] == shown


def test_local_group_members_resolved_by_lsa(shared_data):
    calls, shown = _lab(shared_data, "localgroup_admins")
    assert calls_of(calls, SAMR, 17)[0].decode()["names"] == ["Administrators"]
    (members,) = calls_of(calls, SAMR, 33, request=False)
    (lookup,) = calls_of(calls, LSARPC, 57)
    (resolved,) = calls_of(calls, LSARPC, 57, request=False)
    assert lookup.decode()["sids"] == members.decode()["sids"]
    assert resolved.decode()["names"] == shown


def _net_exe_names(path) -> set:
    """Names in the columns of a net.exe listing (UTF-16 text) between the dashes and 'The command'."""
    text = path.read_bytes().decode("utf-16")
    body = text.split("-----", 1)[1].split("The command completed")[0].lstrip("-")
    return {name for line in body.splitlines() for name in re.split(r"\s{2,}", line.strip()) if name}


def _net_exe(shared_data, name, output):
    folder = shared_data / "samr-enum-lab" / "Resources"
    pcap = folder / f"net.exe_{name}.pcapng"
    if not pcap.is_file():
        pytest.skip(f"{pcap} not present")
    return cached_calls(str(pcap)), _net_exe_names(folder / f"net.exe_{output}__output.txt")


def test_net_user_domain_listing_from_reassembled_response(shared_data):
    """Windows answers in ten DCE/RPC fragments; tshark reassembles them into the last one."""
    calls, shown = _net_exe(shared_data, "user__domain", "user__domain")
    answers = [c for c in calls_of(calls, SAMR, 13, request=False) if not c.partial]
    names = {name for answer in answers for name in answer.decode()["names"]}
    assert len(shown) > 400 and shown <= names
    assert all(name.endswith("$") for name in names - shown)  # net.exe hides machine and trust accounts


def test_net_group_domain_admins_members(shared_data):
    calls, shown = _net_exe(shared_data, "group__domain_admins__domain", "group__domain_admins_domain")
    resolved = {name for c in calls_of(calls, SAMR, 18, request=False) for name in c.decode()["names"]}
    assert shown == resolved
