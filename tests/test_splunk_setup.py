"""The setup page stores decryption secrets in storage/passwords (realm smbtrail, this app), validates them
as the input reads them, and never shows or logs a secret: its logic run under node against a stand-in
of splunkjs' storage/passwords collection, and the page wired as Splunk loads it."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "app" / "appserver" / "static"


def test_secret_logic_under_node():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed: the setup page's logic is checked where it is")
    done = subprocess.run([node, str(ROOT / "tests" / "js" / "secrets_check.js"), str(STATIC / "smbtrail_secrets.js")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]


def test_page_is_the_app_setup_view_and_loads_its_scripts():
    app_conf = (ROOT / "default" / "app.conf").read_text()
    assert re.search(r"(?m)^setup_view = smbtrail_setup$", app_conf)
    view = ET.parse(ROOT / "default" / "data" / "ui" / "views" / "smbtrail_setup.xml").getroot()
    assert view.get("script") == "smbtrail_setup.js" and (STATIC / "smbtrail_setup.js").is_file()
    page = (STATIC / "smbtrail_setup.js").read_text()
    assert '"../app/smbtrail/smbtrail_secrets"' in page and ".html(" not in page  # text() only: no markup
    assert view.find(".//input[@id='smbtrail-secret']").get("type") == "password"


def test_the_input_reads_the_names_the_page_writes():
    from smbtrail.splunk import secrets

    page = (STATIC / "smbtrail_secrets.js").read_text()
    assert f'var REALM = "{secrets.REALM}"' in page
    for kind in ("password", "nthash", "sessionkey"):
        assert f'"{kind}"' in page and kind in Path(secrets.__file__).read_text()
