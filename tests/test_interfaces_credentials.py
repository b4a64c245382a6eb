"""Credential theft on the wire, from the lab's recordings against the Samba AD DC: what a DCSync's DRSUAPI
DsGetNCChanges replicates (impacket secretsdump -just-dc-user), and which LSA secrets a client opens or reads
by name (rpcclient querysecret / retrieveprivatedata)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List

from pydantic import SecretStr

from helpers import network
from smbtrail.engine import Options, analyze
from smbtrail.records import Record

LAB = Path(__file__).parent / "fixtures" / "lab"
ROWS: Dict[str, Dict[str, str]] = {r["scenario"]: r for r in csv.DictReader(open(LAB / "manifest.csv", encoding="utf-8"))
                                   if r["mode"] == "addc"}


def _records(scenario: str, secrets: bool = True) -> List[Record]:
    row = ROWS[scenario]
    keys = LAB / row["keys"]
    return network.records(LAB / row["capture"], keys=keys if secrets and keys.stat().st_size else "",
                           password=row["password"] if secrets else "")


def _ops(records: List[Record], interface: str) -> Dict[str, Record]:
    return {r.operation: r for r in records if r.kind == "operation" and r.rpc_interface == interface}


def test_dcsync_names_the_account_it_replicates():
    records = _records("creds_dcsync_secretsdump")
    ops = _ops(records, "drsuapi")
    crack, changes = ops["DRSCrackNames"], ops["DRSGetNCChanges"]
    assert crack.args["names"] == ["SMBTLAB\\Administrator"] and crack.decrypted
    (guid,) = crack.args["cracked"]  # the account's objectGUID, which the replication then asks for
    assert changes.args["object_guid"] == guid.strip("{}") and changes.args["extended_op"] == "EXOP_REPL_OBJ"
    assert changes.args["request_version"] == 8 and changes.args["max_objects"] == 1
    assert changes.transport == "ncacn_ip_tcp" and changes.args["auth_level"] == 6  # sealed, opened by the password
    (dcsync,) = [r for r in records if r.kind == "command" and r.command == "dcsync"]
    assert dcsync.args["account"] == "SMBTLAB\\Administrator" and dcsync.args["object_guid"] == changes.args["object_guid"]


def test_sealed_dcsync_without_the_password_keeps_its_name_not_its_object():
    records = _records("creds_dcsync_secretsdump", secrets=False)
    ops = _ops(records, "drsuapi")
    assert ops["DRSGetNCChanges"].sealed and "object_guid" not in ops["DRSGetNCChanges"].args
    assert [r.command for r in records if r.kind == "command" and r.rpc_interface == "drsuapi"] == ["dcsync"]


def test_dcsync_trail_stage_and_the_dcs_logon(tmp_path):
    """Fused with the DC's audit log: the DRSUAPI connection's logon joins the trail by client ip:port."""
    row = ROWS["creds_dcsync_secretsdump"]
    records = list(analyze([str(LAB / row["capture"])], [str(LAB / row["audit_log"])],
                           Options(passwords=[SecretStr(row["password"])])))
    trail = [t for t in records if t.kind == "trail" and any(c["command"] == "dcsync replicate"
                                                             for c in t.args["commands"])][0]
    assert trail.args["stage"] == "objective" and trail.args["score"] >= 60
    assert set(trail.evidence) == {"network", "host"} and "ip_port" in trail.join
    assert trail.user == "administrator"


def test_lsa_secret_calls_name_their_secret():
    records = _records("creds_lsa_secrets_rpcclient")
    ops = _ops(records, "lsarpc")
    assert ops["LsarOpenSecret"].args["secret"] == "G$BCKUPKEY_PREFERRED"
    assert ops["LsarOpenSecret"].status == "0xc0000034"  # Samba has no such secret: the attempt still shows
    assert ops["LsarRetrievePrivateData"].args["secret"] == "G$BCKUPKEY_P"
    reads = [r for r in records if r.kind == "command" and r.command == "lsa secret"]
    assert sorted(r.args["secret"] for r in reads) == ["G$BCKUPKEY_P", "G$BCKUPKEY_PREFERRED"]
    assert {r.operation for r in reads} == {"read"} and {r.user for r in reads} == {"Administrator"}


def test_lsa_secret_reads_are_an_objective_stage_trail():
    row = ROWS["creds_lsa_secrets_rpcclient"]
    records = list(analyze([str(LAB / row["capture"])], [str(LAB / row["audit_log"])],
                           Options(keys_file=str(LAB / row["keys"]))))
    trail = [t for t in records if t.kind == "trail" and t.args.get("commands")][0]
    assert [c["command"] for c in trail.args["commands"]] == ["lsa secret read", "lsa secret read"]
    assert trail.args["stage"] == "objective" and "LSA secret read remotely" in " ".join(trail.args["reasons"])
