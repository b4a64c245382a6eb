"""SMB3 transform headers (encrypted messages): what encryption leaves visible, gathered per session into
bursts of unreadable messages (one record each)."""

from __future__ import annotations

from typing import List, Optional

from ..capture.fields import Frame, first, split, to_int
from .connections import Burst, Conn
from .events import ProtocolEvents

BURST_GAP = 5.0  # seconds of silence that end a burst


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


def wire_order(sesid: str) -> str:
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
    """SMB3 messages no secret opened, gathered per session into bursts; each ended burst is reported."""

    def __init__(self, events: ProtocolEvents) -> None:
        self.events = events

    def message(self, frame: Frame, conn: Conn) -> None:
        row = frame.row
        sesid = first(row, "smb2.sesid")
        sizes = [to_int(s) for s in split(row.get("smb2.header.transform.msg_size", "")) if s]
        bursts = conn.encrypted
        burst = bursts.get(sesid)
        if burst is not None and frame.time - burst.end > BURST_GAP:
            self.events.encrypted_burst(conn, burst)
            burst = None
        if burst is None:
            burst = bursts[sesid] = Burst(sesid=sesid, start=frame.time, end=frame.time)
        nonce = first(row, "smb2.header.transform.nonce")
        for size in sizes:
            burst.add(frame, size, conn.from_client(frame), nonce)

    def flush(self, conn: Conn, sesid: Optional[str] = None) -> None:
        for key in list(conn.encrypted):
            if sesid is None or key == sesid:
                self.events.encrypted_burst(conn, conn.encrypted.pop(key))
