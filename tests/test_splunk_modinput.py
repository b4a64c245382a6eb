"""The modular inputs spoken to as splunkd does: bin/<scheme>.py with XML on stdin, XML on stdout."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, quote, urlparse
from xml.sax.saxutils import escape

import pytest

from helpers import network
from smbtrail import engine
from smbtrail.splunk import events, secrets

ROOT = Path(__file__).resolve().parents[1]
PCAP = ROOT / "bin" / "smbtrail_pcap.py"
HOSTLOG = ROOT / "bin" / "smbtrail_hostlog.py"

PSEXEC = "pcap-attack/Lateral Movement/LM_psexec_smb_dcerpc_epm_svcctl.pcapng"
AT_JOB = "suricata-verify/smb2-04/20171220_smb_at_schedule.pcap"
SMB3 = "zeek/Traces/smb/smb3.pcap"
EVTX_SVCCTL = "evtx-attack-samples/Lateral Movement/LM_Remote_Service01_5145_svcctl.evtx"
EVTX_ATSVC = "evtx-attack-samples/Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx"


def require_engine(part: str) -> None:
    """Skip (naming the missing part) while the engine piece this test drives is not built yet."""
    call = {"network": lambda: engine.network_records([]), "host": lambda: engine.host_records([]),
            "fuse": lambda: engine.fuse([])}[part]
    try:
        list(call())
    except ImportError as exc:
        pytest.skip(f"engine part '{part}' not available yet: {exc}")


# --- the protocol ---------------------------------------------------------------------------------

def input_xml(scheme: str, checkpoint_dir: Path, params: Dict[str, str], name: str = "test") -> str:
    items = "".join(f'<param name="{k}">{escape(v)}</param>' for k, v in params.items())
    return (
        "<input><server_host>ci</server_host><server_uri>https://127.0.0.1:8089</server_uri>"
        f"<session_key>no-session</session_key><checkpoint_dir>{escape(str(checkpoint_dir))}</checkpoint_dir>"
        f'<configuration><stanza name="{scheme}://{name}" app="smbtrail">{items}</stanza></configuration></input>'
    )


def validation_xml(params: Dict[str, str]) -> str:
    items = "".join(f'<param name="{k}">{escape(v)}</param>' for k, v in params.items())
    return (
        "<items><server_host>ci</server_host><server_uri>https://127.0.0.1:8089</server_uri>"
        "<session_key>no-session</session_key><checkpoint_dir>/nonexistent</checkpoint_dir>"
        f'<item name="test">{items}</item></items>'
    )


def run(script: Path, args: List[str], stdin: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], input=stdin.encode(), capture_output=True,
                          timeout=timeout, cwd=ROOT)


def parse_events(stdout: bytes) -> List[Dict[str, str]]:
    """Complete <event> elements of a (possibly cut) stream; a torn last event is dropped, as splunkd does."""
    found = []
    for match in re.finditer(rb"<event\b.*?</event>", stdout, flags=re.S):
        node = ET.fromstring(match.group(0))
        event = {child.tag: child.text or "" for child in node}
        event["stanza"] = node.get("stanza", "")
        found.append(event)
    return found


def copy_data(shared: Path, dest: Path, names: List[str]) -> List[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in names:
        target = dest / Path(name).name
        shutil.copyfile(shared / name, target)
        copies.append(target)
    return copies


def body(event: Dict[str, str]) -> Dict:
    return json.loads(event["data"])


# --- --scheme and --validate-arguments ------------------------------------------------------------

@pytest.mark.parametrize("script,scheme_args", [(PCAP, {"path", "settle_seconds", "tshark", "secrets"}),
                                                (HOSTLOG, {"path", "settle_seconds", "all_events"})])
def test_scheme_declares_arguments(script, scheme_args):
    done = run(script, ["--scheme"])
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)
    assert root.findtext("use_external_validation") == "true"
    assert root.findtext("streaming_mode") == "xml"
    names = {arg.get("name") for arg in root.iter("arg")}
    assert names == scheme_args
    path_arg = next(a for a in root.iter("arg") if a.get("name") == "path")
    assert path_arg.findtext("required_on_create") == "true"


def test_validate_accepts_a_readable_directory(tmp_path):
    done = run(PCAP, ["--validate-arguments"], validation_xml({"path": str(tmp_path), "settle_seconds": "5"}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == b""


@pytest.mark.parametrize("params,message", [
    ({"path": "/nonexistent/smbtrail/captures"}, "no such directory or file"),
    ({"path": "/nonexistent/smbtrail/*.pcap"}, "does not exist"),
    ({"path": ""}, "path is required"),
    ({"path": "{tmp}", "settle_seconds": "soon"}, "settle_seconds must be a number"),
    ({"path": "{tmp}", "tshark": "/nonexistent/tshark"}, "not an executable file"),
])
def test_validate_refuses_with_a_clear_message(tmp_path, params, message):
    params = {k: v.replace("{tmp}", str(tmp_path)) for k, v in params.items()}
    done = run(PCAP, ["--validate-arguments"], validation_xml(params))
    assert done.returncode == 1
    error = ET.fromstring(done.stdout).findtext("message")
    assert message in error


def test_validate_refuses_when_tshark_is_missing(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "SMBTRAIL_TSHARK": ""}
    done = subprocess.run([sys.executable, str(PCAP), "--validate-arguments"], env=env, capture_output=True,
                          input=validation_xml({"path": str(tmp_path)}).encode(), timeout=60)
    assert done.returncode == 1
    assert "tshark" in ET.fromstring(done.stdout).findtext("message")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_validate_refuses_an_unreadable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    done = run(HOSTLOG, ["--validate-arguments"], validation_xml({"path": str(locked)}))
    assert done.returncode == 1
    assert "not readable" in ET.fromstring(done.stdout).findtext("message")


def test_validate_hostlog_checks_booleans(tmp_path):
    done = run(HOSTLOG, ["--validate-arguments"], validation_xml({"path": str(tmp_path), "all_events": "maybe"}))
    assert done.returncode == 1
    assert "all_events must be true or false" in ET.fromstring(done.stdout).findtext("message")


# --- stream mode ----------------------------------------------------------------------------------

def test_pcap_stream_over_a_directory(shared_data, tmp_path):
    require_engine("network")
    captures = copy_data(shared_data, tmp_path / "spool", [PSEXEC, AT_JOB, SMB3])
    bad = tmp_path / "spool" / "truncated.pcapng"
    bad.write_bytes((shared_data / PSEXEC).read_bytes()[:3000])
    (tmp_path / "spool" / "notes.txt").write_text("not a capture")
    params = {"path": str(tmp_path / "spool"), "settle_seconds": "0", "index": "smbtrail"}
    done = run(PCAP, [], input_xml("smbtrail_pcap", tmp_path / "ckpt", params))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    got = parse_events(done.stdout)
    assert done.stdout.rstrip().endswith(b"</stream>")

    health = {body(e)["file"]: body(e) for e in got if e["sourcetype"] == events.HEALTH}
    assert set(health) == {str(p) for p in captures + [bad, tmp_path / "spool" / "notes.txt"]}
    for path in captures:  # every record the engine gives for the file reached Splunk, unchanged
        expected = [events.event_body(r) for r in network.records(path)]
        sent = [body(e) for e in got if e["source"] == str(path) and e["sourcetype"] != events.HEALTH]
        assert sent == expected
        assert health[str(path)]["records"] == len(expected)
    assert health[str(bad)]["status"] in ("partial", "error")
    log = done.stderr.decode()
    assert "truncated.pcapng" in log and "notes.txt" in log  # bad files named in splunkd.log
    assert all(e["index"] == "smbtrail" and e["stanza"] == "smbtrail_pcap://test" for e in got)

    records = [(e["sourcetype"], body(e)) for e in got if e["sourcetype"] != events.HEALTH]
    ops = {(b.get("rpc_interface"), b.get("operation")) for st, b in records if st == events.NETWORK}
    assert ("svcctl", "RCreateServiceWOW64W") in ops  # PsExec's service creation (opnum 45)
    assert ("atsvc", "NetrJobAdd") in ops  # smb2-04: at over \atsvc
    assert any(b["kind"] == "command" for st, b in records if st == events.NETWORK)  # commands are network records
    assert any(b.get("encrypted") for _, b in records if b.get("protocol") == "smb3")
    for event in got:  # event time is the record's time; ids are the deterministic uid
        if event["sourcetype"] != events.HEALTH:
            record = events.record_from_body(body(event))
            assert body(event)["uid"] == record.uid()
            assert float(event["time"]) == pytest.approx(record.time.timestamp(), abs=0.001)

    again = run(PCAP, [], input_xml("smbtrail_pcap", tmp_path / "ckpt", params))  # all checkpointed
    assert again.returncode == 0 and parse_events(again.stdout) == []


def test_hostlog_stream_over_evtx(shared_data, tmp_path):
    require_engine("host")
    logs = copy_data(shared_data, tmp_path / "exports", [EVTX_SVCCTL, EVTX_ATSVC])
    params = {"path": str(tmp_path / "exports" / "*.evtx"), "settle_seconds": "0"}
    done = run(HOSTLOG, [], input_xml("smbtrail_hostlog", tmp_path / "ckpt", params))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    got = parse_events(done.stdout)
    host = [body(e) for e in got if e["sourcetype"] == events.HOST]
    assert {5145, 4698} <= {b.get("event_id") for b in host}
    assert any(b.get("share", "").upper().endswith("IPC$") and "svcctl" in (b.get("path") or "") for b in host)
    for path in logs:
        expected = [events.event_body(r) for r in engine.host_records([str(path)])]
        assert [body(e) for e in got if e["source"] == str(path) and e["sourcetype"] != events.HEALTH] == expected


def test_unsettled_file_is_not_read(shared_data, tmp_path):
    require_engine("network")
    (capture,) = copy_data(shared_data, tmp_path / "spool", [PSEXEC])
    params = {"path": str(tmp_path / "spool"), "settle_seconds": "3600"}
    first = run(PCAP, [], input_xml("smbtrail_pcap", tmp_path / "ckpt", params))
    assert first.returncode == 0 and parse_events(first.stdout) == []
    old = time.time() - 7200
    os.utime(capture, (old, old))  # the writer moved on two hours ago
    second = run(PCAP, [], input_xml("smbtrail_pcap", tmp_path / "ckpt", params))
    assert any(e["sourcetype"] == events.NETWORK for e in parse_events(second.stdout))


# --- kill -9 mid-file and restart -----------------------------------------------------------------

def _blocked_on_output(pid: int) -> Optional[bool]:
    """True when the process sleeps in write(2) on its stdout pipe; None when /proc cannot tell."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        wchan = ""
    if wchan and wchan != "0":
        return wchan.endswith("pipe_write")  # "pipe_write", or "anon_pipe_write" on newer kernels
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return None
    return bool(fields) and fields[0] == "1" and fields[1] == "0x1"  # write(1, ...)


