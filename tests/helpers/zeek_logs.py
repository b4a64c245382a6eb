"""Zeek logs as Zeek would have written them for a capture: derived from the capture's own records.

What Zeek logs of SMB and DCE/RPC is known from its scripts (base/protocols/{smb,dce-rpc,ntlm,krb}):
one dce_rpc line per call (interface and operation names, no arguments; winreg handle calls and a
few others ignored by default), one smb_mapping line per tree connect, smb_files lines for opens,
deletes and renames (reads and writes are not in smb_files by default; files.log has the transfer
and its direction), ntlm.log per NTLM authentication, kerberos.log per KDC exchange, conn.log per
connection. No argument, status or access mask survives: exactly what the reader must cope with.
A run captured on two hosts (some OTRF zips hold one capture per host) gives two Zeek sensors' logs,
one directory each.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from typing import Dict, Iterable, List, Tuple

from smbtrail.records import FILE, OPERATION, SESSION, TREE, Record
from smbtrail.zeek import names

FIELDS = {
    "conn": ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
             "conn_state", "history"],
    "dce_rpc": ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "rtt", "named_pipe", "endpoint",
                "operation"],
    "smb_mapping": ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "path", "service",
                    "native_file_system", "share_type"],
    "smb_files": ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "fuid", "action", "path", "name",
                  "size", "prev_name"],
    "files": ["ts", "fuid", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "source", "filename",
              "is_orig", "seen_bytes"],
    "ntlm": ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "username", "hostname", "domainname",
             "server_nb_computer_name", "server_dns_computer_name", "server_tree_name", "success"],
    "kerberos": ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "request_type", "client",
                 "service", "success", "error_msg"],
}
# DCE_RPC::ignored_operations, Zeek's default: not logged at all
IGNORED = {"winreg": {"BaseRegCloseKey", "BaseRegGetVersion", "BaseRegOpenKey", "BaseRegQueryValue",
                      "BaseRegDeleteKeyEx", "OpenLocalMachine", "BaseRegEnumKey", "OpenClassesRoot"},
           "spoolss": {"RpcSplOpenPrinter", "RpcClosePrinter"}, "wkssvc": {"NetrWkstaGetInfo"}}


def uid_of(rec: Record) -> str:
    key = f"{rec.src_ip}|{rec.src_port}|{rec.dest_ip}|{rec.dest_port}"
    return "C" + hashlib.sha1(key.encode()).hexdigest()[:17]


def zeek_rows(records: Iterable[Record]) -> Dict[str, List[dict]]:
    logs: Dict[str, List[dict]] = {name: [] for name in FIELDS}
    seen: Dict[Tuple, dict] = {}
    for rec in sorted(records, key=lambda r: r.time):
        if not (rec.src_ip and rec.dest_ip and rec.src_port):
            continue
        base = {"ts": rec.time.timestamp(), "uid": uid_of(rec), "id.orig_h": rec.src_ip, "id.orig_p": rec.src_port,
                "id.resp_h": rec.dest_ip, "id.resp_p": rec.dest_port}
        conn_key = (rec.src_ip, rec.src_port, rec.dest_ip, rec.dest_port)
        if conn_key not in seen:
            seen[conn_key] = dict(base, proto="tcp", service="smb" if rec.dest_port in (139, 445) else "dce_rpc",
                                  conn_state="SF")
            logs["conn"].append(seen[conn_key])
        for log, row in _rows(rec, base):
            logs[log].append(row)
    return logs


def _rows(rec: Record, base: dict) -> List[Tuple[str, dict]]:
    unc = rec.args.get("unc") or f"\\\\{rec.dest_host or rec.dest_ip}\\{rec.share}"
    if rec.kind == OPERATION and rec.rpc_uuid and rec.opnum is not None:
        endpoint, operation = names.zeek_endpoint(rec.rpc_uuid), names.zeek_operation(rec.rpc_uuid, rec.opnum)
        if operation in IGNORED.get(endpoint, ()):
            return []
        pipe = f"\\PIPE\\{rec.path}" if rec.transport == "ncacn_np" and rec.path else str(rec.dest_port)
        return [("dce_rpc", dict(base, named_pipe=pipe, endpoint=endpoint, operation=operation))]
    if rec.kind == TREE and rec.share:
        return [("smb_mapping", dict(base, path=unc, share_type="PIPE" if rec.share.upper() == "IPC$" else "DISK"))]
    if rec.kind == FILE and rec.path:
        pipe = rec.operation == "pipe_open"
        row = dict(base, action="SMB::FILE_OPEN", path=unc, name=("\\" + rec.path) if pipe else rec.path, size=0)
        rows = [("smb_files", row)]
        if rec.operation in ("delete", "rename"):
            rows.append(("smb_files", dict(row, action=f"SMB::FILE_{rec.operation.upper()}")))
        if rec.operation in ("write", "read"):
            size = rec.args.get("bytes_written") or rec.args.get("bytes_read") or 0
            rows.append(("files", dict(base, fuid="F" + uid_of(rec)[1:], source="SMB", filename=rec.path,
                                       is_orig=rec.operation == "write", seen_bytes=size)))
        return rows
    if rec.kind == SESSION and rec.protocol == "kerberos" and rec.user:
        return [("kerberos", dict(base, request_type=(rec.operation or "tgs").split("_")[0].upper(),
                                  client=f"{rec.user}/{rec.domain or ''}", service=rec.args.get("service"),
                                  success=rec.status == "ok", error_msg=None if rec.status == "ok" else rec.status))]
    if rec.kind == SESSION and rec.args.get("auth") == "ntlm" and rec.user:
        return [("ntlm", dict(base, username=rec.user, hostname=rec.src_host, domainname=rec.domain,
                              server_nb_computer_name=(rec.dest_host or "").split(".")[0] or None,
                              success=rec.status == "ok"))]
    return []


def write_logs(records: Iterable[Record], directory: str, fmt: str = "tsv", gz: bool = False) -> List[str]:
    """Per capture file (sensor) a directory with one file per log, Zeek's TSV (with its header and
    escapes) or JSON lines; returns the paths."""
    by_sensor: Dict[str, List[Record]] = {}
    for rec in records:
        if rec.provenance:
            by_sensor.setdefault(rec.provenance[0].file, []).append(rec)
    paths = []
    for number, sensor in enumerate(sorted(by_sensor)):
        paths += _write_sensor(by_sensor[sensor], os.path.join(directory, f"sensor{number}"), fmt, gz)
    return paths


def _write_sensor(records: List[Record], directory: str, fmt: str, gz: bool) -> List[str]:
    os.makedirs(directory, exist_ok=True)
    paths = []
    for log, rows in zeek_rows(records).items():
        if not rows:
            continue
        path = os.path.join(directory, f"{log}.log" + (".gz" if gz else ""))
        text = _tsv(log, rows) if fmt == "tsv" else "".join(json.dumps(_json_row(r)) + "\n" for r in rows)
        with (gzip.open(path, "wt", encoding="utf-8") if gz else open(path, "w", encoding="utf-8")) as out:
            out.write(text)
        paths.append(path)
    return paths


def _tsv(log: str, rows: List[dict]) -> str:
    fields = FIELDS[log]
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", f"#path\t{log}",
             "#open\t2024-01-01-00-00-00", "#fields\t" + "\t".join(fields), "#types\t" + "\t".join("string" for _ in fields)]
    for row in rows:
        lines.append("\t".join(_tsv_value(row.get(name)) for name in fields))
    lines.append("#close\t2024-01-01-00-00-01")
    return "\n".join(lines) + "\n"


def _tsv_value(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        return f"{value:.6f}"
    text = str(value).replace("\\", "\\\\").replace("\t", "\\x09")
    return "\\x2d" if text == "-" else text


def _json_row(row: dict) -> dict:
    return {k: v for k, v in row.items() if v not in (None, "")}
