"""The interface knowledge in lookups/ agrees with the decoders and with tshark 4.0."""

from __future__ import annotations

import csv
import subprocess
from collections import Counter

import pytest

from helpers.rpc_calls import require_tshark
from smbtrail import interfaces
from smbtrail.interfaces import MODULES, decoder_for, interface_name, operation_name
from smbtrail.lookups import lookups_dir

KEY_ACTIONS = {
    ("367abb81-9844-35f1-ad32-98f038001003", 45): "create_service",
    ("367abb81-9844-35f1-ad32-98f038001003", 64): "open_scm",
    ("1ff70682-0a51-30e8-076d-740be8cee98b", 0): "add_job",
    ("86d35949-83c9-4044-b424-db363231fd0c", 1): "register_task",
    ("338cd001-2244-31f1-aaaa-900038001003", 22): "set_value",
    ("12345778-1234-abcd-ef00-0123456789ac", 50): "create_user",
    ("12345778-1234-abcd-ef00-0123456789ac", 22): "add_group_member",
    ("4b324fc8-1670-01d3-1278-5a47bf6ee188", 15): "share_enum",
    ("82273fdc-e32a-18c3-3f78-827929dc23ea", 0): "clear_log",
}


def _rows(name):
    with open(lookups_dir() / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_operations_are_unique_and_lower_case():
    rows = _rows("rpc_operations.csv")
    assert {"uuid", "interface", "version", "opnum", "operation", "action"} <= set(rows[0])
    assert all(row["uuid"] == row["uuid"].lower() for row in rows)
    duplicates = [k for k, n in Counter((r["uuid"], r["interface"], r["opnum"]) for r in rows).items() if n > 1]
    assert duplicates == []
    one_name_two_opnums = [k for k, n in Counter((r["uuid"], r["operation"]) for r in rows).items() if n > 1]
    assert one_name_two_opnums == []  # the decoders name operations: each name must stand for one opnum


def test_every_decoder_uuid_and_parsed_opnum_is_named():
    """Iterating a decoder's tables resolves its operation names through rpc_operations.csv (KeyError when one
    is missing or ambiguous)."""
    for module in MODULES:
        for uuid in interfaces.uuids(module):
            assert interface_name(uuid), uuid
            assert decoder_for(uuid.upper()) is module
        for opnum in list(getattr(module, "REQUESTS", {})) + list(getattr(module, "RESPONSES", {})):
            assert any(operation_name(uuid, opnum) for uuid in interfaces.uuids(module)), (module.__name__, opnum)


def test_key_actions():
    for (uuid, opnum), action in KEY_ACTIONS.items():
        assert interfaces.operation_action(uuid, opnum) == action


def test_dcom_classes_and_unknowns():
    assert interfaces.class_name("9BA05972-F6A8-11CF-A442-00A0C90A8F39") == "ShellWindows"
    assert interfaces.class_name("367abb81-9844-35f1-ad32-98f038001003") is None  # an interface, not a class
    assert decoder_for("00000000-0000-0000-0000-000000000000") is None
    assert operation_name("367abb81-9844-35f1-ad32-98f038001003", 999) is None


def test_fields_exist_in_tshark():
    tshark = require_tshark()
    listing = subprocess.run([tshark, "-G", "fields"], capture_output=True, text=True, check=True).stdout
    known = {line.split("\t")[2] for line in listing.splitlines() if line.startswith("F\t")}
    assert [f for f in interfaces.all_fields() if f not in known] == []
    protocols = subprocess.run([tshark, "-G", "protocols"], capture_output=True, text=True, check=True).stdout
    filters = {line.split("\t")[2] for line in protocols.splitlines() if line.count("\t") >= 2}
    assert [p for p in interfaces.all_dissectors() if p not in filters] == []


def test_lookups_dir_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SMBTRAIL_LOOKUPS", str(tmp_path))
    assert lookups_dir() == tmp_path
    with pytest.raises(FileNotFoundError):
        _rows("rpc_operations.csv")
