"""Capture files (pcap, pcapng, gzip of either) read as a stream of records that can be written back changed.

Every record comes back as it was read: a file or block header as its bytes, a packet as a `Packet` whose
`raw` is the whole record and whose `encode` builds the record again around new packet data. Damage at the
end of a file is handed back as bytes to copy, and named through `warn`.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, List, Optional, Union

MAX_RECORD = 1 << 28  # a pcap/pcapng record larger than this is corruption, not a packet


class WhatIfError(ValueError):
    """The input cannot be rewritten at all (unreadable, not a capture); the message names the file."""


@dataclass
class Packet:
    number: int
    linktype: int
    data: bytes
    orig_len: int
    raw: bytes  # the whole record, written back unchanged when the packet is not rewritten
    encode: Callable[[bytes, int], bytes]  # new captured data, new original length -> record


Item = Union[bytes, Packet]


def open_capture(path: str) -> BinaryIO:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise WhatIfError(f"{path}: cannot open: {exc.strerror or exc}") from None
    if handle.read(2) == b"\x1f\x8b":
        handle.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    handle.seek(0)
    return handle


def capture_items(path: str, handle: BinaryIO, warn: Callable[[str], None]) -> Iterator[Item]:
    try:
        head = handle.read(4)
    except OSError as exc:
        raise WhatIfError(f"{path}: cannot read: {exc}") from None
    if head in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return _pcap_items(path, handle, head, "<", warn)
    if head in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return _pcap_items(path, handle, head, ">", warn)
    if head == b"\x0a\x0d\x0d\x0a":
        return _pcapng_items(path, handle, head, warn)
    raise WhatIfError(f"{path}: not a pcap or pcapng capture (no capture file signature)")


def _pcap_items(path: str, handle: BinaryIO, head: bytes, e: str, warn) -> Iterator[Item]:
    header = head + handle.read(20)
    if len(header) < 24:
        raise WhatIfError(f"{path}: pcap header cut short")
    linktype = struct.unpack(e + "I", header[20:24])[0] & 0x03FFFFFF
    yield header
    number = 0
    while True:
        rec = handle.read(16)
        if not rec:
            return
        ts1, ts2, caplen, orig = struct.unpack(e + "IIII", rec) if len(rec) == 16 else (0, 0, MAX_RECORD, 0)
        if caplen >= MAX_RECORD:
            yield _tail(path, rec + handle.read(), "record header cut short or corrupt", warn)
            return
        data = handle.read(caplen)
        if len(data) < caplen:
            yield _tail(path, rec + data, "last packet cut short", warn)
            return
        number += 1

        def encode(new: bytes, olen: int, _t=(ts1, ts2)) -> bytes:
            return struct.pack(e + "IIII", _t[0], _t[1], len(new), olen) + new

        yield Packet(number, linktype, data, orig, rec + data, encode)


def _tail(path: str, raw: bytes, what: str, warn) -> bytes:
    warn(f"{path}: {what} at the end; those {len(raw)} bytes are copied unchanged")
    return raw


def _pcapng_items(path: str, handle: BinaryIO, head: bytes, warn) -> Iterator[Item]:
    e = "<"
    linktypes: List[int] = []
    number = 0
    pending = head
    while True:
        start = pending + handle.read(8 - len(pending))
        pending = b""
        if not start:
            return
        if len(start) < 8:
            yield _tail(path, start, "block header cut short", warn)
            return
        if start[:4] == b"\x0a\x0d\x0d\x0a":
            bom = handle.read(4)
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            start += bom
            linktypes = []
        btype, blen = struct.unpack(e + "II", start[:8])
        if blen < 12 or blen % 4 or blen >= MAX_RECORD:
            yield _tail(path, start + handle.read(), f"corrupt block length {blen}", warn)
            return
        block = start + handle.read(blen - len(start))
        if len(block) < blen or struct.unpack(e + "I", block[-4:])[0] != blen:
            yield _tail(path, block + handle.read(), "block cut short or corrupt", warn)
            return
        if btype == 1:
            linktypes.append(struct.unpack(e + "H", block[8:10])[0])
        packet = _pcapng_packet(block, btype, e, linktypes, number + 1)
        if packet is None:
            yield block
        else:
            number += 1
            yield packet


def _pcapng_packet(block: bytes, btype: int, e: str, linktypes: List[int], number: int) -> Optional[Packet]:
    body = block[8:-4]
    if btype == 6:  # enhanced packet block
        iface, tsh, tsl, caplen, orig = struct.unpack(e + "IIIII", body[:20])
        fixed, data_at = struct.pack(e + "III", iface, tsh, tsl), 20
    elif btype == 2:  # obsolete packet block
        iface, drops, tsh, tsl, caplen, orig = struct.unpack(e + "HHIIII", body[:20])
        fixed, data_at = struct.pack(e + "HHII", iface, drops, tsh, tsl), 20
    elif btype == 3:  # simple packet block: no caplen, no options
        iface, orig = 0, struct.unpack(e + "I", body[:4])[0]
        caplen, fixed, data_at = min(orig, len(body) - 4), b"", 4
    else:
        return None
    data = body[data_at:data_at + caplen]
    options = body[data_at + caplen + (-caplen % 4):] if btype != 3 else b""
    linktype = linktypes[iface] if iface < len(linktypes) else -1

    def encode(new: bytes, olen: int) -> bytes:
        sizes = struct.pack(e + "I", olen) if btype == 3 else struct.pack(e + "II", len(new), olen)
        inner = fixed + sizes + new + bytes(-len(new) % 4) + options
        total = len(inner) + 12
        return struct.pack(e + "II", btype, total) + inner + struct.pack(e + "I", total)

    return Packet(number, linktype, data, orig, block, encode)

