#!/usr/bin/env python3
"""smbtrail lab: real Samba servers and real clients in two network namespaces, one capture per scenario.

    lab.py [--modes plain,enc-share,enc-global,addc] [--only SUBSTRING] [--out DIR]

Run as root after install.sh (run.sh does both). Every process is started by this script, recorded by PID
and stopped by PID; namespaces, the temporary unix user/group and /etc/netns entries are removed on exit.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUN = HERE / "run"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "lab"
sys.path.insert(0, str(HERE))

import labcheck  # noqa: E402
import samba_keys  # noqa: E402
import scenarios  # noqa: E402

SRV_NS, CLI_NS = "smbt_srv", "smbt_cli"
SRV_IF = "smbt-s"
SRV_IP, CLI_IP = "10.231.0.1", "10.231.0.2"
UNIX_USER, UNIX_GROUP = "smbtadmin", "smbtadmins"
# lab-only secrets: they exist only inside the lab's namespaces and are recorded in the manifest on purpose
PASSWORD = "Lab-Passw0rd!"
FULL_AUDIT_OP = re.compile(r"\|(connect|disconnect|create_file|unlinkat|renameat|pread_send|pwrite_send)\|(ok|fail)")
CAPTURE_FILTER = "tcp port 445 or tcp port 135 or port 88 or tcp portrange 49152-49400"
STANDALONE_MODES = {  # mode -> (global encryption, [secure] share encryption, encryption scope in the manifest)
    "plain": ("off", "off", "none"),
    "enc-share": ("default", "required", "share"),
    "enc-global": ("required", "required", "server"),
}
MANIFEST_FIELDS = [
    "scenario", "mode", "command", "transport", "encryption_scope", "observed_encryption", "client_tool", "auth",
    "stand_in",
    "capture", "keys", "audit_log", "vfs_audit_log", "account", "password", "client_ip", "server_ip", "rc",
    "client_errors",
    "expected_operations", "expected_args", "description",
]


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(argv: List[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kw)


def in_ns(ns: str, argv: List[str]) -> List[str]:
    return ["ip", "netns", "exec", ns] + argv


class Processes:
    """Daemons started by the lab, stopped by PID. The lab is a child subreaper, so daemons' orphaned
    children are re-parented to it and are found (and stopped) by PID as well."""

    def __init__(self) -> None:
        self.procs: Dict[str, subprocess.Popen] = {}
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

    def start(self, name: str, argv: List[str], logfile: Path, **kw) -> subprocess.Popen:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        out = open(logfile, "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kw)
        out.close()
        self.procs[name] = proc
        log(f"started {name} pid {proc.pid}")
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.reap_orphans()

    def reap_orphans(self) -> None:
        """Stop the re-parented leftovers of stopped daemons (never processes we still track)."""
        tracked = {p.pid for p in self.procs.values()}
        for _ in range(20):
            orphans = [pid for pid in _children(os.getpid()) if pid not in tracked]
            if not orphans:
                return
            for pid in orphans:
                try:
                    os.kill(pid, signal.SIGTERM if _ < 10 else signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
            for pid in orphans:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.reap_orphans()


def _children(pid: int) -> List[int]:
    kids: List[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


# ---------------------------------------------------------------- network and accounts


def netns(action: str) -> None:
    run([str(HERE / "netns.sh"), action])


def add_unix_account() -> None:
    remove_unix_account()
    run(["groupadd", UNIX_GROUP])
    run(["useradd", "-M", "-N", "-g", UNIX_GROUP, "-s", "/usr/sbin/nologin", UNIX_USER])


def remove_unix_account() -> None:
    run(["userdel", UNIX_USER], check=False)
    run(["groupdel", UNIX_GROUP], check=False)


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = run(in_ns(SRV_NS, ["ss", "-Hltn", f"sport = :{port}"]), check=False).stdout
        if out.strip():
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {SRV_IP}:{port} after {timeout}s")


def render(template: Path, dest: Path, values: Dict[str, str]) -> None:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)


# ---------------------------------------------------------------- capture and keys


@contextmanager
def capture(procs: Processes, pcap: Path) -> Iterator[None]:
    pcap.parent.mkdir(parents=True, exist_ok=True)
    if pcap.exists():
        pcap.unlink()
    tmp = RUN / "dumpcap.pcapng"
    if tmp.exists():
        tmp.unlink()
    procs.start("dumpcap", in_ns(SRV_NS, ["dumpcap", "-q", "-i", SRV_IF, "-f", CAPTURE_FILTER, "-w", str(tmp)]),
                RUN / "dumpcap.log")
    deadline = time.time() + 10
    while not (tmp.exists() and tmp.stat().st_size > 0) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    try:
        yield
    finally:
        time.sleep(0.5)  # trailing logoff/close frames
        procs.stop("dumpcap", signal.SIGINT)
        if tmp.exists():
            shutil.move(str(tmp), str(pcap))
            os.chmod(pcap, 0o644)


class LogTail:
    """What Samba appended to the log files of one directory since the last call."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.sizes: Dict[Path, int] = {}
        self.take()

    def take(self) -> str:
        text = ""
        for path in sorted(self.logdir.glob("log.*")) if self.logdir.is_dir() else []:
            start = self.sizes.get(path, 0)
            size = path.stat().st_size
            if size > start:
                with open(path, "rb") as f:
                    f.seek(start)
                    text += f.read(size - start).decode("utf-8", "replace")
            self.sizes[path] = size
        return text


