"""The lab's own recordings (tests/fixtures/lab, shipped with the repo): every argument the lab
manifest expects is decoded from the RPC stubs, including packet-privacy stubs that tshark unseals
with the lab account's password (impacket atexec, schtasks and sc over TCP)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import List

import pytest

from helpers.rpc_calls import cached_calls
from smbtrail.interfaces import decoder_for

LAB = Path(__file__).resolve().parent / "fixtures" / "lab"


def _rows() -> List[dict]:
    manifest = LAB / "manifest.csv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if r["mode"] == "plain" and r["expected_operations"] and r["expected_args"] != "{}"]


def _decoded(row: dict) -> list:
    pcap = LAB / row["mode"] / Path(row["capture"]).name
    if not pcap.is_file():
        pytest.skip(f"{pcap} not recorded")
    calls = cached_calls(str(pcap), False, ("-o", f"ntlmssp.nt_password:{row['password']}"))
    return [c.decode() for c in calls if c.uuid and decoder_for(c.uuid)]


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row["scenario"])
def test_lab_expected_arguments_are_decoded(row):
    decoded = _decoded(row)
    text = json.dumps(decoded, ensure_ascii=False)
    for key, value in json.loads(row["expected_args"]).items():
        value = re.sub(r"^HK[A-Z]+\\", "", value)  # the hive comes from the handle that OpenKey used
        assert json.dumps(value, ensure_ascii=False)[1:-1] in text, (key, value)


def test_atexec_task_unsealed():
    (row,) = [r for r in _rows() if r["scenario"] == "schtasks_atexec"]
    registered = [args for args in _decoded(row) if "task_command" in args]
    assert len(registered) == 1
    task = registered[0]
    match = re.fullmatch(r"cmd\.exe /C whoami > %windir%\\Temp\\([A-Za-z]{8})\.tmp 2>&1", task["task_command"])
    assert match and task["task_name"] == "\\" + match.group(1)
    assert task["account"] == "S-1-5-18" and "_decode_error" not in task


def test_psgetsid_name_to_sid_and_back():
    (row,) = [r for r in _rows() if r["scenario"] == "psgetsid_rpcclient"]
    decoded = [args for args in _decoded(row) if "sids" in args or "names" in args]
    lookups = [args for args in decoded if args.get("names") == ["smbtadmin"]]
    answers = [args for args in decoded if args.get("domains") and args.get("sids")]
    assert lookups and answers[0]["sids"][0].startswith("S-1-5-21-") and answers[0]["sids"][0].endswith("-1000")
    assert {"names": ["Administrators"], "domains": ["BUILTIN"]}.items() <= [
        a for a in decoded if a.get("names") == ["Administrators"]][0].items()
