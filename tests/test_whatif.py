"""Encryption what-if: a cleartext capture rewritten server-wide or share-only must read, for tshark and
for smbtrail, like a capture made with SMB3 encryption on; checked against tshark's own dissection of the
original and against the lab's real encrypted captures of the same scenarios."""

from __future__ import annotations

import csv
import difflib
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from helpers.network import records
from smbtrail.cli import main
from smbtrail.whatif.rewrite import RewriteStats, WhatIfError, rewrite_capture

LAB = Path(__file__).resolve().parent / "fixtures" / "lab"
SMB_CLEAR_COMMANDS = {"0", "1"}  # NEGOTIATE, SESSION_SETUP stay readable in every scope
NO_SESSION = "0x0000000000000000"
HIDDEN = ("tree", "file", "operation")  # what server-wide encryption takes from the sensor
OTRF_PAIRS = [
    "lateral_movement/network/covenant_copy_smb_CreateRequest.zip",
    "lateral_movement/network/covenant_sc_query_dcerpc_smb_svcctl.zip",
    "lateral_movement/network/covenant_sharpsc_create_dcerpc_smb_svcctl.zip",
    "lateral_movement/network/empire_psexec_dcerpc_tcp_svcctl.zip",
    "lateral_movement/network/schtask_create.zip",
    "discovery/network/empire_getsession_dcerpc_smb_srvsvc_NetSessEnum.zip",
    "discovery/network/empire_shell_rpc_samr_smb_group_domain_admins_standard_user.zip",
]


def manifest(mode: str) -> List[Dict[str, str]]:
    with open(LAB / "manifest.csv", newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["mode"] == mode]


def plain_rows() -> List[Dict[str, str]]:
    return [row for row in manifest("plain") if (LAB / row["capture"]).exists()]


def tshark(path: Path, *args: str) -> Tuple[List[List[str]], str]:
    done = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True, check=False)
    errors = "\n".join(line for line in done.stderr.splitlines() if "Running as user" not in line)
    return [line.split("\t") for line in done.stdout.splitlines()], errors


FIELDS = ["frame.number", "tcp.stream", "tcp.srcport", "nbss.type", "nbss.length", "smb2.cmd", "smb2.sesid",
          "smb2.chain_offset", "smb2.header.transform.msg_size", "smb.cmd"]
PASS_FIELDS = ["frame.protocols", "tcp.analysis.flags", "_ws.expert.message"] + FIELDS


@dataclass(frozen=True)
class Dissected:
    """What the checks read of a capture, from one tshark pass."""

    frames: int
    errors: str  # tshark's complaints (a capture cut short...)
    analysis: Dict[str, str]  # frame number -> expert messages, for the frames TCP analysis flagged
    smb: List[Dict[str, List[str]]]  # the SMB frames over TCP, FIELDS as lists


def dissect(path: Path) -> Dissected:
    return _dissect(str(path), *_version(path))


@cache
def _dissect(path: str, mtime: int, size: int) -> Dissected:
    """Read once per file version: a cleartext capture is the source of several rewrites and tests."""
    rows, errors = tshark(Path(path), "-T", "fields", *[a for f in PASS_FIELDS for a in ("-e", f)])
    analysis, smb = {}, []
    for row in rows:
        values = {name: (row[i] if i < len(row) else "") for i, name in enumerate(PASS_FIELDS)}
        if values["tcp.analysis.flags"]:
            analysis[values["frame.number"]] = values["_ws.expert.message"]
        layers = set(values["frame.protocols"].split(":"))
        if "tcp" in layers and layers & {"smb2", "smb"}:
            smb.append({name: values[name].split(",") if values[name] else [] for name in FIELDS})
    return Dissected(len(rows), errors, analysis, smb)


def _version(path: Path) -> Tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def expected_transforms(original: Dissected) -> Dict[tuple, List[int]]:
    """Per TCP stream and sender: NBSS lengths of the SMB2 messages that must be encrypted server-wide,
    taken from tshark's dissection of the cleartext capture."""
    expected: Dict[tuple, List[int]] = defaultdict(list)
    for frame in original.smb:
        if frame["smb.cmd"] and not frame["smb2.cmd"]:
            continue  # SMB1 (multi-protocol negotiate): never encrypted
        headers = list(zip(frame["smb2.cmd"], frame["smb2.sesid"], frame["smb2.chain_offset"]))
        lengths = [int(n) for t, n in zip(frame["nbss.type"], frame["nbss.length"]) if t == "0x00"]
        for length in lengths:
            if not headers:
                break
            chain = [headers.pop(0)]
            while headers and int(chain[-1][2], 16):
                chain.append(headers.pop(0))
            command, session = chain[0][0], chain[0][1]
            if command not in SMB_CLEAR_COMMANDS and session != NO_SESSION:
                expected[(frame["tcp.stream"][0], frame["tcp.srcport"][0])].append(length)
    return expected


