"""Decryption secrets handed to tshark through a private config dir, never on its command line.

Key file format (one SMB3 session per line, `#` comments, fields split by spaces or commas):
    <session id> <session key>                      # key known
    <session id> <session key> <s2c key> <c2s key>  # cipher keys known (use "-" for an unknown one)
Session ids are 16 hex digits in wire order (as Wireshark's smb2_seskey_list wants), or the
`0x...` form tshark prints for `smb2.sesid` (converted).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

HEX = re.compile(r"^[0-9a-fA-F]*$")


class KeyFileError(ValueError):
    pass


@dataclass
class SessionKeys:
    session_id: str  # wire order hex
    session_key: str = ""
    s2c: str = ""
    c2s: str = ""

    def uat_line(self) -> str:
        cols = [self.session_id, self.session_key, self.s2c, self.c2s]
        return ",".join(c if c else '""' for c in cols)


def parse_key_lines(lines: List[str], source: str) -> Tuple[List[SessionKeys], List[str]]:
    """Good entries, and one error per bad line naming the file and line (never the key itself)."""
    keys, errors = [], []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            keys.append(_parse_line(text))
        except KeyFileError as exc:
            errors.append(f"{source}: line {number}: {exc}")
    return keys, errors


def _parse_line(text: str) -> SessionKeys:
    parts = [p for p in re.split(r"[\s,]+", text) if p]
    if len(parts) not in (2, 4):
        raise KeyFileError(f"expected 2 or 4 fields (session id, key[, s2c, c2s]), got {len(parts)}")
    sesid = _session_id(parts[0])
    values = ["" if p in ("-", '""') else p.lower() for p in parts[1:]]
    for name, value, sizes in zip(("session key", "s2c key", "c2s key"), values, ((16,), (16, 32), (16, 32))):
        if value and (not HEX.match(value) or len(value) // 2 not in sizes or len(value) % 2):
            allowed = " or ".join(str(s) for s in sizes)
            raise KeyFileError(f"{name} must be {allowed} bytes of hex")
    if not any(values):
        raise KeyFileError("no key given")
    return SessionKeys(sesid, *values) if len(values) == 3 else SessionKeys(sesid, values[0])


def _session_id(text: str) -> str:
    raw = text.lower()
    if raw.startswith("0x"):
        digits = raw[2:].rjust(16, "0")
        if not HEX.match(digits) or len(digits) != 16:
            raise KeyFileError("session id must be 8 bytes of hex")
        return bytes.fromhex(digits)[::-1].hex()
    if not HEX.match(raw) or len(raw) != 16:
        raise KeyFileError("session id must be 8 bytes of hex (wire order) or 0x-prefixed")
    return raw


def nt_hash(password: str) -> bytes:
    try:
        return hashlib.new("md4", password.encode("utf-16-le")).digest()
    except ValueError:  # OpenSSL 3 without the legacy provider
        from ._md4 import md4

        return md4(password.encode("utf-16-le"))


def rc4_keytab(hashes: List[bytes]) -> bytes:
    """MIT keytab of RC4-HMAC entries: Wireshark's NTLMSSP dissector tries these as NT hashes."""
    out = [struct.pack(">H", 0x0502)]
    for n, key in enumerate(hashes):
        realm, name = b"SMBTRAIL", f"ntlm{n}".encode()
        body = struct.pack(">H", 1) + struct.pack(">H", len(realm)) + realm
        body += struct.pack(">H", len(name)) + name + struct.pack(">IIB", 1, int(time.time()), 1)
        body += struct.pack(">HH", 23, len(key)) + key
        out.append(struct.pack(">i", len(body)) + body)
    return b"".join(out)


@contextmanager
def tshark_secrets(options) -> Iterator[Dict[str, object]]:
    """tshark arguments and environment for the configured secrets, plus errors about them."""
    result: Dict[str, object] = {"prefs": [], "keytab": None, "env": None, "errors": [], "session_ids": set()}
    if options is None or not (options.keys_file or options.passwords or options.nt_hashes or options.keytab):
        yield result
        return
    tmp = tempfile.mkdtemp(prefix="smbtrail-tshark-")
    os.chmod(tmp, 0o700)
    try:
        errors: List[str] = []
        keys = _load_keys(options.keys_file, errors)
        if keys:
            _write(os.path.join(tmp, "smb2_seskey_list"), "".join(k.uat_line() + "\n" for k in keys))
        passwords = [p.get_secret_value() for p in options.passwords]
        hashes = [nt_hash(p) for p in passwords[1:]] + _hashes(options.nt_hashes, errors)
        if passwords:
            _write(os.path.join(tmp, "preferences"), f"ntlmssp.nt_password: {passwords[0]}\n")
        keytab = options.keytab
        if hashes:
            keytab = _merged_keytab(tmp, keytab, rc4_keytab(hashes))
        result.update(keytab=keytab, env={"WIRESHARK_CONFIG_DIR": tmp}, errors=errors,
                      session_ids={k.session_id for k in keys})
        yield result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_keys(path: Optional[str], errors: List[str]) -> List[SessionKeys]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            keys, bad = parse_key_lines(handle.readlines(), path)
    except OSError as exc:
        errors.append(f"{path}: cannot read key file ({exc.strerror})")
        return []
    errors.extend(bad)
    return keys


def _hashes(values, errors: List[str]) -> List[bytes]:
    out = []
    for n, secret in enumerate(values, 1):
        text = secret.get_secret_value().strip().split(":")[-1]
        if len(text) == 32 and HEX.match(text):
            out.append(bytes.fromhex(text))
        else:
            errors.append(f"--nt-hash #{n}: not 32 hex digits")
    return out


def _merged_keytab(tmp: str, user_keytab: Optional[str], extra: bytes) -> str:
    path = os.path.join(tmp, "smbtrail.keytab")
    data = extra
    if user_keytab:
        with open(user_keytab, "rb") as handle:
            existing = handle.read()
        if existing[:2] == b"\x05\x02":
            data = existing + extra[2:]
    _write(path, data)
    return path


def _write(path: str, data) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, mode) as handle:
        handle.write(data)
