"""The modular inputs under checkpoint faults, environment faults, changing files and kill -9 (issues 16, 12, 13),
driven as splunkd drives them (bin/<scheme>.py, XML on stdin), on the lab recordings shipped in the repo."""

from __future__ import annotations

import builtins
import fcntl
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import pytest

from smbtrail.engine import host_records, network_records
from smbtrail.splunk import events
from test_splunk_modinput import HOSTLOG, PCAP, ROOT, _blocked_on_output, body, input_xml, parse_events

LAB = ROOT / "tests" / "fixtures" / "lab"
CAPTURES = [LAB / "plain" / n for n in ("at_netrjobadd.pcapng", "sc_create_start_stop_delete.pcapng",
                                        "psexec_impacket.pcapng")]
LOGS = [LAB / "addc" / "krb_net_user_add.audit.jsonl", LAB / "plain" / "file_write_impacket.full_audit.log"]
SCHEMES = {"pcap": (PCAP, "smbtrail_pcap", CAPTURES), "hostlog": (HOSTLOG, "smbtrail_hostlog", LOGS)}


def spool(tmp_path: Path, files) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir(exist_ok=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    old = time.time() - 3600
    for path in folder.iterdir():
        os.utime(path, (old, old))
    return folder


def poll(kind: str, folder: Path, ckpt: Path, env=None):
    script, scheme, _ = SCHEMES[kind]
    params = {"path": str(folder), "settle_seconds": "60"}
    done = subprocess.run([sys.executable, str(script)], input=input_xml(scheme, ckpt, params).encode(),
                          capture_output=True, timeout=300, cwd=ROOT, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.rstrip().endswith(b"</stream>") or done.stdout == b""
    return parse_events(done.stdout), done.stderr.decode()


def records(events_):
    return [(e["source"], body(e)["uid"]) for e in events_ if e["sourcetype"] != events.HEALTH]


def expected(kind: str, folder: Path):
    engine = network_records if kind == "pcap" else host_records
    return [(str(p), r.uid()) for p in sorted(folder.iterdir()) for r in engine([str(p)])]


# --- checkpoint faults ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(SCHEMES))
def test_unwritable_checkpoint_sends_nothing_and_says_so(tmp_path, kind):
    """It re-sent the same events and died on every run, never reaching the other files."""
    folder = spool(tmp_path, SCHEMES[kind][2])
    blocker = tmp_path / "ckpt"
    blocker.write_text("a file where the checkpoint directory should be")
    for _ in range(2):
        got, log = poll(kind, folder, blocker)
        assert got == []
        assert "not run: checkpoint directory" in log and "is not writable" in log and "Traceback" not in log


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to run as nobody")
def test_checkpoint_directory_owned_by_another_user():
    with tempfile.TemporaryDirectory() as top:  # pytest's own tmp_path is closed to other users
        os.chmod(top, 0o755)
        _foreign_checkpoint(Path(top))


def _foreign_checkpoint(tmp_path: Path) -> None:
    folder = spool(tmp_path, CAPTURES[:1])
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir(mode=0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    folder.chmod(0o755)
    script, scheme, _ = SCHEMES["pcap"]
    xml = input_xml(scheme, ckpt, {"path": str(folder), "settle_seconds": "0"})
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, str(script)],
                          input=xml.encode(), capture_output=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "HOME": str(tmp_path)})
    if b"Permission denied" in done.stderr and b"python" in done.stderr.lower() and not done.stdout:
        pytest.skip("the unprivileged user cannot run this interpreter")
    assert parse_events(done.stdout) == [] and b"is not writable" in done.stderr


@pytest.fixture(scope="module")
def polled_once(tmp_path_factory):
    """Per input kind: its spool, and the checkpoint its first poll left (each damage starts from a copy)."""
    done = {}
    for kind in sorted(SCHEMES):
        top = tmp_path_factory.mktemp(f"polled-{kind}")
        folder, ckpt = spool(top, SCHEMES[kind][2]), top / "ckpt"
        poll(kind, folder, ckpt)
        done[kind] = (folder, ckpt)
    return done


@pytest.mark.parametrize("kind", sorted(SCHEMES))
@pytest.mark.parametrize("damage", ["garbage", "empty", "torn", "wrong types", "progress garbage"])
def test_damaged_checkpoint_neither_crashes_nor_resends(tmp_path, kind, damage, polled_once):
    """An empty or garbage done.json (what a crash could leave) re-sent everything in silence; `"x"` or a
    non-numeric count crashed every run. Now a damaged journal is said, and the marks kept of the files
    already sent stop their events from going out twice."""
    folder, first = polled_once[kind]
    ckpt = tmp_path / "ckpt"
    shutil.copytree(first, ckpt)
    journal = next(ckpt.glob("*.done.log"))
    lines = journal.read_bytes().splitlines(keepends=True)
    if damage == "garbage":
        journal.write_bytes(b"x\n\x00\xff{not json\n")
    elif damage == "empty":
        journal.write_bytes(b"")
    elif damage == "torn":
        journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    elif damage == "wrong types":
        entry = json.loads(lines[0])
        journal.write_bytes(b"".join(lines[1:]) + json.dumps({**entry, "events": "many", "stat": "x"}).encode() + b"\n")
    else:
        (ckpt / (journal.name[:-len(".done.log")] + ".progress")).write_bytes(b"x\nyz")
    again, log = poll(kind, folder, ckpt)
    assert again == [], [e["source"] for e in again]
    if damage in ("garbage", "torn", "wrong types"):
        assert "unreadable line(s) ignored" in log
    assert poll(kind, folder, ckpt)[0] == []  # and the journal is whole again


