"""Hostile and broken input (issue 16): each case costs the bad input only, says so in one line naming it,
and never hangs, floods, or expands without bound. The good inputs of the same run are analysed whole."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from smbtrail.engine import host_records
from smbtrail.hostlog import read_hostlogs

LAB = Path(__file__).parent / "fixtures" / "lab"
GOOD = LAB / "plain" / "psexec_impacket.pcapng"
OTHER = LAB / "plain" / "at_netrjobadd.pcapng"
AUDIT = LAB / "addc" / "krb_net_user_add.audit.jsonl"
FULL_AUDIT = LAB / "plain" / "file_write_impacket.full_audit.log"
SECURITY = "omerbenamram-evtx/samples/security.evtx"


def smbtrail(*args, env=None, timeout=120, user=None):
    cmd = [sys.executable, "-m", "smbtrail.cli", *map(str, args)]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]  # numeric ids
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})
    out = proc.stdout.decode("utf-8", "replace")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, records, proc.stderr.decode("utf-8", "replace").strip().splitlines()


def from_file(records, name):
    return [r for r in records if r["kind"] != "error" and r.get("provenance", [{}])[0].get("file", "").endswith(name)]


def strip(records):
    return [{k: v for k, v in r.items() if k not in ("provenance", "id")} for r in records]


@pytest.fixture(scope="module")
def alone():
    return smbtrail("analyze", "--format", "jsonl", OTHER)[1]


# --- captures: archives ---------------------------------------------------------------------------

def _zip(path: Path, members) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def test_corrupt_truncated_and_encrypted_zips_cost_only_themselves(tmp_path, alone):
    whole = _zip(tmp_path / "whole.zip", [("p.pcapng", GOOD.read_bytes())]).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])  # central directory gone
    flipped = bytearray(whole)
    flipped[len(whole) // 3] ^= 0xFF  # inside the deflated member: zlib error or bad CRC
    (tmp_path / "flipped.zip").write_bytes(bytes(flipped))
    names = ["cut.zip", "flipped.zip"]
    if shutil.which("zip"):
        shutil.copy(GOOD, tmp_path / "p.pcapng")
        subprocess.run(["zip", "-q", "-P", "pw", "locked.zip", "p.pcapng"], cwd=tmp_path, check=True)
        names.append("locked.zip")
    code, records, errors = smbtrail("analyze", "--format", "jsonl", OTHER, *(tmp_path / n for n in names))
    assert code == 1
    assert strip(from_file(records, OTHER.name)) == strip(alone) != []
    for name in names:
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert all("Traceback" not in line for line in errors)
    if "locked.zip" in names:
        assert any("locked.zip!p.pcapng: encrypted" in line for line in errors)


def _no_disk():
    """In the child: no regular file may grow past 64 KiB (a full $TMPDIR, as writes see it)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))


def test_zip_capture_needs_no_temporary_disk(tmp_path):
    """Members are streamed into tshark: running out of temporary space while extracting aborted the run."""
    archive = _zip(tmp_path / "c.zip", [("inner/c.pcapng", GOOD.read_bytes() * 2)])
    done = subprocess.run([sys.executable, "-m", "smbtrail.cli", "analyze", "--format", "jsonl", archive],
                          capture_output=True, timeout=120, preexec_fn=_no_disk)
    plain = smbtrail("analyze", "--format", "jsonl", GOOD)[1]
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert done.returncode in (0, 1) and b"Traceback" not in done.stderr, done.stderr.decode()[-400:]
    assert len(strip(records)) >= len(strip(plain)) > 0


def test_pcapng_cut_inside_its_first_block_is_an_error(tmp_path):
    """tshark reads such a file as some other format and reports one packet, exit 0."""
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(GOOD.read_bytes()[:20])
    code, records, errors = smbtrail("analyze", "--format", "jsonl", cut)
    assert code == 2
    assert errors == [f"smbtrail: error: {cut}: truncated capture (cut inside its first pcapng block)"]
    gz = tmp_path / "cut.pcapng.gz"
    gz.write_bytes(gzip.compress(GOOD.read_bytes()[:100]))
    assert smbtrail("analyze", gz)[2] == [f"smbtrail: error: {gz}: truncated capture (cut inside its first pcapng block)"]


# --- decompression bombs ----------------------------------------------------------------------------

