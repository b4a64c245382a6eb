"""Capture inputs: files, directories, zip archives; each checked by content before tshark sees it."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
CAPTURE_EXTENSIONS = (".pcap", ".pcapng", ".cap", ".gz", ".dmp", ".zip", ".erf", ".snoop")


@dataclass
class Source:
    path: str  # what the user named (a member of a zip is shown as archive.zip!member)
    error: Optional[str] = None
    kind: Optional[str] = None  # pcap | pcapng | gzip | zip | zeek (a Zeek log, read by smbtrail.zeek)


def sniff(path: str) -> Source:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return Source(path, error=exc.strerror or str(exc))
    if not head:
        return Source(path, error="empty file")
    if head not in PCAP_MAGICS and head not in (PCAPNG_MAGIC, ZIP_MAGIC) and _zeek_log(path):
        return Source(path, kind="zeek")
    if head in PCAP_MAGICS:
        return Source(path, kind="pcap")
    if head == PCAPNG_MAGIC:
        return Source(path, kind="pcapng")
    if head[:2] == GZIP_MAGIC:
        return Source(path, kind="gzip")
    if head == ZIP_MAGIC:
        return Source(path, kind="zip")
    return Source(path, error="not a capture file (no pcap/pcapng/gzip/zip signature) nor a Zeek log")


def _zeek_log(path: str) -> bool:
    from ..zeek import is_zeek_log

    return is_zeek_log(path)


def expand(paths: Sequence[str]) -> List[Source]:
    """Every file named, and every capture-looking file under named directories, in a stable order."""
    sources: List[Source] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    source = sniff(os.path.join(root, name))
                    if source.error and not name.lower().endswith(CAPTURE_EXTENSIONS):
                        continue  # a key file, a README... beside the captures: not ours to judge
                    sources.append(source)
        elif os.path.exists(path):
            sources.append(sniff(path))
        else:
            sources.append(Source(path, error="no such file or directory"))
    return sources


def captures_among(paths: Sequence[str]) -> bool:
    """Whether any input is (or claims to be) a capture rather than a Zeek log: tshark is needed then."""
    return any(source.kind != "zeek" for source in expand(paths))


@contextmanager
def readable_files(source: Source) -> Iterator[List[tuple]]:
    """(display name, path tshark can read) pairs; zip members are extracted to a temp dir."""
    if source.kind != "zip":
        yield [(source.path, source.path)]
        return
    tmp = tempfile.mkdtemp(prefix="smbtrail-zip-")
    try:
        members = []
        with zipfile.ZipFile(source.path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                target = os.path.join(tmp, f"{len(members)}-{os.path.basename(info.filename)}")
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                members.append((f"{source.path}!{info.filename}", target))
        yield members
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
