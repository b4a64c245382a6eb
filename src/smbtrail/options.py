"""Every setting of a run, in one model that each adapter fills and every layer of the engine reads."""

from __future__ import annotations

import os
from typing import List, Optional

from .input_files import DEFAULT_MAX_EXPANSION
from .pydantic_api import BaseModel, ConfigDict, Field, SecretStr

MAX_EXPANSION_VARIABLE = "SMBTRAIL_MAX_EXPANSION"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all_events: bool = False  # host side: pass through events outside the covered set
    keys_file: Optional[str] = None  # SMB3 session keys, one session per line
    session_keys: List[SecretStr] = Field(default_factory=list)  # the same lines, held in memory only
    passwords: List[SecretStr] = Field(default_factory=list)
    nt_hashes: List[SecretStr] = Field(default_factory=list)
    keytab: Optional[str] = None
    fuse: bool = True
    tshark: Optional[str] = None  # the tshark binary (default: $SMBTRAIL_TSHARK, PATH, the usual install places)
    prefilter: bool = True  # captures: let tcpdump select the flows worth dissecting (same records, faster)
    workers: int = 0  # tshark processes at once (0: one per core but one); the records do not depend on it
    max_expansion: float = DEFAULT_MAX_EXPANSION  # a gzip capture or zip member expands at most this much (0: no bound)


def max_expansion_from_environment() -> float:
    """$SMBTRAIL_MAX_EXPANSION: how a user of the command line or of the Splunk inputs sets
    `Options.max_expansion` (README); the engine itself reads the option only. Not a number: the default."""
    try:
        return float(os.environ.get(MAX_EXPANSION_VARIABLE, DEFAULT_MAX_EXPANSION))
    except ValueError:
        return DEFAULT_MAX_EXPANSION
