"""The app's sources agree with each other: confs, dashboards, navigation, the input schemes."""

from __future__ import annotations

import configparser
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smbtrail.splunk import events
from smbtrail.splunk.modinput import HostlogInput, PcapInput

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "default"
VIEWS = sorted((DEFAULT / "data" / "ui" / "views").glob("*.xml"))
TOKEN = re.compile(r"\$([^$\s]+)\$")
TIME_TOKENS = {"time.earliest", "time.latest"}


def conf(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read_string((DEFAULT / name).read_text(encoding="utf-8").replace("\\\n", " "))
    return parser


def test_dashboards_are_valid_simple_xml():
    assert {p.stem for p in VIEWS} == {"smbtrail_trail", "smbtrail_graph", "smbtrail_encryption", "smbtrail_health",
                                       "smbtrail_setup"}
    for view in VIEWS:
        root = ET.parse(view).getroot()
        assert root.tag in ("form", "dashboard") and root.get("version") == "1.1"


@pytest.mark.parametrize("view", VIEWS, ids=lambda p: p.stem)
def test_every_token_from_data_is_escaped(view):
    """Tokens in SPL (searches, eval tokens) use |s (quoted, escaped), in URLs |u, in HTML |h; only
    time-picker tokens go bare."""
    root = ET.parse(view).getroot()
    required = {"query": "s", "eval": "s", "link": "u", "html": "h"}
    for element in root.iter():
        text = "".join(element.itertext()) if element.tag == "html" else (element.text or "")
        for token in TOKEN.findall(text):
            name, _, filt = token.partition("|")
            if element.tag in ("earliest", "latest", "set", "default", "label", "title") or name in TIME_TOKENS:
                continue
            assert element.tag in required, f"{view.name}: token ${token}$ in <{element.tag}>"
            assert filt == required[element.tag], f"{view.name}: ${token}$ in <{element.tag}> needs |{required[element.tag]}"


def test_navigation_lists_the_dashboards():
    nav = ET.parse(DEFAULT / "data" / "ui" / "nav" / "default.xml").getroot()
    listed = {v.get("name") for v in nav.iter("view")} - {"search"}
    assert listed == {p.stem for p in VIEWS}


def test_input_spec_matches_the_schemes():
    spec = (ROOT / "app" / "README" / "inputs.conf.spec").read_text()
    inputs = conf("inputs.conf")
    for cls in (PcapInput, HostlogInput):
        block = spec.split(f"[{cls.scheme_name}://<name>]")[1].split("\n[")[0]
        declared = set(re.findall(r"(?m)^(\w+) = ", block))
        assert declared == {a.name for a in cls().arguments()}
        assert (ROOT / "bin" / f"{cls.scheme_name}.py").is_file()  # AppInspect: bin/<scheme>.py
        stanza = inputs[cls.scheme_name]
        assert stanza["python.version"] == "python3" and stanza["python.required"] == "3.13"
        assert set(stanza) - {"interval", "python.version", "python.required"} <= declared


def test_search_command_is_declared_for_protocol_v2():
    command = conf("commands.conf")["smbtrailfuse"]
    assert command["chunked"] == "true" and command["python.required"] == "3.13"
    assert (ROOT / "bin" / command["filename"]).is_file()
    assert "smbtrailfuse-command" in conf("searchbnf.conf").sections()


def test_every_sourcetype_has_props_and_an_eventtype():
    props, eventtypes, tags = conf("props.conf"), conf("eventtypes.conf"), conf("tags.conf")
    for sourcetype in (events.NETWORK, events.HOST, events.HEALTH):
        stanza = props[sourcetype]
        assert stanza["KV_MODE"] == "json" and stanza["TIME_FORMAT"] and stanza["TZ"] == "UTC"
        assert any(sourcetype in eventtypes[e]["search"] for e in eventtypes.sections())
    fused = props[f"source::{events.FUSED_SOURCE}"]  # collect writes sourcetype stash: props by source
    assert fused["KV_MODE"] == "json" and any(events.FUSED_SOURCE in eventtypes[e]["search"]
                                              for e in eventtypes.sections())
    cim = {t: set(tags[t]) for t in tags.sections()}
    assert {"network", "communicate"} <= cim["eventtype=smbtrail_network"]
    assert "authentication" in cim["eventtype=smbtrail_host_logon"]
    assert {"service", "report"} <= cim["eventtype=smbtrail_host_service"]
    assert "change" in cim["eventtype=smbtrail_host_task"] and "change" in cim["eventtype=smbtrail_host_account"]
    assert cim["eventtype=smbtrail_fused_trail"] == {"alert"}  # trails only: no logon is an alert
    assert "authentication" in cim["eventtype=smbtrail_network_session"]


def test_app_conf_version_is_semver_and_id_matches():
    app = conf("app.conf")
    assert re.fullmatch(r"\d+\.\d+\.\d+", app["launcher"]["version"])
    assert app["package"]["id"] == app["id"]["name"] == "smbtrail"
