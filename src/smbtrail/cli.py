"""smbtrail command line: the same engine as the Splunk app, for a responder with files.

Exit codes: 0 every input read; 1 some inputs unreadable or partial (the rest was analysed);
2 usage error or no input could be read; 3 tshark missing or too old; 4 the output could not be written
(a closed pipe, as `| head` makes, ends the run quietly).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any, Dict, Iterator, List, Optional

from . import __version__
from .engine import Options, analyze
from .options import max_expansion_from_environment
from .output import printable
from .progress import Progress, TerminalLine
from .pydantic_api import SecretStr
from .records import ERROR, Record
from .whatif.rewrite import SCOPES, WhatIfError, rewrite_capture

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_TSHARK, EXIT_OUTPUT = 0, 1, 2, 3, 4


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
    an.add_argument("--workers", type=int, default=0, metavar="N",
                    help="tshark processes at once (default: one per core but one, which the analysis uses; "
                         "the output is the same)")
    _secret_options(an.add_argument_group("decryption (secrets never appear in output, logs or errors)"))
    cov = sub.add_parser("coverage", help="what survives SMB3 encryption: network only vs with host logs")
    cov.add_argument("inputs", nargs="+", help="cleartext capture files or directories (pcap, pcapng, gzip, zip)")
    cov.add_argument("--hostlog", action="append", default=[], metavar="FILE_OR_DIR",
                     help="Windows event logs of the same period (repeatable)")
    cov.add_argument("--scope", action="append", choices=SCOPES, help="encryption setting(s) (default: all)")
    cov.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    cov.add_argument("-o", "--output", help="write here instead of stdout")
    cov.add_argument("--keep-rewritten", metavar="DIR", help="keep the rewritten captures in DIR")
    _secret_options(cov.add_argument_group("decryption of the cleartext reference (the what-if sensor has none)"))
    what = sub.add_parser("whatif", help="rewrite a capture as a sensor would see it under SMB3 encryption")
    what.add_argument("capture", help="cleartext capture (pcap or pcapng, may be gzip-compressed)")
    what.add_argument("rewritten", help="where to write the rewritten capture")
    what.add_argument("--scope", choices=SCOPES, default="server", help="encryption setting (default: server)")
    return parser


def _secret_options(keys) -> None:
    keys.add_argument("--keys", metavar="FILE", help="SMB3 session keys, one session per line")
    keys.add_argument("--password", action="append", default=[], metavar="PW",
                      help="NTLM password (repeatable); prefer --password-env or --password-file")
    keys.add_argument("--password-env", action="append", default=[], metavar="VAR",
                      help="read a password from this environment variable")
    keys.add_argument("--password-file", metavar="FILE", help="read passwords from a file, one per line")
    keys.add_argument("--nt-hash", action="append", default=[], metavar="HASH", help="NT hash (32 hex digits)")
    keys.add_argument("--keytab", metavar="FILE", help="Kerberos keytab (service keys, or RC4 = NT hashes)")


class UsageError(Exception):
    pass


def _secrets(args: argparse.Namespace) -> Dict[str, Any]:
    """The secret options, as the Options fields they fill."""
    passwords: List[str] = list(args.password)
    for name in args.password_env:
        if name not in os.environ:
            raise UsageError(f"--password-env {name}: no such environment variable")
        passwords.append(os.environ.pop(name))  # gone from the environment tshark inherits
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                passwords += [line.rstrip("\n") for line in handle if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{args.password_file}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    return {"keys_file": args.keys, "passwords": [SecretStr(p) for p in passwords],
            "nt_hashes": [SecretStr(h) for h in args.nt_hash], "keytab": args.keytab}


def _options(args: argparse.Namespace) -> Options:
    return Options(all_events=args.all_events, fuse=not args.no_fuse, workers=args.workers,
                   max_expansion=max_expansion_from_environment(), **_secrets(args))


class _ErrorTap:
    """Passes records through, reporting error records on stderr as they go by."""

    def __init__(self, records: Iterator[Record], err: IO[str], line: Optional[TerminalLine] = None) -> None:
        self.records = records
        self.err = err
        self.line = line
        self.errors = 0
        self.good = 0

    def __iter__(self) -> Iterator[Record]:
        for rec in self.records:
            if rec.kind == ERROR:
                self.errors += 1
                if self.line:
                    self.line.clear()
                self.err.write(f"smbtrail: {'partial' if rec.partial else 'error'}: {printable(rec.message)}\n")
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
    except UsageError as exc:
        err.write(f"smbtrail: error: {printable(exc)}\n")
        return EXIT_USAGE
    from .capture.tshark import TsharkMissing, check_tshark
    from .network.pipeline import captures_among

    if captures_among(args.inputs, options):  # Zeek logs alone need no tshark
        try:
            check_tshark()
        except TsharkMissing as exc:
            err.write(f"smbtrail: error: {exc}\n")
            return EXIT_TSHARK
    line = TerminalLine(err) if _is_terminal(err) else None
    records = analyze(args.inputs, args.hostlog, options, Progress(line) if line else None)
    tap = _ErrorTap(records, err, line)
    try:
        _write(args.format, tap, _Clearing(out, line) if line and _is_terminal(out) else out, args.verbose)
        out.flush()
    finally:
        if line:
            line.clear()
        close = getattr(records, "close", None)
        if close:
            close()  # stops tshark and removes temporary files now, also when the output failed
    if tap.errors and not tap.good:
        return EXIT_USAGE
    return EXIT_PARTIAL if tap.errors else EXIT_OK


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Clearing:
    """Output to the terminal the progress line is on: the line is cleared before each write."""

    def __init__(self, out: IO[str], line: TerminalLine) -> None:
        self.out, self.line = out, line

    def write(self, text: str) -> int:
        self.line.clear()
        return self.out.write(text)

    def __getattr__(self, name: str):
        return getattr(self.out, name)


def _write(fmt: str, records, out, verbose: bool = False) -> None:
    if fmt == "jsonl":
        from .output.jsonl import write_jsonl

        write_jsonl(records, out)
    elif fmt == "html":
        from .output.html import write_html

        write_html(records, out)
    else:
        from .output.table import write_table

        write_table(records, out, verbose=verbose)


def run_coverage(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """The coverage report; exit codes as `analyze`."""
    try:
        options = Options(max_expansion=max_expansion_from_environment(), **_secrets(args))
    except UsageError as exc:
        err.write(f"smbtrail: error: {printable(exc)}\n")
        return EXIT_USAGE
    from .capture.tshark import TsharkMissing, check_tshark
    from .whatif.coverage import coverage_report

    try:
        check_tshark()
    except TsharkMissing as exc:
        err.write(f"smbtrail: error: {exc}\n")
        return EXIT_TSHARK
    report = coverage_report(args.inputs, args.hostlog, options, args.scope or SCOPES, args.keep_rewritten)
    if args.format == "json":
        out.write(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    else:
        out.write(report.markdown() if args.format == "markdown" else report.text())
    for message in report.errors:
        err.write(f"smbtrail: partial: {printable(message)}\n")
    if not report.items and report.errors:
        return EXIT_USAGE
    return EXIT_PARTIAL if report.errors else EXIT_OK


def run_whatif(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """One capture rewritten; its statistics on stdout. 1: damage in the capture was copied as it was."""
    try:
        stats = rewrite_capture(args.capture, args.rewritten, args.scope)
    except WhatIfError as exc:
        err.write(f"smbtrail: error: {printable(exc)}\n")
        return EXIT_USAGE
    out.write(stats.model_dump_json(indent=2) + "\n")
    for warning in stats.warnings:
        err.write(f"smbtrail: partial: {printable(warning)}\n")
    return EXIT_PARTIAL if stats.partial else EXIT_OK


COMMANDS = {"analyze": run_analyze, "coverage": run_coverage, "whatif": run_whatif}


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    run = COMMANDS[args.command]
    from .encryption.keys import terminate_on_signals

    terminate_on_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: temporary secrets and files are removed
    output = getattr(args, "output", None)
    try:
        if output:
            with open(output, "w", encoding="utf-8") as out:
                return run(args, out, sys.stderr)
        return run(args, sys.stdout, sys.stderr)
    except BrokenPipeError:
        _quiet_stdout()  # the reader stopped (`| head`): not an error to shout about
        return EXIT_OUTPUT
    except OSError as exc:
        where = output or "standard output"
        sys.stderr.write(f"smbtrail: error: cannot write {printable(where)}: {exc.strerror or exc}\n")
        _quiet_stdout()
        return EXIT_OUTPUT
    except KeyboardInterrupt:
        sys.stderr.write("smbtrail: interrupted\n")
        return 130


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's own flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
