"""Decryption secrets from Splunk's storage/passwords (never from .conf), turned into engine Options.

Credentials live in realm `smbtrail`; the part of the username before the first colon says what the
secret is: `password:<label>` (an account password), `nthash:<label>` (an NT hash),
`sessionkey:<session id hex>` (an SMB3 session key, the clear password is the key in hex).
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional, Sequence, Tuple

from ..engine import Options
from ..pydantic_api import SecretStr

REALM = "smbtrail"
APP = "smbtrail"  # default/app.conf id: credentials are looked up in this app's namespace only
HEX = re.compile(r"^[0-9A-Fa-f]+$")


class SecretError(ValueError):
    """A malformed credential; the message names the credential, never its value."""


def wanted(names: str) -> List[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


def fetch(service, names: Sequence[str]) -> List[Tuple[str, str]]:
    """(username, clear password) of the named credentials of realm `smbtrail` (all of them for '*').

    One request in this app's namespace, filtered by realm on splunkd's side (`search=realm=smbtrail`),
    so only this app's credentials of its own realm are read and decrypted, never every app's; the exact
    realm is checked again here (splunkd's filter matches substrings)."""
    found = []
    for cred in service.storage_passwords.list(count=-1, owner="nobody", app=APP, search=f"realm={REALM}"):
        if cred.content.get("realm") != REALM:
            continue
        user = cred.content.get("username", "")
        if "*" in names or user in names:
            found.append((user, cred.content.get("clear_password", "")))
    missing = sorted(set(names) - {"*"} - {u for u, _ in found})
    if missing:
        raise SecretError(f"not found in storage/passwords realm {REALM}: {', '.join(missing)}")
    return found


def to_options(creds: Iterable[Tuple[str, str]]) -> Options:
    """Engine options from credentials, all held in memory (the engine hands them to tshark, see
    encryption/keys.py: nothing secret is written to disk)."""
    passwords: List[SecretStr] = []
    hashes: List[SecretStr] = []
    keys: List[str] = []
    for user, secret in creds:
        kind, _, label = user.partition(":")
        if kind == "password":
            passwords.append(SecretStr(secret))
        elif kind == "nthash":
            _check_hex(user, secret, 32)
            hashes.append(SecretStr(secret))
        elif kind == "sessionkey":
            _check_hex(user, label, 16)
            _check_hex(user, secret, None)
            keys.append(f"{label.lower()},{secret.lower()}")
        else:
            raise SecretError(f"credential {user!r}: username must start with password:, nthash: or sessionkey:")
    return Options(passwords=passwords, nt_hashes=hashes, session_keys=[SecretStr(k) for k in keys])


def _check_hex(user: str, value: str, length: Optional[int]) -> None:
    if not HEX.match(value or "") or (length is not None and len(value) != length):
        size = f"{length} hex digits" if length else "hex digits"
        raise SecretError(f"credential {user!r}: expected {size}")


def discard(options: Options) -> None:
    """Nothing to remove: kept for the adapters' `finally` (secrets never reach a file here)."""
