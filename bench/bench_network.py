"""Network engine benchmark (not a test): smbtrail against bare tshark on the same built capture.

Builds a capture from real public captures, replicated with shifted times and rewritten IPv4 addresses
so that flows do not collide, each copy's sources interleaved in time as a sensor would record them:
    --mode smb       only the SMB/RPC captures (the worst case: every packet is ours to read)
    --mode mix       a sensor mix: real non-SMB traffic (../shared/data/mix/) with the SMB/RPC captures
                     making --smb-share of the bytes
    --mode rotated   the same mix cut into --files rotated files, analysed one after another in a run
                     per file, and in one run with the default workers and with one tshark per core
Prints, in one run: smbtrail's wall time, CPU time and the peak RSS of its whole process tree (tshark
and tcpdump included), next to `tshark -n -Y <filter> -q` on the same file (dissection alone);
--formats adds tshark's output formats with the engine's real field list. Several --repeat runs give
medians (the machine may be shared: CPU time is the steadier figure).

    python bench/bench_network.py --mode mix [--size-mb 255] [--repeat 3] [--keep FILE] [--formats]
"""

from __future__ import annotations

import argparse
import glob
import heapq
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Dict, Iterator, List, Sequence, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from smbtrail.capture import tshark  # noqa: E402
from smbtrail.network import dissect  # noqa: E402

