"""Windows' own names for the codes events and packets carry raw, from three lookups (also Splunk lookups):

lookups/windows_messages.csv  `%%7688` -> Control Access: access rights per object type (with their mask bit),
                              parameter strings (failure reasons, token types), logon type numbers
lookups/ad_guids.csv          `%{19195a5b-...}` / `{1131f6ad-...}` -> domainDNS / DS-Replication-Get-Changes-All
                              (schema classes and attributes, control access rights, property sets)
lookups/status_codes.csv      0xc000006a -> STATUS_WRONG_PASSWORD, Kerberos 0x18 -> KDC_ERR_PREAUTH_FAILED
lookups/well_known_sids.csv   S-1-5-21-...-512 -> Domain Admins, S-1-5-32-544 -> Administrators
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from .lookups import rows as _rows

TOKEN = re.compile(r"%%(\d+)|%?\{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}")
KERBEROS, NTSTATUS = "kerberos", "ntstatus"


@lru_cache(maxsize=1)
def _messages() -> Tuple[Dict[Tuple[str, str], str], Dict[str, List[Tuple[int, str]]]]:
    """((kind, code) -> text, object type -> [(mask bit, text)])."""
    texts: Dict[Tuple[str, str], str] = {}
    rights: Dict[str, List[Tuple[int, str]]] = {}
    for row in _rows("windows_messages.csv"):
        texts[(row["kind"], row["code"])] = row["text"]
        if row["kind"] == "access":
            rights.setdefault(row["object_type"], []).append((int(row["mask"], 16), row["text"]))
    return texts, rights


@lru_cache(maxsize=1)
def _guids() -> Dict[str, str]:
    return {row["guid"]: row["name"] for row in _rows("ad_guids.csv")}


@lru_cache(maxsize=1)
def _statuses() -> Dict[Tuple[str, int], str]:
    return {(row["family"], int(row["code"], 16)): row["name"] for row in _rows("status_codes.csv")}


def message(code: str) -> Optional[str]:
    """`%%7688` -> Control Access."""
    texts = _messages()[0]
    return texts.get(("access", code)) or texts.get(("message", code))


def guid(value: str) -> Optional[str]:
    return _guids().get(value.strip("%{}").lower())


def _token(match: re.Match) -> str:
    code, uuid = match.groups()
    name = message("%%" + code) if code else guid(uuid)
    return name or match.group(0)


def substitute(text: str) -> str:
    """Every `%%N`, `%{guid}` and `{guid}` Windows left unrendered in `text`, by its name when it is known."""
    return TOKEN.sub(_token, text) if ("%" in text or "{" in text) else text


def names(text: str) -> List[str]:
    """A list value (AccessList, Properties) as names, in order, each once; `---` and blanks dropped."""
    out: List[str] = []
    for match in TOKEN.finditer(text):
        name = _token(match)
        if name not in out:
            out.append(name)
    return out


def access_from_mask(object_type: Optional[str], mask: int) -> List[str]:
    """The rights a mask grants on an object type (standard rights for any type), by Windows' names."""
    rights = _messages()[1]
    found = [text for bit, text in rights.get(object_type or "", []) if mask & bit]
    return found + [text for bit, text in rights.get("*", []) if mask & bit]


def status(code: Any, family: str = NTSTATUS) -> Optional[str]:
    """0xc000006a -> STATUS_WRONG_PASSWORD; Kerberos 0x18 or 24 -> KDC_ERR_PREAUTH_FAILED; Samba's
    NT_STATUS_WRONG_PASSWORD -> STATUS_WRONG_PASSWORD."""
    text = str(code).strip()
    if text.upper().startswith("NT_STATUS_"):
        return text[3:].upper()
    try:
        number = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None
    return _statuses().get((family, number))


@lru_cache(maxsize=1)
def _sids() -> Dict[Tuple[str, str], str]:
    return {(row["kind"], row["value"]): row["name"] for row in _rows("well_known_sids.csv")}


def sid(value: str) -> Optional[str]:
    """The well-known account or group a SID names (a domain SID by its relative id)."""
    text = value.strip().upper()
    if not text.startswith("S-1-"):
        return None
    found = _sids().get(("sid", text))
    if found is None and text.startswith("S-1-5-21-") and text.count("-") == 7:
        found = _sids().get(("domain_rid", text.rsplit("-", 1)[1]))
    return found


def logon_type(code: Any) -> Optional[str]:
    return _messages()[0].get(("logon_type", str(code).strip()))
