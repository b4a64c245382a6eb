"""Who authenticated: NTLMSSP AUTHENTICATE messages, and Kerberos tickets from the KDC exchange.

Kerberos AP-REQs inside SMB or RPC carry only the service name; the account comes from the
AS/TGS reply the KDC sent to the same client shortly before (the paper's account linking).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass
from typing import Deque, Dict, NamedTuple, Optional, Tuple

from ..capture.fields import Frame, Row, first, split, to_int

KDC_REPLIES = {11: "as", 13: "tgs"}
KDC_REQUESTS = {10: "as", 12: "tgs"}
KRB_ERROR = 30
PREAUTH_REQUIRED = 25  # the KDC's first answer to a client that sent no pre-authentication: not a failure
TICKET_HORIZON = 10 * 3600.0  # a service ticket lives 10 hours by default
MAX_REQUESTS = 4096  # KDC requests awaiting their answer, all clients together


@dataclass
class Identity:
    user: Optional[str] = None
    domain: Optional[str] = None
    workstation: Optional[str] = None
    method: Optional[str] = None  # ntlm | kerberos
    service: Optional[str] = None  # Kerberos sname, e.g. cifs/dc01.lab.test

    def account(self) -> Optional[str]:
        if not self.user:
            return None
        return f"{self.domain}\\{self.user}" if self.domain else self.user


class Ticket(NamedTuple):
    """A KDC reply: the account (cname@realm) got a ticket for the service sname."""

    time: float
    kind: str  # as | tgs
    cname: str
    realm: Optional[str]
    sname: str  # lower case


class KdcRequest(NamedTuple):
    kind: str  # as | tgs
    cname: Optional[str]
    realm: Optional[str]
    sname: str


class Refusal(NamedTuple):
    """A KRB-ERROR and the request it refused."""

    kind: str  # as | tgs
    cname: Optional[str]
    realm: Optional[str]
    sname: str
    code: int


def ntlm_identity(row: Row) -> Optional[Identity]:
    """The NTLMSSP AUTHENTICATE message in this frame, if any (`NULL` means empty in tshark)."""
    if 3 not in [to_int(t) for t in split(row.get("ntlmssp.messagetype", ""))]:
        return None
    user = _clean(row.get("ntlmssp.auth.username"))
    domain = _clean(row.get("ntlmssp.auth.domain"))
    host = _clean(row.get("ntlmssp.auth.hostname"))
    return Identity(user=user, domain=domain, workstation=host, method="ntlm")


def ntlm_server_names(row: Row) -> Dict[str, str]:
    """Server names from the NTLM CHALLENGE target info: the target's own idea of its name."""
    names = {}
    for key, field_name in (("netbios", "ntlmssp.challenge.target_info.nb_computer_name"),
                            ("dns", "ntlmssp.challenge.target_info.dns_computer_name"),
                            ("domain", "ntlmssp.challenge.target_info.nb_domain_name")):
        value = _clean(row.get(field_name))
        if value:
            names[key] = value
    return names


def kerberos_service(row: Row) -> Optional[str]:
    """sname of an AP-REQ (msg_type 14) carried in this frame, e.g. `cifs/dc01`."""
    if 14 not in [to_int(t) for t in split(row.get("kerberos.msg_type", ""))]:
        return None
    parts = split(row.get("kerberos.SNameString", ""))
    return "/".join(parts) if parts else None


class TicketIndex:
    """KDC replies per client address, newest last, bounded per client; KDC requests until answered."""

    def __init__(self) -> None:
        self.by_client: Dict[str, Deque[Ticket]] = defaultdict(lambda: deque(maxlen=64))
        self.requests: Dict[Tuple[str, int], KdcRequest] = OrderedDict()  # by client socket

    def refused(self, frame: Frame) -> Optional[Refusal]:
        """Remember a KDC request; for a KRB-ERROR, the request it refused (the account from the request
        when the error names none)."""
        row = frame.row
        types = [to_int(t) for t in split(row.get("kerberos.msg_type", ""))]
        cname = _clean(first(row, "kerberos.CNameString"))
        sname = "/".join(split(row.get("kerberos.SNameString", "")))
        kind = next((KDC_REQUESTS[t] for t in types if t in KDC_REQUESTS), None)
        if kind:
            self.requests.pop((frame.src, frame.sport), None)
            self.requests[(frame.src, frame.sport)] = KdcRequest(kind, cname, _clean(first(row, "kerberos.realm")),
                                                                 sname)
            while len(self.requests) > MAX_REQUESTS:
                self.requests.pop(next(iter(self.requests)))
            return None
        if KRB_ERROR not in types:
            return None
        code = to_int(row.get("kerberos.error_code", ""), -1)
        asked = self.requests.get((frame.dst, frame.dport))
        if code in (PREAUTH_REQUIRED, -1) or (asked is None and not cname):
            return None
        asked = asked or KdcRequest("as", None, None, "")
        realm = _clean(first(row, "kerberos.crealm")) or asked.realm
        return Refusal(asked.kind, cname or asked.cname, realm, sname or asked.sname, code)

    def observe(self, frame: Frame) -> Optional[Ticket]:
        """Remember a KDC reply; returns it when the frame holds one."""
        row = frame.row
        types = [to_int(t) for t in split(row.get("kerberos.msg_type", ""))]
        kind = next((KDC_REPLIES[t] for t in types if t in KDC_REPLIES), None)
        if not kind:
            return None
        cname = _clean(first(row, "kerberos.CNameString"))
        realm = _clean(first(row, "kerberos.crealm"))
        sname = "/".join(split(row.get("kerberos.SNameString", "")))
        if not cname:
            return None
        entry = Ticket(frame.time, kind, cname, realm, sname.lower())
        self.by_client[frame.dst].append(entry)
        return entry

    def lookup(self, client_ip: str, when: float, service: Optional[str]) -> Optional[Identity]:
        """The account whose ticket for `service` (else any ticket) the client got last before `when`."""
        entries = [t for t in self.by_client.get(client_ip, ()) if 0 <= when - t.time <= TICKET_HORIZON]
        if not entries:
            return None
        wanted = _service_host(service)
        matching = [t for t in entries if t.kind == "tgs" and wanted and _service_host(t.sname) == wanted]
        best = (matching or entries)[-1]
        return Identity(user=best.cname, domain=best.realm, method="kerberos", service=service)


def _service_host(sname: Optional[str]) -> Optional[str]:
    if not sname:
        return None
    parts = sname.lower().replace(",", "/").split("/")
    return parts[1].split(".")[0] if len(parts) > 1 else None


def _clean(value) -> Optional[str]:
    if not value:
        return None
    value = str(value)
    return None if value in ("NULL", "") else value
