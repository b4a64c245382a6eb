"""TCP under the rewrite: link, IP and TCP headers of the link types sensors write, the SMB connections of a
capture with each direction reassembled, and each packet written again once transform headers grew its
stream: payload cut from the new stream, sequence and acknowledgement numbers (and SACK edges) shifted, IP
lengths and checksums recomputed.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .pcapfile import Packet
from .smb2 import SMB_PORTS, TRANSFORM_SIZE

MASK32 = 0xFFFFFFFF
TCP_SYN, TCP_ACK = 0x02, 0x10


# ---------------------------------------------------------------- link, IP and TCP headers

@dataclass
class Tcp:
    ip_off: int
    version: int
    tcp_off: int
    data_off: int
    ip_end: int  # end of the IP packet (beyond the captured data if the snap length cut it)
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    tso: bool = False  # IP length field 0 (segmentation offload): the packet runs to the end of the data

    @property
    def length(self) -> int:
        return self.ip_end - self.data_off


ETHERTYPES = {0x0800: 4, 0x86DD: 6}
VLAN_TYPES = (0x8100, 0x88A8, 0x9100)


def _ip_start(linktype: int, data: bytes) -> Optional[Tuple[int, int]]:
    """(offset of the IP header, IP version) for the link types sensors write, else None."""
    if linktype == 1 and len(data) >= 14:  # Ethernet, with any VLAN tags
        off, ethertype = 14, struct.unpack(">H", data[12:14])[0]
        while ethertype in VLAN_TYPES and len(data) >= off + 4:
            ethertype, off = struct.unpack(">H", data[off + 2:off + 4])[0], off + 4
        return (off, ETHERTYPES[ethertype]) if ethertype in ETHERTYPES else None
    if linktype == 113 and len(data) >= 16:  # Linux cooked v1
        proto = struct.unpack(">H", data[14:16])[0]
        return (16, ETHERTYPES[proto]) if proto in ETHERTYPES else None
    if linktype == 276 and len(data) >= 20:  # Linux cooked v2
        proto = struct.unpack(">H", data[0:2])[0]
        return (20, ETHERTYPES[proto]) if proto in ETHERTYPES else None
    if linktype in (0, 108) and len(data) >= 4:  # BSD loopback: address family in either byte order
        family = min(struct.unpack("<I", data[:4])[0], struct.unpack(">I", data[:4])[0])
        return (4, 4) if family == 2 else (4, 6) if family in (10, 24, 28, 30) else None
    if linktype in (101, 12, 14, 228, 229) and data:
        return 0, data[0] >> 4
    return None


def parse_packet(linktype: int, data: bytes) -> Optional[Tcp]:
    start = _ip_start(linktype, data)
    if start is None:
        return None
    off, version = start
    if version == 4 and len(data) >= off + 20:
        return _ipv4(data, off)
    if version == 6 and len(data) >= off + 40:
        return _ipv6(data, off)
    return None


def _ipv4(data: bytes, off: int) -> Optional[Tcp]:
    ihl = (data[off] & 0x0F) * 4
    total, frag = struct.unpack(">HxxH", data[off + 2:off + 8])
    if data[off + 9] != 6 or ihl < 20 or frag & 0x3FFF:
        return None
    end = off + total if total else len(data)  # 0: segmentation offload, as Wireshark presumes
    return _parse_tcp(data, off, 4, off + ihl, end, data[off + 12:off + 16], data[off + 16:off + 20], not total)


def _ipv6(data: bytes, off: int) -> Optional[Tcp]:
    plen, nxt, at = struct.unpack(">H", data[off + 4:off + 6])[0], data[off + 6], off + 40
    while nxt in (0, 43, 60, 51) and len(data) >= at + 8:  # extension headers (not fragments)
        size = (data[at + 1] + 2) * 4 if nxt == 51 else (data[at + 1] + 1) * 8
        nxt, at = data[at], at + size
    if nxt != 6:
        return None
    end = off + 40 + plen if plen else len(data)
    return _parse_tcp(data, off, 6, at, end, data[off + 8:off + 24], data[off + 24:off + 40], not plen)


def _parse_tcp(data: bytes, ip_off: int, version: int, tcp: int, ip_end: int, src: bytes, dst: bytes,
               tso: bool) -> Optional[Tcp]:
    if len(data) < tcp + 20:
        return None
    sport, dport, seq, ack = struct.unpack(">HHII", data[tcp:tcp + 12])
    data_off = tcp + (data[tcp + 12] >> 4) * 4
    if data_off < tcp + 20 or data_off > ip_end:
        return None
    return Tcp(ip_off, version, tcp, data_off, ip_end, src, dst, sport, dport, seq, ack, data[tcp + 13], tso)


def _signed(value: int) -> int:
    value &= MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def _checksum(data: bytes) -> bytes:
    """Internet checksum, returned in the byte order it is stored in."""
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return struct.pack("=H", ~total & 0xFFFF)


# ---------------------------------------------------------------- TCP connections (first pass)

@dataclass
class Direction:
    segments: List[Tuple[int, bytes, int, int]] = field(default_factory=list)  # seq, payload, length, IP room
    isn: Optional[int] = None
    base: Optional[int] = None  # sequence number of stream offset 0
    stream: bytes = b""
    new: bytes = b""
    points: List[int] = field(default_factory=list)  # stream offsets where 52 bytes were inserted

    def seq(self, value: int) -> int:
        if self.base is None or not self.points:
            return value
        return (value + TRANSFORM_SIZE * bisect_left(self.points, _signed(value - self.base))) & MASK32

    def offset(self, value: int) -> int:
        return _signed(value - self.base) if self.base is not None else 0

    def new_offset(self, offset: int) -> int:
        return offset + TRANSFORM_SIZE * bisect_left(self.points, offset)


@dataclass
class Conn:
    client: Tuple[bytes, int]
    server: Tuple[bytes, int]
    up: Direction = field(default_factory=Direction)  # client -> server
    down: Direction = field(default_factory=Direction)
    problem: Optional[str] = None
    rewritten: bool = False

    def direction(self, to_server: bool) -> Direction:
        return self.up if to_server else self.down

    def name(self) -> Tuple[str, str]:
        return _endpoint(*self.client), _endpoint(*self.server)


def _endpoint(addr: bytes, port: int) -> str:
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


class Collector:
    """First pass: every TCP segment to or from an SMB port, grouped by connection and direction."""

    def __init__(self) -> None:
        self.conns: List[Conn] = []
        self.active: Dict[tuple, Conn] = {}
        self.owner: Dict[int, Tuple[Conn, bool]] = {}  # frame number -> (connection, to_server)

    def add(self, number: int, tcp: Tcp, data: bytes) -> None:
        to_server = tcp.dport in SMB_PORTS
        if not to_server and tcp.sport not in SMB_PORTS:
            return
        client, server = ((tcp.src, tcp.sport), (tcp.dst, tcp.dport)) if to_server else \
            ((tcp.dst, tcp.dport), (tcp.src, tcp.sport))
        conn = self._conn(client, server, tcp, to_server)
        side = conn.direction(to_server)
        if tcp.flags & TCP_SYN:
            side.isn = tcp.seq
        payload = data[tcp.data_off:min(tcp.ip_end, len(data))]
        if tcp.length > len(payload):
            conn.problem = conn.problem or f"frame {number}: payload cut by the snap length"
        if tcp.length:
            room = 1 << 30 if tcp.tso else 0xFFFF - (tcp.ip_end - tcp.ip_off - (0 if tcp.version == 4 else 40))
            side.segments.append((tcp.seq, payload, tcp.length, room))
        self.owner[number] = (conn, to_server)

    def _conn(self, client, server, tcp: Tcp, to_server: bool) -> Conn:
        key = (client, server)
        conn = self.active.get(key)
        new_syn = tcp.flags & TCP_SYN and not tcp.flags & TCP_ACK and to_server
        reused = conn is not None and conn.up.isn != tcp.seq and \
            (conn.up.isn is not None or bool(conn.up.segments or conn.down.segments))
        if conn is None or (new_syn and reused):
            conn = self.active[key] = Conn(client, server)
            self.conns.append(conn)
        return conn


def assemble(side: Direction) -> Optional[str]:
    """Fill side.stream from the segments in sequence order; the reason if bytes are missing."""
    if not side.segments:
        side.base = None if side.isn is None else (side.isn + 1) & MASK32
        return None
    if side.isn is not None:
        side.base = (side.isn + 1) & MASK32
    else:
        ref = side.segments[0][0]
        side.base = (ref + min(_signed(seg[0] - ref) for seg in side.segments)) & MASK32
    stream = bytearray()
    for seq, payload, _, _ in sorted(side.segments, key=lambda s: _signed(s[0] - side.base)):
        start = _signed(seq - side.base)
        if start > len(stream):
            return f"{start - len(stream)} bytes missing at stream offset {len(stream)} (segment not captured)"
        skip = len(stream) - start
        if skip < len(payload):
            stream += payload[max(skip, 0):]
    side.stream = bytes(stream)
    return None


# ---------------------------------------------------------------- second pass: packets

def rewrite_packet(packet: Packet, tcp: Tcp, own: Direction, peer: Direction) -> bytes:
    data = packet.data
    payload = data[tcp.data_off:tcp.ip_end]
    if tcp.length and own.base is not None and own.offset(tcp.seq) >= 0:
        start = own.offset(tcp.seq)
        payload = own.new[own.new_offset(start):own.new_offset(start + tcp.length)]
    header = bytearray(data[:tcp.data_off])
    struct.pack_into(">I", header, tcp.tcp_off + 4, own.seq(tcp.seq))
    if tcp.flags & TCP_ACK:
        struct.pack_into(">I", header, tcp.tcp_off + 8, peer.seq(tcp.ack))
    _remap_sack(header, tcp, peer)
    delta = len(payload) - tcp.length
    if header == data[:tcp.data_off] and payload == data[tcp.data_off:tcp.ip_end]:
        return packet.raw  # nothing moved: the original bytes, checksums included
    _fix_ip(header, tcp, delta)
    header[tcp.tcp_off + 16:tcp.tcp_off + 18] = b"\0\0"
    segment = bytes(header[tcp.tcp_off:]) + payload
    header[tcp.tcp_off + 16:tcp.tcp_off + 18] = _checksum(_pseudo_header(tcp, len(segment)) + segment)
    return packet.encode(bytes(header) + payload + data[tcp.ip_end:], packet.orig_len + delta)


def _remap_sack(header: bytearray, tcp: Tcp, peer: Direction) -> None:
    at = tcp.tcp_off + 20
    while at < tcp.data_off:
        kind = header[at]
        if kind == 0:
            return
        if kind == 1:
            at += 1
            continue
        size = header[at + 1] if at + 1 < tcp.data_off else 0
        if size < 2:
            return
        if kind == 5:
            for edge in range(at + 2, min(at + size, tcp.data_off) - 3, 4):
                struct.pack_into(">I", header, edge, peer.seq(struct.unpack_from(">I", header, edge)[0]))
        at += size


def _fix_ip(header: bytearray, tcp: Tcp, delta: int) -> None:
    off = tcp.ip_off
    if tcp.tso:
        return  # length field stays 0, as the offloading sender wrote it
    if tcp.version == 4:
        total = struct.unpack_from(">H", header, off + 2)[0] + delta
        struct.pack_into(">H", header, off + 2, total)
        ihl = (header[off] & 0x0F) * 4
        header[off + 10:off + 12] = b"\0\0"
        header[off + 10:off + 12] = _checksum(bytes(header[off:off + ihl]))
    else:
        struct.pack_into(">H", header, off + 4, struct.unpack_from(">H", header, off + 4)[0] + delta)


def _pseudo_header(tcp: Tcp, length: int) -> bytes:
    if tcp.version == 4:
        return tcp.src + tcp.dst + struct.pack(">BBH", 0, 6, length)
    return tcp.src + tcp.dst + struct.pack(">IxxxB", length, 6)


def too_long(conn: Conn) -> bool:
    """An IP length field would overflow once transform headers are added."""
    for side in (conn.up, conn.down):
        for seq, _, length, room in side.segments:
            start = side.offset(seq)
            if start >= 0 and side.new_offset(start + length) - side.new_offset(start) - length > room:
                return True
    return False