# ---------------------------------------------------------------- scenario execution


class Lab:
    def __init__(self, out: Path, env: Dict[str, str]) -> None:
        self.out = out
        self.procs = Processes()
        self.py = env["LAB_PY"]
        self.bin = env["LAB_BIN"]
        self.rows: List[Dict[str, str]] = []
        self.timings: List[str] = []
        self.cli_dir = RUN / "cli"
        self.cleared: List[str] = []  # modes regenerated in full: their old files and manifest rows go
        self.client_errors: List[str] = []  # impacket's "[-] ..." lines (it exits 0 on most errors)

    def clear_mode(self, mode: str) -> None:
        shutil.rmtree(self.out / mode, ignore_errors=True)
        self.cleared.append(mode)

    def values(self, mode: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        v = {
            "PY": self.py, "BIN": self.bin, "HERE": str(HERE), "SRV": SRV_IP, "CLI": CLI_IP,
            "USER": UNIX_USER, "PW": PASSWORD, "CLI_DIR": str(self.cli_dir), "MODE_RUN": str(RUN / mode),
            "SMBCONF": str(self.cli_dir / "smb.conf"),
        }
        v.update(extra or {})
        return v

    def prepare_client(self) -> None:
        self.cli_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("lock", "state", "cache", "private"):
            (self.cli_dir / sub).mkdir(exist_ok=True)
        (self.cli_dir / "smb.conf").write_text(
            "[global]\n"
            "    workgroup = SMBTLAB\n"
            f"    lock directory = {self.cli_dir}/lock\n"
            f"    state directory = {self.cli_dir}/state\n"
            f"    cache directory = {self.cli_dir}/cache\n"
            f"    private dir = {self.cli_dir}/private\n"
            "    client min protocol = SMB2_02\n"
            "    client max protocol = SMB3_11\n"
            "    disable netbios = yes\n"
        )
        payload = self.cli_dir / "smbt_payload.exe"
        payload.write_bytes(b"MZ smbtrail lab payload, not a program\r\n" * 100)
        (self.cli_dir / "smbt_notes.txt").write_text("smbtrail lab file-copy sample\r\n" * 20)
        for action, command in (("write", "put smbt_notes.txt"), ("read", "get smbt_notes.txt"),
                                ("delete", "rm smbt_notes.txt")):
            (self.cli_dir / f"imp_{action}.txt").write_text(f"use C$\n{command}\nexit\n")

    def run_client(self, argv: List[str], stdin: str, timeout: float, env: Dict[str, str]) -> int:
        full_env = dict(os.environ)
        full_env.update(env)
        try:
            proc = subprocess.run(in_ns(CLI_NS, argv), input=stdin, text=True, capture_output=True,
                                  timeout=timeout, cwd=self.cli_dir, env=full_env)
            rc = proc.returncode
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc = 124
            output = _text(exc.stdout) + _text(exc.stderr) + "\n[lab] timeout\n"
        with open(RUN / "clients.log", "a") as f:
            f.write(f"\n$ {' '.join(argv)}\n(rc {rc})\n{output}")
        self.client_errors += [line[4:].strip() for line in output.splitlines() if line.startswith("[-] ")]
        return rc

    def scenario(self, sc: scenarios.Scenario, mode: str, scope: str, logs: LogTail,
                 values: Dict[str, str], audit: Optional[AuditTail] = None) -> None:
        name = f"{mode}/{sc.id}"
        pcap = self.out / mode / f"{sc.id}.pcapng"
        keys = self.out / mode / f"{sc.id}.keys"
        t0 = time.time()
        logs.take()
        if audit:
            audit.take()
        rcs = []
        self.client_errors = []
        with capture(self.procs, pcap):
            for step in sc.steps:
                argv = [a.format(**values) for a in step.argv]
                rcs.append(self.run_client(argv, step.stdin.format(**values), step.timeout, sc.env(values)))
        samba_log = logs.take()
        lines = samba_keys.key_lines(samba_keys.parse(samba_log))
        keys.write_text("".join(line + "\n" for line in lines))
        vfs_path = self.out / mode / f"{sc.id}.full_audit.log"
        vfs_entries = full_audit_entries(samba_log)
        if vfs_entries:  # none when the scenario used no SMB (RPC over TCP, Kerberos only)
            vfs_path.write_text(vfs_entries)
        audit_rel = ""
        if audit:
            audit_path = self.out / mode / f"{sc.id}.audit.jsonl"
            audit_path.write_text(audit.take())
            audit_rel = str(audit_path.relative_to(self.out))
        elapsed = time.time() - t0
        self.timings.append(f"{name}\t{elapsed:.1f}\t{pcap.stat().st_size if pcap.exists() else 0}")
        log(f"{name}: rc {rcs}, {len(lines)} session key(s), {elapsed:.1f}s")
        self.rows.append({
            "scenario": sc.id, "mode": mode, "command": sc.command, "transport": sc.transport,
            "encryption_scope": sc.scope_override or scope, "client_tool": sc.tool, "auth": sc.auth,
            "observed_encryption": labcheck.observed_encryption(pcap) if pcap.exists() else "",
            "stand_in": "yes" if sc.stand_in else "no",
            "capture": str(pcap.relative_to(self.out)), "keys": str(keys.relative_to(self.out)),
            "audit_log": audit_rel, "vfs_audit_log": str(vfs_path.relative_to(self.out)) if vfs_entries else "",
            "account": values.get("ACCOUNT", UNIX_USER), "password": PASSWORD,
            "client_ip": CLI_IP, "server_ip": SRV_IP, "rc": " ".join(str(r) for r in rcs),
            "client_errors": " | ".join(self.client_errors)[:300],
            "expected_operations": ";".join(sc.operations),
            "expected_args": json.dumps(sc.args_for(values), sort_keys=True),
            "description": sc.description,
        })

    # ------------------------------------------------------------ standalone server

    def standalone_state(self, mode: str) -> Path:
        base = RUN / mode
        shutil.rmtree(base, ignore_errors=True)
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "logs", "share/admin/Temp",
                    "share/c", "share/public", "share/secure"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(base / "ncalrpc", 0o755)
        (base / "share/public/readme.txt").write_text("public share of the smbtrail lab\r\n")
        (base / "share/c/boot.ini").write_text("[boot loader]\r\n")
        glob_enc, share_enc, _ = STANDALONE_MODES[mode]
        conf = base / "smb.conf"
        render(HERE / "conf" / "smb-standalone.conf.in", conf,
               {"RUN": str(base), "GLOBAL_ENC": glob_enc, "SECURE_ENC": share_enc, "SRV_IP": SRV_IP,
                "DEBUG_ENC": "no" if glob_enc == share_enc == "off" else "yes"})
        run(["smbpasswd", "-c", str(conf), "-s", "-a", UNIX_USER], input=f"{PASSWORD}\n{PASSWORD}\n")
        run(["net", "-s", str(conf), "groupmap", "add", "ntgroup=Administrators", "sid=S-1-5-32-544",
             f"unixgroup={UNIX_GROUP}", "type=builtin"])
        run(["net", "-s", str(conf), "registry", "createkey", scenarios.REG_KEY])  # the classic Run key
        for share in ("admin", "c", "public", "secure"):
            shutil.chown(base / "share" / share, UNIX_USER, UNIX_GROUP)
        shutil.chown(base / "share/admin/Temp", UNIX_USER, UNIX_GROUP)
        return conf

    def start_standalone(self, mode: str, conf: Path) -> None:
        base = RUN / mode
        self.procs.start("smbd", in_ns(SRV_NS, ["smbd", "--foreground", "--no-process-group", "-s", str(conf)]),
                         base / "smbd.out")
        self.procs.start("samba-dcerpcd", in_ns(SRV_NS, [
            "/usr/libexec/samba/samba-dcerpcd", "--foreground", "--libexec-rpcds", "-s", str(conf)]),
            base / "dcerpcd.out")
        wait_listening(445)
        wait_listening(135)

    def start_stand_in(self, mode: str) -> None:
        base = RUN / mode
        self.procs.start("fake_np", in_ns(SRV_NS, [
            self.py, str(HERE / "fake_np.py"), "--np-dir", str(base / "ncalrpc/np"),
            "--admin-dir", str(base / "share/admin"), "--c-dir", str(base / "share/c"),
            "--user", UNIX_USER, "--password", PASSWORD, "--tcp", f"{SRV_IP}:{scenarios.STAND_IN_TCP_PORT}",
            "--log", str(base / "fake_np.jsonl")]), base / "fake_np.out")
        deadline = time.time() + 10
        while not (base / "ncalrpc/np/atsvc").exists() and time.time() < deadline:
            time.sleep(0.1)
        wait_listening(scenarios.STAND_IN_TCP_PORT)

    def standalone_mode(self, mode: str, only: str) -> None:
        scope = STANDALONE_MODES[mode][2]
        chosen = [s for s in scenarios.STANDALONE if only in s.id]
        if not chosen:
            return
        log(f"mode {mode}: {len(chosen)} scenario(s)")
        conf = self.standalone_state(mode)
        self.start_standalone(mode, conf)
        logs = LogTail(RUN / mode / "logs")
        try:
            values = self.values(mode)
            for sc in [s for s in chosen if not s.stand_in]:
                self.scenario(sc, mode, scope, logs, values)
            stand_in = [s for s in chosen if s.stand_in]
            if stand_in:
                self.start_stand_in(mode)
                for sc in stand_in:
                    self.scenario(sc, mode, scope, logs, values)
        finally:
            self.procs.stop_all()

    # ------------------------------------------------------------ outputs

    def write_manifest(self) -> None:
        path = self.out / "manifest.csv"
        old = []
        if path.exists():  # a partial run (--only / --modes) keeps the other rows
            with open(path, newline="") as f:
                old = list(csv.DictReader(f))
        done = {(r["mode"], r["scenario"]) for r in self.rows}
        rows = [r for r in old if (r["mode"], r["scenario"]) not in done and r["mode"] not in self.cleared]
        rows += self.rows
        rows.sort(key=lambda r: (r["mode"], r["scenario"]))
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in MANIFEST_FIELDS})
        self.write_coverage(rows)
        (RUN / "timings.tsv").write_text("scenario\tseconds\tbytes\n" + "\n".join(self.timings) + "\n")


    def write_coverage(self, rows: List[Dict[str, str]]) -> None:
        """Per cell of the paper's experiment (command x encryption scope x transport): the lab's captures, or
        why there are none."""
        with open(self.out / "coverage.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["command", "encryption_scope", "transport", "reproduced", "captures", "reason"])
            for command in scenarios.PAPER_COMMANDS:
                for scope, modes in sorted(scenarios.SCOPE_MODES.items()):
                    for transport in ("NCACN_IP_TCP", "NCACN_NP"):
                        hits = [r["capture"] for r in rows if r["command"] == command
                                and r["transport"] == transport and r["mode"] in modes]
                        reason = "" if hits else scenarios.UNREPRODUCIBLE.get(
                            command, scenarios.NO_TCP if transport == "NCACN_IP_TCP" else "not run")
                        w.writerow([command, scope, transport, "yes" if hits else "no", " ".join(hits), reason])


def full_audit_entries(samba_log: str) -> str:
    """The vfs_full_audit entries (debug header + message line) of Samba's per-client logs, in time order.
    Each smbd writes to its own log.<client>, so the entries of one run are spread over several files."""
    lines = samba_log.splitlines()
    entries = [lines[i] + "\n" + lines[i + 1] + "\n" for i in range(len(lines) - 1)
               if lines[i].startswith("[") and "vfs_full_audit.c:" in lines[i]]
    headless = sum(bool(FULL_AUDIT_OP.search(line)) for line in lines) - len(entries)
    if headless:
        log(f"warning: {headless} full_audit line(s) without a debug header (left out)")
    return "".join(sorted(entries))  # headers start with [YYYY/MM/DD HH:MM:SS.micro


class AuditTail(LogTail):
    """The DC's JSON audit file: only what was appended during a scenario."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.take()

    def take(self) -> str:
        if not self.path.exists():
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        self.pos += len(data)
        return data.decode("utf-8", "replace")


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def read_env() -> Dict[str, str]:
    env_file = RUN / "env"
    if not env_file.exists():
        raise SystemExit(f"{env_file} missing: run tests/lab/install.sh first")
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def cleanup(lab: Optional[Lab]) -> None:
    if lab is not None:
        lab.procs.stop_all()
    netns("down")
    remove_unix_account()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="plain,enc-share,enc-global,addc")
    ap.add_argument("--only", default="", help="run only scenarios whose id contains this")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (namespaces, smbd)")
    env = read_env()
    lab: Optional[Lab] = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.time()
    try:
        RUN.mkdir(exist_ok=True)
        (RUN / "clients.log").write_text("")
        netns("up")
        add_unix_account()
        lab = Lab(args.out, env)
        lab.prepare_client()
        for mode in args.modes.split(","):
            if not args.only:
                lab.clear_mode(mode)
            if mode in STANDALONE_MODES:
                lab.standalone_mode(mode, args.only)
            elif mode == "addc":
                import addc
                addc.run_mode(lab, args.only)
            else:
                raise SystemExit(f"unknown mode {mode}")
        lab.write_manifest()
    finally:
        cleanup(lab)
    log(f"done in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
