"""smbtrail command line: the same engine as the Splunk app, for a responder with files.

Exit codes: 0 every input read; 1 some inputs unreadable or partial (the rest was analysed);
2 usage error or no input could be read; 3 tshark missing or too old.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Iterator, List, Optional

from . import __version__
from .engine import Options, analyze
from .pydantic_api import SecretStr
from .records import ERROR, Record

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_TSHARK = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smbtrail", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"smbtrail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    an = sub.add_parser("analyze", help="captures and/or host logs -> trail records")
    an.add_argument("inputs", nargs="*",
                    help="captures (pcap, pcapng, gzip, zip), Zeek logs (TSV or JSON, gzip) or directories of them")
    an.add_argument("--hostlog", action="append", default=[], metavar="FILE_OR_DIR",
                    help="Windows event logs: .evtx, JSON lines, XML, Samba audit JSON, zip (repeatable)")
    an.add_argument("--format", choices=("jsonl", "table", "html"), default="table")
    an.add_argument("-o", "--output", help="write here instead of stdout")
    an.add_argument("--all-events", action="store_true", help="pass through host events outside the covered set")
    an.add_argument("--verbose", "-v", action="store_true", help="table: show every record, not just commands")
    an.add_argument("--no-fuse", action="store_true", help="keep network and host records unjoined")
    keys = an.add_argument_group("decryption (secrets never appear in output, logs or errors)")
    keys.add_argument("--keys", metavar="FILE", help="SMB3 session keys, one session per line")
    keys.add_argument("--password", action="append", default=[], metavar="PW",
                      help="NTLM password (repeatable); prefer --password-env or --password-file")
    keys.add_argument("--password-env", action="append", default=[], metavar="VAR",
                      help="read a password from this environment variable")
    keys.add_argument("--password-file", metavar="FILE", help="read passwords from a file, one per line")
    keys.add_argument("--nt-hash", action="append", default=[], metavar="HASH", help="NT hash (32 hex digits)")
    keys.add_argument("--keytab", metavar="FILE", help="Kerberos keytab (service keys, or RC4 = NT hashes)")
    from . import coverage

    coverage.register(sub)
    return parser


def _options(args: argparse.Namespace) -> Options:
    passwords: List[str] = list(args.password)
    passwords += [os.environ[v] for v in args.password_env if v in os.environ]
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as handle:
            passwords += [line.rstrip("\n") for line in handle if line.strip()]
    return Options(all_events=args.all_events, keys_file=args.keys, passwords=[SecretStr(p) for p in passwords],
                   nt_hashes=[SecretStr(h) for h in args.nt_hash], keytab=args.keytab, fuse=not args.no_fuse)


class _ErrorTap:
    """Passes records through, reporting error records on stderr as they go by."""

    def __init__(self, records: Iterator[Record], err: IO[str]) -> None:
        self.records = records
        self.err = err
        self.errors = 0
        self.good = 0

    def __iter__(self) -> Iterator[Record]:
        for rec in self.records:
            if rec.kind == ERROR:
                self.errors += 1
                self.err.write(f"smbtrail: {'partial' if rec.partial else 'error'}: {rec.message}\n")
                self.good += rec.partial
            else:
                self.good += 1
            yield rec


def run_analyze(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if not args.inputs and not args.hostlog:
        err.write("smbtrail: error: give at least one capture or --hostlog\n")
        return EXIT_USAGE
    try:
        options = _options(args)
    except OSError as exc:
        err.write(f"smbtrail: error: {args.password_file}: {exc.strerror}\n")
        return EXIT_USAGE
    from .capture.inputs import captures_among
    from .capture.tshark import TsharkMissing, check_tshark

    if captures_among(args.inputs):  # Zeek logs alone need no tshark
        try:
            check_tshark()
        except TsharkMissing as exc:
            err.write(f"smbtrail: error: {exc}\n")
            return EXIT_TSHARK
    tap = _ErrorTap(analyze(args.inputs, args.hostlog, options), err)
    _write(args.format, tap, out)
    if tap.errors and not tap.good:
        return EXIT_USAGE
    return EXIT_PARTIAL if tap.errors else EXIT_OK


def _write(fmt: str, records, out: IO[str]) -> None:
    if fmt == "jsonl":
        from .output.jsonl import write_jsonl

        write_jsonl(records, out)
    elif fmt == "html":
        from .output.html import write_html

        write_html(records, out)
    else:
        from .output.table import write_table

        write_table(records, out)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "coverage":
        from . import coverage

        return coverage.run(args)
    if args.command == "analyze":
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                return run_analyze(args, out, sys.stderr)
        return run_analyze(args, sys.stdout, sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
