"""Fuzz targets for the parsers that take raw bytes, shared by the bounded CI run (tests/test_fuzz.py) and the long
run (scripts/fuzz.py). Each target mutates real inputs (lab recordings shipped in the repo; the public samples
where present) with hypothesis-drawn edits and checks the readers' contract: no exception escapes, every
problem is an error record of one line naming its source, and the work stays bounded."""

from __future__ import annotations

import io
import os
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "fixtures" / "lab"
SHARED = Path(os.environ.get("SMBTRAIL_SHARED_DATA", ROOT.parent / "shared" / "data"))
EVTX_SAMPLE = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
ONE_EXAMPLE_SECONDS = 20.0  # an input whose reading takes longer than this is a finding (a hang, a blow-up)


# --- mutations -------------------------------------------------------------------------------------

EDIT = st.tuples(st.sampled_from(("flip", "set", "insert", "delete", "cut", "repeat")),
                 st.floats(0, 1, allow_nan=False), st.integers(0, 255), st.integers(1, 64))


def mutated(seeds: List[bytes]) -> st.SearchStrategy:
    """A real input with a few edits: flipped or set bytes, inserted or deleted runs, a cut, a repeated span."""
    return st.tuples(st.integers(0, len(seeds) - 1), st.lists(EDIT, min_size=1, max_size=6)).map(
        lambda drawn: apply_edits(seeds[drawn[0]], drawn[1]))


