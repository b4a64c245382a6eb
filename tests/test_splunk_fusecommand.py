"""smbtrailfuse driven as splunkd drives it: chunked protocol v2 frames (getinfo, then execute) on stdin;
its map phase on two search peers, its reduce on their output (splunk_sim.dispatch_reporting)."""

from __future__ import annotations

import json
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from helpers.splunk_sim import dispatch_reporting, result_rows
from smbtrail import engine
from smbtrail.splunk import events, fuserows, winevent

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / "bin" / "smbtrailfuse.py"
PAIR = "otrf-security-datasets/windows/lateral_movement/{side}/covenant_sharpsc_create_dcerpc_smb_svcctl.zip"
EVTX_ATSVC = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
EVTX_SVCCTL = "evtx-attack-samples/Lateral Movement/LM_Remote_Service01_5145_svcctl.evtx"


def _normalizer():
    from smbtrail.hostlog.flatten import from_xml
    from smbtrail.hostlog.normalize import normalize_flat

    return [from_xml, normalize_flat]


def require_engine(part: str) -> None:
    call = {"network": lambda: engine.network_records([]), "host": lambda: engine.host_records([]),
            "fuse": lambda: engine.fuse([]), "normalize": _normalizer}[part]
    try:
        list(call())
    except ImportError as exc:
        pytest.skip(f"engine part '{part}' not available yet: {exc}")


def drive(tmp_path: Path, chunks: List[List[Dict[str, Any]]], args: List[str] = (), chunk: int = 500
          ) -> Tuple[int, List]:
    """The rows of `chunks` in that order through the command as splunkd runs it (map on two peers,
    `chunk` rows a chunk; the reduce on their output): the reduce's reply frames."""
    rows = [row for piece in chunks for row in piece]
    run = dispatch_reporting([sys.executable, str(COMMAND)], tmp_path, list(args), rows, chunk=chunk)
    return run.code, run.frames


def record_of(row: Dict[str, Any]):
    """The one record of an input row, as the map phase reads it."""
    (record,) = fuserows.input_records(row)
    return record


# --- real Windows events as Splunk holds them ----------------------------------------------------

def xml_rows(path: Path) -> List[Dict[str, Any]]:
    """XmlWinEventLog events: _raw is the event XML (rendered here by python-evtx from the real .evtx)."""
    from Evtx.Evtx import Evtx

    rows = []
    with Evtx(str(path)) as log:
        for record in log.records():
            row = {"_raw": record.xml(), "sourcetype": "XmlWinEventLog", "source": "XmlWinEventLog:Security"}
            try:
                row["_time"] = f"{record.timestamp().timestamp():.3f}"
            except ValueError:  # a record whose header time python-evtx cannot convert: _raw still has it
                pass
            rows.append(row)
    return rows


def nxlog_rows(path: Path) -> List[Dict[str, Any]]:
    """XmlWinEventLog extractions (fields by their XML names, EventID as EventCode) from OTRF's export."""
    rows = []
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".json"))
        for line in archive.open(name):
            event = json.loads(line)
            if event.get("EventID") not in (4624, 4697, 5140, 5145, 7045):
                continue
            row = {k: v for k, v in event.items() if not isinstance(v, (dict, list)) and not k.startswith("@")}
            row.update(EventCode=row.pop("EventID"), Computer=row.pop("Hostname", None),
                       EventRecordID=row.pop("RecordNumber", None), sourcetype="XmlWinEventLog",
                       source=f"XmlWinEventLog:{event.get('Channel')}",
                       _time=datetime.fromisoformat(event["@timestamp"].replace("Z", "+00:00")).timestamp())
            row.pop("Message", None)
            rows.append({k: str(v) for k, v in row.items() if v is not None})  # Splunk hands over text
    return rows


def network_rows(capture: Path) -> List[Dict[str, Any]]:
    return [{"_raw": events.event_json(r), "_time": f"{r.time.timestamp():.6f}", "sourcetype": events.NETWORK,
             "source": str(capture)} for r in engine.network_records([str(capture)])]


# --- tests ----------------------------------------------------------------------------------------

