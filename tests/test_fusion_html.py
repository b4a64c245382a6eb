"""The HTML report: self-contained, shows the fused trail, and escapes every string from the inputs."""

from __future__ import annotations

import glob
import html
import io
from html.parser import HTMLParser

from smbtrail.engine import host_records, network_records
from smbtrail.fusion import fuse_records
from smbtrail.output.html import write_html

NAME = "covenant_sharpsc_create_dcerpc_smb_svcctl"
HOSTILE = '<script>alert("x")</script>'


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_shows_the_fused_trail_and_escapes_input_strings(shared_data):
    network = list(network_records(glob.glob(str(shared_data / "otrf-security-datasets/windows/*/network" /
                                                 f"{NAME}.zip"))))
    host = list(host_records(glob.glob(str(shared_data / "otrf-security-datasets/windows/*/host" / f"{NAME}.zip"))))
    for rec in host:  # an attacker names its service and its workstation
        if rec.event_id in (4697, 7045):
            rec.args["service_name"] = HOSTILE
        if rec.event_id == 4624 and rec.src_port:
            rec.user = "pgustavo<img src=x onerror=alert(1)>"
    for rec in network:
        if rec.kind == "command" and rec.command == "sc":
            rec.args["service_name"] = HOSTILE
    out = io.StringIO()
    count = write_html(fuse_records(network + host), out)
    page = out.getvalue()
    assert count > len(network) + len(host) - 5
    assert "<script" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert html.escape(HOSTILE, quote=True) in page
    parser = _Tags()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "svg" in tags and "table" in tags and "article" in tags
    assert not [k for _, attrs in parser.tags for k in attrs if k.startswith("on")], "no event handler attributes"
    assert not [a for t, a in parser.tags if t in ("link", "img", "iframe") or a.get("src")], "self-contained"
    assert "GruntHTTP2.exe" in page and "WORKSTATION6" in page and "sc create" in page
    assert "ip_port" in page and ".json" in page and ".cap" in page, "joins and provenance from both sides"
