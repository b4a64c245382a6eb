"""Samba AD DC JSON audit lines -> flat events (channel `Samba`, provider `samba:<type>`).

What Samba 4.17 writes (seen in tests/fixtures/hostlog/samba_addc, made by make_samba_audit.sh) with
`log level = 1 auth_json_audit:3 dsdb_json_audit:5 dsdb_group_json_audit:5 dsdb_password_json_audit:5`:
one JSON object per line, indented by two spaces, between Samba's `[date, level] file:line(function)`
debug headers and other messages: {"timestamp": "2026-11-25T20:09:03.599874+0000", "type": T, T: {...}}
- Authentication: eventId 4624/4625, logonId (hex, "0" for NTLM), logonType, status, localAddress and
  remoteAddress ("ipv4:10.77.0.2:44110"), serviceDescription (SMB2, LDAP, Kerberos KDC), clientAccount,
  becameAccount/Domain/Sid, passwordType. No host name: the server is localAddress.
- groupChange: eventId 4728/4729/4732/4733/4756/4757 (none for action PrimaryGroup), group and user DNs.
- passwordChange: eventId 4723 (Change) / 4724 (Reset), dn.
- dsdbChange: no eventId; operation Add/Modify/Delete, dn, attributes (secrets arrive as "redacted").
  An Add whose objectClass is user is mapped to 4720, marked inferred. A Delete names only the dn (no
  objectClass: a user cannot be told from a group) and is mapped to 5141 (directory object deleted), inferred.
- Authorization: the session a server accepted (SMB2, DCE/RPC), with localAddress/remoteAddress of its
  TCP connection, account and sessionId. For Kerberos it is the only record of the logon on the server
  (the Authentication record is the KDC's), so it is mapped to 4624, marked inferred: Windows' logon on
  the target. sessionId is Samba's logon id: the dsdb, group and password records of the session carry it.
dsdbTransaction records carry no event id and pass only with --all-events.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from .errors import error

SECRET_ATTRIBUTES = frozenset(a.lower() for a in (
    "unicodePwd", "dBCSPwd", "userPassword", "clearTextPassword", "supplementalCredentials", "ntPwdHistory",
    "lmPwdHistory", "msDS-ManagedPassword", "pekList", "priorValue", "currentValue", "trustAuthIncoming",
    "trustAuthOutgoing", "initialAuthIncoming", "initialAuthOutgoing"))


def is_samba(doc: Dict[str, Any]) -> bool:
    kind = doc.get("type")
    return isinstance(kind, str) and isinstance(doc.get(kind), dict) and "timestamp" in doc


def from_samba(doc: Dict[str, Any]) -> Dict[str, Any]:
    kind = doc["type"]
    body = doc[kind]
    flat: Dict[str, Any] = {
        "EventID": body.get("eventId"), "Channel": "Samba", "Provider": f"samba:{kind}", "Computer": None,
        "EventRecordID": None, "TimeCreated": doc.get("timestamp"),
    }
    for name, value in body.items():
        if name == "version":
            flat["auditVersion"] = f"{value.get('major')}.{value.get('minor')}" if isinstance(value, dict) else value
        elif name == "attributes":
            flat["attributes"] = json.dumps(_safe_attributes(value), sort_keys=True)
        elif name == "eventId":
            continue
        else:
            flat[name] = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
    for side in ("remote", "local"):
        ip, port = _address(body.get(side + "Address"))
        if ip:
            flat[side + "Ip"], flat[side + "Port"] = ip, port
    _derived_names(kind, body, flat)
    return flat


def _derived_names(kind: str, body: Dict[str, Any], flat: Dict[str, Any]) -> None:
    if kind == "Authorization":
        flat["EventID"] = 4624
        flat["@inferred"] = True
    elif kind == "groupChange":
        flat["groupName"] = _cn(body.get("group"))
        flat["account"] = _cn(body.get("user"))
    elif kind == "passwordChange":
        flat["account"] = _cn(body.get("dn"))
    elif kind == "dsdbChange" and body.get("operation") == "Add":
        classes = _values(body.get("attributes"), "objectClass")
        if "user" in [c.lower() for c in classes] and "computer" not in [c.lower() for c in classes]:
            flat["EventID"] = 4720
            flat["@inferred"] = True
            names = _values(body.get("attributes"), "sAMAccountName")
            flat["sAMAccountName"] = names[0] if names else _cn(body.get("dn"))
    elif kind == "dsdbChange" and body.get("operation") == "Delete":
        flat["EventID"] = 5141
        flat["@inferred"] = True
        flat["objectName"] = _cn(body.get("dn"))


def _address(value: Any) -> Tuple[Optional[str], Optional[str]]:
    """ipv4:10.77.0.2:44110 or ipv6:[fe80::1]:445 / ipv6:fe80::1:445 -> (address, port)."""
    if not isinstance(value, str) or ":" not in value:
        return None, None
    rest = value.split(":", 1)[1] if value.startswith(("ipv4:", "ipv6:")) else value
    host, _, port = rest.rpartition(":")
    return host.strip("[]") or None, port or None


def _cn(dn: Any) -> Optional[str]:
    if not isinstance(dn, str) or not dn.upper().startswith("CN="):
        return dn if isinstance(dn, str) else None
    first = dn.split(",", 1)[0]
    return first[3:]


def _values(attributes: Any, name: str) -> list:
    found = []
    if isinstance(attributes, dict):
        for key, attr in attributes.items():
            if key.lower() == name.lower() and isinstance(attr, dict):
                for action in attr.get("actions") or []:
                    found += [v.get("value") for v in action.get("values") or [] if isinstance(v, dict)]
    return [v for v in found if isinstance(v, str)]


def _safe_attributes(attributes: Any) -> Any:
    """Attribute changes with every value of a secret attribute (or one Samba marked redacted) removed."""
    if not isinstance(attributes, dict):
        return attributes
    out = {}
    for key, attr in attributes.items():
        actions = attr.get("actions", []) if isinstance(attr, dict) else []
        if key.lower() in SECRET_ATTRIBUTES or any(a.get("redacted") for a in actions if isinstance(a, dict)):
            out[key] = [{"action": a.get("action"), "redacted": True} for a in actions if isinstance(a, dict)]
        else:
            out[key] = actions
    return out


def read_samba_log(lines: Iterable[bytes], source: str) -> Iterator[Any]:
    """A Samba log file: the audit JSON lines among debug headers and messages, which are skipped."""
    for number, line in enumerate(lines, 1):
        start = line.find(b"{")
        if start < 0 or b'"type"' not in line:
            continue
        try:
            doc = json.loads(line[start:])
            if isinstance(doc, dict) and is_samba(doc):
                yield from_samba(doc)
        except ValueError as exc:
            yield error(source, f"line {number}: broken audit JSON ({exc})", partial=True)
        except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            yield error(source, f"line {number}: audit record of unexpected shape ({exc.__class__.__name__})",
                        partial=True)
