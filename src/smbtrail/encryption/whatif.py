"""Encryption what-if: a cleartext capture rewritten as a sensor would have seen it under SMB3 encryption.

Scopes: ``server`` (encryption required server-wide): every SMB2 message of a session except
NEGOTIATE and SESSION_SETUP travels inside a TRANSFORM_HEADER; ``share`` (only file shares
encrypted): messages on trees other than IPC$, but not the TREE_CONNECT itself; ``none``: a copy.
A transformed NBSS message keeps its plaintext size as OriginalMessageSize, gets random ciphertext
and grows by the 52-byte transform header, so every later TCP sequence/ack number (and SACK edge)
of that direction shifts; NBSS lengths, IP lengths and checksums follow. Anything that is not SMB2
over TCP 445/139 is copied byte for byte, and so is a connection that cannot be reassembled
(missing segments, capture started mid-message): those are listed in the stats with the reason.
"""

from __future__ import annotations

import gzip
import ipaddress
import random
import struct
import sys
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple, Union

from ..pydantic_api import BaseModel, Field

SCOPES = ("none", "share", "server")
SMB_PORTS = (445, 139)
TRANSFORM_SIZE = 52
MASK32 = 0xFFFFFFFF
NEGOTIATE, SESSION_SETUP, TREE_CONNECT = 0, 1, 3
FLAG_RESPONSE, FLAG_ASYNC, FLAG_RELATED = 0x1, 0x2, 0x4
NO_SESSION = bytes(8)
ANY_ID = 0xFFFFFFFFFFFFFFFF
SMB_MAGICS = (b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\xfcSMB")
NBSS_TYPES = (0x00, 0x81, 0x82, 0x83, 0x84, 0x85)
TCP_SYN, TCP_ACK = 0x02, 0x10
MAX_RECORD = 1 << 28  # a pcap/pcapng record larger than this is corruption, not a packet


class WhatIfError(ValueError):
    """The input cannot be rewritten at all (unreadable, not a capture); the message names the file."""


class FlowNote(BaseModel):
    client: str
    server: str
    reason: str


class RewriteStats(BaseModel):
    src: str
    dst: str
    scope: str
    frames: int = 0
    frames_changed: int = 0
    smb_connections: int = 0
    connections_rewritten: int = 0
    nbss_messages_encrypted: int = 0  # one transform each (a compound chain is one message)
    smb2_messages_encrypted: int = 0
    smb2_messages_clear: int = 0
    sessions_encrypted: int = 0
    bytes_added: int = 0
    unknown_tree_messages: int = 0  # share scope: tree never connected in the capture, left clear
    smb2x_connections: int = 0  # dialect 2.x cannot encrypt: the what-if assumes the client would use 3.x
    untouched: List[FlowNote] = Field(default_factory=list)
    warnings: List[str] = Field(default_factory=list)
    partial: bool = False


# ---------------------------------------------------------------- capture files (pcap, pcapng)

@dataclass
class _Packet:
    number: int
    linktype: int
    data: bytes
    orig_len: int
    raw: bytes  # the whole record, written back unchanged when the packet is not rewritten
    encode: Callable[[bytes, int], bytes]  # new captured data, new original length -> record


_Item = Union[bytes, _Packet]


def _open(path: str) -> BinaryIO:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise WhatIfError(f"{path}: cannot open: {exc.strerror or exc}") from None
    if handle.read(2) == b"\x1f\x8b":
        handle.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    handle.seek(0)
    return handle


def _items(path: str, handle: BinaryIO, warn: Callable[[str], None]) -> Iterator[_Item]:
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


def _pcap_items(path: str, handle: BinaryIO, head: bytes, e: str, warn) -> Iterator[_Item]:
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

        yield _Packet(number, linktype, data, orig, rec + data, encode)


def _tail(path: str, raw: bytes, what: str, warn) -> bytes:
    warn(f"{path}: {what} at the end; those {len(raw)} bytes are copied unchanged")
    return raw


def _pcapng_items(path: str, handle: BinaryIO, head: bytes, warn) -> Iterator[_Item]:
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


def _pcapng_packet(block: bytes, btype: int, e: str, linktypes: List[int], number: int) -> Optional[_Packet]:
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

    return _Packet(number, linktype, data, orig, block, encode)


# ---------------------------------------------------------------- link, IP and TCP headers

@dataclass
class _Tcp:
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


def _parse(linktype: int, data: bytes) -> Optional[_Tcp]:
    start = _ip_start(linktype, data)
    if start is None:
        return None
    off, version = start
    if version == 4 and len(data) >= off + 20:
        return _ipv4(data, off)
    if version == 6 and len(data) >= off + 40:
        return _ipv6(data, off)
    return None


def _ipv4(data: bytes, off: int) -> Optional[_Tcp]:
    ihl = (data[off] & 0x0F) * 4
    total, frag = struct.unpack(">HxxH", data[off + 2:off + 8])
    if data[off + 9] != 6 or ihl < 20 or frag & 0x3FFF:
        return None
    end = off + total if total else len(data)  # 0: segmentation offload, as Wireshark presumes
    return _parse_tcp(data, off, 4, off + ihl, end, data[off + 12:off + 16], data[off + 16:off + 20], not total)


def _ipv6(data: bytes, off: int) -> Optional[_Tcp]:
    plen, nxt, at = struct.unpack(">H", data[off + 4:off + 6])[0], data[off + 6], off + 40
    while nxt in (0, 43, 60, 51) and len(data) >= at + 8:  # extension headers (not fragments)
        size = (data[at + 1] + 2) * 4 if nxt == 51 else (data[at + 1] + 1) * 8
        nxt, at = data[at], at + size
    if nxt != 6:
        return None
    end = off + 40 + plen if plen else len(data)
    return _parse_tcp(data, off, 6, at, end, data[off + 8:off + 24], data[off + 24:off + 40], not plen)


def _parse_tcp(data: bytes, ip_off: int, version: int, tcp: int, ip_end: int, src: bytes, dst: bytes,
               tso: bool) -> Optional[_Tcp]:
    if len(data) < tcp + 20:
        return None
    sport, dport, seq, ack = struct.unpack(">HHII", data[tcp:tcp + 12])
    data_off = tcp + (data[tcp + 12] >> 4) * 4
    if data_off < tcp + 20 or data_off > ip_end:
        return None
    return _Tcp(ip_off, version, tcp, data_off, ip_end, src, dst, sport, dport, seq, ack, data[tcp + 13], tso)


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
class _Direction:
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
class _Conn:
    client: Tuple[bytes, int]
    server: Tuple[bytes, int]
    up: _Direction = field(default_factory=_Direction)  # client -> server
    down: _Direction = field(default_factory=_Direction)
    problem: Optional[str] = None
    rewritten: bool = False

    def direction(self, to_server: bool) -> _Direction:
        return self.up if to_server else self.down

    def name(self) -> Tuple[str, str]:
        return _endpoint(*self.client), _endpoint(*self.server)


def _endpoint(addr: bytes, port: int) -> str:
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


class _Collector:
    """First pass: every TCP segment to or from an SMB port, grouped by connection and direction."""

    def __init__(self) -> None:
        self.conns: List[_Conn] = []
        self.active: Dict[tuple, _Conn] = {}
        self.owner: Dict[int, Tuple[_Conn, bool]] = {}  # frame number -> (connection, to_server)

    def add(self, number: int, tcp: _Tcp, data: bytes) -> None:
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

    def _conn(self, client, server, tcp: _Tcp, to_server: bool) -> _Conn:
        key = (client, server)
        conn = self.active.get(key)
        new_syn = tcp.flags & TCP_SYN and not tcp.flags & TCP_ACK and to_server
        reused = conn is not None and conn.up.isn != tcp.seq and \
            (conn.up.isn is not None or bool(conn.up.segments or conn.down.segments))
        if conn is None or (new_syn and reused):
            conn = self.active[key] = _Conn(client, server)
            self.conns.append(conn)
        return conn


def _assemble(side: _Direction) -> Optional[str]:
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


# ---------------------------------------------------------------- NBSS / SMB2 messages

@dataclass
class _Header:
    at: int  # stream offset of the SMB2 header
    command: int
    flags: int
    status: int
    message_id: int
    tree_id: Optional[int]  # None in an async header
    session: bytes


@dataclass
class _Message:
    at: int  # stream offset of the NBSS header
    length: int
    headers: List[_Header]
    encrypt: bool = False


def _messages(stream: bytes) -> Tuple[List[_Message], Optional[str]]:
    """NBSS messages of one direction; SMB2 headers parsed where the bytes were captured."""
    found: List[_Message] = []
    pos = 0
    while pos + 4 <= len(stream):
        kind, length = stream[pos], int.from_bytes(stream[pos + 1:pos + 4], "big")
        magic = stream[pos + 4:pos + 8]
        if kind not in NBSS_TYPES or (kind == 0 and len(magic) == 4 and magic not in SMB_MAGICS):
            return found, f"not NBSS/SMB framing at stream offset {pos} (capture started mid-message?)"
        headers = _headers(stream, pos + 4, pos + 4 + length) if kind == 0 and magic == b"\xfeSMB" else []
        found.append(_Message(pos, length, headers))
        pos += 4 + length
    return found, None


def _headers(stream: bytes, at: int, end: int) -> List[_Header]:
    headers: List[_Header] = []
    end = min(end, len(stream))
    while at + 64 <= end and stream[at:at + 4] == b"\xfeSMB":
        status, command = struct.unpack("<IH", stream[at + 8:at + 14])
        flags, nxt, message_id = struct.unpack("<IIQ", stream[at + 16:at + 32])
        tree = None if flags & FLAG_ASYNC else struct.unpack("<I", stream[at + 36:at + 40])[0]
        headers.append(_Header(at, command, flags, status, message_id, tree, stream[at + 40:at + 48]))
        if not nxt or nxt < 64:
            break
        at += nxt
    return headers


def _share_name(stream: bytes, hdr: _Header) -> Optional[str]:
    """Share named by a TREE_CONNECT request (\\\\server\\share -> SHARE)."""
    body = hdr.at + 64
    if len(stream) < body + 8:
        return None
    offset, length = struct.unpack("<HH", stream[body + 4:body + 8])
    raw = stream[hdr.at + offset:hdr.at + offset + length]
    path = raw.decode("utf-16-le", "replace")
    return path.rstrip("\\").rsplit("\\", 1)[-1].upper() or None


# ---------------------------------------------------------------- what to encrypt

class _Decider:
    """Per connection: which NBSS messages become transforms under the scope."""

    def __init__(self, scope: str, up: List[_Message], up_stream: bytes, down: List[_Message]) -> None:
        self.scope = scope
        self.up, self.down = up, down  # requests (client to server), responses
        self.trees = self._trees(up_stream)
        self.unknown = 0

    def _trees(self, up_stream: bytes) -> Dict[Tuple[bytes, int], str]:
        asked = {h.message_id: _share_name(up_stream, h)
                 for m in self.up for h in m.headers if h.command == TREE_CONNECT}
        trees: Dict[Tuple[bytes, int], str] = {}
        for m in self.down:
            for h in m.headers:
                if h.command == TREE_CONNECT and h.status == 0 and h.tree_id is not None and asked.get(h.message_id):
                    trees[(h.session, h.tree_id)] = asked[h.message_id]  # type: ignore[assignment]
        return trees

    def decide(self) -> None:
        by_request: Dict[int, bool] = {}
        for message in self.up:
            message.encrypt = self._chain(message.headers)
            for hdr in message.headers:
                by_request[hdr.message_id] = message.encrypt
        for message in self.down:
            answered = [by_request[h.message_id] for h in message.headers
                        if h.message_id != ANY_ID and h.message_id in by_request]
            message.encrypt = any(answered) if answered else self._chain(message.headers)

    def _chain(self, headers: List[_Header]) -> bool:
        encrypt, session, tree = False, NO_SESSION, None
        for hdr in headers:
            if not (hdr.flags & FLAG_RELATED):
                session, tree = hdr.session, hdr.tree_id
            encrypt = self._rule(hdr.command, session, tree) or encrypt
        return encrypt

    def _rule(self, command: int, session: bytes, tree: Optional[int]) -> bool:
        if command in (NEGOTIATE, SESSION_SETUP) or session == NO_SESSION:
            return False
        if self.scope == "server":
            return True
        if command == TREE_CONNECT or not tree:
            return False
        share = self.trees.get((session, tree))
        if share is None:
            self.unknown += 1
            return False
        return share != "IPC$"

    def sessions(self) -> set:
        return {h.session for m in self.up + self.down if m.encrypt for h in m.headers[:1]}


# ---------------------------------------------------------------- building the encrypted streams

@dataclass
class _Cipher:
    """Transform header contents: Samba-style nonces (a counter per direction), random signature."""

    rng: random.Random
    nonce_size: int  # 11 for AES-CCM, 12 for AES-GCM
    counter: int = 0
    salt: bytes = b""

    def header(self, length: int, session: bytes) -> bytes:
        self.counter += 1
        if not self.salt:
            self.salt = self.rng.getrandbits(32).to_bytes(4, "little")[: self.nonce_size - 8]
        nonce = (self.counter.to_bytes(8, "little") + self.salt).ljust(16, b"\0")
        signature = self.rng.getrandbits(128).to_bytes(16, "little")
        return b"\xfdSMB" + signature + nonce + struct.pack("<IHH", length, 0, 1) + session


def _negotiated(down: List[_Message], stream: bytes) -> Tuple[int, int]:
    """(dialect, cipher id) from the NEGOTIATE response; cipher 2 (AES-128-GCM) when 3.1.1 named none."""
    for message in down:
        for hdr in message.headers:
            if hdr.command == NEGOTIATE and len(stream) >= hdr.at + 128:
                dialect = struct.unpack("<H", stream[hdr.at + 68:hdr.at + 70])[0]
                if dialect == 0x02FF:
                    continue
                cipher = _context_cipher(stream, hdr) if dialect == 0x0311 else 1
                return dialect, cipher or 2
    return 0, 2


def _context_cipher(stream: bytes, hdr: _Header) -> int:
    count = struct.unpack("<H", stream[hdr.at + 70:hdr.at + 72])[0]
    at = hdr.at + struct.unpack("<I", stream[hdr.at + 124:hdr.at + 128])[0]
    for _ in range(min(count, 16)):
        if len(stream) < at + 8:
            break
        ctype, size = struct.unpack("<HH", stream[at:at + 4])
        if ctype == 2 and size >= 4 and len(stream) >= at + 12:
            return struct.unpack("<H", stream[at + 10:at + 12])[0]
        at += 8 + size + (-(8 + size) % 8)
    return 0


def _flag_patches(stream: bytes, messages: List[_Message], scope: str, sessions: set,
                  trees: Dict[Tuple[bytes, int], str]) -> bytes:
    """Server responses left clear say what the server would have announced: the session's
    ENCRYPT_DATA flag (server scope) or the share's ENCRYPT_DATA flag (share scope)."""
    patched = bytearray(stream)
    for message in messages:
        if message.encrypt or len(message.headers) != 1:
            continue
        hdr, body = message.headers[0], message.headers[0].at + 64
        if hdr.status != 0 or len(stream) < body + 8:
            continue
        if scope == "server" and hdr.command == SESSION_SETUP and hdr.session in sessions:
            patched[body + 2] |= 0x04
        share = trees.get((hdr.session, hdr.tree_id or 0))
        if scope == "share" and hdr.command == TREE_CONNECT and share and share != "IPC$":
            patched[body + 5] |= 0x80
    return bytes(patched)


def _encrypt_stream(side: _Direction, messages: List[_Message], cipher: _Cipher) -> int:
    """side.new and side.points from side.stream; returns the number of transforms."""
    out, pos, count = bytearray(), 0, 0
    for message in messages:
        if message.length + TRANSFORM_SIZE > 0xFFFFFF:
            message.encrypt = False  # cannot be framed: stays clear
        if not message.encrypt:
            continue
        session = next((h.session for h in message.headers if h.session != NO_SESSION), NO_SESSION)
        out += side.stream[pos:message.at]
        out += (message.length + TRANSFORM_SIZE).to_bytes(4, "big")
        out += cipher.header(message.length, session)
        out += cipher.rng.randbytes(message.length)
        side.points.append(message.at + 4)
        pos = message.at + 4 + message.length
        count += 1
    out += side.stream[pos:]
    side.new = bytes(out)
    return count


def _plan(conn: _Conn, scope: str, rng: random.Random, stats: RewriteStats) -> None:
    for side in (conn.up, conn.down):
        conn.problem = conn.problem or _assemble(side)
    if conn.problem:
        return
    up, problem_up = _messages(conn.up.stream)
    down, problem_down = _messages(conn.down.stream)
    conn.problem = problem_up or problem_down
    if conn.problem:
        return
    if not any(m.headers for m in up + down):
        if scope != "none" and up + down:
            conn.problem = "no SMB2 message (SMB1 has no encryption)"
        return
    client, server = (conn.up, up), (conn.down, down)
    if _responses(up) > _responses(down):  # the SMB port is on the client's side: go by the SMB2 flags
        client, server = server, client
    decider = _Decider(scope, client[1], client[0].stream, server[1])
    decider.decide()
    sessions = decider.sessions()
    server[0].stream = _flag_patches(server[0].stream, server[1], scope, sessions, decider.trees)
    dialect, cipher_id = _negotiated(server[1], server[0].stream)
    nonce = 11 if cipher_id in (1, 3) else 12
    transforms = sum(_encrypt_stream(side, msgs, _Cipher(rng, nonce))
                     for side, msgs in ((conn.up, up), (conn.down, down)))
    _count(stats, up + down, transforms, len(sessions), decider.unknown)
    if transforms and dialect and dialect < 0x0300:
        stats.smb2x_connections += 1
    conn.rewritten = transforms > 0


def _responses(messages: List[_Message]) -> int:
    return sum(bool(m.headers[0].flags & FLAG_RESPONSE) for m in messages if m.headers)


def _count(stats: RewriteStats, messages: List[_Message], transforms: int, sessions: int, unknown: int) -> None:
    stats.nbss_messages_encrypted += transforms
    stats.smb2_messages_encrypted += sum(len(m.headers) for m in messages if m.encrypt)
    stats.smb2_messages_clear += sum(len(m.headers) for m in messages if not m.encrypt)
    stats.sessions_encrypted += sessions
    stats.unknown_tree_messages += unknown


# ---------------------------------------------------------------- second pass: packets

def _rewrite_packet(packet: _Packet, tcp: _Tcp, own: _Direction, peer: _Direction) -> bytes:
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


def _remap_sack(header: bytearray, tcp: _Tcp, peer: _Direction) -> None:
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


def _fix_ip(header: bytearray, tcp: _Tcp, delta: int) -> None:
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


def _pseudo_header(tcp: _Tcp, length: int) -> bytes:
    if tcp.version == 4:
        return tcp.src + tcp.dst + struct.pack(">BBH", 0, 6, length)
    return tcp.src + tcp.dst + struct.pack(">IxxxB", length, 6)


def _too_long(conn: _Conn) -> bool:
    """An IP length field would overflow once transform headers are added."""
    for side in (conn.up, conn.down):
        for seq, _, length, room in side.segments:
            start = side.offset(seq)
            if start >= 0 and side.new_offset(start + length) - side.new_offset(start) - length > room:
                return True
    return False


# ---------------------------------------------------------------- entry point

def rewrite_capture(src: str, dst: str, scope: str, seed: int = 0) -> RewriteStats:
    """Write dst: src as seen under SMB3 encryption of the given scope (none | share | server).

    Raises WhatIfError (message names the file) when src is not a readable pcap/pcapng; damage
    inside the file is copied unchanged, listed in stats.warnings and marks stats.partial.
    """
    if scope not in SCOPES:
        raise WhatIfError(f"unknown encryption scope {scope!r} (expected one of {', '.join(SCOPES)})")
    stats = RewriteStats(src=src, dst=dst, scope=scope)
    collector = _first_pass(src, stats)
    stats.smb_connections = len(collector.conns)
    rng = random.Random(seed)
    for conn in collector.conns:
        if scope != "none":
            _plan(conn, scope, rng, stats)
        if conn.problem:
            client, server = conn.name()
            stats.untouched.append(FlowNote(client=client, server=server, reason=conn.problem))
            conn.rewritten = False
        elif conn.rewritten and _too_long(conn):
            client, server = conn.name()
            stats.untouched.append(FlowNote(client=client, server=server, reason="an IPv4 packet would exceed 64 KiB"))
            conn.rewritten = False
    stats.connections_rewritten = sum(c.rewritten for c in collector.conns)
    _second_pass(src, dst, collector, stats)
    stats.partial = bool(stats.warnings)
    return stats


def _first_pass(src: str, stats: RewriteStats) -> _Collector:
    collector = _Collector()
    with _open(src) as handle:
        for item in _items(src, handle, lambda message: None):
            if isinstance(item, _Packet):
                stats.frames += 1
                tcp = _parse(item.linktype, item.data)
                if tcp is not None:
                    collector.add(item.number, tcp, item.data)
    return collector


def _second_pass(src: str, dst: str, collector: _Collector, stats: RewriteStats) -> None:
    try:
        out = open(dst, "wb")
    except OSError as exc:
        raise WhatIfError(f"{dst}: cannot write: {exc.strerror or exc}") from None
    with _open(src) as handle, out:
        for item in _items(src, handle, stats.warnings.append):
            if not isinstance(item, _Packet):
                out.write(item)
                continue
            owner = collector.owner.get(item.number)
            if owner is None or not owner[0].rewritten:
                out.write(item.raw)
                continue
            conn, to_server = owner
            tcp = _parse(item.linktype, item.data)
            record = _rewrite_packet(item, tcp, conn.direction(to_server), conn.direction(not to_server))
            stats.frames_changed += record != item.raw
            stats.bytes_added += len(record) - len(item.raw)
            out.write(record)


def main(argv: Optional[List[str]] = None) -> int:
    """python -m smbtrail.encryption.whatif SRC DST SCOPE: rewrite one capture, print the stats."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.stderr.write("usage: python -m smbtrail.encryption.whatif SRC DST none|share|server\n")
        return 2
    try:
        stats = rewrite_capture(*args)
    except WhatIfError as exc:
        sys.stderr.write(f"smbtrail: error: {exc}\n")
        return 2
    sys.stdout.write(stats.model_dump_json(indent=2) + "\n")
    return 1 if stats.partial else 0


if __name__ == "__main__":
    sys.exit(main())
