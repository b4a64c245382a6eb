"""Fusion on the OTRF network + host pairs: with the capture as SMB3 server-wide encryption would have
shown it, the host logs give back the trail the cleartext capture shows.

The encrypted side is made by the project's what-if rewrite (`whatif.rewrite.rewrite_capture`,
scope "server"): every SMB2 message after SESSION_SETUP becomes a TRANSFORM_HEADER message of the
same size with random ciphertext. RPC over TCP (schtask_create, empire_psexec) is outside SMB
encryption and stays as it was; there the RPC itself is sealed, so its arguments come from the host.
"""

from __future__ import annotations

import glob
import os
import zipfile
from typing import Dict, List, Tuple

import pytest

from smbtrail.engine import host_records, network_records
from smbtrail.fusion import fuse_records
from smbtrail.fusion.trails import same_command
from smbtrail.records import Record
from smbtrail.whatif.rewrite import rewrite_capture

OTRF = "otrf-security-datasets"
PAIRS = ["covenant_copy_smb_CreateRequest", "covenant_sc_query_dcerpc_smb_svcctl",
         "covenant_sharpsc_create_dcerpc_smb_svcctl", "empire_psexec_dcerpc_tcp_svcctl", "schtask_create",
         "empire_getsession_dcerpc_smb_srvsvc_NetSessEnum",
         "empire_shell_rpc_samr_smb_group_domain_admins_standard_user"]
JOINS = {"ip_port", "logon_id", "pipe_account_time", "service_name_time", "account_host_time",
         # host trails: activity of hosts the capture did not see (fusion/hostside.py, failures.py)
         "host_logon", "account_source_time", "explicit_credentials", "explicit_process", "command_line",
         "failed_logon"}
KEY_ARGS = ("service_name", "binary_path", "task_name", "task_command", "file")
ROUTINE = ("net use map",)  # the share mapping itself: no host event names it
# Commands no Windows event names: NetSessEnum leaves only the 5145 access to \PIPE\srvsvc.
PIPE_ONLY = {"empire_getsession_dcerpc_smb_srvsvc_NetSessEnum": "srvsvc"}
# Arguments sealed in the capture (RPC packet privacy): the operator's own view names them.
SEALED = {"empire_psexec_dcerpc_tcp_svcctl": ("sc create", "service_name", "Updater"),
          "schtask_create": ("schtasks create", "task_name",
                             "\\Microsoft\\Windows\\SoftwareProtectionPlatform\\EventCacheManager")}


def _half(shared, name: str, half: str) -> str:
    found = glob.glob(str(shared / OTRF / "windows" / "*" / half / f"{name}.zip"))
    assert found, f"{half} half of {name} missing from the shared data"
    return found[0]


def _cleartext(path: str) -> Tuple[Record, ...]:
    return tuple(fuse_records(network_records([path])))


def _encrypted(shared, name: str, tmp: str) -> List[Record]:
    captures = []
    with zipfile.ZipFile(_half(shared, name, "network")) as archive:
        for member in archive.namelist():
            plain = os.path.join(tmp, os.path.basename(member))
            with open(plain, "wb") as out:
                out.write(archive.read(member))
            encrypted = plain + ".server.pcap"
            rewrite_capture(plain, encrypted, "server")
            captures.append(encrypted)
    stream = list(network_records(captures)) + list(host_records([_half(shared, name, "host")]))
    return list(fuse_records(stream))


def _trails(records) -> List[Record]:
    return [r for r in records if r.kind == "trail"]


def _commands(trail: Record) -> List[Dict]:
    return [c for c in trail.args.get("commands", []) if c["command"] not in ROUTINE]


def _counterpart(clear: Record, fused: List[Record]) -> Record:
    found = [f for f in fused if f.src_ip == clear.src_ip and f.dest_ip == clear.dest_ip
             and f.args["start"] <= clear.args["end"] and clear.args["start"] <= f.args["end"]
             and (not clear.user or (f.user or "").lower() == clear.user.lower())]
    assert found, f"no fused trail {clear.src_ip} -> {clear.dest_ip} for {clear.user}"
    return max(found, key=lambda f: len(_commands(f)))