def test_getinfo_declares_a_reporting_command_whose_map_runs_on_the_indexers(tmp_path):
    require_engine("fuse")
    run = dispatch_reporting([sys.executable, str(COMMAND)], tmp_path, ["fresh=smbtrail_fresh"], [])
    assert run.code == 0
    info = run.frames[0][0]
    assert info["type"] == "reporting" and info["run_in_preview"] is False
    assert info["streaming_preop"] == 'smbtrailfuse phase="map" fresh="smbtrail_fresh"'
    assert info["required_fields"] == list(fuserows.FIELDS)  # the reduce reads the compact rows only
    assert run.preop["type"] == "streaming"  # distributed: splunkd runs it on the search peers
    required = set(run.preop["required_fields"])
    assert {"_raw", "_time", "sourcetype", "source", "smbtrail_fresh", "Account_Name", "TargetLogonId",
            "id.orig_h"} <= required
    assert run.frames[-1][0].get("finished") is True and result_rows(run.frames) == []


def test_unknown_option_is_refused(tmp_path):
    code, frames = drive(tmp_path, [[]], args=["badopt=1"])
    assert code == 1
    messages = json.dumps(frames[0][0])
    assert "Unrecognized option" in messages and "badopt" in messages


def test_fuses_network_records_and_windows_events(shared_data, tmp_path):
    require_engine("network")
    require_engine("fuse")
    with zipfile.ZipFile(shared_data / PAIR.format(side="network")) as archive:
        name = next(n for n in archive.namelist() if n.endswith((".cap", ".pcap", ".pcapng")))
        archive.extract(name, tmp_path)
    net = network_rows(tmp_path / name)
    host = nxlog_rows(shared_data / PAIR.format(side="host"))
    assert net and host
    chunks = [net[: len(net) // 2], host[: len(host) // 2], net[len(net) // 2:] + host[len(host) // 2:]]
    code, frames = drive(tmp_path, chunks, args=["emit=all"])
    assert code == 0, frames[-1][0] if frames else "no reply"
    assert all(not body for _, body in frames[1:-1])  # nothing before the last chunk: fusion needs all
    rows = result_rows(frames)
    ordered = fuserows.canonical_order([record_of(r) for r in net + host])
    expected = list(engine.fuse(ordered))
    assert [r["uid"] for r in rows] == [r.uid() for r in expected]  # the CLI's engine, same answer
    newest_first = [list(reversed(net + host))]  # as a search returns events
    code, again = drive(tmp_path, newest_first, args=["emit=all"])
    assert code == 0 and [r["uid"] for r in result_rows(again)] == [r["uid"] for r in rows]
    code, trails = drive(tmp_path, newest_first)  # by default: the trails and their steps, not the input
    inputs = {r.uid() for r in ordered}
    kept = [r for r in rows if r["kind"] in ("trail", "command") or r["kind"] == "error" and r["uid"] not in inputs]
    assert code == 0 and [r["uid"] for r in result_rows(trails)] == [r["uid"] for r in kept]
    assert {r["kind"] for r in kept} >= {"trail", "command"}
    for row in rows:
        record = events.record_from_body(json.loads(row["_raw"]))
        assert record.uid() == row["uid"]
        assert float(row["_time"]) == pytest.approx(record.time.timestamp(), abs=1e-3)
    sources = {p["file"] for row in rows for p in json.loads(row["_raw"]).get("provenance", [])}
    assert str(tmp_path / name) in sources and any(s.startswith("XmlWinEventLog:") for s in sources)


def test_xml_events_read_as_the_hostlog_reader_reads_the_file(shared_data):
    require_engine("host")
    path = shared_data / EVTX_ATSVC
    from_splunk = [record_of(r) for r in xml_rows(path)]
    from smbtrail.hostlog import read_hostlogs

    from_file = list(read_hostlogs([str(path)], all_events=True))  # normalized, before host recognition
    keys = ("event_id", "user", "domain", "src_ip", "src_port", "logon_id", "share", "path", "dest_host",
            "operation", "command")

    def by_record(records):
        return {r.record_id: r for r in records if r.kind == "host_event"}

    splunk, files = by_record(from_splunk), by_record(from_file)
    assert files and set(files) <= set(splunk)
    for record_id, record in files.items():
        mine = splunk[record_id]
        assert [getattr(mine, k) for k in keys] == [getattr(record, k) for k in keys], record_id
        # python-evtx renders SystemTime rounded where the Rust reader truncates: 1 microsecond apart
        assert abs((mine.time - record.time).total_seconds()) <= 2e-6


def test_xml_raw_of_a_real_5145_becomes_a_host_record(shared_data):
    require_engine("normalize")
    (row,) = xml_rows(shared_data / EVTX_SVCCTL)
    record = record_of(row)
    assert record.event_id == 5145 and record.kind == "host_event"
    assert record.share.upper().endswith("IPC$") and record.path == "svcctl"
    assert record.dest_host == "WIN-77LTAPHIQ1R.example.corp"


def test_classic_winevenlog_names_map_to_xml_names():
    # the field names Splunk's classic (non-XML) WinEventLog extraction gives a 4624 logon
    row = {"EventCode": "4624", "ComputerName": "PC01.example.corp", "LogName": "Security",
           "RecordNumber": "1186", "Account_Name": ["PC01$", "admin"], "Account_Domain": ["EXAMPLE", "EXAMPLE"],
           "Logon_ID": ["0x3E7", "0x8E1E13"], "Logon_Type": "3", "Source_Network_Address": "10.0.2.17",
           "Source_Port": "49720", "Authentication_Package": "NTLM", "_time": "1560000000.000",
           "sourcetype": "WinEventLog", "source": "WinEventLog:Security"}
    flat = winevent.flat_event(row)
    assert flat["EventID"] == 4624 and flat["Computer"] == "PC01.example.corp"
    assert (flat["SubjectUserName"], flat["TargetUserName"]) == ("PC01$", "admin")
    assert (flat["SubjectLogonId"], flat["TargetLogonId"]) == ("0x3E7", "0x8E1E13")
    assert (flat["IpAddress"], flat["IpPort"], flat["LogonType"]) == ("10.0.2.17", "49720", "3")
    share = winevent.flat_event({"EventCode": "5145", "ComputerName": "PC01", "Account_Name": "admin",
                                 "Share_Name": "\\\\*\\IPC$", "Relative_Target_Name": "svcctl"})
    assert share["SubjectUserName"] == "admin" and share["RelativeTargetName"] == "svcctl"


def test_rows_that_are_not_input_are_counted_not_fatal():
    require_engine("normalize")
    with pytest.raises(ValueError):
        fuserows.input_records({"sourcetype": "access_combined", "_raw": "GET / HTTP/1.1"})
    with pytest.raises(ValueError):
        fuserows.input_records({"sourcetype": "XmlWinEventLog", "_raw": "<Event><System>&bogus;</System>"})
    assert fuserows.input_records({"sourcetype": events.HEALTH, "_raw": "{}"}) == []


def test_windows_events_alone_give_host_only_trails(shared_data, tmp_path):
    """The search over Windows events only (no smbtrail:network rows): the command writes the same host-only
    trails as the CLI with --hostlog alone."""
    require_engine("fuse")
    code, frames = drive(tmp_path, [xml_rows(shared_data / EVTX_ATSVC)], args=["emit=all"])  # with its members
    assert code == 0, frames[-1][0] if frames else "no reply"
    rows = result_rows(frames)
    trails = [json.loads(r["_raw"]) for r in rows if r["kind"] == "trail"]
    atexec = [t for t in trails if t.get("src_ip") == "10.0.2.17" and t.get("user") == "administrator"]
    assert len(atexec) == 1 and atexec[0]["trail_id"].startswith("host-")
    assert atexec[0]["args"]["commands"][0]["command"] == "atexec run"
    assert atexec[0]["args"]["stage"] == "execution" and atexec[0]["evidence"] == ["host"]
    members = [r for r in rows if r["kind"] == "host_event" and r["trail_id"] == atexec[0]["trail_id"]]
    assert {r["event_id"] for r in members} >= {"4624", "5145", "4698"}
