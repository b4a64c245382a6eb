"""The app's own log: $SPLUNK_HOME/var/log/splunk/smbtrail.log, which Splunk's own monitor of that folder
indexes into _internal (sourcetype smbtrail:log, props.conf), at the level set in smbtrail.conf
`[logging] level` (local/ over default/). Outside Splunk (no SPLUNK_HOME) nothing is written.

Messages name files and counts, never secrets; each message is made printable (`output.printable`:
controls shown escaped) so a crafted file name cannot forge a log line.
"""

from __future__ import annotations

import configparser
import logging
import logging.handlers
import os
from pathlib import Path
from typing import Optional

from ..output import printable

FILE_NAME = "smbtrail.log"
CONF = "smbtrail.conf"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_configured = False


def app_dir() -> Path:
    """<app>/ when running from <app>/bin/lib/smbtrail/splunk/."""
    return Path(__file__).resolve().parents[4]


def configured_level(root: Optional[Path] = None) -> str:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    root = root or app_dir()
    parser.read([str(root / "default" / CONF), str(root / "local" / CONF)], encoding="utf-8")
    level = parser.get("logging", "level", fallback="INFO").strip().upper()
    return level if level in LEVELS else "INFO"


def logger(component: str) -> logging.LoggerAdapter:
    global _configured
    base = logging.getLogger("smbtrail.app")
    if not _configured:
        _configured = True
        base.propagate = False
        base.setLevel(configured_level())
        home = os.environ.get("SPLUNK_HOME")
        folder = Path(home) / "var" / "log" / "splunk" if home else None
        if folder is not None and folder.is_dir():
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                folder / FILE_NAME, maxBytes=25 * 1024 * 1024, backupCount=5, encoding="utf-8")
            handler.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)s pid=%(process)d component=%(component)s %(message)s"))
        else:
            handler = logging.NullHandler()
        base.addHandler(handler)
    return logging.LoggerAdapter(base, {"component": component})


class LoggedWriter:
    """A modular input's EventWriter whose log lines also go to the app's own log."""

    LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR,
              "FATAL": logging.CRITICAL}

    def __init__(self, writer, component: str) -> None:
        self._writer, self._log = writer, logger(component)

    def log(self, severity: str, message: str) -> None:
        self._writer.log(severity, message)
        self._log.log(self.LEVELS.get(severity, logging.INFO), "%s", printable(message))

    def __getattr__(self, name: str):
        return getattr(self._writer, name)