def _short(name):
    return (name or "").split(".")[0].lower()


def _adversary_view(shared, name: str) -> str:
    for path in glob.glob(str(shared / OTRF / "metadata" / "*.yaml")):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if f"/{name}.zip" in text:
            return text
    return ""


@pytest.mark.parametrize("name", PAIRS)
def test_encrypted_capture_plus_host_log_gives_the_cleartext_trail(shared_data, tmp_path, name):
    clear = [t for t in _trails(_cleartext(_half(shared_data, name, "network"))) if _commands(t)]
    assert clear, f"{name}: the cleartext capture shows no command (network engine regression?)"
    fused_records = _encrypted(shared_data, name, str(tmp_path))
    fused = _trails(fused_records)
    for trail in clear:
        match = _counterpart(trail, fused)
        if trail.dest_host:  # the capture does not always name the target (RPC over TCP)
            assert _short(match.dest_host) == _short(trail.dest_host)
        assert match.src_ip == trail.src_ip and match.dest_ip == trail.dest_ip
        assert match.user, "the account is named"
        assert "host" in match.evidence and "network" in match.evidence
        for command in _commands(trail):
            if name in PIPE_ONLY:
                assert PIPE_ONLY[name] in match.args.get("pipes", []), "the pipe the encrypted RPC went through"
                assert not _commands(match), "no command is invented where no event names one"
                continue
            same = [c for c in _commands(match) if same_command(_pair(c), _pair(command))]
            assert same, f"{command['command']} missing from the fused trail {match.args['commands']}"
            for key in KEY_ARGS:
                if command["args"].get(key):
                    assert any(str(c["args"].get(key, "")).lower() == str(command["args"][key]).lower()
                               for c in same), f"{key}: {command['args'][key]!r} vs {[c['args'] for c in same]}"
    _check_sealed(shared_data, name, fused)
    _check_join_reasons(fused_records, commands=name not in PIPE_ONLY)


def _pair(command: Dict) -> Tuple[str, str]:
    name, _, action = command["command"].rpartition(" ")
    return (name, action) if name else (action, "")


def _check_sealed(shared, name: str, fused: List[Record]) -> None:
    if name not in SEALED:
        return
    command, key, value = SEALED[name]
    assert value in _adversary_view(shared, name), "the expectation comes from the dataset's own record"
    named = [c for t in fused for c in _commands(t) if c["command"] == command]
    assert named and all(str(c["args"].get(key)).lower() == value.lower() for c in named), named


def _check_join_reasons(records: List[Record], commands: bool) -> None:
    linked = [r for r in records if r.kind == "host_event" and r.trail_id]
    assert linked and all(r.join and set(r.join) <= JOINS and r.confidence for r in linked)
    fused = [r for r in records if r.kind == "command" and "host" in r.evidence and "network" in r.evidence]
    assert fused or not commands, "some command carries evidence from both sides"
    for rec in fused:
        assert rec.join and set(rec.join) <= JOINS, rec.join
        assert {p.file.rsplit(".", 1)[-1] for p in rec.provenance} & {"zip", "json", "pcap", "cap", "pcapng"}


def test_schtask_create_joins_despite_five_hours_of_clock_error(shared_data, tmp_path):
    records = _encrypted(shared_data, "schtask_create", str(tmp_path))
    task = [r for r in records if r.kind == "host_event" and r.event_id == 4698]
    assert task and task[0].join[:2] == ["logon_id", "ip_port"]
    assert abs(task[0].args["clock_offset_s"] + 5 * 3600) < 30, task[0].args
    created = [r for r in records if r.kind == "command" and r.command == "schtasks"]
    assert len(created) == 1, "the network call and the 4698 are one command, not two"
    assert created[0].trail_id == task[0].trail_id
    assert created[0].args["task_command"].lower().endswith("notepad.exe")
