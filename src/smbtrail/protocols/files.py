"""SMB opens (SMB1 and SMB2 share this): what was done to one file or pipe between open and close."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

DISPOSITIONS = {0: "supersede", 1: "open", 2: "create", 3: "open_if", 4: "overwrite", 5: "overwrite_if"}
ACTIONS = {0: "superseded", 1: "opened", 2: "created", 3: "overwritten"}
DELETE_ON_CLOSE = 0x1000
DIRECTORY_FILE = 0x1


@dataclass
class Open:
    name: str
    share: Optional[str]
    is_pipe: bool
    session: Optional[str]
    time: float
    disposition: Optional[int] = None
    access: int = 0
    create_options: int = 0
    action: Optional[int] = None
    fid: Optional[str] = None
    status: Optional[str] = None
    bytes_written: int = 0
    bytes_read: int = 0
    writes: int = 0
    reads: int = 0
    deleted: bool = False
    renamed_to: Optional[str] = None
    frames: List[int] = field(default_factory=list)

    def add_frame(self, number: int) -> None:
        if len(self.frames) < 32 and (not self.frames or self.frames[-1] != number):
            self.frames.append(number)

    def operation(self) -> str:
        if self.is_pipe:
            return "pipe_open"
        if self.deleted or self.create_options & DELETE_ON_CLOSE:
            return "delete"
        if self.renamed_to:
            return "rename"
        if self.bytes_written or self.action in (0, 2, 3):
            return "write"
        if self.bytes_read:
            return "read"
        return "open"

    def is_directory(self) -> bool:
        return bool(self.create_options & DIRECTORY_FILE)

    def args(self) -> Dict[str, Any]:
        args: Dict[str, Any] = {"file": self.name}
        if self.disposition is not None:
            args["disposition"] = DISPOSITIONS.get(self.disposition, str(self.disposition))
        if self.action is not None:
            args["create_action"] = ACTIONS.get(self.action, str(self.action))
        if self.bytes_written:
            args["bytes_written"] = self.bytes_written
            args["writes"] = self.writes
        if self.bytes_read:
            args["bytes_read"] = self.bytes_read
            args["reads"] = self.reads
        if self.deleted or self.create_options & DELETE_ON_CLOSE:
            args["delete_on_close"] = True
        if self.renamed_to:
            args["renamed_to"] = self.renamed_to
        if self.fid:
            args["fid"] = self.fid
        return args
