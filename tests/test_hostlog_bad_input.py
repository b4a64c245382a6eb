"""Bad host-log input: a clear one-line error naming the file and the position; the rest is read."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from smbtrail.hostlog import read_hostlogs

FILECOPY = "evtx-attack-samples/Lateral Movement/LM_5145_Remote_FileCopy.evtx"
OTRF_COPY = "otrf-security-datasets/windows/lateral_movement/host/covenant_copy_smb_CreateRequest.zip"


def _split(records):
    records = list(records)
    errors = [r for r in records if r.kind == "error"]
    for err in errors:
        assert "\n" not in err.message and err.provenance and err.provenance[0].file in err.message
    return [r for r in records if r.kind == "host_event"], errors


def test_empty_and_missing_and_random(tmp_path):
    empty = tmp_path / "Security.evtx"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.evtx"
    noise.write_bytes(random.Random(7).randbytes(100_000))
    text = tmp_path / "notes.txt"
    text.write_text("just some words\n")
    events, errors = _split(read_hostlogs([str(empty), str(noise), str(tmp_path / "gone.evtx"), str(text)]))
    assert not events
    assert [e.message for e in errors] == [
        f"{empty}: empty file",
        f"{noise}: named .evtx but not an event log file (no ElfFile signature)",
        f"{tmp_path / 'gone.evtx'}: no such file or directory",
        f"{text}: not a host log (no .evtx, JSON, event XML or Samba audit content)",
    ]


@pytest.mark.shared
def test_truncated_evtx_keeps_whole_chunks(shared_data, tmp_path):
    whole = list(read_hostlogs([str(shared_data / FILECOPY)]))
    cut = tmp_path / "cut.evtx"
    cut.write_bytes((shared_data / FILECOPY).read_bytes()[:300_000])
    events, errors = _split(read_hostlogs([str(cut)]))
    assert 0 < len(events) < len(whole)
    assert [r.record_id for r in events] == [r.record_id for r in whole[:len(events)]]
    assert [e.message for e in errors] == [
        f"{cut}: file ends inside chunk 4 (truncated): the records of that chunk are not read"]
    assert errors[0].partial


@pytest.mark.shared
def test_corrupt_chunk_is_reported_and_others_read(shared_data, tmp_path):
    data = bytearray((shared_data / FILECOPY).read_bytes())
    chunk2 = 0x1000 + 2 * 0x10000
    data[chunk2:chunk2 + 0x2000] = random.Random(3).randbytes(0x2000)
    bad = tmp_path / "bad_chunk.evtx"
    bad.write_bytes(bytes(data))
    events, errors = _split(read_hostlogs([str(bad)]))
    whole = list(read_hostlogs([str(shared_data / FILECOPY)]))
    assert len(errors) == 1 and "chunk number 2" in errors[0].message  # said once, not by two checks
    assert len(whole) - 400 < len(events) < len(whole)


@pytest.mark.shared
def test_json_lines_with_a_broken_line(shared_data, tmp_path):
    with zipfile.ZipFile(shared_data / OTRF_COPY) as archive:
        lines = archive.read(archive.namelist()[0]).splitlines()
    broken = tmp_path / "events.json"
    broken.write_bytes(b"\n".join(lines[:100] + [lines[100][:57]] + lines[101:]) + b"\n")
    full = list(read_hostlogs([str(shared_data / OTRF_COPY)]))
    events, errors = _split(read_hostlogs([str(broken)]))
    assert len(errors) == 1 and errors[0].message.startswith(f"{broken}: line 101: not JSON")
    assert len(events) >= len(full) - 1


@pytest.mark.shared
def test_xml_with_a_bad_event(shared_data, tmp_path):
    from Evtx.Evtx import Evtx

    with Evtx(str(shared_data / "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx")) as log:
        docs = [" ".join(rec.xml().split("\n")) for rec in log.records()]
    docs[4] = docs[4].replace("</System>", "", 1)
    xml = tmp_path / "events.xml"
    xml.write_text("\n".join(docs) + "\n")
    events, errors = _split(read_hostlogs([str(xml)], all_events=True))
    assert len(events) == len(docs) - 1
    assert len(errors) == 1 and errors[0].message.startswith(f"{xml}: event 5 at line 5: bad event XML")


def test_directory_walk_names_what_it_skipped(tmp_path: Path):
    (tmp_path / "a.txt").write_text("hello\n")
    _, errors = _split(read_hostlogs([str(tmp_path)]))
    assert [e.message for e in errors] == [f"{tmp_path}: skipped 1 file(s) that hold no host log, e.g. a.txt"]
