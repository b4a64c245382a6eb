"""Host-log engine on the public .evtx samples: nothing lost against the `evtx` package, the named facts
are there, and the python-evtx fallback gives the same records."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Dict, Tuple

import evtx
import pytest

from smbtrail.hostlog import read_hostlogs, recognize_host
from smbtrail.hostlog.catalog import spec_for
from smbtrail.hostlog.evtx_python import chunks, record_flat
from smbtrail.hostlog.evtx_reader import engine, read_evtx_python
from smbtrail.hostlog.normalize import normalize_flat
from smbtrail.records import Record

pytestmark = pytest.mark.shared
RENDERED_SAMPLE = 150


@cache
def _evtx_files(shared: Path):
    """Each sample once: python-evtx and evtx ship the same security.evtx (byte for byte)."""
    distinct: Dict[str, Path] = {}
    for path in sorted(shared.rglob("*.evtx")):
        distinct.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return sorted(distinct.values())


@cache
def _systems(path: Path) -> Tuple[dict, ...]:
    """The System part of every record, as the evtx package itself reads it (read once a session)."""
    return tuple(json.loads(rec["data"])["Event"]["System"] for rec in evtx.PyEvtxParser(str(path)).records_json())


@cache
def _all_events(path: Path) -> Tuple[Record, ...]:
    """Our reader's records of every event of the file (read once a session; the tests only read them)."""
    return tuple(read_hostlogs([str(path)], all_events=True))


@pytest.fixture(scope="module", autouse=True)
def _forget_reads_after_this_module():
    yield
    _systems.cache_clear()
    _all_events.cache_clear()


def _reference_counts(path: Path, covered_only: bool) -> Counter:
    """What the evtx package itself reads, per (channel, event id)."""
    counts: Counter = Counter()
    for system in _systems(path):
        code = system["EventID"]
        code = int(code["#text"] if isinstance(code, dict) else code)
        if not covered_only or spec_for(code, system.get("Channel")):
            counts[(system.get("Channel"), code)] += 1
    return counts


def _counts(records) -> Counter:
    return Counter((r.channel, r.event_id) for r in records if r.kind == "host_event")


def test_every_sample_counts_equal_evtx_per_event_id(shared_data):
    files = _evtx_files(shared_data)
    assert len(files) >= 20
    for path in files:
        records = list(read_hostlogs([str(path)]))
        assert _counts(records) == _reference_counts(path, True), path.name
        assert not [r for r in records if r.kind == "error"], path.name


def test_all_events_passes_every_record(shared_data):
    for path in _evtx_files(shared_data):
        records = _all_events(path)
        assert _counts(records) == _reference_counts(path, False), path.name
        for rec in records:  # records are built without a validation pass: each must survive one
            assert Record.model_validate(rec.model_dump()) == rec


def test_event_times_are_their_system_time_in_utc(shared_data):
    """The reader's time parses (the fast one for the evtx package's usual format, the general one for the
    rest) against strptime, on every record."""
    for path in _evtx_files(shared_data):
        times = {r.record_id: r.time for r in _all_events(path) if r.kind == "host_event"}
        for system in _systems(path):
            text = system["TimeCreated"]["#attributes"]["SystemTime"]
            fraction = int(text[20:-1][:6].ljust(6, "0"))  # some files hold nanoseconds: cut to microseconds
            expected = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(microsecond=fraction, tzinfo=timezone.utc)
            got = times[int(system["EventRecordID"])]
            assert got == expected and got.utcoffset() == timedelta(0), (path.name, text, got)


def _by_record(records, event_id):
    return [r for r in records if r.kind == "host_event" and r.event_id == event_id]


def test_atsvc_task_facts(shared_data):
    path = shared_data / "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
    records = list(read_hostlogs([str(path)]))
    logon = [r for r in _by_record(records, 4624) if r.logon_id == "0x17e2c0"]
    assert len(logon) == 1
    assert (logon[0].user, logon[0].src_ip, logon[0].src_port) == ("Administrator", "10.0.2.17", 49237)
    shares = [r for r in records if r.event_id in (5140, 5145) and r.logon_id == "0x17e2c0"]
    assert {(r.share, r.path) for r in shares} >= {("IPC$", "atsvc"), ("ADMIN$", "Temp\\CYAlyNSS.tmp")}
    assert all((r.src_ip, r.src_port) == ("10.0.2.17", 49237) for r in shares)
    task = _by_record(records, 4698) + _by_record(records, 4699)
    assert [(r.event_id, r.args["task_name"], r.logon_id) for r in task] == [
        (4698, "\\CYAlyNSS", "0x17e2d2"), (4699, "\\CYAlyNSS", "0x17e2d2")]
    assert task[0].args["task_command"] == "cmd.exe /C tasklist > %windir%\\Temp\\CYAlyNSS.tmp 2>&1"
    rpc_logon = [r for r in _by_record(records, 4624) if r.logon_id == "0x17e2d2"]
    assert len(rpc_logon) == 1 and rpc_logon[0].src_ip is None and rpc_logon[0].raw["IpAddress"] == "-"
    assert all(r.logon_id for r in records if r.event_id in (4624, 4672, 4698, 4699, 5140, 5145))


def test_atsvc_task_is_recognized_as_remote_atexec(shared_data):
    path = shared_data / "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
    commands = [r for r in recognize_host(read_hostlogs([str(path)])) if r.kind == "command"]
    atexec = [c for c in commands if c.command == "atexec"]
    assert len(atexec) == 1
    assert (atexec[0].src_ip, atexec[0].src_port, atexec[0].user) == ("10.0.2.17", 49237, "Administrator")
    assert atexec[0].args["remote"] is True and atexec[0].args["client_logon_id"] == "0x17e2c0"
    assert {c.command for c in commands} >= {"read file", "delete file", "wevtutil"}


