"""The network engine on the project's own lab recordings (tests/fixtures/lab, made by real Samba and
impacket): each scenario's trail names its command and arguments in clear and with keys, and without
keys the encrypted-activity record names the right account."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List

import pytest

from helpers import network

LAB = Path(__file__).resolve().parent / "fixtures" / "lab"
ROWS: List[Dict[str, str]] = list(csv.DictReader(open(LAB / "manifest.csv", encoding="utf-8"))) if (
    LAB / "manifest.csv").exists() else []
KINIT = LAB / "addc" / "krb_kinit_kvno.pcapng"
# What the manifest names and what the wire can tell apart: these are the same signature.
SAME_ON_THE_WIRE = {"logon": set()}


def _id(row):
    return f"{row['mode']}/{row['scenario']}"


def _keys(row) -> str:
    path = LAB / row["keys"] if row["keys"] else None
    return str(path) if path and path.exists() and path.stat().st_size else ""


def _records(capture: str, keys: str, password: str, kerberos: bool):
    paths = ([str(KINIT)] if kerberos and KINIT.exists() else []) + [capture]
    return network.records(*paths, keys=keys, password=password)


def _values(records) -> List[str]:
    out = []
    for rec in records:
        for value in list(rec.args.values()) + [rec.path, rec.share, rec.user]:
            if value:
                out.append(value.lower() if isinstance(value, str) else json.dumps(value).lower())
    return out


def _opened(row, with_secrets: bool):
    kerberos = row["auth"] == "kerberos"
    return _records(str(LAB / row["capture"]), _keys(row) if with_secrets else "",
                    row["password"] if with_secrets else "", kerberos)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_trail_names_command_and_arguments(row):
    records = _opened(row, with_secrets=True)
    if row["scenario"].startswith("failed_logon_"):  # the client's refused logons (test_failed_logons_lab.py)
        tried = {a for r in records if r.kind == "command" and r.command == "logon" for a in r.args["accounts"]}
        assert json.loads(row["expected_args"])["account"].lower() in tried
        return
    if row["command"] == "logon":
        tickets = [r for r in records if r.protocol == "kerberos" and r.user == row["account"]]
        assert tickets and any(r.args["service"].startswith("cifs/") for r in tickets)
        return
    commands = [r for r in records if r.kind == "command"]
    names = {r.command for r in commands} | {a for r in commands for a in r.args.get("alternatives", [])}
    assert row["command"] in names, sorted(names)
    values = _values(records)
    for key, expected in json.loads(row["expected_args"] or "{}").items():
        assert any(str(expected).lower() in v for v in values), f"{key}={expected}"
    if row["account"] and row["transport"] == "NCACN_NP":
        assert any(r.user and r.user.lower() == row["account"].lower() for r in commands)


ENCRYPTED_NP = [r for r in ROWS if r["encryption_scope"] == "server" and r["transport"] == "NCACN_NP"
                and r["command"] != "logon"]


@pytest.mark.parametrize("row", ENCRYPTED_NP, ids=_id)
def test_without_keys_encrypted_activity_names_the_account(row):
    records = _opened(row, with_secrets=False)
    activity = [r for r in records if r.kind == "encrypted_activity" and not r.partial]
    assert activity, "server-wide encryption leaves encrypted-activity records"
    assert any(r.user and r.user.lower() == row["account"].lower() for r in activity)
    assert not [r for r in records if r.kind == "file" and not r.encrypted], "nothing readable leaks"
