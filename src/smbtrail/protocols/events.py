"""What the protocol handlers report: the one interface between the state machines and the pipeline above.

The handlers keep per-connection state (connections.py) and call these methods when something worth a
record is complete; the network analyzer implements them and turns each into a record. Nothing else of
the pipeline is visible to a handler.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Protocol

from ..capture.fields import Frame, Row
from .connections import Burst, Call, Channel, Conn, Session
from .files import Open


class ProtocolEvents(Protocol):
    def session_started(self, frame: Frame, conn: Conn, session: Session) -> None:
        """A SESSION_SETUP succeeded: who logged on."""

    def session_failed(self, frame: Frame, conn: Conn, status: str) -> None:
        """A SESSION_SETUP the server refused, with its NT status."""

    def tree_connected(self, frame: Frame, conn: Conn, sesid: str, tree: Optional[str], row: Row) -> None:
        """A TREE_CONNECT succeeded."""

    def file_closed(self, conn: Conn, opened: Open, partial: bool = False) -> None:
        """An open ended (closed, refused, or still open when the connection's state is flushed: partial)."""

    def rpc_call_done(self, conn: Conn, chan: Channel, call: Call, status: Optional[str]) -> None:
        """A DCE/RPC call got its response or fault (status None: success), or never will ("no_response")."""

    def epm_mapped(self, server_ip: str, args: Dict[str, Any]) -> None:
        """The endpoint mapper named the TCP port of an interface on this server."""

    def encrypted_burst(self, conn: Conn, burst: Burst) -> None:
        """A burst of SMB3 messages no secret opened ended."""
