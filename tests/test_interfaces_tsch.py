"""ITaskSchedulerService: schtasks over TCP (sealed, OTRF) and impacket atexec's own stubs.

No public capture holds a readable SchRpcRegisterTask, so the atexec test runs impacket's real
atexec.py code path against a recording DCE/RPC endpoint: the stubs are the bytes atexec marshals
(before packet privacy seals them). The lab's decryptable atexec captures will add the wire case.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest

from helpers.rpc_calls import cached_calls, otrf_capture
from smbtrail.interfaces import decoder_for, operation_name
from smbtrail.interfaces.tsch import task_xml_args

TSCH = "86d35949-83c9-4044-b424-db363231fd0c"
COMMAND = 'whoami /all & echo "<done>"'


class _RecordingDce:
    """Stands in for impacket's DCERPC_v5: keeps each request's opnum and NDR stub."""

    def __init__(self) -> None:
        self.stubs: List[Tuple[int, bytes]] = []

    def request(self, call, *args, **kwargs):
        self.stubs.append((call.opnum, call.getData()))
        return {"pLastRuntime": {"wYear": 2026}}

    def __getattr__(self, name):  # set_credentials, connect, set_auth_level, bind, disconnect
        return lambda *args, **kwargs: None


class _Transport:
    def __init__(self, dce: _RecordingDce) -> None:
        self.dce = dce

    def get_dce_rpc(self):
        return self.dce

    def get_credentials(self):
        return ("user", "", "", "", "", "")

    def get_smb_connection(self):
        return type("Smb", (), {"getFile": lambda self, share, path, callback: callback(b""),
                                "deleteFile": lambda self, share, path: None})()


@pytest.fixture(scope="module")
def atexec_stubs() -> List[Tuple[int, bytes]]:
    pytest.importorskip("impacket")
    beside = Path(sys.executable).parent / "atexec.py"  # the venv's own script before any PATH shim
    script = str(beside) if beside.is_file() else shutil.which("atexec.py")
    if not script:
        pytest.skip("impacket's atexec.py is not installed")
    spec = importlib.util.spec_from_file_location("impacket_atexec", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dce = _RecordingDce()
    module.TSCH_EXEC(command=COMMAND).doStuff(_Transport(dce))
    return dce.stubs


def _decode(opnum: int, stub: bytes) -> dict:
    return decoder_for(TSCH).decode(opnum, True, {}, stub)


def test_atexec_register_run_delete(atexec_stubs):
    assert [opnum for opnum, _ in atexec_stubs] == [1, 12, 16, 13]
    register = _decode(*atexec_stubs[0])
    assert re.fullmatch(r"\\[A-Za-z]{8}", register["task_name"])
    match = re.fullmatch(r"cmd\.exe /C (.*) > %windir%\\Temp\\([A-Za-z]{8})\.tmp 2>&1", register["task_command"])
    assert match and match.group(1) == COMMAND  # XML escapes undone
    assert match.group(2) == register["task_name"][1:]
    assert register["account"] == "S-1-5-18"
    assert register["task_hidden"] == "true"
    assert register["task_flags"] == 2  # TASK_CREATE
    assert register["task_xml_size"] > 1000
    assert "_decode_error" not in register
    for opnum, stub in atexec_stubs[1:]:
        assert _decode(opnum, stub)["task_name"] == register["task_name"]


def test_register_task_cut_short_keeps_the_task_name(atexec_stubs):
    opnum, stub = atexec_stubs[0]
    for size in range(1, len(stub), 7):
        args = _decode(opnum, stub[:size])
        assert "_decode_error" in args
        if size > 60:
            assert args["task_name"].startswith("\\")


def test_schtasks_over_tcp_is_sealed_but_named(shared_data, tmp_path):
    pcap = otrf_capture(shared_data, tmp_path, "schtask_create")
    calls = [c for c in cached_calls(str(pcap)) if c.uuid == TSCH and c.request]
    assert [c.opnum for c in calls] == [0, 7, 1]
    assert [operation_name(TSCH, c.opnum) for c in calls] == [
        "SchRpcHighestVersion", "SchRpcEnumTasks", "SchRpcRegisterTask"]
    for call in calls:
        assert call.ndr64 and call.stub is None
        assert call.decode() == {}


def _host_task_xml(shared_data: Path, tmp_path: Path) -> str:
    """The TaskContent of the 4698 event in the OTRF schtask_create host log (real Windows XML)."""
    archive = shared_data / "otrf-security-datasets/windows/lateral_movement/host/schtask_create.zip"
    if not archive.is_file():
        pytest.skip(f"{archive} not present")
    with zipfile.ZipFile(archive) as handle:
        for line in handle.read(handle.namelist()[0]).decode("utf-8", "replace").splitlines():
            if '"TaskContent"' in line:
                return json.loads(line)["TaskContent"]
    pytest.skip("no 4698 TaskContent in the host log")


def test_task_xml_from_windows(shared_data, tmp_path):
    xml = _host_task_xml(shared_data, tmp_path)
    args = task_xml_args(xml)
    assert args["task_command"] == "C:\\Windows\\system32\\cmd.exe /C C:\\Windows\\System32\\notepad.exe"
    assert args["account"] == "S-1-5-18"
    assert args["task_xml_size"] == len(xml)
    cut = task_xml_args(xml[: xml.index("</Arguments>")])
    assert cut["task_command"] == "C:\\Windows\\system32\\cmd.exe"  # arguments cut off with the stub
