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
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import AbstractSet, Dict, Iterator, List, Optional, Tuple

from ..tempdirs import SECRETS, LockedTempdir

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


@dataclass
class TsharkSecrets:
    """What tshark is given for the configured secrets, and what was wrong with them."""

    prefs: List[str] = field(default_factory=list)  # `-o` preferences
    keytab: Optional[str] = None  # `-K`
    env: Optional[Dict[str, str]] = None  # WIRESHARK_CONFIG_DIR: set when any secret is given
    errors: List[str] = field(default_factory=list)  # one line each, naming the file and line, never a secret
    session_ids: AbstractSet[str] = frozenset()  # sessions (wire order) a key was given for
    pass_fds: Tuple[int, ...] = ()  # memory-only files tshark inherits

    @property
    def decrypting(self) -> bool:
        return self.env is not None


@contextmanager
def tshark_secrets(options) -> Iterator[TsharkSecrets]:
    """tshark arguments and environment for the configured secrets, plus errors about them.

    The one place secrets are handed to tshark: a private (0700) WIRESHARK_CONFIG_DIR whose `preferences`,
    `smb2_seskey_list` and keytab are, where Linux allows (memfd), symbolic links to memory-only files that
    tshark inherits: nothing secret is ever written to disk, and the memory goes with the processes, also
    on SIGKILL. Elsewhere they are 0600 files in that directory, removed on exit and on SIGTERM/SIGHUP
    (terminate_on_signals), and by the next capture run after a SIGKILL (tempdirs.sweep_stale)."""
    if options is None or not (options.keys_file or options.session_keys or options.passwords or options.nt_hashes
                               or options.keytab):
        yield TsharkSecrets()
        return
    with _SecretDir() as store:
        errors: List[str] = []
        keys = _load_keys(options.keys_file, errors) + _inline_keys(options.session_keys, errors)
        if keys:
            store.write("smb2_seskey_list", "".join(k.uat_line() + "\n" for k in keys))
        passwords = [p.get_secret_value() for p in options.passwords]
        hashes = [nt_hash(p) for p in passwords[1:]] + _hashes(options.nt_hashes, errors)
        if passwords:
            store.write("preferences", f"ntlmssp.nt_password: {passwords[0]}\n")
        keytab = _user_keytab(options.keytab, errors)
        if hashes:
            keytab = store.write("smbtrail.keytab", _merged_keytab(keytab, rc4_keytab(hashes)))
        yield TsharkSecrets(keytab=keytab, env={"WIRESHARK_CONFIG_DIR": store.path}, errors=errors,
                            session_ids=frozenset(k.session_id for k in keys), pass_fds=tuple(store.fds))


class _SecretDir(LockedTempdir):
    """A private directory for tshark's secret files, locked while in use (see tshark_secrets)."""

    def __init__(self) -> None:
        super().__init__(SECRETS)
        self.fds: List[int] = []

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        super().close()

    def write(self, name: str, data) -> str:
        """The file tshark reads `name` from: a link to a memory-only file it inherits, or a 0600 file."""
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        path = os.path.join(self.path, name)
        memfd = getattr(os, "memfd_create", None)
        if memfd is not None and os.path.isdir("/proc/self/fd"):
            fd = memfd(f"smbtrail-{name}", getattr(os, "MFD_CLOEXEC", 0))
            os.write(fd, raw)
            os.set_inheritable(fd, False)  # handed to tshark through pass_fds only
            self.fds.append(fd)
            os.symlink(f"/proc/self/fd/{fd}", path)  # resolved in tshark, where the inherited fd has this number
            return path
        _write(path, raw)
        return path


def terminate_on_signals() -> None:
    """SIGTERM and SIGHUP raise SystemExit in the main thread, so every `finally` runs: tshark is stopped
    and temporary secrets and files are removed (the default action would end the process on the spot)."""
    import signal

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            try:
                signal.signal(getattr(signal, name), _exit)
            except ValueError:  # not the main thread
                return


def _inline_keys(values, errors: List[str]) -> List[SessionKeys]:
    """Session keys given as text lines (from a credential store), never written to a file."""
    keys, bad = parse_key_lines([v.get_secret_value() for v in values or ()], "session key")
    errors.extend(bad)
    return keys


def _user_keytab(path: Optional[str], errors: List[str]) -> Optional[str]:
    if not path:
        return None
    try:
        with open(path, "rb"):
            return path
    except OSError as exc:
        errors.append(f"{path}: cannot read keytab ({exc.strerror})")
        return None


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


def _merged_keytab(user_keytab: Optional[str], extra: bytes) -> bytes:
    if user_keytab:
        with open(user_keytab, "rb") as handle:
            existing = handle.read()
        if existing[:2] == b"\x05\x02":
            return existing + extra[2:]
    return extra


def _write(path: str, data) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, mode) as handle:
        handle.write(data)
