"""Protocol numbers, named once: SMB2 and SMB1 commands ([MS-SMB2] 2.2.1, [MS-CIFS] 2.2.2.1), the NT status
codes the state machines act on ([MS-ERREF] 2.3.1), DCE/RPC PDU types (C706 12.6.4.1).

tshark prints an NT status as `0x` and eight hex digits; `status_code` reads it (names for people come from
lookups/status_codes.csv, not from here).
"""

from __future__ import annotations

from enum import IntEnum

from ..capture.fields import to_int


class Smb2(IntEnum):
    NEGOTIATE = 0x00
    SESSION_SETUP = 0x01
    LOGOFF = 0x02
    TREE_CONNECT = 0x03
    TREE_DISCONNECT = 0x04
    CREATE = 0x05
    CLOSE = 0x06
    FLUSH = 0x07
    READ = 0x08
    WRITE = 0x09
    LOCK = 0x0A
    IOCTL = 0x0B
    CANCEL = 0x0C
    ECHO = 0x0D
    QUERY_DIRECTORY = 0x0E
    CHANGE_NOTIFY = 0x0F
    QUERY_INFO = 0x10
    SET_INFO = 0x11
    OPLOCK_BREAK = 0x12


class Smb1(IntEnum):
    DELETE = 0x06
    CLOSE = 0x04
    READ = 0x0A
    WRITE = 0x0B
    TRANSACTION = 0x25
    READ_ANDX = 0x2E
    WRITE_ANDX = 0x2F
    NEGOTIATE = 0x72
    SESSION_SETUP_ANDX = 0x73
    LOGOFF_ANDX = 0x74
    TREE_CONNECT_ANDX = 0x75
    NT_CREATE_ANDX = 0xA2
    NO_ANDX_COMMAND = 0xFF


class Status(IntEnum):
    SUCCESS = 0x00000000
    PENDING = 0x00000103  # an interim answer to an async request: the real one follows
    BUFFER_OVERFLOW = 0x80000005  # success with more data to read
    MORE_PROCESSING_REQUIRED = 0xC0000016  # an interim SESSION_SETUP answer: authentication goes on


class Pdu(IntEnum):
    REQUEST = 0
    RESPONSE = 2
    FAULT = 3
    BIND = 11
    BIND_ACK = 12
    BIND_NAK = 13
    ALTER_CONTEXT = 14
    ALTER_CONTEXT_RESP = 15
    AUTH3 = 16


SUCCESS_TEXT = "0x00000000"  # Status.SUCCESS as tshark prints it (the status a message without one has)


def status_code(text: str) -> int:
    """An NT status as tshark prints it; -1 for anything else."""
    return to_int(text, -1)
