"""Zeek logs in place of a capture, fused with the Windows logs of the same run; and Zeek beside a capture
of the same traffic.

The OTRF pairs (a capture + the hosts' Windows events of one recorded attack) have no Zeek logs. The
Zeek logs are derived here from the capture's own records, as Zeek would have written them
(tests/helpers/zeek_logs.py: names of calls, trees, file opens, NTLM and Kerberos accounts; no argument).
The trail must come back with the arguments only the host side has (4697 service name and path, 4698
task name and command, 5145 file name).
"""

from __future__ import annotations

import glob
import subprocess
import zipfile
from typing import Dict, List, Tuple

import pytest

from helpers.zeek_logs import write_logs
from smbtrail.engine import analyze, network_records
from smbtrail.records import COMMAND, Record

OTRF = "otrf-security-datasets"
KEY_ARGS = ("service_name", "binary_path", "task_name", "task_command", "file")
PAIRS = ["covenant_sharpsc_create_dcerpc_smb_svcctl", "empire_psexec_dcerpc_tcp_svcctl", "schtask_create",
         "covenant_copy_smb_CreateRequest"]


def _halves(shared, name: str) -> Tuple[str, str]:
    found = [glob.glob(str(shared / OTRF / "windows" / "*" / half / f"{name}.zip")) for half in ("network", "host")]
    assert all(found), f"{name} missing from the shared data"
    return found[0][0], found[1][0]


def _trails(records) -> Dict[Tuple, Record]:
    return {(t.src_ip, t.dest_ip, (t.user or "").lower()): t for t in records if t.kind == "trail"}


def _commands(trail: Record) -> List[Tuple[str, Tuple]]:
    return sorted((c["command"], tuple(str(c["args"].get(k, "")).lower() for k in KEY_ARGS))
                  for c in trail.args.get("commands", []) if c["command"] != "net use map")


@pytest.fixture(scope="module")
def derived(shared_data, tmp_path_factory):
    """pair -> (capture, host log, Zeek log directory derived from the capture's records)."""
    out = {}
    for name in PAIRS:
        capture, host = _halves(shared_data, name)
        logs = tmp_path_factory.mktemp(name)
        write_logs(list(network_records([capture])), str(logs), gz=name.startswith("empire"))
        out[name] = (capture, host, str(logs))
    return out


@pytest.mark.parametrize("name", PAIRS)
def test_zeek_instead_of_the_capture_keeps_the_host_arguments(derived, name):
    capture, host, logs = derived[name]
    wanted = _trails(analyze([capture], [host]))
    got = _trails(analyze([logs], [host]))
    with_args = [t for t in wanted.values() if any(any(a) for _, a in _commands(t))]
    assert with_args, f"{name}: the capture's trail names no argument (dataset changed?)"
    for key, trail in wanted.items():
        assert key in got, f"{name}: trail {key} lost with Zeek in place of the capture"
        assert _commands(got[key]) == _commands(trail), f"{name}: {key}"
        if trail in with_args:
            assert {"network", "zeek", "host"} <= set(got[key].evidence)
            assert got[key].dest_host == trail.dest_host


def test_schtask_create_from_zeek_joins_despite_five_hours_of_clock_error(derived):
    _, host, logs = derived["schtask_create"]
    records = list(analyze([logs], [host]))
    task = [r for r in records if r.kind == "host_event" and r.event_id == 4698]
    assert task and "ip_port" in task[0].join and abs(task[0].args["clock_offset_s"] + 5 * 3600) < 30
    created = [r for r in records if r.kind == COMMAND and r.command == "schtasks"]
    assert len(created) == 1 and created[0].args["task_command"].lower().endswith("notepad.exe")
    assert "arguments" in created[0].args["absent"], "the network side (Zeek) had no argument"


@pytest.mark.parametrize("name", PAIRS)
def test_zeek_and_capture_of_the_same_traffic_make_one_trail(derived, name):
    capture, host, logs = derived[name]
    alone = list(network_records([capture]))
    both = list(network_records([capture, logs]))
    kinds = ("operation", "tree", "file", "command")
    assert [r for r in both if r.kind in kinds and "absent" in r.args] == [], "no Zeek record the capture has"
    assert _count(alone, kinds) == _count(both, kinds)
    confirmed = [r for r in both if r.kind in kinds[:3] and "zeek" in r.evidence]
    assert confirmed, "the capture's records say Zeek saw them too"
    assert all(any(p.file.startswith(logs) for p in r.provenance) for r in confirmed)
    fused = _trails(analyze([capture, logs], [host]))
    # host-only trails (hosts the capture did not see) have no dest_ip: keys sort as text
    assert sorted(fused, key=str) == sorted(_trails(analyze([capture], [host])), key=str), "one trail per account and target"


def _count(records, kinds) -> Dict[Tuple, int]:
    counts: Dict[Tuple, int] = {}
    for r in records:
        if r.kind in kinds:
            key = (r.kind, r.src_ip, r.dest_ip, r.command, r.operation)
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_zeek_beyond_the_capture_is_kept(derived, tmp_path):
    """The capture stops before the service is created (a sensor restarted): the calls Zeek logged after
    that stay, once, on the same trail."""
    capture, _, logs = derived["covenant_sharpsc_create_dcerpc_smb_svcctl"]
    full = list(network_records([capture]))
    create = next(r for r in full if r.kind == "operation" and r.opnum in (12, 24, 45))
    with zipfile.ZipFile(capture) as archive:
        member = archive.namelist()[0]
        archive.extract(member, tmp_path)
    early = tmp_path / "early.pcap"
    subprocess.run(["editcap", "-r", str(tmp_path / member), str(early), f"1-{create.provenance[0].frames[0] - 1}"],
                   check=True, capture_output=True)
    both = list(network_records([str(early), logs]))
    ops = [r for r in both if r.kind == "operation"]
    assert len(ops) == len([r for r in full if r.kind == "operation"])
    before = [r for r in ops if r.time < create.time]
    after = [r for r in ops if r.time >= create.time]
    assert before and not any("absent" in r.args for r in before), "the capture's own records"
    assert after and all("absent" in r.args for r in after), "from Zeek alone"
    commands = [r for r in both if r.kind == "command" and r.command == "sc"]
    assert len(commands) == 1 and commands[0].args["zeek"]["uid"], "recognized from Zeek's calls"
    assert len({r.trail_id for r in ops if r.src_ip == create.src_ip and r.dest_ip == create.dest_ip}) == 1
