"""The what-if: a cleartext capture rewritten as a sensor would have seen it under SMB3 encryption.

Scopes: ``server`` (encryption required server-wide): every SMB2 message of a session except
NEGOTIATE and SESSION_SETUP travels inside a TRANSFORM_HEADER; ``share`` (only file shares
encrypted): messages on trees other than IPC$, but not the TREE_CONNECT itself; ``none``: a copy.
A transformed NBSS message keeps its plaintext size as OriginalMessageSize, gets random ciphertext
and grows by the 52-byte transform header, so every later TCP sequence/ack number (and SACK edge)
of that direction shifts; NBSS lengths, IP lengths and checksums follow. Anything that is not SMB2
over TCP 445/139 is copied byte for byte, and so is a connection that cannot be reassembled
(missing segments, capture started mid-message): those are listed in the stats with the reason.

Two passes over the file: the first collects the SMB connections' segments (tcp.py), the plan reassembles
each direction and decides which messages become transforms (smb2.py), the second writes every record,
the packets of rewritten connections built again (pcapfile.py keeps everything else byte for byte).
"""

from __future__ import annotations

import random
from typing import List

from ..pydantic_api import BaseModel, Field
from .pcapfile import Packet, WhatIfError, capture_items, open_capture
from .smb2 import FLAG_RESPONSE, Cipher, Decider, Message, encrypt_stream, flag_patches, nbss_messages, negotiated
from .tcp import Collector, Conn, assemble, parse_packet, rewrite_packet, too_long

SCOPES = ("none", "share", "server")
__all__ = ["SCOPES", "FlowNote", "RewriteStats", "WhatIfError", "rewrite_capture"]


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
        elif conn.rewritten and too_long(conn):
            client, server = conn.name()
            stats.untouched.append(FlowNote(client=client, server=server, reason="an IPv4 packet would exceed 64 KiB"))
            conn.rewritten = False
    stats.connections_rewritten = sum(c.rewritten for c in collector.conns)
    _second_pass(src, dst, collector, stats)
    stats.partial = bool(stats.warnings)
    return stats


def _first_pass(src: str, stats: RewriteStats) -> Collector:
    collector = Collector()
    with open_capture(src) as handle:
        for item in capture_items(src, handle, lambda message: None):
            if isinstance(item, Packet):
                stats.frames += 1
                tcp = parse_packet(item.linktype, item.data)
                if tcp is not None:
                    collector.add(item.number, tcp, item.data)
    return collector


def _second_pass(src: str, dst: str, collector: Collector, stats: RewriteStats) -> None:
    try:
        out = open(dst, "wb")
    except OSError as exc:
        raise WhatIfError(f"{dst}: cannot write: {exc.strerror or exc}") from None
    with open_capture(src) as handle, out:
        for item in capture_items(src, handle, stats.warnings.append):
            if not isinstance(item, Packet):
                out.write(item)
                continue
            owner = collector.owner.get(item.number)
            if owner is None or not owner[0].rewritten:
                out.write(item.raw)
                continue
            conn, to_server = owner
            tcp = parse_packet(item.linktype, item.data)
            record = rewrite_packet(item, tcp, conn.direction(to_server), conn.direction(not to_server))
            stats.frames_changed += record != item.raw
            stats.bytes_added += len(record) - len(item.raw)
            out.write(record)


def _plan(conn: Conn, scope: str, rng: random.Random, stats: RewriteStats) -> None:
    for side in (conn.up, conn.down):
        conn.problem = conn.problem or assemble(side)
    if conn.problem:
        return
    up, problem_up = nbss_messages(conn.up.stream)
    down, problem_down = nbss_messages(conn.down.stream)
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
    decider = Decider(scope, client[1], client[0].stream, server[1])
    decider.decide()
    sessions = decider.sessions()
    server[0].stream = flag_patches(server[0].stream, server[1], scope, sessions, decider.trees)
    dialect, cipher_id = negotiated(server[1], server[0].stream)
    nonce = 11 if cipher_id in (1, 3) else 12
    transforms = 0
    for side, msgs in ((conn.up, up), (conn.down, down)):
        side.new, side.points = encrypt_stream(side.stream, msgs, Cipher(rng, nonce))
        transforms += len(side.points)
    _count(stats, up + down, transforms, len(sessions), decider.unknown)
    if transforms and dialect and dialect < 0x0300:
        stats.smb2x_connections += 1
    conn.rewritten = transforms > 0


def _responses(messages: List[Message]) -> int:
    return sum(bool(m.headers[0].flags & FLAG_RESPONSE) for m in messages if m.headers)


def _count(stats: RewriteStats, messages: List[Message], transforms: int, sessions: int, unknown: int) -> None:
    stats.nbss_messages_encrypted += transforms
    stats.smb2_messages_encrypted += sum(len(m.headers) for m in messages if m.encrypt)
    stats.smb2_messages_clear += sum(len(m.headers) for m in messages if not m.encrypt)
    stats.sessions_encrypted += sessions
    stats.unknown_tree_messages += unknown

