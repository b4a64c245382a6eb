"""NBSS framing and SMB2 headers of a reassembled TCP stream, which messages an encryption scope turns into
transforms, and the transform-wrapped stream itself.

Scopes: ``server`` (encryption required server-wide): every SMB2 message of a session except NEGOTIATE and
SESSION_SETUP travels inside a TRANSFORM_HEADER; ``share`` (only file shares encrypted): messages on trees
other than IPC$, but not the TREE_CONNECT itself. A transformed NBSS message keeps its plaintext size as
OriginalMessageSize, gets random ciphertext and grows by the 52-byte transform header.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..protocols.codes import Smb2, Status

SMB_PORTS = (445, 139)
TRANSFORM_SIZE = 52
FLAG_RESPONSE, FLAG_ASYNC, FLAG_RELATED = 0x1, 0x2, 0x4
NO_SESSION = bytes(8)
ANY_ID = 0xFFFFFFFFFFFFFFFF
SMB_MAGICS = (b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\xfcSMB")
NBSS_TYPES = (0x00, 0x81, 0x82, 0x83, 0x84, 0x85)


@dataclass
class Header:
    at: int  # stream offset of the SMB2 header
    command: int
    flags: int
    status: int
    message_id: int
    tree_id: Optional[int]  # None in an async header
    session: bytes


@dataclass
class Message:
    at: int  # stream offset of the NBSS header
    length: int
    headers: List[Header]
    encrypt: bool = False


def nbss_messages(stream: bytes) -> Tuple[List[Message], Optional[str]]:
    """NBSS messages of one direction; SMB2 headers parsed where the bytes were captured."""
    found: List[Message] = []
    pos = 0
    while pos + 4 <= len(stream):
        kind, length = stream[pos], int.from_bytes(stream[pos + 1:pos + 4], "big")
        magic = stream[pos + 4:pos + 8]
        if kind not in NBSS_TYPES or (kind == 0 and len(magic) == 4 and magic not in SMB_MAGICS):
            return found, f"not NBSS/SMB framing at stream offset {pos} (capture started mid-message?)"
        headers = _headers(stream, pos + 4, pos + 4 + length) if kind == 0 and magic == b"\xfeSMB" else []
        found.append(Message(pos, length, headers))
        pos += 4 + length
    return found, None


def _headers(stream: bytes, at: int, end: int) -> List[Header]:
    headers: List[Header] = []
    end = min(end, len(stream))
    while at + 64 <= end and stream[at:at + 4] == b"\xfeSMB":
        status, command = struct.unpack("<IH", stream[at + 8:at + 14])
        flags, nxt, message_id = struct.unpack("<IIQ", stream[at + 16:at + 32])
        tree = None if flags & FLAG_ASYNC else struct.unpack("<I", stream[at + 36:at + 40])[0]
        headers.append(Header(at, command, flags, status, message_id, tree, stream[at + 40:at + 48]))
        if not nxt or nxt < 64:
            break
        at += nxt
    return headers


def _share_name(stream: bytes, hdr: Header) -> Optional[str]:
    """Share named by a TREE_CONNECT request (\\\\server\\share -> SHARE)."""
    body = hdr.at + 64
    if len(stream) < body + 8:
        return None
    offset, length = struct.unpack("<HH", stream[body + 4:body + 8])
    raw = stream[hdr.at + offset:hdr.at + offset + length]
    path = raw.decode("utf-16-le", "replace")
    return path.rstrip("\\").rsplit("\\", 1)[-1].upper() or None


# ---------------------------------------------------------------- what to encrypt

class Decider:
    """Per connection: which NBSS messages become transforms under the scope."""

    def __init__(self, scope: str, up: List[Message], up_stream: bytes, down: List[Message]) -> None:
        self.scope = scope
        self.up, self.down = up, down  # requests (client to server), responses
        self.trees = self._trees(up_stream)
        self.unknown = 0

    def _trees(self, up_stream: bytes) -> Dict[Tuple[bytes, int], str]:
        asked = {h.message_id: _share_name(up_stream, h)
                 for m in self.up for h in m.headers if h.command == Smb2.TREE_CONNECT}
        trees: Dict[Tuple[bytes, int], str] = {}
        for m in self.down:
            for h in m.headers:
                accepted = h.command == Smb2.TREE_CONNECT and h.status == Status.SUCCESS and h.tree_id is not None
                if accepted and asked.get(h.message_id):
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

    def _chain(self, headers: List[Header]) -> bool:
        encrypt, session, tree = False, NO_SESSION, None
        for hdr in headers:
            if not (hdr.flags & FLAG_RELATED):
                session, tree = hdr.session, hdr.tree_id
            encrypt = self._rule(hdr.command, session, tree) or encrypt
        return encrypt

    def _rule(self, command: int, session: bytes, tree: Optional[int]) -> bool:
        if command in (Smb2.NEGOTIATE, Smb2.SESSION_SETUP) or session == NO_SESSION:
            return False
        if self.scope == "server":
            return True
        if command == Smb2.TREE_CONNECT or not tree:
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
class Cipher:
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


def negotiated(down: List[Message], stream: bytes) -> Tuple[int, int]:
    """(dialect, cipher id) from the NEGOTIATE response; cipher 2 (AES-128-GCM) when 3.1.1 named none."""
    for message in down:
        for hdr in message.headers:
            if hdr.command == Smb2.NEGOTIATE and len(stream) >= hdr.at + 128:
                dialect = struct.unpack("<H", stream[hdr.at + 68:hdr.at + 70])[0]
                if dialect == 0x02FF:
                    continue
                cipher = _context_cipher(stream, hdr) if dialect == 0x0311 else 1
                return dialect, cipher or 2
    return 0, 2


def _context_cipher(stream: bytes, hdr: Header) -> int:
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


def flag_patches(stream: bytes, messages: List[Message], scope: str, sessions: set,
                  trees: Dict[Tuple[bytes, int], str]) -> bytes:
    """Server responses left clear say what the server would have announced: the session's
    ENCRYPT_DATA flag (server scope) or the share's ENCRYPT_DATA flag (share scope)."""
    patched = bytearray(stream)
    for message in messages:
        if message.encrypt or len(message.headers) != 1:
            continue
        hdr, body = message.headers[0], message.headers[0].at + 64
        if hdr.status != Status.SUCCESS or len(stream) < body + 8:
            continue
        if scope == "server" and hdr.command == Smb2.SESSION_SETUP and hdr.session in sessions:
            patched[body + 2] |= 0x04
        share = trees.get((hdr.session, hdr.tree_id or 0))
        if scope == "share" and hdr.command == Smb2.TREE_CONNECT and share and share != "IPC$":
            patched[body + 5] |= 0x80
    return bytes(patched)


def encrypt_stream(stream: bytes, messages: List[Message], cipher: Cipher) -> Tuple[bytes, List[int]]:
    """The stream with every message to encrypt in a transform, and the stream offsets where the 52 bytes of
    each transform header were inserted."""
    out, pos, points = bytearray(), 0, []
    for message in messages:
        if message.length + TRANSFORM_SIZE > 0xFFFFFF:
            message.encrypt = False  # cannot be framed: stays clear
        if not message.encrypt:
            continue
        session = next((h.session for h in message.headers if h.session != NO_SESSION), NO_SESSION)
        out += stream[pos:message.at]
        out += (message.length + TRANSFORM_SIZE).to_bytes(4, "big")
        out += cipher.header(message.length, session)
        out += cipher.rng.randbytes(message.length)
        points.append(message.at + 4)
        pos = message.at + 4 + message.length
    out += stream[pos:]
    return bytes(out), points
