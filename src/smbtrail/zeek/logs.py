"""Zeek log files -> rows: TSV with `#fields` headers (Zeek's ASCII writer) or JSON lines (its JSON
writer, the json-streaming-logs package), plain or gzip, under any name rotation gives them.

Which log a file holds is read from its content: the TSV `#path` header, the JSON `_path` key, else the
fields a row has; the file name (`dce_rpc.log`, `dce_rpc.2018-03-24-17-00-00.log.gz`,
`json_streaming_dce_rpc.1.log`) only when the content does not say. Logs smbtrail does not use
(dns, http, ...) are skipped. One bad line costs that line: it is counted and reported with the file,
and the rest is read. A log inside a zip archive comes as `LogFile(archive.zip!member, open)`, its bytes
decompressed by the input layer within the expansion bound, as a gzip log file's are.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zipfile
import zlib
from typing import IO, Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from ..input_files import DEFAULT_MAX_EXPANSION, GZIP_MAGIC, InputError, gunzip, open_regular, plain_head, read_exactly
from ..records import ERROR, Provenance, Record, from_epoch
from .rows import RowError, row_records

SNIFF = 4096
USED = ("dce_rpc", "smb_mapping", "smb_files", "files", "ntlm", "kerberos", "conn")
# the fields that tell a row's log when nothing names it, most specific first
SIGNATURES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("dce_rpc", ("endpoint", "operation")),
    ("smb_mapping", ("share_type",)),
    ("smb_files", ("action", "name")),
    ("ntlm", ("username", "domainname")),
    ("ntlm", ("username", "server_nb_computer_name")),
    ("kerberos", ("request_type", "client")),
    ("files", ("fuid", "source", "is_orig")),
    ("files", ("fuid", "tx_hosts")),
    ("conn", ("conn_state",)),
)
ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")
NAME = re.compile(r"^(?:json_streaming_)?([a-z0-9_]+?)(?:[._-]\d|\.log|$)")
SMB_OR_RPC = ("135", "139", "445")


class LogFile(NamedTuple):
    """A Zeek log to read: its name in records and errors, (inside an archive) how to open its bytes, and
    how many times its gzip'd bytes may expand (Options.max_expansion)."""

    name: str
    open: Optional[Callable[[], IO[bytes]]] = None
    max_expansion: float = DEFAULT_MAX_EXPANSION


def sniff(head: bytes) -> Optional[str]:
    """'tsv' | 'json' when these first bytes (decompressed) begin a Zeek log, else None."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.split("\n", 8)
    if any(line.startswith(("#separator", "#fields")) for line in lines[:8]):
        return "tsv"  # a comment may come first (Zeek's own test baselines begin with one)
    line = lines[0].strip()
    if line.startswith("{"):
        try:
            row = json.loads(line)
        except ValueError:
            return None  # a line cut by the sniff window, or not JSON
        if isinstance(row, dict) and "ts" in row and ("_path" in row or "uid" in row or "fuid" in row):
            return "json"
    return None


def is_zeek_log(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = plain_head(handle.read(SNIFF), SNIFF)
    except OSError:
        return False
    return sniff(head) is not None


def is_zeek_head(head: bytes) -> bool:
    """Whether a file's first bytes (decompressed) begin a Zeek log."""
    return sniff(head) is not None


def read_log(log: Union[str, LogFile]) -> Iterator[Record]:
    log = LogFile(log) if isinstance(log, str) else log
    reader = _Reader(log.name)
    try:
        with _open(log) as handle:
            yield from reader.records(handle)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, InputError) as exc:
        # a rotating file cut mid-write, a corrupt member, a decompression bomb
        yield error(log.name, f"read stopped after line {reader.line} ({exc.__class__.__name__}: {exc})",
                    partial=reader.line > 0)
        return
    yield from reader.summary()


def _open(log: LogFile) -> IO[str]:
    raw = log.open() if log.open is not None else _file(log.name, log.max_expansion)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")  # type: ignore[arg-type]


def _file(path: str, max_expansion: float) -> IO[bytes]:
    """A log file's bytes, gunzipped (within the expansion bound) when it is gzip."""
    handle = open_regular(path)
    try:
        head = read_exactly(handle, 2)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return gunzip(handle, max_expansion) if head == GZIP_MAGIC else handle