def seen_transforms(rewritten: Dissected) -> Tuple[Dict[tuple, List[int]], List[str]]:
    """Transform sizes per stream and sender, and any SMB2 message left readable that should not be."""
    seen: Dict[tuple, List[int]] = defaultdict(list)
    leaks = []
    for frame in rewritten.smb:
        sizes = [int(s) for s in frame["smb2.header.transform.msg_size"]]
        seen[(frame["tcp.stream"][0], frame["tcp.srcport"][0])] += sizes
        nbss = sorted(int(n) for t, n in zip(frame["nbss.type"], frame["nbss.length"]) if t == "0x00")
        assert all(size + 52 in nbss for size in sizes), f"frame {frame['frame.number']}: NBSS length != size + 52"
        sessions = frame["smb2.sesid"] if not sizes else [NO_SESSION] * len(frame["smb2.cmd"])
        for command, session in zip(frame["smb2.cmd"], sessions):
            if command not in SMB_CLEAR_COMMANDS and session != NO_SESSION:
                leaks.append(f"frame {frame['frame.number'][0]} command {command} in clear")
    return seen, leaks


def check_server_rewrite(src: Path, dst: Path, stats: RewriteStats) -> RewriteStats:
    """dst, src rewritten server-wide (stats), against tshark's dissection of both."""
    before, after = dissect(src), dissect(dst)
    assert after.errors == before.errors.replace(str(src), str(dst))
    assert after.frames == before.frames == stats.frames
    assert after.analysis == before.analysis, "TCP analysis flags changed"
    expected = expected_transforms(before)
    seen, leaks = seen_transforms(after)
    untouched = {(n.client, n.server) for n in stats.untouched}
    assert not leaks or untouched, leaks[:5]
    if not untouched:
        assert {k: v for k, v in seen.items() if v} == dict(expected)
        assert sum(len(v) for v in expected.values()) == stats.nbss_messages_encrypted
    return stats


def server_rewrite(src: Path, dst: Path) -> RewriteStats:
    return check_server_rewrite(src, dst, rewrite_capture(str(src), str(dst), "server"))


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory):
    """rewritten(capture, scope) -> (output, stats): each capture rewritten once per scope in this module (the
    rewrite is seeded: the same input gives the same bytes); the tests that check one rewrite share it."""
    done: Dict[Tuple[Path, str], Tuple[Path, RewriteStats]] = {}

    def run(src: Path, scope: str = "server") -> Tuple[Path, RewriteStats]:
        if (src, scope) not in done:
            dst = tmp_path_factory.mktemp("rewritten") / f"{src.stem}.{scope}.pcapng"
            done[(src, scope)] = (dst, rewrite_capture(str(src), str(dst), scope))
        return done[(src, scope)]
    return run


def check_records(src: Path, dst: Path, account: str = "") -> None:
    """No tree/file/operation record of an encrypted session survives; each such session still shows up as
    encrypted activity under the account the cleartext named."""
    before = records(src)
    after = records(dst)
    users = {r.session_id: r.user for r in before if r.kind == "session" and r.session_id}
    busy = {r.session_id for r in before if r.kind in HIDDEN and r.session_id in users}
    assert busy, "the cleartext capture shows no SMB file/RPC activity to hide"
    assert not [r for r in after if r.kind in HIDDEN and r.session_id in busy]
    activity = {r.session_id: r.user for r in after if r.kind == "encrypted_activity"}
    for session in busy:
        assert activity.get(session) == users[session]
        if account:
            assert users[session] == account


@pytest.mark.parametrize("row", plain_rows(), ids=lambda r: r["scenario"])
def test_lab_capture_rewritten_server_wide(row, rewritten):
    src = LAB / row["capture"]
    dst, stats = rewritten(src)
    check_server_rewrite(src, dst, stats)
    if row["transport"] == "NCACN_NP" and row["command"] != "logon":  # refused logons: no session to hide
        check_records(src, dst, row["account"])


