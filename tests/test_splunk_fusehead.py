"""smbtrailfuse's two phases at scale, on real records: the map phase's compact rows (what the indexers
send), the search head's fusion through temporary disk (the same answer as in memory and as the
command line's engine, whatever the row order), the fields the map phase declares, and limits said.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

from helpers.splunk_sim import dispatch_reporting, result_rows
from smbtrail import engine
from smbtrail.fusion import order
from smbtrail.records import Record
from smbtrail.splunk import events, fusecommand, fuserows
from smbtrail.splunk.fusehead import HeadFusion
from test_splunk_fusecommand import COMMAND, PAIR, network_rows, nxlog_rows
from test_splunk_zeek import addon_rows
from test_zeek_logs import zeek_rows as read_tsv

LAB = Path(__file__).resolve().parent / "fixtures" / "lab"


@pytest.fixture(scope="module")
def otrf_rows(shared_data, tmp_path_factory) -> List[Dict[str, Any]]:
    """An OTRF pair as Splunk holds it: the capture input's records and the Windows add-on's events."""
    work = tmp_path_factory.mktemp("otrf")
    with zipfile.ZipFile(shared_data / PAIR.format(side="network")) as archive:
        name = next(n for n in archive.namelist() if n.endswith((".cap", ".pcap", ".pcapng")))
        archive.extract(name, work)
    return network_rows(work / name) + nxlog_rows(shared_data / PAIR.format(side="host"))


def lab_records() -> List[Record]:
    """Every kind of record: cleartext and encrypted lab sessions, Samba's audit logs, fused."""
    names = ("psexec_impacket", "schtasks_atexec")
    paths = [LAB / mode / n for mode in ("plain", "enc-global") for n in names]
    return list(engine.analyze([f"{p}.pcapng" for p in paths], [f"{p}.full_audit.log" for p in paths]))


def test_the_type_table_names_every_field_of_the_record():
    assert set(fuserows.TYPES) | set(fuserows.CONVERTED) == set(Record.model_fields)


def test_compact_records_come_back_as_they_were_without_validation(monkeypatch):
    records = lab_records()
    assert {r.kind for r in records} >= {"session", "operation", "host_event", "command", "trail"}

    def refuse(*args, **kwargs):
        raise AssertionError("validated: the fast path refused a record the engine wrote")

    monkeypatch.setattr(Record, "model_validate", classmethod(refuse))
    for rec in records:
        again = fuserows.record_of(json.loads(events.event_json(rec)))
        assert again.to_dict() == rec.to_dict() and again.uid() == rec.uid()
        assert fuserows.body_key(events.event_body(rec)) == fuserows.order_key(rec)


def test_event_bodies_are_written_as_the_inputs_write_them(otrf_rows):
    records = lab_records() + [r for row in otrf_rows for r in fuserows.input_records(row)]
    for rec in records:
        assert json.dumps(fuserows.body_of(rec)) == json.dumps(events.event_body(rec))


def test_values_of_another_type_are_validated_and_bad_ones_refused():
    body = events.event_body(lab_records()[0])
    coerced = fuserows.record_of({**body, "src_port": "445"})  # pydantic's own rules decide
    assert coerced.src_port == 445
    with pytest.raises(fuserows.Unreadable):
        fuserows.record_of({**body, "time": "yesterday"})
    with pytest.raises(fuserows.Unreadable):
        fuserows.record_of({**body, "provenance": [{"file": 3}]})


def _compact(rows: List[Dict[str, Any]], fresh: str = "") -> List[Dict[str, Any]]:
    return list(fuserows.compact_rows(rows, fresh or None))


def _fused(rows: List[Dict[str, Any]], fresh: str = "", emit_all: bool = False) -> List[str]:
    head = HeadFusion(fresh=fresh or None)
    for row in rows:
        head.take(row)
    return [r.uid() for r in head.fused(emit_all)]


def test_fusion_through_temporary_disk_is_the_fusion_in_memory(otrf_rows, monkeypatch):
    """Tiny runs (the rows spill to disk every 7) and rows in any order: the command line's answer."""
    compact = _compact(otrf_rows)
    fused = list(engine.fuse(fuserows.canonical_order(r for row in otrf_rows for r in fuserows.input_records(row))))
    assert _fused(compact, emit_all=True) == [r.uid() for r in fused]
    monkeypatch.setattr(order, "RUN", 7)
    shuffled = compact[:]
    random.Random(13).shuffle(shuffled)
    assert _fused(shuffled, emit_all=True) == [r.uid() for r in fused]
    trails = [r.uid() for r in fused if r.kind in ("trail", "command")]
    assert trails and _fused(shuffled) == trails


