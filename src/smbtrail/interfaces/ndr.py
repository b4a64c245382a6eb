"""A small reader for NDR (C706 chapter 14) and NDR64 (MS-RPCE 2.2.5) stubs, little-endian only.

Only what the argument decoders need: aligned integers, context handles, unique pointers,
conformant varying strings, RPC_UNICODE_STRING, RPC_SID, GUIDs and conformant byte arrays.
Every read checks bounds and raises NdrError, so a decoder can stop cleanly on a bad stub.
"""

from __future__ import annotations

import struct
import uuid
from typing import List, Optional, Tuple

MAX_STRING_CHARS = 1 << 20  # 2 MiB of UTF-16; larger counts are corruption, not data
INTS = {fmt: struct.Struct("<" + fmt) for fmt in "BHIiQ"}


class NdrError(ValueError):
    """The stub does not hold what the decoder expected at this offset."""


class Reader:
    def __init__(self, data: bytes, ndr64: bool = False):
        self.data = data
        self.pos = 0
        self.ndr64 = ndr64

    # -- primitives -------------------------------------------------------------------------
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def align(self, n: int) -> None:
        self.pos += (-self.pos) % n

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise NdrError(f"need {n} bytes at offset {self.pos}, stub has {len(self.data)}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _int(self, fmt: str, size: int) -> int:
        self.align(size)
        at = self.pos
        if at + size > len(self.data):
            self.raw(size)  # raises, naming the offset
        self.pos = at + size
        return INTS[fmt].unpack_from(self.data, at)[0]

    def u8(self) -> int:
        return self._int("B", 1)

    def u16(self) -> int:
        return self._int("H", 2)

    def u32(self) -> int:
        return self._int("I", 4)

    def i32(self) -> int:
        return self._int("i", 4)

    def u64(self) -> int:
        return self._int("Q", 8)

    def enum(self) -> int:
        """An IDL enum: 2 bytes in NDR, 4 in NDR64."""
        return self.u32() if self.ndr64 else self.u16()

    def union_tag(self) -> int:
        """The discriminant of a union whose arms hold pointers (the union aligns to 8 in NDR64)."""
        self.struct_start()
        return self.u32()

    def count(self) -> int:
        """A conformance/variance count or size_t: 4 bytes in NDR, 8 in NDR64."""
        return self.u64() if self.ndr64 else self.u32()

    def pointer(self) -> int:
        """A unique/full pointer's referent id; 0 means NULL."""
        return self.u64() if self.ndr64 else self.u32()

    def dword_ptr(self) -> int:
        """DWORD_PTR / ULONG_PTR / size_t-like integers follow the transfer syntax's pointer size."""
        return self.pointer()

    def end(self) -> None:
        """Assert that the whole stub was read (up to alignment padding): catches a wrong transfer syntax."""
        if self.remaining() >= 8:
            raise NdrError(f"{self.remaining()} unread bytes after offset {self.pos}")

    def struct_start(self) -> None:
        """Align to the start of a structure that contains pointers (8 in NDR64)."""
        self.align(8 if self.ndr64 else 4)

    # -- composite types --------------------------------------------------------------------
    def handle(self) -> str:
        """A 20-byte context handle (policy handle) as lower-case hex."""
        self.align(4)
        return self.raw(20).hex()

    def guid(self) -> str:
        self.align(4)
        return str(uuid.UUID(bytes_le=self.raw(16)))

    def _varying(self, unit: int) -> Tuple[int, bytes]:
        maximum = self.count()
        offset = self.count()
        actual = self.count()
        if actual > maximum or offset != 0 or actual > MAX_STRING_CHARS:
            raise NdrError(f"bad string counts max={maximum} offset={offset} actual={actual} at {self.pos}")
        return actual, self.raw(actual * unit)

    def wstring(self) -> str:
        """A conformant varying [string] wchar_t array (UTF-16LE), cut at the first NUL."""
        _, body = self._varying(2)
        return _utf16(body)

    def astring(self) -> str:
        """A conformant varying [string] char array, cut at the first NUL."""
        _, body = self._varying(1)
        return _ascii(body)

    def unique_wstring(self) -> Optional[str]:
        return self.wstring() if self.pointer() else None

    def unique_astring(self) -> Optional[str]:
        return self.astring() if self.pointer() else None

    def wchar_pointer(self) -> Optional[str]:
        """PREGISTRY_SERVER_NAME-style [unique] wchar_t*: a pointer to ONE wide character."""
        if not self.pointer():
            return None
        return _utf16(self.raw(2))

    def unicode_string_header(self) -> Tuple[int, int]:
        """RPC_UNICODE_STRING without its deferred body: returns (length in bytes, referent id)."""
        self.struct_start()
        length = self.u16()
        self.u16()  # MaximumLength
        return length, self.pointer()

    def unicode_string_body(self, referent: int) -> Optional[str]:
        if not referent:
            return None
        _, body = self._varying(2)
        return _utf16(body)

    def unicode_string(self) -> Optional[str]:
        """An RPC_UNICODE_STRING (or RRP_UNICODE_STRING) with its deferred buffer right after it."""
        _, ref = self.unicode_string_header()
        return self.unicode_string_body(ref)

    def ansi_string(self) -> Optional[str]:
        """An RPC_STRING (8-bit counted string) with its deferred buffer."""
        _, ref = self.unicode_string_header()
        if not ref:
            return None
        _, body = self._varying(1)
        return _ascii(body)

    def unique_unicode_string(self) -> Optional[str]:
        """A [unique] PRPC_UNICODE_STRING top-level parameter."""
        if not self.pointer():
            return None
        return self.unicode_string()

    def sid(self) -> str:
        """An RPC_SID: conformance count, revision, sub-authority count, authority, sub-authorities."""
        self.count()
        self.align(4)
        revision = self.u8()
        sub_count = self.u8()
        authority = int.from_bytes(self.raw(6), "big")
        if sub_count > 15:
            raise NdrError(f"SID with {sub_count} sub-authorities at {self.pos}")
        subs = [self.u32() for _ in range(sub_count)]
        return f"S-{revision}-{authority}" + "".join(f"-{s}" for s in subs)

    def unique_sid(self) -> Optional[str]:
        return self.sid() if self.pointer() else None

    def conformant_bytes(self) -> bytes:
        """A [size_is(n)] byte array: conformance count then the bytes."""
        size = self.count()
        if size > self.remaining():
            raise NdrError(f"byte array of {size} at {self.pos} overruns the stub")
        return self.raw(size)

    def varying_bytes(self) -> bytes:
        """A [size_is, length_is] byte array: max, offset, actual, bytes."""
        _, body = self._varying(1)
        return body

    def unicode_string_array(self, count: int) -> List[Optional[str]]:
        """A conformant array of RPC_UNICODE_STRING (headers first, then the deferred buffers)."""
        if count > 10000:
            raise NdrError(f"array of {count} strings")
        refs = [self.unicode_string_header()[1] for _ in range(count)]
        return [self.unicode_string_body(ref) for ref in refs]


def _utf16(body: bytes) -> str:
    text = body.decode("utf-16-le", errors="replace")
    return text.split("\x00", 1)[0]


def _ascii(body: bytes) -> str:
    return body.split(b"\x00", 1)[0].decode("latin-1")


def return_code(stub: Optional[bytes]) -> Optional[int]:
    """The trailing DWORD/NTSTATUS of a response stub."""
    if not stub or len(stub) < 4:
        return None
    return struct.unpack("<I", stub[-4:])[0]