# --- not the file's fault (issue 12, item 5) -------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(SCHEMES))
def test_missing_lookups_leave_every_file_for_the_next_run(tmp_path, kind):
    """A forwarder package cut without lookups/ marked every file done with status=error, never retried."""
    folder = spool(tmp_path, SCHEMES[kind][2])
    ckpt = tmp_path / "ckpt"
    got, log = poll(kind, folder, ckpt, env={"SMBTRAIL_LOOKUPS": str(tmp_path / "no-lookups")})
    assert got == [] and "not run: lookup" in log and "left for the next run" in log
    fixed, _ = poll(kind, folder, ckpt)
    assert sorted(records(fixed)) == sorted(expected(kind, folder))


def test_a_bad_file_is_still_recorded_and_skipped(tmp_path):
    folder = spool(tmp_path, CAPTURES[:1])
    (folder / "cut.pcapng").write_bytes(CAPTURES[2].read_bytes()[:3000])
    old = time.time() - 3600
    os.utime(folder / "cut.pcapng", (old, old))
    got, _ = poll("pcap", folder, tmp_path / "ckpt")
    health = {body(e)["file"]: body(e)["status"] for e in got if e["sourcetype"] == events.HEALTH}
    assert health == {str(folder / "cut.pcapng"): "partial", str(folder / CAPTURES[0].name): "ok"}
    assert poll("pcap", folder, tmp_path / "ckpt")[0] == []


def test_health_is_partial_only_when_the_input_was(tmp_path):
    """8 of 9 clean lab captures were called partial: records flushed at the end of a capture are marked
    partial themselves, but the input was read whole."""
    clean = sorted((LAB / "plain").glob("*.pcapng"))[:9]
    got, _ = poll("pcap", spool(tmp_path, clean), tmp_path / "ckpt")
    health = [body(e) for e in got if e["sourcetype"] == events.HEALTH]
    assert len(health) == 9 and {h["status"] for h in health} == {"ok"}
    assert any(body(e).get("partial") for e in got if e["sourcetype"] != events.HEALTH)


# --- changed files (issue 16 case 10) --------------------------------------------------------------

def _blocks(data: bytes) -> List[int]:
    """Offsets where each pcapng block ends (the places a capture being written can stop at)."""
    ends, offset = [], 0
    while offset + 12 <= len(data):
        length = struct.unpack("<I", data[offset + 4:offset + 8])[0]
        offset += length
        ends.append(offset)
    return ends


