"""The command line under faults and signals (issue 16): secrets never left on disk after SIGTERM or SIGKILL,
output failures end cleanly, hostile names cannot forge or colour a line, options do what they say."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from smbtrail.encryption.keys import nt_hash, rc4_keytab

LAB = Path(__file__).parent / "fixtures" / "lab"
GOOD = LAB / "plain" / "sc_create_start_stop_delete.pcapng"
CLI = [sys.executable, "-m", "smbtrail.cli"]

PASSWORD, SECOND, HASH = "Secret-Pw-123", "Other-Pw-456", "8846f7eaee8fb117ad06bdd830b7586c"
SESSION_KEY = "28f2847263c83dc00621f742dd3f2e7b"
KEYTAB_HASH = bytes.fromhex("00112233445566778899aabbccddeeff")


def run(*args, env=None, timeout=120, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kwargs)


# --- secrets and signals -------------------------------------------------------------------------

def _slow_capture(path: Path) -> Path:
    """The issue's case: a gzip'd pcap of zero-length packets, slow for tshark (the expansion bound lifted)."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for _ in range(96):
            out.write(b"\0" * (1 << 20))
    return path


def _secret_options(tmp_path: Path):
    keys = tmp_path / "secrets" / "session.keys"
    keys.parent.mkdir()
    keys.write_text(f"3d00009400480000 {SESSION_KEY}\n")
    keytab = tmp_path / "secrets" / "user.keytab"
    keytab.write_bytes(rc4_keytab([KEYTAB_HASH]))
    pwfile = tmp_path / "secrets" / "pw.txt"
    pwfile.write_text(SECOND + "\n")
    options = ["--password", PASSWORD, "--password-file", pwfile, "--nt-hash", HASH, "--keys", keys,
               "--keytab", keytab, "--password-env", "SMBTRAIL_TEST_PW"]
    needles = [PASSWORD.encode(), SECOND.encode(), SECOND.encode("utf-16-le"), nt_hash(SECOND), HASH.encode(),
               bytes.fromhex(HASH), SESSION_KEY.encode(), bytes.fromhex(SESSION_KEY), KEYTAB_HASH, b"Env-Pw-789"]
    return options, needles


def _leaks(root: Path, needles):
    found = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        found += [(str(path), n) for n in needles if n in data]
    return found


