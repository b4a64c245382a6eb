"""Records that cross boundaries: the engine's output, the Splunk events, the fusion input.

One stream holds network and host records; fields that mean the same thing share one name.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from .pydantic_api import BaseModel, ConfigDict, Field, field_serializer, field_validator

SCHEMA_VERSION = 1

# kind values
OPERATION = "operation"  # one DCE/RPC request (with its response status)
FILE = "file"  # one SMB file open with what was done to it (write/read/delete/rename)
SESSION = "session"  # one SMB session or authenticated RPC connection
TREE = "tree"  # one share mapping (TREE_CONNECT)
COMMAND = "command"  # a recognized command built from several records
ENCRYPTED_ACTIVITY = "encrypted_activity"  # a burst of SMB3 messages that could not be read
HOST_EVENT = "host_event"  # one Windows event
TRAIL = "trail"  # one account's logon session on one target, fused, with its commands
ERROR = "error"  # an input that could not be (fully) read


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    frames: List[int] = Field(default_factory=list)
    record_ids: List[int] = Field(default_factory=list)


class Record(BaseModel):
    """One row of a trail. Unset fields are omitted from JSON."""

    model_config = ConfigDict(extra="forbid")

    time: datetime
    kind: str
    src_ip: Optional[str] = None
    src_port: Optional[int] = None
    dest_ip: Optional[str] = None
    dest_port: Optional[int] = None
    src_host: Optional[str] = None
    dest_host: Optional[str] = None
    user: Optional[str] = None
    domain: Optional[str] = None
    protocol: Optional[str] = None  # smb1 | smb2 | smb3 | smb (Zeek) | dcerpc | kerberos | tcp (Zeek) | windows_event
    transport: Optional[str] = None  # ncacn_np | ncacn_ip_tcp | smb
    share: Optional[str] = None
    path: Optional[str] = None
    rpc_interface: Optional[str] = None
    rpc_uuid: Optional[str] = None
    opnum: Optional[int] = None
    operation: Optional[str] = None
    status: Optional[str] = None
    command: Optional[str] = None
    args: Dict[str, Any] = Field(default_factory=dict)
    encrypted: bool = False
    decrypted: bool = False
    sealed: bool = False
    inferred: bool = False
    partial: bool = False
    confidence: Optional[float] = None
    evidence: List[str] = Field(default_factory=list)
    trail_id: Optional[str] = None
    session_id: Optional[str] = None
    # host-side fields
    event_id: Optional[int] = None
    channel: Optional[str] = None
    provider: Optional[str] = None
    record_id: Optional[int] = None
    logon_id: Optional[str] = None
    access: List[str] = Field(default_factory=list)
    collector_time: Optional[datetime] = None
    raw: Dict[str, Any] = Field(default_factory=dict)
    # fusion
    join: List[str] = Field(default_factory=list)
    provenance: List[Provenance] = Field(default_factory=list)
    message: Optional[str] = None  # human text for error and summary records

    @field_validator("time", "collector_time")
    @classmethod
    def _utc(cls, value: Optional[datetime]) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @field_serializer("time", "collector_time")
    def _iso(self, value: Optional[datetime]) -> Optional[str]:
        return None if value is None else iso(value)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)

    def to_dict(self) -> Dict[str, Any]:
        """The fields set to neither None nor their default, time in ISO form (by `_iso`: time and kind have
        no default, so they are always there)."""
        return {k: v for k, v in self.model_dump(exclude_defaults=True).items() if v is not None}

    def uid(self) -> str:
        """Deterministic id: the same input gives the same id on every run (dedup key in Splunk)."""
        prov = [(p.file.rsplit("/", 1)[-1], p.frames[:4], p.record_ids[:4]) for p in self.provenance]
        key = _KEY_JSON(
            [self.kind, iso(self.time), self.src_ip, self.src_port, self.dest_ip, self.opnum, self.operation,
             self.path, self.event_id, self.record_id, self.dest_host, prov,
             self.trail_id if self.kind in (TRAIL, COMMAND) else None, self._distinct()])
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]

    def _distinct(self) -> Any:
        """What tells apart records that share the fields above: the error messages of one file, and the
        commands recognised or inferred from one burst of messages."""
        if self.kind == ERROR:
            return self.message
        if self.kind == COMMAND:
            a = self.args
            return [self.command, a.get("action"), a.get("template"), a.get("evidence_sizes")]
        return None


_KEY_JSON = json.JSONEncoder(default=str).encode  # json.dumps(..., default=str) without a new encoder a call


def iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def account_key(name: Optional[str]) -> Optional[str]:
    """An account as both sides name it: DOMAIN\\User, user@REALM and User are all `user`."""
    if not name:
        return None
    return name.split("\\")[-1].split("@")[0].strip().lower() or None


def stable_id(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, default=str).encode("utf-8")).hexdigest()[:16]


def from_epoch(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)