def _zero_packets_gzip(path: Path, mib: int) -> Path:
    """The issue's case: a pcap header, then zero-length packets (16 zero bytes each), gzip'd (~1,000x)."""
    with gzip.open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for _ in range(mib):
            out.write(b"\0" * (1 << 20))
    return path


def _zero_member_zip(path: Path, name: str, head: bytes, mib: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            member.write(head)
            for _ in range(mib):
                member.write(b"\0" * (1 << 20))
    return path


def test_decompression_bombs_are_refused_with_a_message(tmp_path, alone):
    bomb_gz = _zero_packets_gzip(tmp_path / "zeros.pcap.gz", 20)  # past the 16 MiB floor; tshark reads it lifted
    bomb_zip = _zero_member_zip(tmp_path / "zeros.zip", "big.pcap", GOOD.read_bytes()[:0] + struct.pack(
        "<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), 300)
    started = time.monotonic()
    code, records, errors = smbtrail("analyze", "--format", "jsonl", OTHER, bomb_gz, bomb_zip)
    took = time.monotonic() - started
    assert code == 1 and strip(from_file(records, OTHER.name)) == strip(alone)
    assert len(errors) == 2 and all("decompression bomb" in line for line in errors), errors
    assert "zeros.pcap.gz" in errors[0] and "zeros.zip!big.pcap" in errors[1]
    assert took < 60, took


def test_the_bound_is_an_option_that_the_command_line_and_the_inputs_take_from_the_environment(
        tmp_path, monkeypatch, capsys):
    """Options.max_expansion bounds each reader (captures, host-log zips, Zeek logs; 0 lifts it); the command
    line and both Splunk inputs fill it from $SMBTRAIL_MAX_EXPANSION, as the README tells users to lift it.
    The floor is lowered so that small bombs (2 MiB out) show what the 16 MiB ones do."""
    from smbtrail import cli, input_files
    from smbtrail.engine import Options, network_records
    from smbtrail.splunk import modinput

    monkeypatch.setattr(input_files, "EXPANSION_FLOOR", 1 << 20)
    capture = _zero_packets_gzip(tmp_path / "zeros.pcap.gz", 2)
    logs = _zero_member_zip(tmp_path / "logs.zip", "Security.evtx", b"ElfFile\0", 2)
    zeek = tmp_path / "dce_rpc.log.gz"
    with gzip.open(zeek, "wb") as out:
        out.write(b"#separator \\x09\n#path\tdce_rpc\n#fields\tts\tuid\n" + b"#" * (2 << 20) + b"\n")

    def bombs(options):
        found = [r.message for r in network_records([str(capture), str(zeek)], options)] + [
            r.message for r in host_records([str(logs)], options)]
        return [m for m in found if m and "decompression bomb" in m]
    assert len(bombs(Options())) == 3
    assert bombs(Options(max_expansion=0)) == [] and bombs(Options(max_expansion=1e6)) == []

    argv = ["analyze", "--format", "jsonl", str(capture), "--hostlog", str(logs)]
    assert cli.main(argv) == 1 and capsys.readouterr().err.count("decompression bomb") == 2
    monkeypatch.setenv("SMBTRAIL_MAX_EXPANSION", "0")
    cli.main(argv)
    assert "decompression bomb" not in capsys.readouterr().err
    assert modinput.PcapInput().options({}, None).max_expansion == 0
    assert modinput.HostlogInput().options({"all_events": "1"}, None).max_expansion == 0
    monkeypatch.setenv("SMBTRAIL_MAX_EXPANSION", "not a number")
    assert modinput.PcapInput().options({}, None).max_expansion == input_files.DEFAULT_MAX_EXPANSION


def test_host_log_zip_bomb_is_refused_before_writing_temp(tmp_path):
    """A 2 MB evtx zip wrote 2 GiB to $TMPDIR; now its declared expansion is refused before a byte is copied."""
    bomb = _zero_member_zip(tmp_path / "logs.zip", "Security.evtx", b"ElfFile\0", 300)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    before = shutil.disk_usage(scratch).used
    events = list(read_hostlogs([str(bomb)]))
    assert [e.message for e in events if e.kind == "error"] == [
        f"{bomb}!Security.evtx: archive member unreadable (archive member expands more than 250x "
        f"(300 MiB from {zipfile.ZipFile(bomb).getinfo('Security.evtx').compress_size >> 10} KiB): refused as a "
        "decompression bomb (SMBTRAIL_MAX_EXPANSION=0 reads it anyway))"]
    assert shutil.disk_usage(scratch).used - before < 50 << 20


# --- special files and unreadable directories -----------------------------------------------------

def test_fifos_never_hang_the_run(tmp_path, alone):
    """A FIFO blocks open() until a writer comes: in an input directory, a --hostlog directory, or named."""
    spool = tmp_path / "spool"
    spool.mkdir()
    shutil.copy(OTHER, spool / OTHER.name)
    os.mkfifo(spool / "live.pcap")
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(AUDIT, logs / AUDIT.name)
    os.mkfifo(logs / "stream.json")
    os.mkfifo(tmp_path / "named.pcapng")
    code, records, errors = smbtrail("analyze", "--format", "jsonl", "--no-fuse", spool, tmp_path / "named.pcapng",
                                     "--hostlog", logs, timeout=60)
    assert code == 1
    assert strip(from_file(records, OTHER.name)) == strip(alone)
    assert len(from_file(records, AUDIT.name)) == len(list(host_records([str(AUDIT)]))) > 0
    assert sorted(errors) == sorted([
        f"smbtrail: error: {spool / 'live.pcap'}: not a regular file (a FIFO)",
        f"smbtrail: error: {tmp_path / 'named.pcapng'}: not a regular file (a FIFO)",
        f"smbtrail: error: {logs / 'stream.json'}: not a regular file (a FIFO)"])


def _nobody_can_run() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.mark.skipif(not _nobody_can_run(), reason="needs root and setpriv to run as an unprivileged user")
def test_unreadable_subdirectory_is_named():
    """os.walk skipped a directory it could not read without a word, and the run said exit 0."""
    with tempfile.TemporaryDirectory() as top:  # pytest's own tmp_path is closed to other users
        os.chmod(top, 0o755)
        _unreadable_subdirectory(Path(top) / "case")


def _unreadable_subdirectory(case: Path) -> None:
    (case / "locked").mkdir(parents=True)
    shutil.copy(OTHER, case / OTHER.name)
    shutil.copy(OTHER, case / "locked" / "hidden.pcapng")
    shutil.copy(AUDIT, case / AUDIT.name)
    (case / "locked").chmod(0)
    for path in (case, case / OTHER.name, case / AUDIT.name):
        path.chmod(0o755 if path.is_dir() else 0o644)
    code, records, errors = smbtrail("analyze", "--format", "jsonl", "--no-fuse", case, "--hostlog", case,
                                     user=65534, env={"HOME": str(case.parent)})
    assert code == 1, errors
    locked = f"{case / 'locked'}: cannot read directory (Permission denied)"
    assert errors.count(f"smbtrail: error: {locked}") == 2, errors  # the capture walk and the host-log walk
    assert from_file(records, OTHER.name) and from_file(records, AUDIT.name)


def test_captures_beside_host_logs_are_not_host_log_errors(tmp_path):
    """`--hostlog DIR` on a case directory that also holds the captures exited 1 (or 2) on every run."""
    shutil.copy(OTHER, tmp_path / OTHER.name)
    shutil.copy(AUDIT, tmp_path / AUDIT.name)
    code, records, errors = smbtrail("analyze", "--format", "jsonl", tmp_path, "--hostlog", tmp_path)
    assert code == 0 and errors == [] and records


# --- host logs --------------------------------------------------------------------------------------

def test_malformed_host_log_lines_cost_one_record_each(tmp_path):
    """JSON nested 100,000 deep (RecursionError), a Winlogbeat channel that is a number (AttributeError in the
    catalog) and a malformed dsdbChange in a Samba log (AttributeError) each cost their own line only."""
    good = AUDIT.read_text().splitlines()
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    beat = json.dumps({"@timestamp": "2026-11-25T20:09:03Z", "winlog": {"channel": 5, "event_id": 4624}})
    mixed = tmp_path / "mixed.json"
    mixed.write_text("\n".join(good[:3] + [deep, beat] + good[3:]) + "\n")
    dsdb = {"timestamp": "2026-11-25T20:09:03.599874+0000", "type": "dsdbChange",
            "dsdbChange": {"operation": "Add", "dn": "CN=x", "attributes": {"objectClass": {"actions": ["bad"]}}}}
    header = "[2026/11/25 20:09:03.599874,  3] ../../lib/audit_logging/audit_logging.c:141(audit_log_json)"
    samba = tmp_path / "log.samba"
    samba.write_text("\n".join([header, "  " + json.dumps(dsdb)] + [f"{header}\n  {line}" for line in good]) + "\n")
    expected = [r for r in read_hostlogs([str(AUDIT)]) if r.kind != "error"]
    for path, bad in ((mixed, 1), (samba, 1)):
        records = list(read_hostlogs([str(path)]))
        events = [r for r in records if r.kind != "error"]
        errors = [r.message for r in records if r.kind == "error"]
        assert [(e.event_id, e.time) for e in events] == [(e.event_id, e.time) for e in expected] != []
        assert len(errors) == bad and all(m.startswith(f"{path}: line ") for m in errors), errors
    assert any("nested too deep" in r.message for r in read_hostlogs([str(mixed)]) if r.kind == "error")


def test_unterminated_event_xml_is_linear_and_reported_once(tmp_path):
    """17 MiB of `<Event>` ran past 60 s (quadratic) and wrote one error line per 7 characters."""
    xml = tmp_path / "ev.xml"
    xml.write_text("<Event>" * (17 * 1024 * 1024 // 7))
    started = time.monotonic()
    records = list(read_hostlogs([str(xml)]))
    assert time.monotonic() - started < 10
    assert [r.message for r in records] == [
        f"{xml}: line 1: <Event> without </Event> within 16 MiB of text: skipped to the next </Event>"]


def test_evtx_cut_at_a_chunk_boundary_is_partial(shared_data, tmp_path):
    """Its size is a whole number of chunks, so nothing said it was cut (897 of 2,271 records, exit 0)."""
    data = (shared_data / SECURITY).read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[: 0x1000 + 8 * 0x10000])
    records = list(read_hostlogs([str(cut)], all_events=True))
    errors = [r for r in records if r.kind == "error"]
    assert [e.message for e in errors] == [
        f"{cut}: file ends after chunk 7 of the {int.from_bytes(data[42:44], 'little')} its header counts "
        f"(truncated): the records of {int.from_bytes(data[42:44], 'little') - 8} chunk(s) are not read"]
    assert errors[0].partial and len(records) > 100


def test_non_utf8_file_names_through_every_reader_and_writer(shared_data, tmp_path):
    """jsonl stopped mid-run and html came out empty (UnicodeEncodeError); the Rust evtx reader could not open
    such a path. Names are shown with the undecodable bytes escaped."""
    base = os.fsencode(str(tmp_path))
    capture = base + b"/caf\xe9.pcapng"
    evtx = base + b"/s\xff.evtx"
    shutil.copy(OTHER, capture)
    shutil.copy(shared_data / "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx", evtx)
    for fmt in ("jsonl", "html", "table"):
        proc = subprocess.run([sys.executable, "-m", "smbtrail.cli", "analyze", "--format", fmt, "--no-fuse",
                               capture, "--hostlog", evtx], capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()[-500:]
        text = proc.stdout.decode("utf-8")  # valid UTF-8 throughout
        if fmt == "jsonl":
            records = [json.loads(line) for line in text.splitlines()]
            assert {r["kind"] for r in records} >= {"command", "host_event"}
            text = json.dumps([r["provenance"] for r in records], ensure_ascii=False).replace("\\\\", "\\")
        if fmt != "table":  # the table shows no file name unless it reports a problem
            assert "caf\\xe9.pcapng" in text and "s\\xff.evtx" in text


def test_zlib_bomb_ratio_is_measured_on_compressed_bytes_read():
    """The bound is on bytes out per compressed byte read, so a small honest file is never refused."""
    from smbtrail.input_files import DEFAULT_MAX_EXPANSION, EXPANSION_FLOOR, gunzip

    small = gzip.compress(b"\0" * (EXPANSION_FLOOR // 2))
    import io

    assert len(gunzip(io.BytesIO(small), DEFAULT_MAX_EXPANSION).read()) == EXPANSION_FLOOR // 2
    assert zlib.compress(b"\0" * 1000)  # deflate reaches ~1,000x on zeros: the bound sits well below


def test_share_name_with_a_newline_survives_tshark_escaping():
    """tshark's `-T fields` writes the newline of a share named `<svg>\\n` as `\\n`; the share was recorded as
    `n` (the text after the last backslash). Recorded from impacket's SMB server and client
    (tests/fixtures/hostile/make_hostile_share.py)."""
    capture = Path(__file__).parent / "fixtures" / "hostile" / "hostile_share.pcapng"
    code, records, errors = smbtrail("analyze", "--format", "jsonl", capture)
    assert code == 0 and not errors
    shares = {(r["kind"], r.get("share")) for r in records if r.get("share")}
    assert shares == {("tree", "<svg>\n"), ("file", "<svg>\n"), ("command", "<svg>\n")}
    html = subprocess.run([sys.executable, "-m", "smbtrail.cli", "analyze", "--format", "html", capture],
                          capture_output=True, timeout=60).stdout.decode()
    assert "<svg>" not in html and "&lt;svg&gt;" not in html.replace("&lt;svg&gt;\\n", "")


def test_a_chunk_too_slow_to_read_is_abandoned(shared_data, monkeypatch):
    """Corrupt chunks kept python-evtx (the Splunk app's reader) busy for 70-80 s: a chunk now gets a time
    budget, after which it is reported and the next chunk read."""
    from smbtrail.hostlog import evtx_python

    monkeypatch.setattr(evtx_python, "CHUNK_SECONDS", 0.0)
    path = str(shared_data / SECURITY)
    items = list(evtx_python.read_evtx_python(path, path))
    errors = [i.message for i in items if not isinstance(i, dict)]
    assert errors and all("abandoned after 0 s" in m for m in errors[:-1] if "chunk" in m)
    assert sum(isinstance(i, dict) for i in items) < 40  # one record per chunk before the budget check


ATSVC = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"
CHUNK0 = 0x1000  # the first chunk follows the 4 KiB file header


def _python_evtx_in_child(path: Path, body: str, timeout: float = 60) -> list:
    """Runs `body` (path in `path`) where a loop cannot hang the suite: a reader that never ends fails the test
    by its timeout. Returns the lines the child printed."""
    code = f"path = {str(path)!r}\n{body}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_a_string_table_chain_that_loops_ends(shared_data, tmp_path):
    """The fuzzer's minimal looping input (scripts/fuzz.py --targets evtx_python, reduced to one edit): bucket 17
    of the string table (chunk offset 0xc4) was empty; pointed at itself, the string there names itself as the
    next one. python-evtx followed that chain forever inside the first record (an element's name loads the
    table), where the chunk's time budget is never checked. The chain now stops at an offset seen before."""
    data = bytearray((shared_data / ATSVC).read_bytes())
    bucket = CHUNK0 + 0x80 + 4 * 17
    assert data[bucket:bucket + 4] == bytes(4) and bucket - CHUNK0 == 0xc4
    data[bucket] = 0xc4
    looping = tmp_path / "looping.evtx"
    looping.write_bytes(bytes(data))
    body = ("import json\nfrom smbtrail.hostlog.evtx_python import read_evtx_python\n"
            "for item in read_evtx_python(path, path):\n"
            "    print(json.dumps(item if isinstance(item, dict) else item.message, sort_keys=True))")
    read = _python_evtx_in_child(looping, body)
    assert len(read) == 34 and read == _python_evtx_in_child(shared_data / ATSVC, body)


def test_a_string_array_of_odd_length_is_refused(shared_data, tmp_path):
    """python-evtx splits a string array (type 0x81) into its NUL-separated strings in a loop that never ends
    when one byte is left over. Retyping a one-byte value of record 2 as a string array (one edited byte) made
    rendering that record loop forever; the odd length is now refused (an error the reader reports per record),
    and the reader, whose records do not use that value, loses nothing."""
    data = bytearray((shared_data / ATSVC).read_bytes())
    declaration = 0x1CCE  # record 2, substitution 11: size 1, type 0x04 (UInt8)
    assert data[declaration:declaration + 3] == b"\x01\x00\x04"
    data[declaration + 2] = 0x81
    retyped = tmp_path / "retyped.evtx"
    retyped.write_bytes(bytes(data))
    lines = _python_evtx_in_child(retyped, (
        "from smbtrail.hostlog.evtx_python import chunks, read_evtx_python, record_flat\n"
        "rec = next(r for _, c in chunks(open(path, 'rb').read()) for r in c.records() if r.record_num() == 2)\n"
        "try:\n    record_flat(rec)\nexcept ValueError as exc:\n    print(exc)\n"
        "print(sum(isinstance(i, dict) for i in read_evtx_python(path, path)))"))
    assert lines == ["string array of odd length (1 bytes)", "34"]