def test_psexec_capture_rewritten_server_wide(shared_data, rewritten):
    src = shared_data / "suricata-verify" / "smb2-07" / "20171220_smb_psexec_add_user.pcap"
    dst, stats = rewritten(src)
    check_server_rewrite(src, dst, stats)
    check_records(src, dst)


@pytest.mark.parametrize("pair", OTRF_PAIRS, ids=lambda p: Path(p).stem)
def test_otrf_capture_rewritten_server_wide(pair, shared_data, tmp_path):
    with zipfile.ZipFile(shared_data / "otrf-security-datasets" / "windows" / pair) as archive:
        archive.extractall(tmp_path / "in")
    for src in sorted((tmp_path / "in").rglob("*.*cap*")):
        dst = tmp_path / f"{src.stem}.server.pcapng"
        stats = server_rewrite(src, dst)
        assert not stats.untouched, stats.untouched
        if not stats.smb_connections:  # no SMB at all: every byte stays as it was
            assert dst.read_bytes() == src.read_bytes()
        elif any(r.kind in ("file", "operation") and r.transport != "ncacn_ip_tcp" for r in records(src)):
            check_records(src, dst)


def test_other_traffic_untouched(shared_data, rewritten):
    src = shared_data / "suricata-verify" / "smb2-07" / "20171220_smb_psexec_add_user.pcap"
    dst, _ = rewritten(src)
    args = ["-o", "frame.generate_md5_hash:TRUE", "-Y", "!(tcp.port == 445 || tcp.port == 139)",
            "-T", "fields", "-e", "frame.number", "-e", "frame.md5_hash"]
    before, _ = tshark(src, *args)
    after, _ = tshark(dst, *args)
    assert before and before == after


def test_share_scope_keeps_ipc_and_hides_admin_share(shared_data, rewritten):
    src = shared_data / "suricata-verify" / "smb2-07" / "20171220_smb_psexec_add_user.pcap"
    dst, stats = rewritten(src, "share")
    before, after = records(src), records(dst)
    assert any(r.kind == "file" and r.share == "ADMIN$" for r in before)
    assert not [r for r in after if r.kind == "file" and r.share in ("ADMIN$", "C$")]
    ops = lambda recs: sorted((r.rpc_interface, r.opnum) for r in recs if r.kind == "operation")  # noqa: E731
    assert ops(after) == ops(before) and any(i == "svcctl" for i, _ in ops(after))
    users = {r.session_id: r.user for r in before if r.kind == "session"}
    hidden = [r for r in after if r.kind == "encrypted_activity"]
    assert hidden and all(r.user == users[r.session_id] for r in hidden)
    assert stats.smb2_messages_clear > 0 and stats.nbss_messages_encrypted > 0
    trees = [r for r in after if r.kind == "tree" and r.share == "ADMIN$"]
    assert trees and all(r.args.get("share_encrypted") for r in trees)


@pytest.mark.parametrize("scenario", ["sc_query_services", "file_write_smbclient"])
def test_share_scope_on_lab_captures(scenario, rewritten):
    src = LAB / "plain" / f"{scenario}.pcapng"
    dst, _ = rewritten(src, "share")
    before, after = records(src), records(dst)
    visible = lambda recs, kind: [(r.share, r.path, r.operation) for r in recs if r.kind == kind]  # noqa: E731
    assert visible(after, "operation") == visible(before, "operation")
    assert [f for f in visible(after, "file") if f[0] != "IPC$"] == []
    assert [f for f in visible(after, "file") if f[0] == "IPC$"] == [f for f in visible(before, "file") if f[0] == "IPC$"]
    hidden = [f for f in visible(before, "file") if f[0] != "IPC$"]
    assert bool(hidden) == any(r.kind == "encrypted_activity" for r in after)


def encrypted_sizes(path: Path) -> List[int]:
    return [s for r in records(path) if r.kind == "encrypted_activity" for s in r.args["message_sizes"]]


def real_pairs() -> List[Tuple[str, str, str]]:
    """(cleartext capture, real encrypted capture of the same scenario, scope). Share mode only where the
    lab saw share-level encryption: impacket encrypts every session Samba offers encryption on, so its
    share-mode runs are server-wide in effect (manifest observed_encryption)."""
    plain = {row["scenario"]: row["capture"] for row in plain_rows()}
    pairs = [(plain[row["scenario"]], row["capture"], "server") for row in manifest("enc-global")
             if row["scenario"] in plain and row["transport"] == "NCACN_NP"]
    pairs += [(plain[row["scenario"]], row["capture"], "share") for row in manifest("enc-share")
              if row["scenario"] in plain and row.get("observed_encryption") == "partial"
              and "impacket" not in row["client_tool"]]
    return [p for p in pairs if (LAB / p[1]).exists()]


