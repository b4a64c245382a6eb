"""The sensor-scale capture pipeline gives the records of the plain one: tcpdump's selection of the flows
worth dissecting (a dynamic-port RPC flow included, with or without its endpoint-mapper answer)."""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest

from smbtrail import cli, engine, progress
from smbtrail.capture import pieces, prefilter
from smbtrail.engine import Options, network_records
from smbtrail.network import dissect
from smbtrail.records import Record

LAB = Path(__file__).resolve().parent / "fixtures" / "lab"
PUBLIC = ("suricata-verify", "zeek/Traces", "pcap-attack", "samr-enum-lab")
pytestmark = pytest.mark.skipif(prefilter.find_tcpdump() is None, reason="tcpdump not installed")


def jsonl(paths, **options) -> List[str]:
    return [r.to_json() for r in network_records([str(p) for p in paths], Options(**options))]


def lab_captures() -> List[Path]:
    return sorted(LAB.glob("*/*.pcapng"))


def public_captures(shared: Path, tmp: Path) -> List[Path]:
    found = sorted(p for root in PUBLIC for ext in ("pcap", "pcapng", "cap") for p in (shared / root).rglob(f"*.{ext}"))
    for archive in sorted((shared / "otrf-security-datasets").rglob("network/*.zip")):
        with zipfile.ZipFile(archive) as zipped:  # zip members are streamed, never selected: unpack them
            for name in zipped.namelist():
                target = tmp / Path(name).name
                target.write_bytes(zipped.read(name))
                found.append(target)
    return found


def assert_same_records(paths, plain: List[str], monkeypatch, **options) -> None:
    """The plain serial run's records (`plain`: no selection, one tshark) are those of tcpdump's selection
    (forced, however small the file), cut into 2 KB pieces of whole connections and dissected by two tshark
    processes at once. A capture left in one piece is dissected from its selection's very bytes (as
    `cut_in_pieces` checks), so the captures not cut prove the selection read whole, and the others the
    pieces cut from it."""
    with monkeypatch.context() as patch:
        patch.setattr(prefilter, "WORTH_IT", 2.0)
        patch.setattr(prefilter, "SMALLEST", 0)
        patch.setattr(dissect, "PIECE_BYTES", 2 * 1024)
        in_pieces = jsonl(paths, workers=2, **options)
    assert in_pieces == plain


def lab_secrets() -> dict:
    keys = [line for p in sorted(LAB.glob("*/*.keys")) for line in p.read_text().splitlines()]
    return {"session_keys": keys, "passwords": ["Lab-Passw0rd!"]}


@pytest.fixture(scope="module")
def lab_plain() -> List[Record]:
    """Every lab recording in one plain serial run, decrypted where its keys allow: the reference that the
    pipeline's other ways must give, and the records whose validation is checked (made once for both)."""
    return list(network_records([str(c) for c in lab_captures()], Options(prefilter=False, workers=1, **lab_secrets())))


def cut_in_pieces(capture: Path, tmp: Path) -> Tuple[bool, bool]:
    """Whether tcpdump selects from the capture, and whether the pipeline cuts what it dissects (the
    selection, else the file) into two or more 2 KB pieces; one piece must be those bytes unchanged."""
    work = tempfile.mkdtemp(dir=tmp, prefix="pieces-")
    selection = prefilter.select(str(capture), work, keep_all=True)
    target = selection.path if selection else str(capture)
    cut = pieces.split(target, selection.frames if selection else None, 2 * 1024, work) or []
    if len(cut) == 1:
        assert Path(cut[0].path).read_bytes() == Path(target).read_bytes(), capture
        numbers = list(selection.frames) if selection else list(range(1, len(cut[0].frames) + 1))
        assert list(cut[0].frames) == numbers, capture
    return selection is not None, len(cut) > 1


def with_background(capture: Path, shared: Path, tmp: Path) -> Path:
    """The capture merged in time with real non-SMB traffic (HTTP, TLS, DNS, FTP...), as a sensor sees it."""
    mixed = tmp / f"mixed-{capture.stem}.pcap"
    background = sorted((shared / "mix").glob("*.pcap"))[:12]
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(mixed), str(capture), *map(str, background)], check=True)
    return mixed


def test_every_lab_recording_gives_the_same_records_selected_in_pieces_and_in_parallel(monkeypatch, tmp_path,
                                                                                      lab_plain):
    captures = lab_captures()
    assert len(captures) > 50
    found = {c: cut_in_pieces(c, tmp_path) for c in captures}
    assert all(selected for selected, _ in found.values())
    cut = [c for c, (_, in_pieces) in found.items() if in_pieces]
    assert 15 < len(cut) < len(captures) - 50, "the test must cut some recordings into pieces, and leave many whole"
    plain = [r.to_json() for r in lab_plain]
    assert_same_records(captures, plain, monkeypatch, **lab_secrets())
    assert sum('"decrypted": true' in line for line in plain) > 10


def test_network_records_built_without_validation_survive_it(lab_plain):
    """The analyzer builds its records without pydantic's validation pass (analyzer._record): each one of every
    lab recording, decrypted where its keys allow, comes out of that pass the same, byte for byte. (The plain
    run's records: every other way of running the pipeline gives these, as the test above shows.)"""
    records = lab_plain
    assert {"operation", "file", "session", "tree"} <= {r.kind for r in records}
    assert sum(r.decrypted for r in records) > 10
    for rec in records:
        assert Record.model_validate(rec.model_dump()).to_json() == rec.to_json()


