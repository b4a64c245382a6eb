"""Zeek events as the Splunk Add-on for Zeek (aka Bro) indexes them, read by smbtrailfuse.

The add-on indexes each Zeek JSON log as `bro:<log>:json`, `_raw` the JSON line, search-time fields
by Zeek's names (KV_MODE=json). The rows here are the real Zeek logs of zeek-real/ in that shape, and
the Zeek-equivalent of an OTRF capture (tests/helpers/zeek_logs.py) beside the run's Windows events, driven
through the command's chunked protocol.
"""

from __future__ import annotations

import glob
import json
from typing import Any, Dict, List

import pytest

from helpers.zeek_logs import zeek_rows
from smbtrail.engine import network_records
from smbtrail.records import COMMAND
from smbtrail.splunk import fuserows, zeekevent
from test_splunk_fusecommand import drive, nxlog_rows, record_of, result_rows
from test_zeek_logs import zeek_rows as read_tsv

PAIR = "covenant_sharpsc_create_dcerpc_smb_svcctl"


def addon_rows(log: str, rows: List[Dict[str, Any]], with_raw: bool = True) -> List[Dict[str, Any]]:
    """Rows as a search returns them: sourcetype, _time, the JSON line in _raw, its fields as text."""
    out = []
    for row in rows:
        fields = {k: v for k, v in row.items() if v not in (None, "")}
        event = {"sourcetype": f"bro:{log}:json", "source": f"/opt/zeek/logs/current/{log}.log",
                 "_time": f"{float(fields['ts']):.6f}"}
        event.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()})
        if with_raw:
            event["_raw"] = json.dumps({"_path": log, **fields})
        out.append(event)
    return out


def _commands(records) -> List[tuple]:
    return sorted(tuple(str(v) for v in (r.command, r.args.get("action"), r.src_ip, r.src_port, r.dest_ip, r.user,
                                         r.dest_host)) for r in records if r.kind == COMMAND)


@pytest.mark.parametrize("with_raw", [True, False], ids=["raw_json", "fields_only"])
def test_addon_events_give_what_the_files_give(shared_data, with_raw):
    real = shared_data / "zeek-real"
    rows = []
    for path in sorted(real.glob("*.log.gz")):
        log = path.name.split(".")[0]
        rows += addon_rows(log, read_tsv(path), with_raw)
    assert all(zeekevent.is_zeek_event(r) for r in rows)
    records = sorted((rec for row in rows for rec in zeekevent.row_records(row)), key=lambda r: r.time)
    from_splunk = network_side(records)
    from_files = list(network_records([str(real)]))
    assert _commands(from_splunk) == _commands(from_files)
    assert len([c for c in from_splunk if c.kind == COMMAND and c.command == "sc"]) == 9


def test_other_addons_names_and_cim_aliases():
    row = {"sourcetype": "corelight_dce_rpc", "src_ip": "10.0.0.1", "src_port": "50000", "dest_ip": "10.0.0.2",
           "dest_port": "445", "uid": "Cabc", "_time": "1600000000.5", "named_pipe": "\\pipe\\svcctl",
           "endpoint": "svcctl", "operation": "CreateServiceW"}
    (rec,) = zeekevent.row_records(row)
    assert (rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port) == ("10.0.0.1", 50000, "10.0.0.2", 445)
    assert rec.opnum == 12 and rec.operation == "RCreateServiceW" and rec.time.timestamp() == 1600000000.5
    flat = {"sourcetype": "zeek:ntlm", "ts": "1600000000.0", "uid": "Cabc", "id_orig_h": "10.0.0.1",
            "id_orig_p": "50000", "id_resp_h": "10.0.0.2", "id_resp_p": "445", "username": "alice",
            "domainname": "CORP", "success": "T"}
    (session,) = zeekevent.row_records(flat)
    assert (session.user, session.domain, session.src_port) == ("alice", "CORP", 50000)
    assert not zeekevent.is_zeek_event({"sourcetype": "bro:dns:json", "uid": "C1", "id.orig_h": "10.0.0.1"})
    with pytest.raises(ValueError, match="unreadable Zeek event"):
        zeekevent.row_records({"sourcetype": "bro:dce_rpc:json", "_raw": '{"ts": 1, "uid": "C"}'})


def test_fuse_command_takes_addon_events_with_windows_events(shared_data, tmp_path):
    network = glob.glob(str(shared_data / "otrf-security-datasets" / "windows" / "*" / "network" / f"{PAIR}.zip"))
    host = glob.glob(str(shared_data / "otrf-security-datasets" / "windows" / "*" / "host" / f"{PAIR}.zip"))
    zeek = []
    for log, rows in zeek_rows(network_records(network)).items():
        zeek += addon_rows(log, rows)
    windows = nxlog_rows(host[0])
    chunks = [zeek[: len(zeek) // 2], windows, zeek[len(zeek) // 2:]]
    code, frames = drive(tmp_path, chunks, args=["emit=all"])  # every record, to compare with the engine
    assert code == 0, frames[-1][0] if frames else "no reply"
    rows = result_rows(frames)
    fused = [json.loads(r["_raw"]) for r in rows if r["kind"] == "command" and r["command"] == "sc"]
    assert fused, [r["command"] for r in rows if r["kind"] == "command"]
    (create,) = [c for c in fused if c["args"].get("action") == "create"]
    assert create["args"]["service_name"] == "Cyb3rWard0g" and "GruntHTTP2" in create["args"]["binary_path"]
    assert {"network", "zeek", "host"} <= set(create["evidence"]) and create["user"] == "pgustavo"
    direct = fuserows.canonical_order(
        network_side(sorted((x for r in zeek for x in zeekevent.row_records(r)), key=lambda r: r.time))
        + [record_of(r) for r in windows])
    from smbtrail.engine import fuse

    assert [r["uid"] for r in rows] == [r.uid() for r in fuse(direct)], "the command's answer is the engine's"


def test_addon_events_beside_the_capture_records_of_the_same_traffic(shared_data, tmp_path):
    """A SOC that indexes both smbtrail:network (a capture input) and Zeek: one record per call, one trail."""
    network = glob.glob(str(shared_data / "otrf-security-datasets" / "windows" / "*" / "network" / f"{PAIR}.zip"))
    records = list(network_records(network))
    zeek = [x for log, rows in zeek_rows(records).items() for x in addon_rows(log, rows)]
    captured = sorted((record_of(r) for r in network_rows_of(records)), key=lambda r: r.time)
    both = network_side(sorted((x for r in zeek for x in zeekevent.row_records(r)), key=lambda r: r.time), captured)
    from_zeek = [r for r in both if "absent" in r.args]
    assert not [r for r in from_zeek if r.kind in ("operation", "tree", "file")], "Zeek's lines the capture has"
    assert any("zeek" in r.evidence for r in both if r.kind == "operation" and "absent" not in r.args)
    code, frames = drive(tmp_path, [network_rows_of(records) + zeek])
    assert code == 0
    creates = [r for r in result_rows(frames) if r["kind"] == "command" and r["command"] == "sc"]
    assert len(creates) == 1 and "zeek" in json.loads(creates[0]["_raw"])["evidence"]


def network_side(zeek, captured=()) -> List:
    out: List = []
    zeekevent.network_side(zeek, captured, out.append)
    return out


def network_rows_of(records) -> List[Dict[str, Any]]:
    from smbtrail.splunk import events

    return [{"_raw": events.event_json(r), "_time": f"{r.time.timestamp():.6f}", "sourcetype": events.NETWORK,
             "source": "sensor.pcap"} for r in records]