@pytest.mark.parametrize("pair", real_pairs(), ids=lambda p: f"{Path(p[0]).stem}-{p[2]}")
def test_rewrite_sizes_match_real_encrypted_capture(pair, rewritten):
    """The same scenario run by real software with encryption on: the message sizes the sensor sees
    differ only by the few messages a second run adds or drops (interim STATUS_PENDING responses)."""
    plain, real, scope = LAB / pair[0], LAB / pair[1], pair[2]
    dst, _ = rewritten(plain, scope)
    ours, theirs = encrypted_sizes(dst), encrypted_sizes(real)
    assert ours and theirs
    assert difflib.SequenceMatcher(None, ours, theirs, autojunk=False).ratio() >= 0.9
    assert abs(sum(map(abs, ours)) - sum(map(abs, theirs))) <= 0.1 * sum(map(abs, theirs))


def test_gap_leaves_flow_untouched_and_reported(shared_data, tmp_path):
    src = shared_data / "pcap-attack" / "Discovery" / "Discovery_privgroups_domain_admins_samr_lookupnames_req.pcapng"
    dst = tmp_path / "gap.pcapng"
    stats = rewrite_capture(str(src), str(dst), "server")
    assert stats.untouched and "missing" in stats.untouched[0].reason
    assert stats.connections_rewritten == 0 and dst.read_bytes() == src.read_bytes()


def test_truncated_capture_is_copied_and_marked_partial(shared_data, tmp_path):
    pair = shared_data / "otrf-security-datasets" / "windows" / OTRF_PAIRS[2]
    with zipfile.ZipFile(pair) as archive:
        archive.extractall(tmp_path)
    src = next(tmp_path.rglob("*.cap"))
    dst = tmp_path / "out.pcap"
    stats = rewrite_capture(str(src), str(dst), "server")
    assert stats.partial and src.name in stats.warnings[0] and stats.connections_rewritten
    assert dst.stat().st_size == src.stat().st_size + stats.bytes_added


def test_cut_lab_capture_keeps_every_whole_frame(tmp_path):
    src = LAB / "plain" / "sc_query_services.pcapng"
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    stats = rewrite_capture(str(cut), str(tmp_path / "out.pcapng"), "server")
    assert stats.partial and dissect(tmp_path / "out.pcapng").frames == stats.frames > 0


def test_scope_none_is_a_copy(tmp_path):
    src = LAB / "plain" / "file_write_smbclient.pcapng"
    stats = rewrite_capture(str(src), str(tmp_path / "copy.pcapng"), "none")
    assert (tmp_path / "copy.pcapng").read_bytes() == src.read_bytes() and stats.frames_changed == 0


