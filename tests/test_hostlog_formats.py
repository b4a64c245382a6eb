"""The same events through every input shape give the same normalized records: event XML (Splunk's
one-per-line and wevtutil's concatenated <Events>), evtx's JSON lines, Winlogbeat JSON, zip of .evtx."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import timedelta

import evtx
import pytest

from smbtrail.hostlog import read_hostlogs

pytestmark = pytest.mark.shared
ATSVC = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
KEYS = ("event_id", "channel", "provider", "record_id", "dest_host", "user", "domain", "logon_id", "src_ip",
        "src_port", "share", "path", "access", "args", "command", "operation")


def _facts(records):
    out = []
    for rec in records:
        assert rec.kind == "host_event", rec.message
        data = rec.model_dump()
        out.append((rec.time, {k: data[k] for k in KEYS}))
    return out


def _same(got, reference):
    """Equal records; times within 2 us (python-evtx, which made the XML here, rounds them via float)."""
    assert [fields for _, fields in got] == [fields for _, fields in reference]
    assert all(abs(a - b) <= timedelta(microseconds=2) for (a, _), (b, _) in zip(got, reference))


def _xml_docs(path):
    from Evtx.Evtx import Evtx

    with Evtx(str(path)) as log:
        return [rec.xml() for rec in log.records()]


def test_xml_shapes_match_evtx(shared_data, tmp_path):
    path = shared_data / ATSVC
    reference = _facts(read_hostlogs([str(path)]))
    docs = _xml_docs(path)
    per_line = tmp_path / "splunk.xml"
    per_line.write_text("\n".join(re.sub(r">\n\s*<", "><", d) for d in docs) + "\n")
    wevtutil = tmp_path / "export.xml"
    wevtutil.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<Events>" + "".join(docs) + "</Events>\n",
                        encoding="utf-16")
    _same(_facts(read_hostlogs([str(per_line)])), reference)
    _same(_facts(read_hostlogs([str(wevtutil)])), reference)


def test_evtx_json_lines_and_zip_match_evtx(shared_data, tmp_path):
    path = shared_data / ATSVC
    reference = _facts(read_hostlogs([str(path)]))
    dump = tmp_path / "dump.jsonl"
    with open(dump, "w") as out:
        for rec in evtx.PyEvtxParser(str(path)).records_json():
            out.write(json.dumps(json.loads(rec["data"])) + "\n")
    assert _facts(read_hostlogs([str(dump)])) == reference
    archive = tmp_path / "logs.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "Security.evtx")
    zipped = list(read_hostlogs([str(archive)]))
    assert _facts(zipped) == reference
    assert zipped[0].provenance[0].file == f"{archive}!Security.evtx"


def test_winlogbeat_shape(shared_data, tmp_path):
    """Winlogbeat's documented layout (winlog.event_data, @timestamp = TimeCreated, event.created)
    filled from the real events of the sample."""
    path = shared_data / ATSVC
    reference = _facts(read_hostlogs([str(path)]))
    beat = tmp_path / "winlogbeat.ndjson"
    with open(beat, "w") as out:
        for rec in evtx.PyEvtxParser(str(path)).records_json():
            event = json.loads(rec["data"])["Event"]
            system = event["System"]
            code = system["EventID"]
            data = event.get("EventData") or next(iter((event.get("UserData") or {}).values()), {})
            out.write(json.dumps({
                "@timestamp": system["TimeCreated"]["#attributes"]["SystemTime"],
                "event": {"code": str(code), "created": "2019-03-19T00:05:00.000Z"},
                "winlog": {"event_id": str(code), "channel": system["Channel"], "record_id": system["EventRecordID"],
                           "provider_name": system["Provider"]["#attributes"]["Name"],
                           "computer_name": system["Computer"],
                           "event_data": {k: v for k, v in data.items() if k != "#attributes"}},
            }) + "\n")
    records = list(read_hostlogs([str(beat)]))
    assert _facts(records) == reference
    assert all(r.collector_time.isoformat() == "2019-03-19T00:05:00+00:00" for r in records)
