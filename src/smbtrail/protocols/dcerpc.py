"""DCE/RPC connection-oriented PDUs: binds (context id -> interface), calls (request/response/fault).

A channel is one RPC association: an SMB pipe open (ncacn_np) or a TCP connection (ncacn_ip_tcp).
Operations are classified by the bound interface UUID and the opnum, never by the pipe name.
"""

from __future__ import annotations

import binascii
from typing import Any, Dict, Optional

from .. import interfaces, lookups
from ..capture.fields import Frame, Row, nth, split, to_int
from .auth import Identity, TicketIndex, kerberos_service, ntlm_identity
from .codes import Pdu
from .connections import Binding, Call, Channel, Conn, Offer
from .events import ProtocolEvents
from .files import Open

PRIVACY = 6  # RPC_C_AUTHN_LEVEL_PKT_PRIVACY: stubs sealed


class DcerpcHandler:
    """Binds and calls of every channel of a connection; a completed call is reported to `events`."""

    def __init__(self, events: ProtocolEvents, tickets: TicketIndex) -> None:
        self.events = events
        self.tickets = tickets

    def pipe_opened(self, conn: Conn, pipe: Open) -> None:
        key = f"np:{pipe.fid}"
        conn.channels[key] = Channel(key=key, transport="ncacn_np", pipe=pipe.name, pipe_open=pipe)

    def handle(self, frame: Frame, conn: Conn, channel: str = "tcp", pipe: Optional[Open] = None) -> None:
        row = frame.row
        types = [to_int(t, -1) for t in split(row.get("dcerpc.pkt_type", ""))]
        if not types:
            return
        chan = conn.channels.get(channel)
        if chan is None:
            chan = conn.channels[channel] = Channel(
                key=channel, transport="ncacn_np" if pipe else "ncacn_ip_tcp",
                pipe=pipe.name if pipe else None, pipe_open=pipe)
        self._auth(frame, conn, chan)
        pdus = _Pdus(row, len(types))
        for i, pkt in enumerate(types):
            call_id = to_int(pdus.at("dcerpc.cn_call_id", i), -1)
            if pkt in (Pdu.BIND, Pdu.ALTER_CONTEXT):
                self._bind(chan, call_id, row)
            elif pkt in (Pdu.BIND_ACK, Pdu.ALTER_CONTEXT_RESP, Pdu.BIND_NAK):
                self._bind_ack(chan, call_id, row, pkt)
            elif pkt == Pdu.REQUEST:
                self._request(frame, chan, call_id, pdus, i)
            elif pkt in (Pdu.RESPONSE, Pdu.FAULT):
                self._response(frame, conn, chan, call_id, pdus, i, pkt)

    def _auth(self, frame: Frame, conn: Conn, chan: Channel) -> None:
        row = frame.row
        level = to_int(row.get("dcerpc.auth_level", ""))
        if level:
            chan.auth_level = max(chan.auth_level, level)
            chan.auth_type = to_int(row.get("dcerpc.auth_type", "")) or chan.auth_type
        ident = ntlm_identity(row)
        if ident and ident.user:
            chan.identity = ident
            return
        service = kerberos_service(row)
        if service and not chan.identity:
            chan.identity = self.tickets.lookup(conn.client_ip, frame.time, service) or Identity(
                method="kerberos", service=service)

    def _bind(self, chan: Channel, call_id: int, row: Row) -> None:
        uuids = [u.lower() for u in split(row.get("dcerpc.cn_bind_to_uuid", ""))]
        ctx_ids = [to_int(c) for c in split(row.get("dcerpc.cn_ctx_id", ""))]
        versions = split(row.get("dcerpc.cn_bind_if_ver", ""))
        items = []
        for n, uuid in enumerate(uuids):
            ctx_id = ctx_ids[n] if n < len(ctx_ids) else n
            items.append(Offer(ctx_id, uuid, versions[n] if n < len(versions) else ""))
        chan.offered[call_id] = items

    def _bind_ack(self, chan: Channel, call_id: int, row: Row, pkt: int) -> None:
        items = chan.offered.pop(call_id, [])
        if pkt == Pdu.BIND_NAK:
            return
        results = [to_int(r, 2) for r in split(row.get("dcerpc.cn_ack_result", ""))]
        for n, (ctx_id, uuid, version) in enumerate(items):
            if n < len(results) and results[n] == 0:
                chan.contexts[ctx_id] = Binding(uuid, version)

    def _request(self, frame: Frame, chan: Channel, call_id: int, pdus: _Pdus, i: int) -> None:
        row = frame.row
        ctx_id = to_int(pdus.at("dcerpc.cn_ctx_id", i))
        opnum = to_int(pdus.at("dcerpc.opnum", i), -1)
        call = chan.calls.get(call_id)
        if call is None or call.opnum != opnum:
            uuid, version = chan.contexts.get(ctx_id, Binding(None, None)) if chan.contexts else _unacked(chan, ctx_id)
            call = chan.calls[call_id] = Call(call_id, opnum, uuid, version, frame.time)
        call.frames.append(frame.number)
        call.alloc_hint = max(call.alloc_hint, to_int(pdus.at("dcerpc.cn_alloc_hint", i)))
        call.sealed = call.sealed or bool(row.get("dcerpc.encrypted_stub_data")) or chan.auth_level >= PRIVACY
        stub = self._stub(row, pdus, i, call)
        if stub is not None or not call.sealed or call.decrypted:
            call.args.update(_decode(call.uuid, opnum, True, row, stub))
        self._carry_handle_context(chan, call)

    def _response(self, frame: Frame, conn: Conn, chan: Channel, call_id: int, pdus: _Pdus, i: int, pkt: int) -> None:
        row = frame.row
        call = chan.calls.pop(call_id, None)
        if call is None:
            return
        call.frames.append(frame.number)
        status = None
        if pkt == Pdu.FAULT:
            status = pdus.at("dcerpc.cn_status", i) or "fault"
        else:
            stub = self._stub(row, pdus, i, call)
            result = _decode(call.uuid, call.opnum, False, row, stub)
            handle_out = result.pop("_handle_out", None)
            if handle_out:
                kept = lookups.argument_names("handle_context")  # what later calls on the handle inherit
                chan.handles[handle_out] = {k: call.args[k] for k in kept if k in call.args}
            code = result.get("return_code")
            if isinstance(code, int) and code != 0:
                status = hex(code)
            for key, value in result.items():
                call.args.setdefault(key, value)
        if interfaces.interface_name(call.uuid) == "epmapper" and call.args.get("port"):
            self.events.epm_mapped(conn.server_ip, call.args)
        self.events.rpc_call_done(conn, chan, call, status)

    def _stub(self, row: Row, pdus: _Pdus, i: int, call: Call) -> Optional[bytes]:
        for name in ("dcerpc.decrypted_stub_data", "dcerpc.stub_data"):
            value = pdus.at(name, i) if pdus.count > 1 else row.get(name, "")
            if value:
                if name == "dcerpc.decrypted_stub_data":
                    call.decrypted = True
                try:
                    return binascii.unhexlify(value.replace(":", ""))
                except (binascii.Error, ValueError):
                    return None
        return None

    def _carry_handle_context(self, chan: Channel, call: Call) -> None:
        handle = call.args.pop("_handle_in", None)
        context = chan.handles.get(handle) if handle else None
        if not context:
            return
        for key, value in context.items():
            if key == "key" and "key" in call.args and call.args["key"] != value:
                call.args["key"] = f"{value}\\{call.args['key']}"
            else:
                call.args.setdefault(key, value)
        hive, key = call.args.get("hive"), call.args.get("key")
        if isinstance(hive, str) and isinstance(key, str) and not key.upper().startswith(hive.upper()):
            call.args["key"] = f"{hive}\\{key}"  # full path, as reg.exe and 4657 events write it


def _unacked(chan: Channel, ctx_id: int) -> Binding:
    """Bind ack not captured: the offered item with this context id, if the bind was seen."""
    for items in chan.offered.values():
        for offer in items:
            if offer.ctx_id == ctx_id:
                return Binding(offer.uuid, offer.version)
    return Binding(None, None)


def _decode(uuid: Optional[str], opnum: int, request: bool, row: Row, stub: Optional[bytes]) -> Dict[str, Any]:
    decoder = interfaces.decoder_for(uuid) if uuid else None
    if decoder is None:
        return {}
    try:
        return dict(decoder.decode(opnum, request, row, stub) or {})
    except Exception as exc:  # a decoder bug must not lose the operation record
        return {"_decode_error": f"{exc.__class__.__name__}: {exc}"[:200]}


class _Pdus:
    """The PDUs of one frame (several when tshark reassembled or coalesced them)."""

    def __init__(self, row: Row, count: int) -> None:
        self.row = row
        self.count = count

    def at(self, name: str, index: int) -> str:
        return nth(self.row, name, index)