def test_command_line_rewrites_one_capture(tmp_path, capsys):
    src, dst = LAB / "plain" / "file_write_smbclient.pcapng", tmp_path / "out.pcapng"
    assert main(["whatif", str(src), str(dst), "--scope", "share"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["scope"] == "share" and stats["frames_changed"] > 0 and not stats["partial"]
    assert dst.stat().st_size == src.stat().st_size + stats["bytes_added"]
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    assert main(["whatif", str(bad), str(tmp_path / "x.pcap")]) == 2
    assert "bad.pcap" in capsys.readouterr().err


@pytest.mark.parametrize("content,why", [(b"", "not a pcap"), (b"hello world, not a capture", "not a pcap"),
                                         (b"\xd4\xc3\xb2\xa1\x02\x00", "cut short")])
def test_bad_input_is_a_clear_error(content, why, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    with pytest.raises(WhatIfError, match=why) as raised:
        rewrite_capture(str(bad), str(tmp_path / "out.pcap"), "server")
    assert "bad.pcap" in str(raised.value)
    with pytest.raises(WhatIfError, match="scope"):
        rewrite_capture(str(bad), str(tmp_path / "out.pcap"), "everything")


def payload_runs(src: Path) -> List[list]:
    """The TCP payload of a one-connection capture as runs of consecutive bytes per sender (c / s)."""
    rows, _ = tshark(src, "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.payload")
    runs: List[list] = []
    for port, payload in rows:
        side = "s" if port == "445" else "c"
        data = bytes.fromhex(payload.replace(":", ""))
        if runs and runs[-1][0] == side:
            runs[-1][1] += data
        else:
            runs.append([side, bytearray(data)])
    return runs


def resegment(src: Path, dst: Path, chunk: int) -> None:
    """The TCP payloads of a real capture, cut into `chunk`-byte segments and re-wrapped in IPv6 + TCP
    by text2pcap: SMB2 messages and NBSS headers now span segments, and back-to-back messages share one."""
    lines = []
    for side, data in payload_runs(src):
        for at in range(0, len(data), chunk):
            piece = data[at:at + chunk]
            for i in range(0, len(piece), 16):
                mark = ("O " if side == "s" else "I ") if i == 0 else ""  # text2pcap: I = from the -T source port
                lines.append(f"{mark}{i:06x} " + " ".join(f"{b:02x}" for b in piece[i:i + 16]))
    text = dst.with_suffix(".txt")
    text.write_text("\n".join(lines) + "\n")
    subprocess.run(["text2pcap", "-q", "-D", "-6", "fd00::2,fd00::1", "-T", "50000,445", str(text), str(dst)],
                   check=True, capture_output=True)


@pytest.mark.parametrize("chunk", [100, 1400, 9000])
def test_resegmented_ipv6_capture(chunk, tmp_path):
    if shutil.which("text2pcap") is None:
        pytest.skip("text2pcap (Wireshark) not installed")
    src = tmp_path / "ipv6.pcap"
    resegment(LAB / "plain" / "file_write_smbclient.pcapng", src, chunk)
    stats = server_rewrite(src, tmp_path / "server.pcap")
    assert stats.nbss_messages_encrypted > 0 and not stats.untouched
    check_records(src, tmp_path / "server.pcap", "smbtadmin")
    rewrite_capture(str(src), str(tmp_path / "share.pcap"), "share")
    after = records(tmp_path / "share.pcap")
    assert [r.share for r in after if r.kind == "tree"] == ["IPC$", "C$"]
    assert not [r for r in after if r.kind == "file"] and any(r.kind == "encrypted_activity" for r in after)


def replay(runs_file: str) -> None:
    """Send the recorded bytes through the kernel's TCP over [::1]:445, each side in turn."""
    with open(runs_file, encoding="utf-8") as handle:
        runs = json.load(handle)
    server = socket.socket(socket.AF_INET6)
    server.bind(("::1", 445))
    server.listen(1)
    client = socket.create_connection(("::1", 445))
    peer, _ = server.accept()
    for side, data in runs:
        sender, receiver = (client, peer) if side == "c" else (peer, client)
        sender.sendall(bytes.fromhex(data))
        got = 0
        while got < len(data) // 2:
            got += len(receiver.recv(len(data) // 2 - got))
    for sock in (client, peer, server):
        sock.close()


def test_linux_cooked_capture_of_a_socket_replay(tmp_path):
    """A Linux `any`-interface capture (cooked link layer, IPv6, the kernel's own TCP) of real SMB bytes
    replayed through sockets in a private network namespace."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("dumpcap")):
        pytest.skip("needs root, unshare and dumpcap to capture in a private network namespace")
    runs = tmp_path / "runs.json"
    recorded = payload_runs(LAB / "plain" / "file_write_smbclient.pcapng")
    runs.write_text(json.dumps([[side, data.hex()] for side, data in recorded]))
    cap = tmp_path / "any.pcapng"
    script = (f"ip link set lo up && (dumpcap -q -i any -f 'tcp port 445' -w {cap} & P=$!; sleep 1; "
              f"{sys.executable} {__file__} replay {runs}; sleep 1; kill -INT $P; wait $P)")
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    if not cap.exists():
        pytest.skip(f"no capture from the private namespace: {done.stderr.strip()[-200:]}")
    link, _ = tshark(cap, "-c", "1", "-T", "fields", "-e", "frame.protocols")
    assert link[0][0].startswith("sll:ethertype:ipv6:tcp")
    stats = server_rewrite(cap, tmp_path / "server.pcapng")
    assert stats.nbss_messages_encrypted > 0
    check_records(cap, tmp_path / "server.pcapng", "smbtadmin")


if __name__ == "__main__" and sys.argv[1:2] == ["replay"]:
    replay(sys.argv[2])
