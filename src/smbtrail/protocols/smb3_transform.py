"""SMB3 transform headers (encrypted messages): what encryption leaves visible, one record per session and
burst of unreadable messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from ..capture.fields import to_int
from ..records import ENCRYPTED_ACTIVITY, Record
from .connections import Conn, Frame

BURST_GAP = 5.0  # seconds of silence that end a burst
MAX_SIZES = 400  # OriginalMessageSize values kept per burst (direction-signed)


@dataclass
class Burst:
    sesid: str
    start: float
    end: float
    frames: List[int] = field(default_factory=list)
    sizes: List[int] = field(default_factory=list)  # + client->server, - server->client
    size_frames: List[int] = field(default_factory=list)  # the frame of each kept size
    to_server: int = 0
    to_client: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    nonces: List[str] = field(default_factory=list)

    def add(self, frame: Frame, size: int, from_client: bool, nonce: str) -> None:
        self.end = frame.time
        if len(self.frames) < 16:
            self.frames.append(frame.number)
        if len(self.sizes) < MAX_SIZES:
            self.sizes.append(size if from_client else -size)
            self.size_frames.append(frame.number)
        if from_client:
            self.to_server += 1
            self.bytes_to_server += size
        else:
            self.to_client += 1
            self.bytes_to_client += size
        if nonce and len(self.nonces) < 8:
            self.nonces.append(nonce)


def nonce_style(nonces: List[str]) -> str:
    """impacket fills nonces with random ASCII letters; Samba/Windows servers count up."""
    if not nonces:
        return "unknown"
    raw = [bytes.fromhex(n.replace(":", "")) for n in nonces if _is_hex(n)]
    if raw and all(all(65 <= b <= 90 or 97 <= b <= 122 for b in r[:11]) for r in raw):
        return "random_letters"
    firsts = [int.from_bytes(r[:8], "little") for r in raw]
    if len(firsts) > 1 and all(0 < b - a < 1 << 16 for a, b in zip(firsts, firsts[1:])):
        return "counter"
    return "random"


def _wire_order(sesid: str) -> str:
    """tshark prints smb2.sesid as a 0x number; key files name it in wire (little-endian) order."""
    try:
        return bytes.fromhex(sesid[2:].rjust(16, "0"))[::-1].hex()
    except ValueError:
        return sesid


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text.replace(":", ""))
        return True
    except ValueError:
        return False


class EncryptedActivity:
    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def message(self, frame: Frame, conn: Conn) -> None:
        row = frame.row
        sesid = row.get("smb2.sesid", "").split(",")[0]
        sizes = [to_int(s) for s in row.get("smb2.header.transform.msg_size", "").split(",") if s]
        bursts: Dict[str, Burst] = conn.encrypted
        burst = bursts.get(sesid)
        if burst is not None and frame.time - burst.end > BURST_GAP:
            self._emit(conn, burst)
            burst = None
        if burst is None:
            burst = bursts[sesid] = Burst(sesid=sesid, start=frame.time, end=frame.time)
        nonce = row.get("smb2.header.transform.nonce", "").split(",")[0]
        for size in sizes:
            burst.add(frame, size, conn.from_client(frame), nonce)

    def flush(self, conn: Conn, sesid: str = None) -> None:
        for key in list(conn.encrypted):
            if sesid is None or key == sesid:
                self._emit(conn, conn.encrypted.pop(key))

    def _decryption(self, sesid: str, setup_seen: bool) -> str:
        """Why these messages stayed encrypted: no secrets, or secrets that did not open them."""
        if not self.ctx.decrypting:
            return "no_secrets"
        if _wire_order(sesid) in self.ctx.keyed_sessions:
            return "failed_with_given_key" if setup_seen else "failed_mid_session"
        return "no_matching_secret"

    def _emit(self, conn: Conn, burst: Burst) -> None:
        session = conn.sessions.get(burst.sesid)
        base = self.ctx.base_fields(conn, burst.start, ENCRYPTED_ACTIVITY, burst.frames, sesid=burst.sesid)
        args = {
            "messages_to_server": burst.to_server, "messages_to_client": burst.to_client,
            "bytes_to_server": burst.bytes_to_server, "bytes_to_client": burst.bytes_to_client,
            "duration": round(burst.end - burst.start, 6), "message_sizes": burst.sizes,
            "message_frames": burst.size_frames,
            "nonce_style": nonce_style(burst.nonces),
        }
        for key in ("dialect", "cipher", "client_guid", "netname"):
            if conn.negotiate.get(key):
                args[key] = conn.negotiate[key]
        if session is None:
            args["session_setup_seen"] = False  # started before the capture: no user, no key derivation
        args["decryption"] = self._decryption(burst.sesid, session is not None)
        base.update(protocol="smb3", transport="smb", encrypted=True, decrypted=False, args=args,
                    operation="encrypted_messages", session_id=burst.sesid,
                    partial=session is None)
        self.ctx.out.append(Record(**base))