def test_a_capture_that_grew_after_it_was_read_sends_only_its_new_events(tmp_path):
    """11 of 17 events were sent twice for a capture read while still growing."""
    whole = CAPTURES[2].read_bytes()
    cut = [end for end in _blocks(whole) if end > len(whole) // 2][0]
    folder = tmp_path / "spool"
    folder.mkdir()
    target = folder / "live.pcapng"
    target.write_bytes(whole[:cut])
    os.utime(target, (time.time() - 3600,) * 2)
    first, _ = poll("pcap", folder, tmp_path / "ckpt")
    with open(target, "ab") as handle:
        handle.write(whole[cut:])
    os.utime(target, (time.time() - 3500,) * 2)
    second, _ = poll("pcap", folder, tmp_path / "ckpt")
    sent = records(first) + records(second)
    assert len(sent) == len(set(sent)), "an event was sent twice"
    assert set(expected("pcap", folder)) <= set(sent)  # everything the whole file holds reached Splunk
    assert records(second) and len([e for e in second if e["sourcetype"] == events.HEALTH]) == 1


def test_a_replacement_with_the_same_size_mtime_and_head_is_read(tmp_path):
    """Same size, mtime and first 64 KiB: it was taken for the file already read and never read."""
    original = CAPTURES[2].read_bytes()
    assert len(original) > 65536
    changed = bytearray(original)
    last = _blocks(original)[-2]  # the last packet block: flip a byte of its packet data
    changed[last - 12] ^= 0xFF
    folder = tmp_path / "spool"
    folder.mkdir()
    target = folder / "c.pcapng"
    target.write_bytes(original)
    stamp = time.time() - 3600
    os.utime(target, (stamp, stamp))
    first, _ = poll("pcap", folder, tmp_path / "ckpt")
    replacement = folder / ".incoming"
    replacement.write_bytes(bytes(changed))
    os.utime(replacement, (stamp, stamp))
    os.replace(replacement, target)
    second, _ = poll("pcap", folder, tmp_path / "ckpt")
    assert [body(e)["file"] for e in second if e["sourcetype"] == events.HEALTH] == [str(target)]
    assert not set(records(first)) & set(records(second))


def test_a_touched_or_renamed_file_is_not_sent_again(tmp_path):
    folder = spool(tmp_path, CAPTURES[:2])
    first, _ = poll("pcap", folder, tmp_path / "ckpt")
    assert first
    os.utime(folder / CAPTURES[0].name, (time.time() - 1800,) * 2)
    os.rename(folder / CAPTURES[1].name, folder / "archived.pcapng")
    again, log = poll("pcap", folder, tmp_path / "ckpt")
    assert again == [] and "same content as a file already read" in log


# --- the cost of a poll (issue 13, item 3) ----------------------------------------------------------

def test_poll_over_10000_processed_files_reads_no_file_contents(tmp_path, monkeypatch):
    from splunklib.modularinput import EventWriter, InputDefinition

    from smbtrail.splunk.modinput import PcapInput

    folder = tmp_path / "spool"
    folder.mkdir()
    data = CAPTURES[0].read_bytes()
    old = time.time() - 3600
    for n in range(10_000):
        path = folder / f"rot-{n:05d}.pcapng"
        path.write_bytes(data[:100] + n.to_bytes(4, "little"))  # distinct contents, never analysed
        os.utime(path, (old, old))
    xml = input_xml("smbtrail_pcap", tmp_path / "ckpt", {"path": str(folder), "settle_seconds": "60"})

    class Recorded(PcapInput):  # the first poll records every file without analysing it
        def engine(self):
            return lambda paths, options: iter(())

    out, err = io.StringIO(), io.StringIO()
    Recorded().stream_events(InputDefinition.parse(io.StringIO(xml)), EventWriter(out, err))
    assert out.getvalue().count("<event") == 10_000  # one health event each

    opened: List[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        opened.append(os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else "")
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        opened.append(os.fsdecode(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    PcapInput().stream_events(InputDefinition.parse(io.StringIO(xml)), EventWriter(out, err))
    took = time.monotonic() - started
    monkeypatch.undo()
    assert "<event" not in out.getvalue(), err.getvalue()[-500:]
    assert not [p for p in opened if p.startswith(str(folder))], "a processed file was opened"
    print(f"poll over 10,000 processed files: {took:.2f} s, {len(opened)} opens (checkpoint files only)")


# --- kill -9 (issue 13: progress recorded cheaply, the guarantee kept) -------------------------------

def _killed_at(stdin: str, pipe_size: int):
    proc = subprocess.Popen([sys.executable, str(PCAP)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    fcntl.fcntl(proc.stdout.fileno(), 1031, pipe_size)  # F_SETPIPE_SZ: the writer blocks when it is full
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        state = _blocked_on_output(proc.pid)
        if state is None:
            proc.kill()
            pytest.skip("cannot see the writer block")
        if state:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        return proc.stdout.read(), False
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.stdout.read(), True


def _stable(event):
    """An event as sent, less the health event's timings (which differ from run to run)."""
    if event["sourcetype"] == events.HEALTH:
        return event["source"], body(event)["uid"]
    return event["source"], event["data"]


def test_kill_9_anywhere_loses_nothing_and_sends_nothing_twice(tmp_path):
    folder = spool(tmp_path, sorted((LAB / "enc-global").glob("*.pcapng"))[:6])
    params = {"path": str(folder), "settle_seconds": "60"}
    clean, _ = poll("pcap", folder, tmp_path / "clean")
    want = [_stable(e) for e in clean]
    kills = 0
    for n, size in enumerate((4096, 8192, 16384, 32768, 65536)):
        ckpt = tmp_path / f"ckpt{n}"
        cut, killed = _killed_at(input_xml("smbtrail_pcap", ckpt, params), size)
        kills += killed
        rest, _ = poll("pcap", folder, ckpt)
        got = [_stable(e) for e in parse_events(cut) + rest]
        assert got == want, f"kill with a {size}-byte pipe"
    assert kills >= 3


def test_hostile_file_name_reaches_splunkd_log_escaped(tmp_path):
    """ANSI/OSC escapes in a file name reached splunkd.log as they were."""
    folder = spool(tmp_path, CAPTURES[:1])
    bad = folder / "x\x1b]0;owned\x07\x1b[31m\nERROR forged.pcapng"
    bad.write_bytes(CAPTURES[0].read_bytes()[:40])
    os.utime(bad, (time.time() - 3600,) * 2)
    got, log = poll("pcap", folder, tmp_path / "ckpt")
    assert "\x1b" not in log and "\x07" not in log and "\\x1b]0;owned\\x07" in log
    assert not [line for line in log.splitlines() if line.startswith("ERROR forged")]
    assert any(e["sourcetype"] == events.HEALTH and "owned" in e["source"] for e in got)
