"""Fusion holds one window of activity, not the run: its input is put in time order (through disk
when large), what fell behind the window is dropped, and neither changes what joins."""

from __future__ import annotations

import glob
from typing import Dict, List, Tuple

from smbtrail.engine import host_records, network_records
from smbtrail.fusion import fuse_records, order
from smbtrail.fusion.pipeline import KEEP, Fusion
from smbtrail.records import Record

OTRF = "otrf-security-datasets/windows"
EARLY, LATE = "covenant_sharpsc_create_dcerpc_smb_svcctl", "schtask_create"  # August and December 2020


def _half(shared, name: str, half: str) -> str:
    return glob.glob(str(shared / OTRF / "*" / half / f"{name}.zip"))[0]


def _sides(shared, name: str) -> Tuple[List[Record], List[Record]]:
    return list(network_records([_half(shared, name, "network")])), list(host_records([_half(shared, name, "host")]))


def _joins(records) -> Dict[tuple, tuple]:
    return {(r.provenance[0].file, r.record_id): (tuple(r.join), r.trail_id, r.confidence)
            for r in records if r.kind == "host_event"}


def test_input_sorted_through_disk_as_in_memory(shared_data, monkeypatch):
    network, host = _sides(shared_data, EARLY)
    in_memory = [r.uid() for r in order.by_time(network, host)]
    monkeypatch.setattr(order, "RUN", 16)  # runs of 16 records, spilled to temporary files
    monkeypatch.setattr(order, "MAX_RUNS", 3)  # and merged into one file every third run
    spilled = list(order.by_time(network, host))
    assert [r.uid() for r in spilled] == in_memory and len(spilled) == len(network) + len(host)
    times = [r.time for r in spilled]
    assert times == sorted(times)


def test_what_fell_behind_the_window_is_dropped_and_joins_stay(shared_data):
    alone = {}
    for name in (EARLY, LATE):
        alone.update(_joins(fuse_records(sum(_sides(shared_data, name), []))))
    early, late = sum(_sides(shared_data, EARLY), []), sum(_sides(shared_data, LATE), [])
    span = (min(r.time for r in late) - max(r.time for r in early if r.kind != "error")).total_seconds()
    assert span > 2 * KEEP, "the pairs lie far apart (error records carry the file's mtime)"
    fusion = Fusion()
    together = list(fusion.run(sorted(early + late, key=lambda r: r.time)))
    assert _joins(together) == alone
    assert any(j[1] for j in alone.values()), "some host events joined at all"
    late_start = min(r.time for r in late).timestamp() - KEEP
    kept = [c for conns in fusion.net.conns.values() for c in conns]
    assert kept and all(c.last >= late_start for c in kept), "the early pair's connections were dropped"
    early_hosts = {r.dest_host.split(".")[0].lower() for r in early if r.kind == "host_event" and r.dest_host}
    late_hosts = {r.dest_host.split(".")[0].lower() for r in late if r.kind == "host_event" and r.dest_host}
    assert not {host for host, _ in fusion.joiner.logons} & (early_hosts - late_hosts), "and its logons"
