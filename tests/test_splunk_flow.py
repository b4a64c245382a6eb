"""The app chained as Splunk chains it, from the built package: the modular inputs read the recordings
and write events (XML protocol), the scheduled fusion search's own base search (macros expanded from
the package's macros.conf) selects from those events what it reads, the packaged `smbtrailfuse`
fuses them as splunkd runs it (chunked protocol, newest rows first; its map phase on two search peers
given only the fields it requires, its reduce on their output), and `collect` keeps what it writes.
The trails must be the command line's fused trails: same commands, scores and joins.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from itertools import chain
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from helpers import network
from helpers.splunk_sim import (
    Event,
    Macros,
    dispatch_reporting,
    read_conf,
    result_rows,
    run_input,
    search_events,
    split_pipeline,
)
from smbtrail import engine
from smbtrail.fusion.order import by_time

FUSION = "smbtrail - fuse trails to summary"
OTRF_PAIR = "otrf-security-datasets/windows/lateral_movement/{side}/covenant_sc_query_dcerpc_smb_svcctl.zip"
CHUNK = 1000  # rows a chunk: the lab runs span several chunks and both search peers
COMPARED = ("kind", "time", "trail_id", "command", "operation", "src_ip", "src_port", "dest_ip", "dest_host",
            "user", "evidence", "join", "inferred", "confidence", "encrypted")


def fusion_pipeline(stage: Path) -> List[str]:
    saved = read_conf(stage / "default" / "savedsearches.conf")[FUSION]
    macros = Macros(read_conf(stage / "default" / "macros.conf"))
    return split_pipeline(macros.expand(saved["search"]))


def fuse_in_splunk(stage: Path, indexed: List[Event], workdir: Path, fresh: Optional[List[Event]] = None
                   ) -> Tuple[List[Dict], List[str]]:
    """The scheduled fusion over `indexed`: its base search, its fresh flag (the events of `fresh` were
    indexed in the run's window, the others before it; all of them when not given), the packaged
    command with the search's own arguments; the rows collect would write."""
    base, flag, command, collect = fusion_pipeline(stage)
    assert flag.startswith("eval smbtrail_fresh=") and collect.startswith("collect ")
    name, *args = command.split()
    assert name == "smbtrailfuse"
    selected = sorted(search_events(base, indexed), key=lambda e: float(e.meta["_time"]), reverse=True)
    new = {id(e) for e in (indexed if fresh is None else fresh)}
    rows = [e.row({"smbtrail_fresh": "1" if id(e) in new else "0"}) for e in selected]
    run = dispatch_reporting([sys.executable, "-S", str(stage / "bin" / "smbtrailfuse.py")], workdir, args, rows,
                             chunk=CHUNK)
    frames = run.frames
    assert run.code == 0, (run.stderr[-3000:], frames[-1][0] if frames else None)
    return [json.loads(r["_raw"]) for r in result_rows(frames)], [e.meta["sourcetype"] for e in selected]


def command_line(captures: Sequence[str], hostlogs: Sequence[str]) -> List[Dict]:
    return [r.to_dict() for r in engine.analyze(list(captures), list(hostlogs)) if r.kind in ("trail", "command")]


def command_line_per_file(captures: Sequence[str], hostlogs: Sequence[str]) -> List[Dict]:
    """The command line's fusion of the records the input writes: one engine run per capture file (as
    a sensor's rotation arrives), fused with the host logs in time order as `analyze` fuses them.
    (One run over all files can label a capture differently: the encrypted-size inference carries a
    client's recent uploads, and endpoint-mapper answers map ports, across the files of one run.)"""
    stream = chain.from_iterable(network.records(c) for c in captures)
    fused = engine.fuse(by_time(stream, engine.host_records(list(hostlogs))))
    return [r.to_dict() for r in fused if r.kind in ("trail", "command")]


def comparable(records: List[Dict]) -> List[Tuple]:
    out = []
    for rec in records:
        args = rec.get("args", {})
        key = tuple(json.dumps(rec.get(k), sort_keys=True) for k in COMPARED)
        shown = {k: v for k, v in args.items() if k in ("score", "stage", "commands", "reasons", "service_name",
                                                         "task_name", "file", "binary_path", "chain_id")}
        out.append(key + (json.dumps(shown, sort_keys=True),))
    return sorted(out)


def headline(records: List[Dict]) -> List[Tuple]:
    return sorted((r.get("command") or "", r["args"].get("score"), len(r["args"].get("commands", [])))
                  for r in records if r["kind"] == "trail")


def copy(sources: Sequence[Path], into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, into / source.name)
    return into


def test_lab_encrypted_sessions_fused_in_splunk_equal_the_command_line(built, lab_indexed, fixtures, tmp_path):
    lab = fixtures / "lab" / "enc-global"
    captures = sorted(lab.glob("*.pcapng"))
    audits = sorted(lab.glob("*.full_audit.log"))
    stage = built["stage"]
    indexed = lab_indexed["enc-global"]
    assert {e.meta["sourcetype"] for e in indexed} >= {"smbtrail:network", "smbtrail:host", "smbtrail:health"}
    fused, read = fuse_in_splunk(stage, indexed, tmp_path)
    assert set(read) == {"smbtrail:network", "smbtrail:host"}  # every record the inputs wrote, no health
    assert len(read) == len([e for e in indexed if e.meta["sourcetype"] != "smbtrail:health"])
    expected = command_line_per_file([str(c) for c in captures], [str(a) for a in audits])
    fused_steps = [r for r in fused if r["kind"] != "error"]  # tshark's partial-read note on one capture
    assert headline(fused_steps) == headline(expected) and headline(expected)[0][1] == 100
    assert comparable(fused_steps) == comparable(expected)
    assert {r["kind"] for r in fused} <= {"trail", "command", "error"}  # never a copy of the input


def test_otrf_sc_query_pair_fused_in_splunk_equals_the_command_line(built, shared_data, tmp_path):
    network = shared_data / OTRF_PAIR.format(side="network")
    host = shared_data / OTRF_PAIR.format(side="host")
    stage = built["stage"]
    indexed = (run_input(stage, "smbtrail_pcap", str(copy([network], tmp_path / "pcap") / "*.zip"), tmp_path)
               + run_input(stage, "smbtrail_hostlog", str(copy([host], tmp_path / "logs") / "*.zip"), tmp_path))
    fused, _ = fuse_in_splunk(stage, indexed, tmp_path)
    fused = [r for r in fused if r["kind"] != "error"]
    expected = command_line([str(network)], [str(host)])
    assert [h[0] for h in headline(expected)] and headline(fused) == headline(expected)
    assert comparable(fused) == comparable(expected)
    assert any("sc query" in (r.get("command") or "") + " " + (r.get("operation") or "") for r in fused
               if r["kind"] == "command")


def test_collect_writes_stash_with_the_fused_source(built):
    *_, collect = fusion_pipeline(built["stage"])
    words = dict(w.split("=", 1) for w in collect.split()[1:] if "=" in w)
    assert words["source"].strip('"') == "smbtrail:fused" and "sourcetype" not in words  # stash: no licence
    assert words["index"] == "summary" and words["addinfo"] == "false"  # _raw stays the record JSON
    props = read_conf(built["stage"] / "default" / "props.conf")
    assert props["source::smbtrail:fused"]["KV_MODE"] == "json"


def test_a_trail_is_written_again_only_when_newly_indexed_rows_joined_it(built, shared_data, tmp_path):
    """Run 1: the capture was indexed, its host logs not yet. Run 2: the host logs arrive late; the
    capture's records are only context. Run 3: nothing new. The trail is written by runs 1 and 2, the
    second time with the host evidence, and never by run 3."""
    stage = built["stage"]
    network = run_input(stage, "smbtrail_pcap", str(copy([shared_data / OTRF_PAIR.format(side="network")],
                                                           tmp_path / "pcap") / "*.zip"), tmp_path)
    host = run_input(stage, "smbtrail_hostlog", str(copy([shared_data / OTRF_PAIR.format(side="host")],
                                                         tmp_path / "logs") / "*.zip"), tmp_path)
    first, _ = fuse_in_splunk(stage, network, tmp_path, fresh=network)
    second, _ = fuse_in_splunk(stage, network + host, tmp_path, fresh=host)
    third, _ = fuse_in_splunk(stage, network + host, tmp_path, fresh=[])
    trails = [[r for r in run if r["kind"] == "trail" and r.get("command")] for run in (first, second, third)]
    assert trails[0] and trails[1] and not third
    assert all(r["evidence"] == ["network"] for r in trails[0])
    assert any("host" in r["evidence"] for r in trails[1])
    everything, _ = fuse_in_splunk(stage, network + host, tmp_path)
    assert comparable([r for r in second if r["kind"] != "error"]) == comparable(
        [r for r in everything if r["kind"] != "error" and r.get("trail_id") in {t["trail_id"] for t in second}])


# --- windows: every indexed record is new in exactly one scheduled run ---------------------------------

def relative(spec: str, now: float) -> float:
    """Splunk's relative time `-<n><unit>@<snap>` (the forms the app uses), from `now` (epoch, UTC)."""
    match = re.fullmatch(r'"?([+-]\d+)([smhd])(?:@([smhd]))?"?', spec)
    assert match, spec
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    when = now + int(match.group(1)) * unit[match.group(2)]
    return when - when % unit[match.group(3)] if match.group(3) else when


def scheduled_minutes(cron: str) -> List[int]:
    minutes, *rest = cron.split()
    assert rest == ["*", "*", "*", "*"], cron
    return sorted(int(m) for m in minutes.split(","))


def runs_that_read(saved: Dict[str, str], macros: Macros, indexed_at: float) -> int:
    """How many scheduled runs of a search take a record indexed at `indexed_at` as new (its index-time
    window: dispatch.index_* or the search's own bounds): every run of the hours around it is tried."""
    low = saved.get("dispatch.index_earliest") or macros.expand("`smbtrail_window_start`")
    high = saved.get("dispatch.index_latest") or macros.expand("`smbtrail_window_end`")
    hour = indexed_at - indexed_at % 3600
    runs = [hour + h * 3600 + m * 60 for h in (-1, 0, 1, 2) for m in scheduled_minutes(saved["cron_schedule"])]
    return sum(relative(low, now) <= indexed_at < relative(high, now) for now in runs)


def test_every_record_is_new_in_exactly_one_run_however_late_it_is_indexed(built):
    """Lag as a sensor input has it: rotation (300 s) + settle (60 s) + polling (60 s) + forwarding
    (up to 20 min, then a backlog of hours). Each scheduled search takes each record as new once."""
    conf = read_conf(built["stage"] / "default" / "savedsearches.conf")
    macros = Macros(read_conf(built["stage"] / "default" / "macros.conf"))
    scheduled = {name: s for name, s in conf.items() if s.get("enableSched") == "1"
                 and ("`smbtrail_fresh_flag`" in s["search"] or "dispatch.index_earliest" in s)}
    assert FUSION in scheduled and len(scheduled) >= 8
    start = 1_700_000_000 - 1_700_000_000 % 86400
    lags = [300 + 60 + 60 + extra for extra in (0, 1, 59, 61, 899, 901, 1200, 4 * 3600, 23 * 3600)]
    for name, saved in scheduled.items():
        assert saved["realtime_schedule"] == "0", name  # continuous: the scheduler never skips a window
        for offset in range(0, 3600, 7):
            for lag in lags:
                indexed = start + 6 * 3600 + offset + lag
                assert runs_that_read(saved, macros, indexed) == 1, (name, offset, lag)
        earliest = relative(saved["dispatch.earliest_time"], start + 12 * 3600)
        assert start + 12 * 3600 - earliest >= 23 * 3600 + 420, name  # records late by a day are still read
