"""The tshark 4.0 fields the engine reads, and the row and frame types the protocol layer consumes."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from typing import Dict, List, Mapping, Sequence

FRAME = ["frame.number", "frame.time_epoch", "frame.len"]
NET = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.stream", "tcp.srcport", "tcp.dstport",
       "udp.srcport", "udp.dstport"]
SMB2 = [
    "smb2.cmd", "smb2.flags.response", "smb2.nt_status", "smb2.msg_id", "smb2.sesid", "smb2.tid",
    "smb2.tree", "smb2.share_type", "smb2.share_flags.encrypt_data", "smb2.filename", "smb2.fid",
    "smb2.create.disposition", "smb2.create.action", "smb.access_mask", "smb.create_options",
    "smb2.write_length", "smb2.read_length", "smb2.class", "smb2.file_info.infolevel",
    "smb2.disposition.delete_on_close", "smb2.ioctl.function", "smb2.dialect", "smb2.client_guid",
    "smb2.server_guid", "smb2.capabilities.encryption", "smb2.sec_mode.sign_required",
    "smb2.negotiate_context.cipher_id", "smb2.negotiate_context.netname", "smb2.ses_flags.encrypt",
    "smb2.acct", "smb2.domain", "smb2.host", "smb2.header.transform.msg_size",
    "smb2.header.transform.nonce", "smb2.header.transform.enc_data", "smb2.flags.signature",
]
SMB1 = [
    "smb.cmd", "smb.flags.response", "smb.nt_status", "smb.uid", "smb.tid", "smb.fid", "smb.path",
    "smb.file", "smb.create.disposition", "smb.trans_name", "smb.native_os", "smb.account",
    "smb.primary_domain", "smb.data_len_low", "smb.dialect.name", "smb.dialect.index", "smb.mid",
]
AUTH = [
    "ntlmssp.messagetype", "ntlmssp.auth.username", "ntlmssp.auth.domain", "ntlmssp.auth.hostname",
    "ntlmssp.challenge.target_info.nb_computer_name", "ntlmssp.challenge.target_info.dns_computer_name",
    "ntlmssp.challenge.target_info.nb_domain_name", "kerberos.msg_type", "kerberos.CNameString",
    "kerberos.crealm", "kerberos.SNameString", "kerberos.realm", "kerberos.error_code",
]
DCERPC = [
    "dcerpc.pkt_type", "dcerpc.cn_call_id", "dcerpc.cn_ctx_id", "dcerpc.cn_bind_to_uuid",
    "dcerpc.cn_bind_if_ver", "dcerpc.cn_ack_result", "dcerpc.cn_sec_addr", "dcerpc.opnum",
    "dcerpc.cn_alloc_hint", "dcerpc.auth_type", "dcerpc.auth_level", "dcerpc.cn_status",
    "dcerpc.stub_data", "dcerpc.decrypted_stub_data", "dcerpc.encrypted_stub_data",
    "dcerpc.cn_flags.last_frag", "dcerpc.obj_id",
]
NAMES = ["dns.resp.name", "dns.a", "dns.aaaa", "nbns.name", "nbns.addr"]

CORE: List[str] = FRAME + NET + SMB2 + SMB1 + AUTH + DCERPC + NAMES


def field_list(extra: Sequence[str] = ()) -> List[str]:
    """Core fields plus the interface decoders' own, without duplicates, order kept."""
    seen: Dict[str, None] = {}
    for name in list(CORE) + list(extra):
        seen.setdefault(name, None)
    return list(seen)


Row = Dict[str, str]


def to_row(names: Sequence[str], values: Sequence[str]) -> Row:
    """Only the non-empty columns: most frames fill a handful of the ~120 fields."""
    return dict(compress(zip(names, values), values))


def first(row: Mapping[str, str], name: str, default: str = "") -> str:
    """The first occurrence of a field (tshark joins repeated ones with commas); `default` when absent."""
    value = row.get(name)
    return value.split(",", 1)[0] if value else default


def nth(row: Mapping[str, str], name: str, index: int) -> str:
    """The occurrence of a field that belongs to the index-th message or PDU of a frame (the last one when
    fewer were printed; "" when absent)."""
    value = row.get(name)
    if not value:
        return ""
    if not index:
        return value.split(",", 1)[0]
    values = value.split(",")
    return values[index] if index < len(values) else values[-1]


def split(value: str) -> List[str]:
    """tshark joins repeated occurrences of a field with commas."""
    return value.split(",") if value else []


def to_int(value: str, default: int = 0) -> int:
    """First occurrence, decimal or 0x hex."""
    if not value:
        return default
    try:  # the common case first: one occurrence (int() refuses commas)
        return _number(value)
    except ValueError:
        pass
    try:
        return _number(value.split(",", 1)[0].strip())
    except ValueError:
        return default


def _number(text: str) -> int:
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text)


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
    get = row.get
    src = get("ip.src") or get("ipv6.src", "")
    dst = get("ip.dst") or get("ipv6.dst", "")
    return Frame(to_int(get("frame.number", "")), float(get("frame.time_epoch", "0") or 0),
                 src.split(",", 1)[0], dst.split(",", 1)[0],
                 to_int(get("tcp.srcport", "") or get("udp.srcport", "")),
                 to_int(get("tcp.dstport", "") or get("udp.dstport", "")),
                 to_int(get("tcp.stream", ""), -1), row)