SHARED = os.environ.get("SMBTRAIL_SHARED_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
SMB_SOURCES = ["suricata-verify", "zeek/Traces", "pcap-attack", "samr-enum-lab", "otrf-security-datasets"]
MIX_SOURCE = "mix"
# tshark's VNC dissector spends ~1.5 s per MB on these two (100x any other source): a mix with them
# would make tshark -q slow and flatter smbtrail's ratio, so they are left out
MIX_LEFT_OUT = ("rfb-protocol-3.3_06-vnc-Password-3.3.pcap", "rfb-protocol-3.8_04-vnc-openwall-3.8.pcap")
Packet = Tuple[int, int, int, bytes]  # seconds, microseconds, original length, bytes


def as_pcap(data_path: str, tmp: str) -> str:
    """Every input converted to classic microsecond pcap, so copies can be rewritten with struct."""
    out = os.path.join(tmp, f"src-{len(os.listdir(tmp))}.pcap")
    subprocess.run(["editcap", "-F", "pcap", data_path, out], check=True, capture_output=True)
    return out


def read_pcap(path: str) -> Tuple[int, List[Packet]]:
    with open(path, "rb") as handle:
        header = handle.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        packets = []
        while True:
            rec = handle.read(16)
            if len(rec) < 16:
                break
            sec, usec, incl, orig = struct.unpack(endian + "IIII", rec)
            data = handle.read(incl)
            if len(data) < incl:
                break  # a capture cut short mid-packet: keep what is whole
            packets.append((sec, usec, orig, data))
    return linktype, packets


def capture_files(root: str, tmp: str) -> List[str]:
    """Captures under root, zip members extracted (the OTRF network halves are zipped)."""
    found = []
    for pattern in ("**/*.pcap", "**/*.pcapng", "**/*.cap"):
        found += glob.glob(os.path.join(root, pattern), recursive=True)
    for archive in sorted(glob.glob(os.path.join(root, "**/network/*.zip"), recursive=True)):
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                if name.endswith((".pcap", ".pcapng", ".cap")):
                    target = os.path.join(tmp, f"zip-{len(os.listdir(tmp))}-{os.path.basename(name)}")
                    with zipped.open(name) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found.append(target)
    return sorted(found)


def load(paths: Sequence[str], tmp: str) -> List[List[Packet]]:
    """Each Ethernet source's packets, times made relative to its first packet."""
    sources = []
    seen = set()
    for path in paths:
        try:
            linktype, packets = read_pcap(as_pcap(path, tmp))
        except (subprocess.CalledProcessError, struct.error):
            continue
        key = tuple(p[3] for p in packets[:20])
        if linktype != 1 or not packets or key in seen:
            continue  # identical captures are stored twice in the data set: once is enough
        seen.add(key)
        first = packets[0][0] * 1_000_000 + packets[0][1]
        sources.append([(((s * 1_000_000 + u) - first), o, d) for s, u, o, d in packets])  # type: ignore[misc]
    return sources


def rewrite(data: bytes, shift: int) -> bytes:
    """Add `shift` to the second and third bytes of both IP addresses (IPv4 and IPv6, VLAN-tagged or
    not), so that copies of one flow are distinct flows."""
    offset, ethertype = 14, data[12:14]
    if ethertype == b"\x81\x00":
        offset, ethertype = 18, data[16:18]
    places = {b"\x08\x00": (13, 17, 20), b"\x86\xdd": (9, 25, 40)}.get(ethertype)
    if places is None or len(data) < offset + places[2] or not shift:
        return data
    buf = bytearray(data)
    for pos in places[:2]:
        buf[offset + pos] = (buf[offset + pos] + shift) % 256
        buf[offset + pos + 1] = (buf[offset + pos + 1] + (shift >> 8)) % 256
    return bytes(buf)


def one_copy(copy: int, replicas: List[List[Packet]]) -> Iterator[Tuple[int, int, bytes]]:
    """One copy: every replica starts within the same hour (a fixed spread), merged in time order."""
    base = 1_700_000_000_000_000 + copy * 86_400_000_000

    def shifted(number: int, packets: List[Packet]) -> Iterator[Tuple[int, int, bytes]]:
        start = base + (number * 37_000_000) % 3_600_000_000
        shift = (copy * 1000 + number + 1) % 65536  # distinct flows for every copy and replica
        for rel, orig, data in packets:  # type: ignore[misc]
            yield start + rel, orig, rewrite(data, shift)

    yield from heapq.merge(*(shifted(n, p) for n, p in enumerate(replicas)), key=lambda x: x[0])


def build(out_paths: Sequence[str], target_mb: int, smb: List[List[Packet]], mix: List[List[Packet]],
          smb_share: float) -> Dict[str, float]:
    """Write copies round-robin into out_paths (rotated files) until target_mb in all."""
    smb_bytes = sum(len(p[2]) for src in smb for p in src)  # type: ignore[misc]
    mix_bytes = sum(len(p[2]) for src in mix for p in src)  # type: ignore[misc]
    mix_times = 0
    if mix and smb_share < 1:
        mix_times = max(1, round(smb_bytes * (1 - smb_share) / (smb_share * mix_bytes)))
    replicas = smb + mix * mix_times
    per_file = target_mb * 1_000_000 / len(out_paths)
    written = {"bytes": 0, "packets": 0, "smb_bytes": 0}
    copy = 0
    for path in out_paths:
        size = 0
        with open(path, "wb") as dst:
            dst.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            while size < per_file:
                for when, orig, data in one_copy(copy, replicas):
                    dst.write(struct.pack("<IIII", when // 1_000_000, when % 1_000_000, len(data), orig) + data)
                    size += 16 + len(data)
                    written["packets"] += 1
                copy += 1
        written["bytes"] += size
    written["smb_bytes"] = smb_bytes * copy
    return written


class TreeWatch:
    """Peak resident memory of a process and all its descendants together (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0

    def sample(self) -> None:
        children: Dict[int, List[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            try:
                with open(f"/proc/{pid}/statm", "rb") as handle:
                    total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError):
                continue
        self.peak = max(self.peak, total)


def measure(cmd: Sequence[str], env=None) -> Tuple[float, float, float]:
    """(wall s, CPU s of the whole tree, peak tree RSS MB) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watch = TreeWatch(proc.pid)
    while proc.poll() is None:
        watch.sample()
        time.sleep(0.05)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, watch.peak / 1e6


def medians(cmd: Sequence[str], repeat: int, env=None) -> Tuple[float, float, float]:
    runs = [measure(cmd, env) for _ in range(repeat)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


# the files analysed one after another, one smbtrail run each: argv = the analyze command with every file
EACH_IN_ITS_OWN_RUN = """import subprocess, sys
cmd, files = sys.argv[1:3], [a for a in sys.argv[3:] if a.endswith('.pcap')]
rest = [a for a in sys.argv[3:] if not a.endswith('.pcap')]
for f in files:
    subprocess.run([*cmd, f, *rest, '--workers', '1'], check=True)
"""


def smbtrail_cmd(inputs: Sequence[str]) -> List[str]:
    script = shutil.which("smbtrail", path=os.path.dirname(sys.executable)) or "smbtrail"
    return [script, "analyze", *inputs, "--format", "jsonl", "-o", os.devnull]


def format_cmds(binary: str, capture: str) -> Dict[str, List[str]]:
    """tshark's output formats with the fields the engine reads."""
    from smbtrail import interfaces
    from smbtrail.capture.fields import field_list
    from smbtrail.network.pipeline import _decoder_fields

    names = field_list(_decoder_fields())
    base = [binary, "-n", "-r", capture, "-Y", tshark.DISPLAY_FILTER]
    disabled = [x for name in interfaces.all_dissectors() for x in ("--disable-protocol", name)]
    columns = ",".join(f'"{n}","%Cus:{n}:0:U"' for n in names)
    return {
        "-T fields, 1 field": base + ["-T", "fields", "-e", "frame.number"],
        f"-T fields, {len(names)} fields": base + disabled + ["-T", "fields", "-E", "occurrence=a"]
        + [x for n in names for x in ("-e", n)],
        f"custom columns, {len(names)} fields": base + disabled + ["-o", f"gui.column.format:{columns}"],
    }


def report(label: str, figures: Tuple[float, float, float], base: Tuple[float, float, float]) -> None:
    wall, cpu, rss = figures
    print(f"{label:<46} {wall:7.2f} s wall {wall / base[0]:5.2f}x   {cpu:7.2f} s CPU {cpu / base[1]:5.2f}x"
          f"   peak tree RSS {rss:6.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("smb", "mix", "rotated"), default="smb")
    parser.add_argument("--size-mb", type=int, default=255)
    parser.add_argument("--smb-share", type=float, default=0.09, help="share of SMB/RPC bytes in a mix")
    parser.add_argument("--files", type=int, default=8, help="rotated files (--mode rotated)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--formats", action="store_true", help="also time tshark's output formats")
    parser.add_argument("--from", dest="roots", action="append", default=[], help="SMB/RPC captures (dirs)")
    parser.add_argument("--keep", help="write the built capture (a directory for --mode rotated) here and keep it;"
                                       " if it exists already, measure it as it is")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="smbtrail-bench-")
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: str) -> None:
    rotated = args.mode == "rotated"
    if args.keep and os.path.exists(args.keep):
        outs = sorted(glob.glob(os.path.join(args.keep, "*.pcap"))) if rotated else [args.keep]
        size = sum(os.path.getsize(p) for p in outs)
        print(f"capture: {args.keep} ({size / 1e6:.0f} MB{f', {len(outs)} files' if rotated else ''}, built before); "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {args.repeat}", flush=True)
        measure_all(args, outs)
        return
    src_tmp = os.path.join(tmp, "sources")
    os.mkdir(src_tmp)
    roots = args.roots or [os.path.join(SHARED, s) for s in SMB_SOURCES]
    smb = load([p for root in roots for p in capture_files(root, src_tmp)], src_tmp)
    mix_files = [p for p in capture_files(os.path.join(SHARED, MIX_SOURCE), src_tmp)
                 if os.path.basename(p) not in MIX_LEFT_OUT]
    mix = load(mix_files, src_tmp) if args.mode != "smb" else []
    if not smb or (args.mode != "smb" and not mix):
        sys.exit(f"no source captures found under {SHARED}: give --from DIR or set SMBTRAIL_SHARED_DATA")
    shutil.rmtree(src_tmp)
    where = args.keep or os.path.join(tmp, "capture")
    if rotated:
        os.makedirs(where, exist_ok=True)
        outs = [os.path.join(where, f"sensor-{n:02d}.pcap") for n in range(args.files)]
    else:
        outs = [where if args.keep else where + ".pcap"]
    built = build(outs, args.size_mb, smb, mix, args.smb_share if args.mode != "smb" else 1.0)
    print(f"capture: {where} ({built['bytes'] / 1e6:.0f} MB, {built['packets']} packets, "
          f"{len(smb)} SMB/RPC + {len(mix)} other sources, SMB/RPC {built['smb_bytes'] / built['bytes']:.0%} "
          f"of the bytes{f', {len(outs)} files' if rotated else ''}); load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores; medians of {args.repeat}", flush=True)
    measure_all(args, outs)


def measure_all(args, outs: List[str]) -> None:
    rotated = args.mode == "rotated"
    binary = tshark.check_tshark()
    if rotated:
        runs = medians([sys.executable, "-c", EACH_IN_ITS_OWN_RUN, *smbtrail_cmd(outs)], args.repeat)
        report("smbtrail analyze, each file in its own run", runs, runs)
        cores = os.cpu_count() or 1
        one = medians(smbtrail_cmd(outs), args.repeat)
        report(f"smbtrail analyze, default ({dissect.worker_count()} tshark)", one, runs)
        every = medians(smbtrail_cmd(outs) + ["--workers", str(cores)], args.repeat)
        report(f"smbtrail analyze, {cores} tshark", every, runs)
        print(f"speed-up against a run per file: {runs[0] / one[0]:.2f}x with the default, "
              f"{runs[0] / every[0]:.2f}x with {cores} tshark   (goal >= 1.6x on 2 cores)")
        return
    capture = outs[0]
    quiet = medians([binary, "-n", "-r", capture, "-Y", tshark.DISPLAY_FILTER, "-q"], args.repeat)
    report("tshark -n -Y <filter> -q (baseline)", quiet, quiet)
    if args.formats:
        for label, cmd in format_cmds(binary, capture).items():
            report(f"tshark {label}", medians(cmd, args.repeat), quiet)
    ours = medians(smbtrail_cmd([capture]), args.repeat)
    report("smbtrail analyze", ours, quiet)
    goal = "0.3x" if args.mode == "mix" else "1.5x"
    print(f"ratio smbtrail / tshark -q: {ours[0] / quiet[0]:.2f} wall, {ours[1] / quiet[1]:.2f} CPU   "
          f"(goal <= {goal}); peak tree RSS {ours[2]:.0f} MB (goal < 1 GB at 2 GB)")


if __name__ == "__main__":
    main()