def _start(tmp_path: Path, scratch: Path, extra_code: str = ""):
    options, needles = _secret_options(tmp_path)
    argv = ["analyze", str(_slow_capture(tmp_path / "slow.pcap.gz")), *map(str, options)]
    code = f"import sys{extra_code}\nfrom smbtrail.cli import main\nsys.exit(main({argv!r}))"
    env = {**os.environ, "TMPDIR": str(scratch), "SMBTRAIL_MAX_EXPANSION": "0", "SMBTRAIL_TEST_PW": "Env-Pw-789"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith("smbtrail-tshark-") for p in scratch.iterdir()):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    time.sleep(1.0)  # tshark is running with the secrets
    return proc, needles


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "files"])
def test_secrets_are_gone_after_sigterm(tmp_path, memfd):
    """`timeout` sends SIGTERM: the default action ended the process on the spot and left the NTLM password
    and session keys in cleartext under $TMPDIR. Now the run unwinds and removes its secret directory."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc, needles = _start(tmp_path, scratch, "" if memfd else "\nimport os\ndel os.memfd_create")
    if not memfd:
        assert _leaks(scratch, needles), "the fallback writes 0600 files while tshark runs (what is removed)"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(scratch.iterdir()) == [] and not _leaks(scratch, needles)


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "files"])
def test_secrets_after_sigkill(tmp_path, memfd):
    """SIGKILL cannot be caught. With memfd (Linux) no secret was ever on disk: the directory left holds only
    links into the dead process. Without it, the 0600 files sit in a 0700 directory that the next run
    removes (nobody holds its lock)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc, needles = _start(tmp_path, scratch, "" if memfd else "\nimport os\ndel os.memfd_create")
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(0.5)  # tshark ends on its broken pipe
    left = [p for p in scratch.iterdir() if p.name.startswith("smbtrail-tshark-")]
    assert len(left) == 1 and stat.S_IMODE(left[0].stat().st_mode) == 0o700
    if memfd:
        assert not _leaks(scratch, needles)
    done = run("analyze", GOOD, "--password", "x", env={"TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr.decode()
    assert list(scratch.iterdir()) == []  # the next run swept it


def _wait_for_orphans(needle: str, timeout: float = 60) -> None:
    """Until no process's command line names `needle` (the killed run's tcpdump and tshark end with their pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for entry in os.scandir("/proc"):
            try:
                alive = alive or entry.name.isdigit() and needle.encode() in Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
        if not alive:
            return
        time.sleep(0.05)


def test_killed_run_leaves_no_dissection_dir_for_good(tmp_path, monkeypatch):
    """A SIGKILL'd run left its dissection spool (rows of every tshark pass, selections, pieces) under $TMPDIR
    forever: a Splunk input killed again and again filled the disk. The next capture run removes it; a
    directory whose lock a live run holds stays."""
    from smbtrail import tempdirs

    scratch, inputs = tmp_path / "tmp", tmp_path / "in"
    scratch.mkdir()
    inputs.mkdir()
    for n in range(60):
        shutil.copy(LAB / "plain" / "psexec_impacket.pcapng", inputs / f"{n:02}.pcapng")
    proc = subprocess.Popen([*CLI, "analyze", "--workers", "1", "--format", "jsonl", str(inputs)],
                            env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith("smbtrail-dissect-") and len(list(p.iterdir())) > 1
                                                  for p in scratch.iterdir()):
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.kill()
    proc.wait(timeout=30)
    _wait_for_orphans(str(inputs))  # a tcpdump may create its selection in a directory the sweep emptied
    left = [p for p in scratch.iterdir() if p.name.startswith("smbtrail-dissect-")]
    assert left and all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in left)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with tempdirs.LockedTempdir(tempdirs.ZIP) as live:
        again = run("analyze", "--format", "jsonl", GOOD, env={"TMPDIR": str(scratch)})
        assert again.returncode == 0, again.stderr.decode()
        assert [p.name for p in scratch.iterdir()] == [os.path.basename(live.path)]  # the live one kept
    clean = tmp_path / "clean"
    clean.mkdir()
    expected = run("analyze", "--format", "jsonl", GOOD, env={"TMPDIR": str(clean)})
    assert again.stdout == expected.stdout and b'"kind": "command"' in again.stdout.replace(b'":"', b'": "')
    assert list(scratch.iterdir()) == [] and list(clean.iterdir()) == []


def test_decryption_still_works_through_the_memory_files():
    enc = LAB / "enc-global" / "psexec_impacket.pcapng"
    done = run("analyze", "--format", "jsonl", "--keys", enc.with_suffix(".keys"), enc)
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert done.returncode in (0, 1) and any(r.get("decrypted") for r in records)


def test_password_env_is_checked_and_not_inherited_by_tshark(tmp_path):
    """An unset --password-env was ignored in silence; a set one stayed in tshark's environment."""
    done = run("analyze", GOOD, "--password-env", "SMBTRAIL_NO_SUCH_VAR")
    assert done.returncode == 2
    assert done.stderr.decode().strip() == ("smbtrail: error: --password-env SMBTRAIL_NO_SUCH_VAR: no such environment "
                                            "variable")
    seen = tmp_path / "tshark.env"
    wrapper = tmp_path / "tshark"
    real = shutil.which("tshark")
    wrapper.write_text(f"#!/bin/sh\nenv >> {seen}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    done = run("analyze", GOOD, "--password-env", "SMBTRAIL_T_PW",
               env={"SMBTRAIL_T_PW": "Env-Secret-1", "SMBTRAIL_TSHARK": str(wrapper)})
    assert done.returncode == 0, done.stderr.decode()
    assert seen.exists() and "Env-Secret-1" not in seen.read_text() and "SMBTRAIL_T_PW" not in seen.read_text()


def test_missing_keytab_is_one_error_line(tmp_path):
    done = run("analyze", "--format", "jsonl", GOOD, "--keytab", tmp_path / "gone.keytab")
    errors = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1 and errors == [f"smbtrail: error: {tmp_path / 'gone.keytab'}: cannot read keytab "
                                                "(No such file or directory)"]
    assert any(json.loads(line)["kind"] == "command" for line in done.stdout.decode().splitlines())


# --- output ----------------------------------------------------------------------------------------

def test_output_that_cannot_be_written_ends_cleanly(tmp_path):
    for target, reason in ((tmp_path / "no" / "x.jsonl", "No such file or directory"), ("/dev/full", "No space left")):
        done = run("analyze", "--format", "jsonl", "-o", target, GOOD)
        err = done.stderr.decode()
        assert done.returncode == 4 and "Traceback" not in err, err
        assert err.startswith(f"smbtrail: error: cannot write {target}: {reason}") and err.count("\n") == 1


def test_a_closed_pipe_ends_the_run_quietly():
    """`smbtrail analyze ... | head -1`: BrokenPipeError traceback, exit 1."""
    proc = subprocess.Popen([*CLI, "analyze", "--format", "jsonl", "-v", *sorted((LAB / "plain").glob("*.pcapng"))[:6]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 4 and err == ""


def test_verbose_shows_every_record():
    quiet = run("analyze", GOOD).stdout.decode().splitlines()
    loud = run("analyze", "-v", GOOD).stdout.decode().splitlines()
    records = run("analyze", "--format", "jsonl", GOOD).stdout.decode().splitlines()
    assert len(loud) == len(records) + 2 > len(quiet)  # header and rule


def test_html_of_captures_alone_lists_their_commands():
    """Without host logs nothing is fused; the report said 'No trail with a command.' beside `sc create`."""
    html = run("analyze", "--format", "html", GOOD).stdout.decode()
    table = run("analyze", GOOD).stdout.decode()
    assert "sc create" in table
    assert "<h2>Commands</h2>" in html and "<code class='nowrap'>sc create</code>" in html
    assert "SmbtLabSvc" in html


def test_hostile_file_name_cannot_forge_a_line_or_reach_the_terminal(tmp_path):
    name = "x\nsmbtrail: error: forged\x1b]0;owned\x07\x1b[31m.pcap"
    bad = tmp_path / name
    bad.write_text("not a capture")
    for fmt in ("table", "jsonl", "html"):
        done = run("analyze", "--format", fmt, GOOD, bad)
        err, out = done.stderr.decode(), done.stdout.decode()
        assert done.returncode == 1
        assert err.count("\n") == 1 and "forged" in err and err.startswith("smbtrail: error: ")
        assert "\x1b" not in err + out and "\x07" not in err + out
        if fmt == "jsonl":
            assert any(json.loads(line)["kind"] == "error" for line in out.splitlines())


def test_unreadable_event_time_is_reported_not_made_1601(tmp_path):
    log = tmp_path / "events.json"
    good = {"EventID": 4624, "Channel": "Security", "Hostname": "srv", "TimeCreated": "2024-05-01T10:00:00Z",
            "TargetUserName": "bob", "IpAddress": "10.0.0.5", "IpPort": "50000", "LogonType": "3"}
    log.write_text(json.dumps(good) + "\n" + json.dumps({**good, "TimeCreated": "yesterday at noon"}) + "\n")
    done = run("analyze", "--format", "jsonl", "--hostlog", log)
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert not any(r["time"].startswith("1601") for r in records)
    assert [r["time"] for r in records if r["kind"] == "host_event"] == ["2024-05-01T10:00:00.000000Z"]
    assert done.returncode == 1 and "no readable time (TimeCreated 'yesterday at noon')" in done.stderr.decode()


def test_record_ids_are_unique_per_distinct_record(tmp_path):
    """dedup uid dropped real records: every error record of one file shared one id (the lab set's inferred
    commands that shared theirs: test_splunk_contract, on every record the packaged inputs index)."""
    from smbtrail.engine import Options, network_records

    keys = tmp_path / "bad.keys"
    keys.write_text("nothex 00\n0123456789abcdef zz\nshort\n")
    captures = [str(LAB / mode / "psexec_impacket.pcapng") for mode in ("enc-global", "plain")]
    seen = {}
    for rec in network_records(captures, Options(keys_file=str(keys))):
        body = json.dumps(rec.to_dict(), sort_keys=True)
        assert seen.setdefault(rec.uid(), body) == body, f"two records share {rec.uid()}"
    assert len([body for body in seen.values() if '"kind": "error"' in body and "bad.keys" in body]) == 3