def test_every_public_capture_gives_the_same_records_selected_in_pieces_and_in_parallel(monkeypatch, shared_data,
                                                                                        tmp_path):
    captures = public_captures(shared_data, tmp_path)
    assert len(captures) > 25
    cut = [c for c in captures if cut_in_pieces(c, tmp_path)[1]]
    assert 10 < len(cut) < len(captures) - 5, "the test must cut some captures into pieces, and leave some whole"
    assert_same_records(captures, jsonl(captures, prefilter=False, workers=1), monkeypatch)


def test_a_small_capture_is_read_whole_unless_cut_in_pieces(tmp_path):
    capture = LAB / "plain" / "psexec_impacket.pcapng"
    assert capture.stat().st_size < prefilter.SMALLEST
    assert prefilter.select(str(capture), str(tmp_path)) is None
    assert prefilter.select(str(capture), str(tmp_path), keep_all=True) is not None


def test_selection_drops_background_traffic_and_keeps_the_frame_numbers(shared_data, tmp_path, monkeypatch):
    capture = LAB / "plain" / "psexec_impacket.pcapng"
    mixed = with_background(capture, shared_data, tmp_path)
    selection = prefilter.select(str(mixed), str(tmp_path))
    assert selection is not None and selection.kept_bytes < selection.total_bytes / 4
    plain = jsonl([mixed], prefilter=False)
    assert jsonl([mixed]) == plain
    monkeypatch.setattr(dissect, "PIECE_BYTES", 64 * 1024)
    assert jsonl([mixed]) == plain
    assert any('"command": "psexec' in line for line in plain)


def test_dynamic_port_rpc_flow_without_its_endpoint_mapper_answer_is_kept(shared_data, tmp_path):
    """svcctl over TCP on a port the endpoint mapper gave out; with the mapper's exchange cut out of the
    capture (as when the sensor started late), the flow is still found by its binds, among background traffic."""
    source = shared_data / "otrf-security-datasets/windows/lateral_movement/network/empire_psexec_dcerpc_tcp_svcctl.zip"
    with zipfile.ZipFile(source) as zipped:
        name = next(n for n in zipped.namelist() if "WORKSTATION5" in n)
        capture = tmp_path / Path(name).name
        capture.write_bytes(zipped.read(name))
    no_epm = tmp_path / "no-epm.pcap"
    subprocess.run(["tcpdump", "-r", str(capture), "-w", str(no_epm), "not port 135"], check=True, capture_output=True)
    mixed = with_background(no_epm, shared_data, tmp_path)
    flows = prefilter.dynamic_rpc_flows("tcpdump", str(mixed))
    assert flows and all(not {a[1], b[1]} & set(prefilter.PORTS) for a, b in flows)
    plain = jsonl([mixed], prefilter=False)
    created = [line for line in plain if '"operation": "RCreateServiceA"' in line and '"ncacn_ip_tcp"' in line]
    assert created, "the RPC flow itself must give the service creation"
    port = json.loads(created[0])["dest_port"]
    assert any(port in (a[1], b[1]) for a, b in flows)
    assert jsonl([mixed]) == plain


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (8, 7)])
def test_default_workers_leave_the_analysis_its_core(monkeypatch, cores, expected):
    """The analysis is a process of its own: on 2 cores a second tshark only competes with it."""
    monkeypatch.setattr(dissect.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(dissect.os, "cpu_count", lambda: cores)
    assert dissect.worker_count() == expected
    assert dissect.worker_count(3) == 3


def test_progress_line_on_a_terminal_never_in_the_output(monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setattr(progress, "SHOW_EVERY", 0.0)
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    out = tmp_path / "out.jsonl"
    captures = [str(p) for p in sorted((LAB / "plain").glob("*.pcapng"))[:3]]
    assert cli.main(["analyze", *captures, "--format", "jsonl", "-o", str(out)]) == 0
    shown = err.getvalue()
    assert "\r\x1b[Ksmbtrail: 3/3 files" in shown and "MB/s" in shown
    assert shown.endswith("\r\x1b[K")  # cleared at the end
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["kind"] for line in lines)
    assert "MB/s" not in out.read_text()


def test_splunk_input_reports_progress_in_health_events(monkeypatch, tmp_path):
    from splunklib.modularinput import EventWriter

    from smbtrail.splunk import events, modinput
    from smbtrail.splunk.checkpoint import Checkpoints
    from smbtrail.splunk.watch import content_digest, identity

    monkeypatch.setattr(modinput, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(modinput, "PROGRESS_EVERY", 0.0)
    capture = str(LAB / "plain" / "psexec_impacket.pcapng")
    written = io.StringIO()
    ew = EventWriter(output=written, error=io.StringIO())
    stanza = "smbtrail_pcap://test"
    modinput.PcapInput().process_file(stanza, {}, identity(capture), content_digest(capture), engine.Options(),
                                      Checkpoints(str(tmp_path), stanza), ew)
    health = [json.loads(html.unescape(data)) for kind, data in
              re.findall(r"<sourcetype>(.*?)</sourcetype>.*?<data>(.*?)</data>", written.getvalue(), re.S)
              if kind == events.HEALTH]
    reading = [h for h in health if h["status"] == "reading"]
    assert health[-1]["status"] == "ok"  # the file's own health event, once read
    assert reading and all(0 < h["bytes_done"] <= h["bytes"] for h in reading)
    assert {"bytes_per_second", "seconds_left"} <= set(reading[-1])
