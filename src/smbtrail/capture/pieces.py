"""Long captures cut into pieces tshark dissects with bounded memory, every TCP connection whole.

tshark keeps what it learns of every packet until the end of the file (its memory grows about 2.5 bytes
per byte read); a fresh tshark per piece bounds it. A piece takes the connections that begin while it
is the newest piece, with all their packets, to the end of the file: tshark's reassembly and
per-connection state (SMB sessions and trees, pipes, DCE/RPC binds, decryption) are then the same as on
the whole file, and the rows of the pieces, merged by frame number, are those of one pass. UDP and
other packets go to the newest piece (DNS, NetBIOS and Kerberos over UDP carry no state across packets);
the fragments of one IP datagram stay together. The bound: a piece is cut once the connections it
started reach `max_bytes`; a single connection larger than that still makes its piece that large.
"""

from __future__ import annotations

import mmap
import os
import struct
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, List, Optional, Tuple

from .prefilter import packets

ETHERNET, LINUX_SLL, RAW = 1, 113, 101
VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
RUN_BYTES = 1024 * 1024  # packets going to one piece are copied in runs of up to this much


@dataclass
class Piece:
    path: str
    frames: array = field(default_factory=lambda: array("I"))  # original frame number of each packet
    size: int = 0
    handle: Optional[BinaryIO] = None

    @property
    def first(self) -> int:
        return self.frames[0] if self.frames else 0


def split(path: str, frames: Optional[array], max_bytes: int, workdir: str) -> Optional[List[Piece]]:
    """The pieces of a pcap file (frames: the original numbers of its packets, None: 1..n); None when the
    file is not a classic pcap of a link type read here (it is then dissected whole)."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        header = bytes(data[:24])
        if len(header) < 24 or header[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                                                   b"\xa1\xb2\x3c\x4d"):
            return None
        endian = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
        if linktype not in (ETHERNET, LINUX_SLL, RAW):
            return None
        pieces, end = _cut(data, header, linktype, frames, max_bytes, workdir)
        if end < len(data):  # cut short in a packet: tshark, reading it whole, says so
            for piece in pieces:
                os.remove(piece.path)
            return None
        return pieces


def _cut(data, header: bytes, linktype: int, frames: Optional[array], max_bytes: int, workdir: str
         ) -> Tuple[List[Piece], int]:
    pieces: List[Piece] = []
    owner: Dict[tuple, Piece] = {}
    newest: Optional[Piece] = None
    end = 24
    writing: Optional[Piece] = None  # the piece the packets since `run` go to (written in one go)
    run = 24
    try:
        for number, (start, length) in enumerate(packets(data)):
            key = flow_key(data, start, length, linktype)
            piece = owner.get(key) if key is not None else None
            if piece is None:
                if newest is None or newest.size >= max_bytes:
                    newest = Piece(os.path.join(workdir, f"piece-{len(pieces):04d}.pcap"))
                    newest.handle = open(newest.path, "wb")
                    newest.handle.write(header)
                    pieces.append(newest)
                piece = newest
                if key is not None:
                    owner[key] = piece
            if piece is not writing or end - run >= RUN_BYTES:  # classic pcap: packet records are back to back
                if writing is not None:
                    writing.handle.write(data[run:end])  # type: ignore[union-attr]
                writing, run = piece, start - 16
            end = start + length
            piece.frames.append(frames[number] if frames is not None else number + 1)
            if piece is newest:
                newest.size += 16 + length
        if writing is not None:
            writing.handle.write(data[run:end])  # type: ignore[union-attr]
    finally:
        for piece in pieces:
            if piece.handle is not None:
                piece.handle.close()
                piece.handle = None
    return pieces, end


IP4 = struct.Struct(">B3x2sHxB2x4s4s")  # version and header length, id, fragment field, protocol, addresses
PORTS = struct.Struct(">HH")
ETHERTYPE = struct.Struct(">H")


def flow_key(data, start: int, length: int, linktype: int) -> Optional[Tuple]:
    """What ties a packet to others tshark must see with it: its TCP connection (both directions), or its
    IP datagram when fragmented; None for anything else."""
    offset, proto = _network_start(data, start, length, linktype)
    end = start + length
    if proto == 0x0800 and offset + 20 <= end:
        version, ident, fragment, protocol, src, dst = IP4.unpack_from(data, offset)
        if fragment & 0x3FFF:
            return ("f", src, dst, ident, protocol)
        header_len = (version & 0x0F) * 4
        if protocol == 6 and offset + header_len + 4 <= end:
            return _tcp(src, dst, data, offset + header_len)
    elif proto == 0x86DD and offset + 40 <= end:
        src, dst = bytes(data[offset + 8:offset + 24]), bytes(data[offset + 24:offset + 40])
        if data[offset + 6] == 44 and offset + 48 <= end:
            return ("f", src, dst, bytes(data[offset + 44:offset + 48]))
        if data[offset + 6] == 6 and offset + 44 <= end:
            return _tcp(src, dst, data, offset + 40)
    return None


def _tcp(src: bytes, dst: bytes, data, at: int) -> Tuple:
    sport, dport = PORTS.unpack_from(data, at)
    one, other = (src, sport), (dst, dport)
    return ("t",) + ((one, other) if one <= other else (other, one))


def _network_start(data, start: int, length: int, linktype: int) -> Tuple[int, int]:
    """(offset of the IP header, its ethertype) past link headers and VLAN tags."""
    if linktype == RAW:
        version = data[start] >> 4 if length else 0
        return start, {4: 0x0800, 6: 0x86DD}.get(version, 0)
    offset = start + (12 if linktype == ETHERNET else 14)
    end = start + length
    while offset + 2 <= end:
        (proto,) = ETHERTYPE.unpack_from(data, offset)
        if proto not in VLAN_TAGS:
            return offset + 2, proto
        offset += 4
    return end, 0