def _run_killed(stdin: str) -> Tuple[bytes, int]:
    """Start the input with a one-page stdout pipe, let it block mid-file, SIGKILL it, drain the pipe."""
    proc = subprocess.Popen([sys.executable, str(PCAP)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    fcntl.fcntl(proc.stdout.fileno(), 1031, 4096)  # F_SETPIPE_SZ: the writer blocks after ~4 KiB
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    deadline = time.time() + 120
    state = None
    while time.time() < deadline and proc.poll() is None:
        state = _blocked_on_output(proc.pid)
        if state is None or state:
            break
        time.sleep(0.05)
    if state is None:
        proc.kill()
        pytest.skip("/proc/<pid>/wchan and /proc/<pid>/syscall unreadable: cannot see the writer block")
    assert proc.poll() is None, "the input finished before its output filled the pipe"
    time.sleep(0.3)  # still blocked: nothing more can be written until we read
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.stdout.read(), proc.returncode


def test_kill_mid_file_then_restart_loses_nothing_and_resends_nothing(shared_data, tmp_path):
    require_engine("network")
    copy_data(shared_data, tmp_path / "spool", [PSEXEC, SMB3])
    params = {"path": str(tmp_path / "spool"), "settle_seconds": "0"}

    clean = run(PCAP, [], input_xml("smbtrail_pcap", tmp_path / "ckpt-clean", params))
    expected = [(e["source"], e["data"]) for e in parse_events(clean.stdout) if e["sourcetype"] != events.HEALTH]
    assert len(expected) > 20

    cut, code = _run_killed(input_xml("smbtrail_pcap", tmp_path / "ckpt", params))
    assert code == -signal.SIGKILL
    before = parse_events(cut)
    assert 0 < len(before) < len(expected), "the kill must land mid-run"
    assert not cut.rstrip().endswith(b"</stream>")

    after = parse_events(run(PCAP, [], input_xml("smbtrail_pcap", tmp_path / "ckpt", params)).stdout)
    union = [(e["source"], e["data"]) for e in before + after if e["sourcetype"] != events.HEALTH]
    assert union == expected  # same events, same order: nothing lost, nothing twice
    health = [body(e)["uid"] for e in before + after if e["sourcetype"] == events.HEALTH]
    assert sorted(health) == sorted({*health}) and len(health) == 2


# --- secrets --------------------------------------------------------------------------------------

def test_secrets_become_options_and_never_show(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    creds = [("password:lab", "LabAdm1!"), ("nthash:admin", "31d6cfe0d16ae931b73c59d7e0c089c0"),
             ("sessionkey:3d00009400480000", "28f2847263c83dc00621f742dd3f2e7b")]
    options = secrets.to_options(creds)
    assert [p.get_secret_value() for p in options.passwords] == ["LabAdm1!"]
    assert len(options.nt_hashes) == 1
    assert [k.get_secret_value() for k in options.session_keys] == ["3d00009400480000,28f2847263c83dc00621f742dd3f2e7b"]
    assert options.keys_file is None and list(tmp_path.iterdir()) == []  # held in memory, never in a file
    shown = repr(options) + str(options) + options.model_dump_json()
    assert "LabAdm1!" not in shown and "31d6cfe0" not in shown and "28f2847263" not in shown


def test_malformed_secret_is_named_not_shown():
    with pytest.raises(secrets.SecretError) as caught:
        secrets.to_options([("nthash:admin", "not-a-hash-LabAdm1!")])
    assert "nthash:admin" in str(caught.value) and "LabAdm1!" not in str(caught.value)
    with pytest.raises(secrets.SecretError):
        secrets.to_options([("apikey:x", "secret")])


def _passwords_feed(creds) -> bytes:
    """splunkd's Atom answer for storage/passwords: one entry per (realm, username, clear password)."""
    entries = []
    for realm, user, password in creds:
        name = f"{realm}:{user.replace(':', chr(92) + ':')}:"
        path = "/servicesNS/nobody/smbtrail/storage/passwords/" + quote(name, safe="")
        entries.append(
            f"<entry><title>{escape(name)}</title><id>https://127.0.0.1:8089{path}</id><updated>2026-01-01T00:00:00Z"
            f"</updated><link href='{path}' rel='alternate'/><content type='text/xml'><s:dict>"
            f"<s:key name='realm'>{escape(realm)}</s:key><s:key name='username'>{escape(user)}</s:key>"
            f"<s:key name='clear_password'>{escape(password)}</s:key></s:dict></content></entry>")
    return ("<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom' "
            "xmlns:s='http://dev.splunk.com/ns/rest' xmlns:opensearch='http://a9.com/-/spec/opensearch/1.1/'>"
            "<title>passwords</title><id>https://127.0.0.1:8089/servicesNS/nobody/smbtrail/storage/passwords</id>"
            f"<updated>2026-01-01T00:00:00Z</updated><opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
            + "".join(entries) + "</feed>").encode()


def _splunkd(creds, requests):
    """A splunklib Service whose HTTP requests are answered here, as splunkd would (realm filter included)."""
    from io import BytesIO

    from splunklib import client

    def handler(url, message, **kwargs):
        requests.append(url)
        query = parse_qs(urlparse(url).query)
        wanted = [q.split("=", 1)[1] for q in query.get("search", []) if q.startswith("realm=")]
        shown = [c for c in creds if not wanted or wanted[0] in c[0]]  # splunkd's search matches substrings
        return {"status": 200, "reason": "OK", "headers": [], "body": BytesIO(_passwords_feed(shown))}

    return client.Service(handler=handler, token="Splunk no-session", host="127.0.0.1", port=8089)


def test_fetch_reads_only_this_apps_realm_in_one_scoped_request():
    creds = [("smbtrail", "password:lab", "LabAdm1!"), ("other_app", "password:lab", "not ours"),
             ("smbtrail_old", "password:lab", "stale"), ("smbtrail", "nthash:svc", "31d6cfe0d16ae931b73c59d7e0c089c0")]
    requests: List[str] = []
    service = _splunkd(creds, requests)
    assert secrets.fetch(service, ["password:lab"]) == [("password:lab", "LabAdm1!")]
    assert len(secrets.fetch(service, ["*"])) == 2
    path = urlparse(requests[0])
    assert path.path == "/servicesNS/nobody/smbtrail/storage/passwords"  # this app's namespace, not /services
    assert parse_qs(path.query)["search"] == ["realm=smbtrail"] and parse_qs(path.query)["count"] == ["-1"]
    with pytest.raises(secrets.SecretError) as caught:
        secrets.fetch(service, ["password:lab", "sessionkey:3d00009400480000"])
    assert "sessionkey:3d00009400480000" in str(caught.value) and "LabAdm1!" not in str(caught.value)


def test_session_key_from_the_store_decrypts_smb3(shared_data, tmp_path):
    """The key file written from storage/passwords is one the engine reads (README: SMB3 key material)."""
    require_engine("network")
    capture = str(shared_data / SMB3)
    options = secrets.to_options([("sessionkey:3d00009400480000", "28f2847263c83dc00621f742dd3f2e7b")])
    with_key = list(engine.network_records([capture], options))
    without = network.records(capture)
    assert any(r.decrypted for r in with_key) and not any(r.decrypted for r in without)
    assert not any(r.kind == "error" for r in with_key)
