"""The app's own log: where Splunk indexes it from, its level setting, and lines no captured name can forge."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from smbtrail.splunk import logs

ROOT = Path(__file__).resolve().parents[1]


def test_level_from_the_app_conf_local_over_default(tmp_path):
    assert logs.configured_level(ROOT) == "INFO"  # default/smbtrail.conf as shipped
    (tmp_path / "default").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "default" / "smbtrail.conf").write_text("[logging]\nlevel = WARNING\n")
    assert logs.configured_level(tmp_path) == "WARNING"
    (tmp_path / "local" / "smbtrail.conf").write_text("[logging]\nlevel = debug\n")
    assert logs.configured_level(tmp_path) == "DEBUG"
    (tmp_path / "local" / "smbtrail.conf").write_text("[logging]\nlevel = loud\n")
    assert logs.configured_level(tmp_path) == "INFO"


def test_lines_go_to_splunks_log_folder_one_line_each(tmp_path):
    """In a process with SPLUNK_HOME set (as splunkd starts inputs and commands), a message naming a file
    with a newline and an escape sequence stays one printable line in var/log/splunk/smbtrail.log."""
    folder = tmp_path / "var" / "log" / "splunk"
    folder.mkdir(parents=True)
    script = ("from smbtrail.splunk import logs\n"
              "logs.logger('smbtrail_pcap').warning('%s: skipped', logs.printable('/spool/a\\nERROR forged\\x1b[31m'))\n")
    done = subprocess.run([sys.executable, "-c", script], env={"SPLUNK_HOME": str(tmp_path), "PATH": "/usr/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = (folder / "smbtrail.log").read_text().splitlines()
    assert len(lines) == 1 and " WARNING pid=" in lines[0] and "component=smbtrail_pcap" in lines[0]
    assert "/spool/a\\nERROR forged\\x1b[31m: skipped" in lines[0]


def test_an_input_writers_log_also_reaches_the_app_log(caplog):
    said = []

    class Writer:
        def log(self, severity, message):
            said.append((severity, message))

    writer = logs.LoggedWriter(Writer(), "smbtrail_hostlog")
    base = logging.getLogger("smbtrail.app")
    base.addHandler(caplog.handler)
    try:
        writer.log("ERROR", "x.evtx: skipped")
    finally:
        base.removeHandler(caplog.handler)
    assert said == [("ERROR", "x.evtx: skipped")]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("ERROR", "x.evtx: skipped")]