def apply_edits(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for kind, where, value, size in edits:
        at = int(where * len(buf)) if buf else 0
        if kind == "flip" and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << (value % 8)
        elif kind == "set" and buf:
            buf[min(at, len(buf) - 1)] = value
        elif kind == "insert":
            buf[at:at] = bytes([value]) * size
        elif kind == "delete":
            del buf[at:at + size]
        elif kind == "cut":
            del buf[at:]
        elif kind == "repeat":
            buf[at:at] = buf[at:at + size * 16]
    return bytes(buf)


# --- checks ----------------------------------------------------------------------------------------

def check_items(items, source: str, started: float) -> int:
    """Readers' contract over one input: dicts and records only, errors one line naming the source, bounded."""
    from smbtrail.records import Record

    count = 0
    for item in items:
        count += 1
        assert isinstance(item, (dict, Record)), type(item)
        if isinstance(item, Record) and item.kind == "error":
            assert item.message and "\n" not in item.message and source in item.message, item.message
        assert time.monotonic() - started < ONE_EXAMPLE_SECONDS, f"still reading after {ONE_EXAMPLE_SECONDS} s"
    return count


# --- seeds -----------------------------------------------------------------------------------------

@cache
def ndr_calls() -> Tuple[Tuple[str, int, bool, bool, bytes], ...]:
    """(uuid, opnum, request, ndr64, stub) of every RPC call in the lab recordings."""
    from helpers.rpc_calls import rpc_calls
    from smbtrail.interfaces import decoder_for

    found = []
    for pcap in sorted((LAB / "plain").glob("*.pcapng"))[:40]:
        for call in rpc_calls(pcap):
            if call.stub and decoder_for(call.uuid or ""):
                found.append((call.uuid, call.opnum, call.request, call.ndr64, call.stub))
    return tuple(found)


def _lines(paths) -> List[bytes]:
    return [line for path in paths for line in Path(path).read_bytes().splitlines() if line.strip()]


@cache
def audit_lines() -> Tuple[bytes, ...]:
    return tuple(_lines(sorted((LAB / "addc").glob("*.audit.jsonl"))))


@cache
def samba_logs() -> Tuple[bytes, ...]:
    folder = ROOT / "tests" / "fixtures" / "hostlog" / "samba_addc"
    return tuple(p.read_bytes()[:200_000] for p in sorted(folder.iterdir()))


@cache
def full_audit_logs() -> Tuple[bytes, ...]:
    return tuple(p.read_bytes() for p in sorted((LAB / "plain").glob("*.full_audit.log"))[:20])


@cache
def evtx_sample() -> Optional[bytes]:
    path = SHARED / EVTX_SAMPLE
    return path.read_bytes() if path.is_file() else None


@cache
def event_xml() -> Tuple[bytes, ...]:
    """Windows event XML as `wevtutil qe /f:xml` writes it, rendered by python-evtx from a public sample."""
    if evtx_sample() is None:
        return ()
    from Evtx.Evtx import Evtx

    with tempfile.NamedTemporaryFile(suffix=".evtx") as tmp:
        tmp.write(evtx_sample())
        tmp.flush()
        with Evtx(tmp.name) as log:
            docs = [rec.xml() for _, rec in zip(range(40), log.records())]
    return tuple(("\n".join(docs[i:i + 4])).encode("utf-8") for i in range(0, len(docs), 4))


# --- targets -------------------------------------------------------------------------------------------

def run_ndr(drawn: Tuple[int, bytes]) -> None:
    from smbtrail.interfaces import decoder_for

    index, stub = drawn
    uuid, opnum, request, ndr64, _ = ndr_calls()[index]
    for hint in ({"_ndr64": "1" if ndr64 else "0"}, {}):
        args = decoder_for(uuid).decode(opnum, request, hint, stub)
        assert isinstance(args, dict)
        error = args.get("_decode_error", "NdrError").split(":")[0]
        assert error in ("NdrError", "ValueError", "IndexError", "KeyError", "error", "UnicodeDecodeError"), error


def ndr_strategy() -> st.SearchStrategy:
    calls = ndr_calls()
    return st.integers(0, len(calls) - 1).flatmap(
        lambda i: st.tuples(st.just(i), mutated([calls[i][4]]) | st.binary(max_size=512)))


def run_json_lines(data: bytes) -> None:
    from smbtrail.hostlog.jsonl import read_json_lines

    check_items(read_json_lines(io.BytesIO(data), "fuzz.json"), "fuzz.json", time.monotonic())


def run_samba_log(data: bytes) -> None:
    from smbtrail.hostlog.samba_audit import read_samba_log

    check_items(read_samba_log(io.BytesIO(data), "fuzz.log"), "fuzz.log", time.monotonic())


def run_full_audit(data: bytes) -> None:
    from smbtrail.hostlog.samba_vfs_audit import read_full_audit

    check_items(read_full_audit(io.BytesIO(data), "fuzz.log"), "fuzz.log", time.monotonic())


def run_xml(data: bytes) -> None:
    from smbtrail.hostlog.xml_events import read_xml_events

    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    check_items(read_xml_events(text, "fuzz.xml"), "fuzz.xml", time.monotonic())


def run_host_file(data: bytes) -> None:
    """Any bytes as a host-log file: content sniffing, every reader behind it, normalization."""
    from smbtrail.hostlog import read_hostlogs

    with tempfile.NamedTemporaryFile(suffix=".log") as tmp:
        tmp.write(data)
        tmp.flush()
        check_items(read_hostlogs([tmp.name], all_events=True), tmp.name, time.monotonic())


def run_evtx_python(data: bytes) -> None:
    from smbtrail.hostlog.evtx_python import read_evtx_python

    with tempfile.NamedTemporaryFile(suffix=".evtx") as tmp:
        tmp.write(data)
        tmp.flush()
        check_items(read_evtx_python(tmp.name, "fuzz.evtx"), "fuzz.evtx", time.monotonic())


def evtx_strategy() -> st.SearchStrategy:
    """The sample with edits inside one chunk (its header, templates or records)."""
    data = evtx_sample()
    chunks = max(1, (len(data) - 0x1000) // 0x10000)
    chunk_edit = st.tuples(st.sampled_from(("flip", "set")), st.integers(0, 0xFFFF), st.integers(0, 255))

    def edit(drawn) -> bytes:
        chunk, edits = drawn
        buf = bytearray(data)
        base = 0x1000 + chunk * 0x10000
        for kind, offset, value in edits:
            if kind == "flip":
                buf[base + offset] ^= 1 << (value % 8)
            else:
                buf[base + offset] = value
        return bytes(buf)

    return st.tuples(st.integers(0, chunks - 1), st.lists(chunk_edit, min_size=1, max_size=16)).map(edit)


HOSTILE = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["\x1b]0;owned\x07", "\x1b[31mred", "a\nsmbtrail: error: forged", "<script>x</script>", "\udcff\udce9",
     "\u202eevil", "'\"&<>", "\x00\x7f\x9b", "a\u2028b\u2029c"])


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
BEAT = {"@timestamp": "2026-11-25T20:09:03.599Z", "event": {"code": 4624, "created": "2026-11-25T20:09:04Z"},
        "winlog": {"channel": "Security", "event_id": 4624, "computer_name": "srv.lab", "record_id": 7,
                   "provider_name": "Microsoft-Windows-Security-Auditing",
                   "event_data": {"TargetUserName": "bob", "IpAddress": "10.0.0.5", "IpPort": "50000",
                                  "LogonType": "3", "TargetLogonId": "0x3e7"}}}


@cache
def json_docs() -> Tuple[object, ...]:
    """Real JSON events: the lab DC's audit records, one Winlogbeat-shaped 4624, OTRF lines where present."""
    import json
    import zipfile

    docs: List[object] = [json.loads(line) for line in audit_lines()[:60]] + [BEAT]
    otrf = SHARED / "otrf-security-datasets/windows/lateral_movement/host/covenant_copy_smb_CreateRequest.zip"
    if otrf.is_file():
        with zipfile.ZipFile(otrf) as archive:
            docs += [json.loads(line) for line in archive.read(archive.namelist()[0]).splitlines()[:60]]
    return tuple(docs)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, prefix + (index,))


