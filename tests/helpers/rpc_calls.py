"""Test support for the interface decoders: real DCE/RPC calls out of a capture, via tshark.

rpc_calls() runs tshark once with the interface sub-dissectors disabled (so dcerpc.stub_data holds
every stub), follows binds per (TCP stream, SMB fid) to map context ids to interface UUIDs and
transfer syntaxes, and returns one Call per request/response PDU. A second, optional pass with
the dissectors enabled collects the tshark fields the decoders read, for the field path.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from smbtrail.interfaces import all_dissectors, all_fields, decoder_for

NDR64 = "71710533-beba-4937-8319-b5dbef9ccc36"
BASE = ["frame.number", "tcp.stream", "smb2.fid", "smb.fid", "dcerpc.pkt_type", "dcerpc.cn_ctx_id",
        "dcerpc.cn_bind_to_uuid", "dcerpc.cn_bind_trans_id", "dcerpc.cn_ack_result", "dcerpc.cn_ack_trans_id",
        "dcerpc.opnum", "dcerpc.stub_data", "dcerpc.auth_level", "dcerpc.cn_call_id", "dcerpc.cn_flags.last_frag",
        "dcerpc.decrypted_stub_data"]


@dataclass
class Call:
    frame: int
    request: bool
    opnum: int
    uuid: Optional[str]
    ndr64: bool
    stub: Optional[bytes]
    partial: bool = False
    fields: Dict[str, str] = field(default_factory=dict)

    def decode(self, with_fields: bool = False) -> dict:
        decoder = decoder_for(self.uuid or "")
        assert decoder is not None, f"no decoder for {self.uuid}"
        fields = dict(self.fields) if with_fields else {}
        fields["_ndr64"] = "1" if self.ndr64 else "0"
        if self.partial:
            fields["_partial"] = "1"
        return decoder.decode(self.opnum, self.request, fields, None if with_fields else self.stub)


def require_tshark() -> str:
    path = shutil.which("tshark")
    if not path:
        pytest.skip("tshark not installed")
    return path


def _tshark(pcap: Path, names: Sequence[str], disable: bool, options: Sequence[str] = ()) -> List[List[str]]:
    cmd = [require_tshark(), "-n", "-r", str(pcap), "-Y", "dcerpc", "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,", *options]
    if disable:
        for name in all_dissectors():
            cmd += ["--disable-protocol", name]
    for name in names:
        cmd += ["-e", name]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0 or "cut short" in done.stderr, done.stderr  # OTRF captures end mid-packet
    return [line.split("\t") for line in done.stdout.splitlines()]


def _split(value: str) -> List[str]:
    return value.split(",") if value else []


def rpc_calls(pcap: Path, with_fields: bool = False, options: Sequence[str] = ()) -> List[Call]:
    """Requests and responses with the interface of their presentation context.

    Binds are tracked per (TCP stream, fid); a bind_ack (an SMB2 READ response carries no fid)
    completes the last bind of its stream; a response takes the interface of its request's call id.
    """
    binds: Dict[Tuple[str, str], Dict[str, Tuple[str, str]]] = {}
    pending: Dict[str, Tuple[str, List[Tuple[str, str]]]] = {}
    by_call: Dict[Tuple[str, str], Tuple[Optional[str], str]] = {}
    calls: List[Call] = []
    for row in _tshark(pcap, BASE, disable=True, options=options):
        value = dict(zip(BASE, row + [""] * (len(BASE) - len(row))))
        stream, fid = value["tcp.stream"], value["smb2.fid"] or value["smb.fid"]
        kinds = _split(value["dcerpc.pkt_type"])
        kind = int(kinds[0]) if kinds else -1
        if kind in (11, 14):
            items = list(zip(_split(value["dcerpc.cn_ctx_id"]), _split(value["dcerpc.cn_bind_to_uuid"])))
            pending[stream] = (fid, items)
        elif kind in (12, 15) and stream in pending:
            bind_fid, items = pending.pop(stream)
            results = _split(value["dcerpc.cn_ack_result"])
            syntaxes = _split(value["dcerpc.cn_ack_trans_id"])
            for index, ((ctx, uuid), result) in enumerate(zip(items, results)):
                if result == "0":
                    binds.setdefault((stream, bind_fid), {})[ctx] = (uuid, syntaxes[index])
        elif kind in (0, 2) and value["dcerpc.opnum"]:
            call_key = (stream, _split(value["dcerpc.cn_call_id"])[0])
            if kind == 0:
                ctx = _split(value["dcerpc.cn_ctx_id"])[0]
                by_call[call_key] = binds.get((stream, fid), {}).get(ctx, (None, ""))
            uuid, syntax = by_call.get(call_key, (None, ""))
            data = value["dcerpc.decrypted_stub_data"] or value["dcerpc.stub_data"]
            stub = bytes.fromhex(data.split(",")[0]) if data else None
            calls.append(Call(int(value["frame.number"]), kind == 0, int(_split(value["dcerpc.opnum"])[0]),
                              uuid, syntax == NDR64, stub, partial=value["dcerpc.cn_flags.last_frag"] == "0"))
    if with_fields:
        names = ["frame.number"] + all_fields()
        rows = _tshark(pcap, names, disable=False, options=options)
        by_frame = {int(row[0]): dict(zip(names[1:], row[1:])) for row in rows}
        for call in calls:
            call.fields = {k: v for k, v in by_frame.get(call.frame, {}).items() if v}
    return calls


@lru_cache(maxsize=32)
def cached_calls(pcap: str, with_fields: bool = False, options: Tuple[str, ...] = ()) -> Tuple[Call, ...]:
    """rpc_calls() once per capture and test session (tshark is the slow part)."""
    return tuple(rpc_calls(Path(pcap), with_fields, options))


def calls_of(calls: Sequence[Call], uuid: str, opnum: int, request: bool = True) -> List[Call]:
    return [c for c in calls if c.uuid == uuid and c.opnum == opnum and c.request == request]


def otrf_capture(shared_data: Path, tmp_dir: Path, name: str, tactic: str = "lateral_movement") -> Path:
    """Extract the capture of an OTRF network zip (the zips stay as they are in the shared data)."""
    archive = shared_data / "otrf-security-datasets" / "windows" / tactic / "network" / f"{name}.zip"
    if not archive.is_file():
        pytest.skip(f"{archive} not present")
    with zipfile.ZipFile(archive) as handle:
        member = next(m for m in handle.namelist() if m.endswith((".cap", ".pcap", ".pcapng")))
        handle.extract(member, tmp_dir)
    return tmp_dir / member


def suricata(shared_data: Path, test: str) -> str:
    folder = shared_data / "suricata-verify" / test
    pcaps = sorted(folder.glob("*.pcap"))
    if not pcaps:
        pytest.skip(f"no capture in {folder}")
    return str(pcaps[0])
