"""TCP connections: who is the client, and the per-connection protocol state hung off it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..capture.fields import Row, to_int

SERVER_PORTS = {445, 139, 135, 88}


@dataclass
class Frame:
    """One tshark row with the values every protocol handler needs, pre-parsed once."""

    number: int
    time: float
    src: str
    dst: str
    sport: int
    dport: int
    stream: int
    row: Row


def make_frame(row: Row) -> Frame:
    src = row.get("ip.src") or row.get("ipv6.src", "")
    dst = row.get("ip.dst") or row.get("ipv6.dst", "")
    sport = to_int(row.get("tcp.srcport", "") or row.get("udp.srcport", ""))
    dport = to_int(row.get("tcp.dstport", "") or row.get("udp.dstport", ""))
    return Frame(
        number=to_int(row.get("frame.number", "")),
        time=float(row.get("frame.time_epoch", "0") or 0),
        src=src.split(",", 1)[0],
        dst=dst.split(",", 1)[0],
        sport=sport,
        dport=dport,
        stream=to_int(row.get("tcp.stream", ""), -1),
        row=row,
    )


@dataclass
class Conn:
    stream: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    first_time: float
    last_time: float
    file: str
    # protocol state, filled by the handlers
    negotiate: Dict[str, Any] = field(default_factory=dict)
    pending_auth: Dict[str, Any] = field(default_factory=dict)
    sessions: Dict[str, Any] = field(default_factory=dict)
    trees: Dict[tuple, str] = field(default_factory=dict)
    opens: Dict[str, Any] = field(default_factory=dict)
    pending: Dict[str, Any] = field(default_factory=dict)
    channels: Dict[str, Any] = field(default_factory=dict)
    encrypted: Dict[str, Any] = field(default_factory=dict)
    frames: List[int] = field(default_factory=list)
    failed_logons: int = 0  # SESSION_SETUPs the server refused (each one a record of its own)

    def from_client(self, frame: Frame) -> bool:
        return frame.src == self.client_ip and frame.sport == self.client_port


class ConnectionTable:
    """Connections by tcp.stream, created on first sight with the client side guessed by role."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.conns: Dict[int, Conn] = {}

    def get(self, frame: Frame, sent_by_client: Optional[bool]) -> Conn:
        conn = self.conns.get(frame.stream)
        if conn is None:
            if sent_by_client is None:
                sent_by_client = frame.dport in SERVER_PORTS or (
                    frame.sport not in SERVER_PORTS and frame.dport < frame.sport)
            if sent_by_client:
                ends = (frame.src, frame.sport, frame.dst, frame.dport)
            else:
                ends = (frame.dst, frame.dport, frame.src, frame.sport)
            conn = Conn(frame.stream, *ends, first_time=frame.time, last_time=frame.time, file=self.file)
            self.conns[frame.stream] = conn
        conn.last_time = max(conn.last_time, frame.time)
        return conn

    def idle(self, now: float, horizon: float) -> List[Conn]:
        """Connections silent for longer than horizon seconds (their state can be flushed)."""
        return [c for c in self.conns.values() if now - c.last_time > horizon]

    def drop(self, conn: Conn) -> None:
        self.conns.pop(conn.stream, None)