def test_fresh_rows_mark_their_trails_through_disk(otrf_rows, monkeypatch):
    """Only the host events are new (the capture was indexed before): the trails they joined are
    written, the same ones whether the rows waited in memory or on disk."""
    rows = [dict(r, smbtrail_fresh="1" if r["sourcetype"] != events.NETWORK else "0") for r in otrf_rows]
    compact = _compact(rows, "smbtrail_fresh")
    assert {r[fuserows.NEW] for r in compact} == {"0", "1"}
    in_memory = _fused(compact, "smbtrail_fresh")
    monkeypatch.setattr(order, "RUN", 5)
    assert in_memory and _fused(list(reversed(compact)), "smbtrail_fresh") == in_memory
    assert _fused([dict(r, smbtrail_new="0") for r in compact], "smbtrail_fresh") == []  # nothing new


def test_the_declared_fields_are_all_the_map_phase_reads(shared_data):
    """Splunk extracts only the required fields on the indexers: rows cut to them give the same records,
    for every shape of event the map phase reads from fields rather than from _raw."""
    required = set(fusecommand.required_fields("smbtrail_fresh"))
    classic = {"EventCode": "4624", "ComputerName": "PC01.example.corp", "LogName": "Security",
               "RecordNumber": "1186", "Account_Name": ["PC01$", "admin"], "Account_Domain": ["EXAMPLE", "EXAMPLE"],
               "Logon_ID": ["0x3E7", "0x8E1E13"], "Logon_Type": "3", "Source_Network_Address": "10.0.2.17",
               "Source_Port": "49720", "Authentication_Package": "NTLM", "_time": "1560000000.000",
               "sourcetype": "WinEventLog", "source": "WinEventLog:Security", "Message": "An account was ...",
               "TaskCategory": "Logon", "Keywords": "Audit Success"}
    windows = nxlog_rows(shared_data / PAIR.format(side="host"))
    zeek = []
    for path in sorted((shared_data / "zeek-real").glob("*.log.gz")):
        zeek += addon_rows(path.name.split(".")[0], read_tsv(path), with_raw=False)
    for rows in ([classic], windows, zeek):
        cut = [{k: v for k, v in row.items() if k in required} for row in rows]
        full = _compact(rows)
        assert full and _compact(cut) == full
        assert all(r[fuserows.LANE] != fuserows.SKIPPED for r in full)


def test_limits_and_unreadable_rows_are_said_in_the_results(otrf_rows, tmp_path):
    garbage = [{"sourcetype": "access_combined", "_raw": "GET / HTTP/1.1"},
               {"sourcetype": "XmlWinEventLog", "_raw": "<Event><System>&bogus;</System>"},
               {"sourcetype": "smbtrail:network", "_raw": '{"time": "2020-01-01T00:00:00Z", "kind": "session", '
                                                          '"provenance": {"file": "x"}}'}]
    limit = len(otrf_rows) // 2
    run = dispatch_reporting([sys.executable, str(COMMAND)], tmp_path, [f"max_records={limit}"], otrf_rows + garbage,
                             chunk=20)
    assert run.code == 0, run.stderr[-2000:]
    errors = [json.loads(r["_raw"]) for r in result_rows(run.frames) if r["kind"] == "error"]
    messages = (run.frames[-1][0].get("inspector") or {}).get("messages", [])
    over = len(otrf_rows) - limit
    assert any(e["message"].startswith(f"smbtrailfuse: {over} rows past max_records={limit}") for e in errors)
    assert any("1 rows not read: neither an smbtrail record" in e["message"] for e in errors)
    assert any("1 rows not read: unreadable Windows event" in e["message"] for e in errors)
    assert any("1 rows not read: unreadable smbtrail event" in e["message"] for e in errors)
    assert all(e["partial"] for e in errors)
    assert any(level == "WARN" and "past max_records" in text for level, text in messages), messages


V1_CHECK = """
import json, sys
from smbtrail import engine
from smbtrail.splunk import events, fuserows
paths = sys.argv[1:]
for rec in engine.analyze([p + ".pcapng" for p in paths], [p + ".full_audit.log" for p in paths]):
    body = events.event_body(rec)
    assert json.dumps(fuserows.body_of(rec)) == json.dumps(body), body
    again = fuserows.record_of(json.loads(json.dumps(body)))
    assert again.to_dict() == rec.to_dict() and again.uid() == rec.uid(), body
print("checked")
"""


def test_the_fast_paths_hold_under_the_packaged_pydantic(built):
    """The same checks in the package's own libraries (pydantic 1.10), as the search head runs them."""
    lib = built["stage"] / "bin" / "lib"
    paths = [str(LAB / mode / "psexec_impacket") for mode in ("plain", "enc-global")]
    done = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(lib)!r})\n" + V1_CHECK]
                          + paths, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "checked", done.stderr[-3000:]
