"""Zeek events as the Splunk Add-on for Zeek (aka Bro) indexes them, read by smbtrailfuse.

The add-on indexes each Zeek JSON log as `bro:<log>:json`, `_raw` the JSON line, search-time fields
by Zeek's names (KV_MODE=json). The rows here are the real Zeek logs of zeek-real/ in that shape, and
the Zeek-equivalent of an OTRF capture (tests/helpers/zeek_logs.py) beside the run's Windows events, driven
through the command's chunked protocol.
"""

from __future__ import annotations

import glob
import gzip
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from helpers.splunk_sim import Event, json_fields
from helpers.zeek_logs import zeek_rows
from smbtrail.engine import analyze, network_records
from smbtrail.records import COMMAND
from smbtrail.splunk import fuserows, zeekevent
from test_splunk_flow import fuse_in_splunk
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


# -- each vendor's sourcetypes, selected by the packaged macro and fused ------------------------------
def _tsv_lines(path: Path) -> Tuple[List[str], List[str]]:
    """(the #fields names, the data lines) of one Zeek TSV log."""
    fields, lines = [], []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line and not line.startswith("#"):
                lines.append(line)
    return fields, lines


def vendor_events(real: Path, vendor: str) -> List[Event]:
    """The real logs as each add-on indexes them: the Splunk Add-on for Zeek's JSON (`bro:<log>:json`,
    Zeek's JSON line, KV_MODE=json) and TSV (`bro_<log>`: the TSV line, indexed extractions from the
    #fields header, `.` in a name made `_`); the TA for Corelight's JSON (`corelight_<log>`, with `_path`)."""
    events = []
    for path in sorted(real.glob("*.log.gz")):
        log = path.name.split(".")[0]
        fields, lines = _tsv_lines(path)
        for line in lines:
            values = dict(zip(fields, line.split("\t")))
            meta = {"index": "zeek", "host": "sensor1", "source": f"/opt/zeek/logs/current/{log}.log",
                    "_time": values["ts"]}
            if vendor == "bro_tsv":
                events.append(Event(line, dict(meta, sourcetype=f"bro_{log}"),
                                    {k.replace(".", "_"): [v] for k, v in values.items()}))
                continue
            typed = {k: v.replace("\\\\", "\\") for k, v in values.items() if v != "-"}
            typed.update(ts=float(values["ts"]), **{k: int(values[k]) for k in ("id.orig_p", "id.resp_p")})
            typed.update({k: typed[k] == "T" for k in ("success", "forwardable", "renewable") if k in typed})
            if vendor == "corelight":
                typed = {"_path": log, "_system_name": "sensor1", **typed}
            sourcetype = f"bro:{log}:json" if vendor == "bro_json" else f"corelight_{log}"
            raw = json.dumps(typed)
            events.append(Event(raw, dict(meta, sourcetype=sourcetype), json_fields(raw)))
    return events


def decoys(events: List[Event]) -> List[Event]:
    """Events of the same index the macro must leave alone: other logs, and connections to other ports."""
    first = events[0]
    out = []
    for sourcetype in ("bro:dns:json", "corelight_http", "bro_http", "bro_conn", "corelight_conn"):
        fields = {k: v for k, v in first.fields.items()}
        for port in ("id.resp_p", "id_resp_p"):
            if port in fields:
                fields[port] = ["80"]
        out.append(Event(first.raw, dict(first.meta, sourcetype=sourcetype), fields))
    return out


def _fused_commands(records: List[Dict[str, Any]]) -> List[tuple]:
    return sorted((r["command"], r["operation"], r["src_ip"], r.get("src_port"), r["dest_ip"], r.get("user"),
                   r["time"]) for r in records if r["kind"] == "command")


@pytest.mark.parametrize("vendor", ["bro_json", "bro_tsv", "corelight"])
def test_each_vendors_sourcetypes_selected_by_the_macro_and_fused(built, shared_data, vendor, tmp_path):
    """The scheduled fusion's base search (the packaged macros, no local one) selects every SMB/DCE-RPC
    event of the Splunk Add-on for Zeek (JSON and TSV) and of the TA for Corelight and nothing else of
    the Zeek index; the fused commands are those the command line gives from the log files."""
    real = shared_data / "zeek-real"
    events = vendor_events(real, vendor)
    fused, read = fuse_in_splunk(built["stage"], events + decoys(events), tmp_path)
    assert len(read) == len(events), "each of the vendor's SMB/DCE-RPC events and no decoy"
    expected = [r.to_dict() for r in analyze([str(real)], []) if r.kind == "command"]
    assert _fused_commands(fused) == _fused_commands(expected)
    assert len([r for r in fused if r["kind"] == "command" and r["command"] == "sc"]) == 9