class _Reader:
    """One file's state: its TSV header, the log it holds, what went wrong and where."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.line = 0
        self.log: Optional[str] = None  # declared by #path / _path
        self.fields: List[str] = []
        self.types: List[str] = []
        self.separator = "\t"
        self.set_separator = ","
        self.unset = "-"
        self.empty = "(empty)"
        self.bad: List[Tuple[int, str]] = []
        self.untimed = 0
        self.rows = 0

    def records(self, handle: IO[str]) -> Iterator[Record]:
        for raw in handle:
            self.line += 1
            line = raw.rstrip("\n").rstrip("\r")
            if not line:
                continue
            if line.startswith("#"):
                self._directive(line)
                continue
            try:
                if line.lstrip().startswith("{"):
                    row = self._json(line)
                    log = self._log_of(row)
                    if log == "conn" and str(row.get("id.resp_p")) not in SMB_OR_RPC and not _smb_service(row):
                        continue
                else:
                    if self.fields and self.log not in USED:
                        continue  # a log smbtrail does not read (dns, http, ...): not worth parsing
                    values = line.split(self.separator)
                    if self.log == "conn" and not self._smb_conn(values):
                        continue  # most of conn.log: dropped before it is parsed
                    row, log = self._tsv(values), self.log
                if log not in USED:
                    continue
                found = row_records(log, row, self.path, self.line)
            except (RowError, ValueError, TypeError) as exc:
                self._bad(str(exc))
                continue
            self.rows += 1
            for rec in found:
                self.untimed += bool(rec.args.get("time_unknown"))
                yield rec

    def summary(self) -> Iterator[Record]:
        if self.bad:
            first, reason = self.bad[0]
            yield error(self.path, f"{len(self.bad)} unreadable line(s), the first at line {first}: {reason}",
                        partial=True)
        if self.untimed:
            yield error(self.path, f"{self.untimed} record(s) without a readable time (masked or bad 'ts'): "
                                   "kept, dated 1970-01-01", partial=True)

    def _bad(self, reason: str) -> None:
        if len(self.bad) < 1000:
            self.bad.append((self.line, reason[:200]))

    # -- TSV ---------------------------------------------------------------------------------------
    def _directive(self, line: str) -> None:
        if line.startswith("#separator"):
            self.separator = unescape(line[len("#separator"):].strip()) or "\t"
            return
        key, *values = line[1:].split(self.separator)
        if key == "fields":
            self.fields = values
            self.log = self.log or log_of_fields(dict.fromkeys(values)) or log_of_name(self.path)
        elif key == "types":
            self.types = values
        elif key == "path" and values:
            self.log = values[0]
        elif key == "set_separator" and values:
            self.set_separator = unescape(values[0])
        elif key == "unset_field" and values:
            self.unset = values[0]
        elif key == "empty_field" and values:
            self.empty = values[0]

    def _smb_conn(self, values: List[str]) -> bool:
        row = dict(zip(self.fields, values))
        return row.get("id.resp_p") in SMB_OR_RPC or _smb_service(row)

    def _tsv(self, values: List[str]) -> Dict[str, Any]:
        if not self.fields:
            raise RowError("a data line before any #fields header")
        if len(values) != len(self.fields):
            raise RowError(f"{len(values)} values for {len(self.fields)} fields")
        row: Dict[str, Any] = {}
        types = self.types if len(self.types) == len(self.fields) else [""] * len(self.fields)
        for name, kind, value in zip(self.fields, types, values):
            if value == self.unset:
                continue
            container = kind.startswith(("set[", "vector["))
            if value == self.empty:
                row[name] = [] if container else ""
            elif container:
                row[name] = [unescape(v) for v in value.split(self.set_separator)]
            else:
                row[name] = unescape(value)
        return row

    # -- JSON --------------------------------------------------------------------------------------
    def _json(self, line: str) -> Dict[str, Any]:
        row = json.loads(line)
        if not isinstance(row, dict):
            raise RowError("a JSON line that is not an object")
        nested = [k for k, v in row.items() if isinstance(v, dict)]
        for key in nested:  # {"id": {"orig_h": ...}} as some shippers nest it
            for sub, value in row.pop(key).items():
                row[f"{key}.{sub}"] = value
        return row

    def _log_of(self, row: Dict[str, Any]) -> Optional[str]:
        declared = row.get("_path") or self.log
        if declared:
            return str(declared)
        self.log = log_of_fields(row) or log_of_name(self.path)
        return self.log


def log_of_fields(row: Dict[str, Any]) -> Optional[str]:
    for log, needed in SIGNATURES:
        if all(name in row for name in needed):
            return log
    return None


def log_of_name(path: str) -> Optional[str]:
    match = NAME.match(os.path.basename(path.rsplit("!", 1)[-1]).lower())  # a zip member: its own name
    return match.group(1) if match else None


def _smb_service(row: Dict[str, Any]) -> bool:
    service = str(row.get("service") or "")
    return "smb" in service or "dce_rpc" in service


def unescape(value: str) -> str:
    """Zeek's ASCII escapes: `\\\\` for a backslash, `\\xHH` for a byte it will not write as is."""
    if "\\" not in value:
        return value
    return ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), value)


def error(path: str, reason: str, partial: bool = False) -> Record:
    try:
        when = os.path.getmtime(path.split("!", 1)[0])  # a zip member: the archive's time
    except OSError:
        when = 0.0
    return Record(time=from_epoch(when), kind=ERROR, message=f"{path}: {reason}", partial=partial,
                  provenance=[Provenance(file=path)], status="partial" if partial else "error")