def test_remote_service_facts(shared_data):
    path = shared_data / "evtx-attack-samples/Lateral Movement/LM_Remote_Service02_7045.evtx"
    services = {r.args["service_name"]: r.args["binary_path"] for r in read_hostlogs([str(path)])}
    assert set(services) == {"remotesvc", "spoolfool", "spoolsv"}
    assert services["spoolfool"] == "cmd.exe"
    assert all(services.values())


def test_remote_task_update_shares_logon_id(shared_data):
    path = shared_data / "evtx-attack-samples/Lateral Movement/remote task update 4624 4702 same logonid.evtx"
    records = list(read_hostlogs([str(path)]))
    update = _by_record(records, 4702)
    assert len(update) == 1 and update[0].args["task_name"] == "\\LMST"
    logons = [r for r in _by_record(records, 4624) if r.logon_id == update[0].logon_id]
    assert logons and logons[0].src_ip


def test_account_events(shared_data):
    path = shared_data / "omerbenamram-evtx/samples/new-user-security.evtx"
    records = {r.event_id: r for r in read_hostlogs([str(path)])}
    assert records[4720].args["account"] == "IEUser"
    assert records[4732].args["member_sid"].endswith("-1000")
    commands = {r.command for r in recognize_host(read_hostlogs([str(path)])) if r.kind == "command"}
    assert {"net user", "net localgroup", "net group"} <= commands


def _comparable(record):
    data = record.to_dict()
    data.pop("raw", None)
    return data


def test_python_evtx_fallback_gives_identical_records(shared_data):
    """Every record python-evtx can read normalizes exactly as the evtx package's does; the records it
    cannot read are reported by file, chunk and record."""
    for path in _evtx_files(shared_data):
        fast = {r.record_id: r for r in _all_events(path)}
        slow, errors = {}, []
        for item in read_evtx_python(str(path), str(path)):
            if isinstance(item, dict):
                rec = normalize_flat(item, str(path))
                slow[rec.record_id] = rec
            else:
                errors.append(item)
        assert len(slow) + len(errors) >= 1, path.name
        for record_id, rec in slow.items():
            assert _comparable(rec) == _comparable(fast[record_id]), (path.name, record_id)
        assert len(slow) == len(fast) or errors, path.name
        for err in errors:
            assert err.kind == "error" and str(path) in err.message and "chunk" in err.message


def _python_evtx_records(path: Path):
    """(chunk number, python-evtx record) of each readable chunk, in file order."""
    for number, chunk in chunks(path.read_bytes()):
        if chunk.check_magic():
            try:
                records = list(chunk.records())
            except Exception:
                continue
            yield from ((number, rec) for rec in records)


def test_template_recipes_give_what_rendering_each_record_gives(shared_data):
    """The fallback fills cached per-template recipes; python-evtx's own XML rendering of the same record,
    flattened, must be equal (nested binary-XML templates, repeated names and empty values included)."""
    compared = 0
    for path in _evtx_files(shared_data):
        recipes: dict = {}
        last_chunk = None
        for number, rec in islice(_python_evtx_records(path), RENDERED_SAMPLE):
            if number != last_chunk:
                recipes, last_chunk = {}, number
            try:
                rendered = record_flat(rec)
            except Exception as exc:
                rendered = repr(exc)
            try:
                filled = record_flat(rec, recipes)
            except Exception as exc:
                filled = repr(exc)
            assert filled == rendered, (path.name, number, rec.record_num())
            compared += 1
    assert compared > 1350  # up to 150 of each distinct sample


def test_fallback_is_used_when_evtx_cannot_be_imported(shared_data, monkeypatch):
    path = str(shared_data / "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx")
    fast = [_comparable(r) for r in read_hostlogs([path])]
    monkeypatch.setitem(sys.modules, "evtx", None)  # import evtx now raises ImportError
    assert engine() == "python-evtx"
    assert [_comparable(r) for r in read_hostlogs([path])] == fast


def test_service_joins_its_svcctl_pipe_whatever_the_file_order(shared_data):
    pipe = str(shared_data / "evtx-attack-samples/Lateral Movement/LM_Remote_Service01_5145_svcctl.evtx")
    services = str(shared_data / "evtx-attack-samples/Lateral Movement/LM_Remote_Service02_7045.evtx")
    for order in ([pipe, services], [services, pipe]):
        created = {c.args["service_name"]: c for c in recognize_host(read_hostlogs(order))
                   if c.kind == "command" and c.command == "sc"}
        assert set(created) == {"remotesvc", "spoolfool", "spoolsv"}
        remote = created["remotesvc"]
        assert (remote.src_ip, remote.src_port, remote.args["remote"], remote.args["pipe"]) == (
            "10.0.2.17", 49230, True, "svcctl")
        assert created["spoolfool"].args["remote"] is None  # no pipe access in these logs: cannot tell
        assert len(remote.provenance) == 2  # the 7045 and the 5145


def test_command_rules_are_consistent_with_the_event_catalog():
    from smbtrail.hostlog.catalog import catalog
    from smbtrail.hostlog.commands import rules

    covered = {event_id for _, event_id in catalog()}
    for rule in rules():
        assert set(rule.event_ids) <= covered, rule.command
        assert rule.context in ("", "svcctl", "atsvc"), rule.command