def _replace(doc, path, value):
    if not path:
        return value
    import copy

    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def json_shape_strategy() -> st.SearchStrategy:
    """A real event with one part (a value, an object, the whole event) replaced by any JSON, or nested deep."""
    import json

    docs = json_docs()

    def build(drawn) -> bytes:
        index, where, value, depth, samba = drawn
        doc = docs[index]
        paths = list(_paths(doc))
        doc = _replace(doc, paths[int(where * (len(paths) - 1))], value)
        text = json.dumps(doc)
        if depth:
            text = '{"a":' * depth + text + "}" * depth
        if samba:
            text = "[2026/11/25 20:09:03.599874,  3] ../../lib/audit_logging/audit_logging.c:141(audit_log_json)\n  " + text
        return text.encode("utf-8", "surrogatepass")

    return st.tuples(st.integers(0, len(docs) - 1), st.floats(0, 1, allow_nan=False), JSON_VALUE,
                     st.sampled_from((0, 0, 0, 3, 50_000)), st.booleans()).map(build)


def run_writers(drawn: Dict[str, str]) -> None:
    """Hostile strings in every field a writer shows: all three formats write valid UTF-8, no raw control."""
    import json

    from smbtrail.output.html import write_html
    from smbtrail.output.jsonl import write_jsonl
    from smbtrail.output.table import write_table
    from smbtrail.records import Provenance, Record

    common = dict(time="2024-01-01T00:00:00Z", src_host=drawn["a"], dest_host=drawn["b"], user=drawn["c"],
                  domain=drawn["d"], share=drawn["e"], path=drawn["f"], command="sc",
                  args={"action": "create", "service_name": drawn["g"], "binary_path": drawn["h"],
                        "commands": [{"command": drawn["a"], "args": {"file": drawn["b"]}}], "score": 60},
                  provenance=[Provenance(file=drawn["f"], frames=[1])])
    records = [Record(kind=kind, message=drawn["h"] if kind == "error" else None, trail_id="t1", evidence=["network"],
                      **common) for kind in ("command", "trail", "error", "operation", "session")]
    for writer in (write_jsonl, write_table, write_html):
        out = io.StringIO()
        writer(records, out)
        text = out.getvalue()
        text.encode("utf-8")  # no lone surrogate left
        shown = text.replace("\n", "").replace("\t", "")
        assert not any(ord(ch) < 32 or ord(ch) == 127 or 0x80 <= ord(ch) < 0xA0 for ch in shown), writer.__name__
        if writer is write_jsonl:
            assert all(json.loads(line)["kind"] for line in text.splitlines())


def writer_strategy() -> st.SearchStrategy:
    return st.fixed_dictionaries({k: HOSTILE for k in "abcdefgh"})


TargetSpec = Tuple[Callable[[], Optional[st.SearchStrategy]], Callable]


def targets() -> Dict[str, TargetSpec]:
    """name -> (strategy factory, or None when its seeds are absent; the function that checks one example)."""
    return {
        "ndr": (lambda: ndr_strategy() if ndr_calls() else None, run_ndr),
        "json_lines": (lambda: mutated(list(audit_lines())) | st.binary(max_size=2048), run_json_lines),
        "samba_log": (lambda: mutated(list(samba_logs())), run_samba_log),
        "full_audit": (lambda: mutated(list(full_audit_logs())), run_full_audit),
        "event_xml": (lambda: mutated(list(event_xml())) if event_xml() else None, run_xml),
        "host_file": (lambda: mutated(list(audit_lines()[:20]) + list(full_audit_logs()[:3]) + list(event_xml()[:3]))
                      | st.binary(max_size=4096), run_host_file),
        "evtx_python": (lambda: evtx_strategy() if evtx_sample() else None, run_evtx_python),
        "json_shapes": (json_shape_strategy, run_host_file),
        "writers": (writer_strategy, run_writers),
    }
