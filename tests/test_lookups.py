"""lookups/ is the one vocabulary: every interface, operation, argument and access right a rule, a fingerprint,
a decoder or a Sigma rule names is defined there, once, and the tables agree with each other."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from smbtrail import interfaces, lookups
from smbtrail.interfaces import interface_uuid, operation_name
from smbtrail.lookups import rows

ROOT = Path(__file__).resolve().parents[1]
SIGMA = ROOT / "sigma" / "rules"
ROLES = ("identifies", "carried", "handle_context", "trail_summary", "timeline", "report")


def _rpc_steps(table: str, columns: Tuple[str, ...]) -> Iterator[Tuple[str, str, str]]:
    """(row description, interface as written, opnums) of every `rpc:<interface>:<opnums>` step of a rule table."""
    for row in rows(table):
        for column in columns:
            for match in re.finditer(r"(?:^|[\s|])rpc:([^:\s|]+):(\d+(?:\|\d+)*|\.\*)", row[column]):
                yield f"{table} {row['command']} {row['action']} {column}", match.group(1), match.group(2)


def _argument_names() -> Set[str]:
    return {row["name"] for row in rows("arguments.csv")}


# -- interfaces and operations ------------------------------------------------------------------------------


def test_interface_names_and_aliases_are_one_vocabulary():
    """No name or alias (any case) stands for two UUIDs, and no UUID is written twice."""
    table = rows("rpc_interfaces.csv")
    assert "aliases" in table[0]
    uuids = Counter(row["uuid"] for row in table)
    assert [u for u, n in uuids.items() if n > 1] == []
    names = Counter(name.lower() for row in table if row["kind"] == "interface"
                    for name in [row["name"]] + lookups.cells(row["aliases"]))
    assert [n for n, count in names.items() if count > 1] == []
    assert not (ROOT / "lookups" / "rpc_aliases.csv").exists()  # folded into rpc_interfaces.csv `aliases`


def test_aliases_resolve_like_names():
    assert interface_uuid("tsch") == interface_uuid("ITaskSchedulerService") == "86d35949-83c9-4044-b424-db363231fd0c"
    assert interface_uuid("ISYSTEMACTIVATOR") == interface_uuid("IRemoteSCMActivator")
    assert interface_uuid("epm") == interface_uuid("epmapper")
    assert interface_uuid("ShellWindows") is None  # a DCOM class, not an interface
    assert interface_uuid("nosuch") is None


def test_operations_name_their_interface_as_the_interface_table_does():
    names = {row["uuid"]: row["name"] for row in rows("rpc_interfaces.csv")}
    wrong = [(r["uuid"], r["interface"], r["opnum"]) for r in rows("rpc_operations.csv")
             if names.get(r["uuid"]) != r["interface"]]
    assert wrong == []


@pytest.mark.parametrize("table, columns", [
    ("command_signatures.csv", ("anchor", "requires", "absorbs")),
    ("size_templates.csv", ("requires", "absorbs")),
])
def test_every_rpc_step_of_a_rule_names_a_known_interface_and_operation(table, columns):
    steps = list(_rpc_steps(table, columns))
    assert len(steps) > 20
    unknown, no_operation = [], []
    for where, name, opnums in steps:
        uuid = interface_uuid(name)
        if uuid is None:
            unknown.append((where, name))
            continue
        for number in ([] if opnums == ".*" else [int(n) for n in opnums.split("|")]):
            if operation_name(uuid, number) is None:
                no_operation.append((where, name, number))
    assert unknown == []
    assert no_operation == []


def test_size_fingerprints_name_operations_as_the_operation_table_does():
    """rpc_size_fingerprints.csv speaks of (interface, opnum, operation): each triple is one of rpc_operations.csv,
    and the pipe is one the interface is reached over."""
    prints = rows("rpc_size_fingerprints.csv")
    assert len(prints) > 100
    wrong = []
    for row in prints:
        uuid = interface_uuid(row["interface"])
        number = int(row["opnum"])
        named = operation_name(uuid, number) if uuid and number >= 0 else row["operation"]
        if uuid is None or named != row["operation"]:
            wrong.append((row["pipe"], row["interface"], row["opnum"], row["operation"], named))
    assert wrong == []
    pipes = {row["uuid"]: row["usual_pipe"].lower() for row in rows("rpc_interfaces.csv")}
    assert [(r["pipe"], r["interface"]) for r in prints
            if r["pipe"] not in pipes[interface_uuid(r["interface"])]] == []


def test_host_rules_name_pipes_of_known_interfaces():
    pipes = {p.strip().lower() for r in rows("rpc_interfaces.csv") for p in r["usual_pipe"].split("/")}
    contexts = {r["context"].strip().rstrip("!").lower() for r in rows("host_commands.csv")} - {""}
    assert contexts and contexts - pipes == set()


def test_calibrated_commands_are_commands_the_rules_name():
    named = {(r["command"], r["action"]) for table in ("size_templates.csv", "command_signatures.csv") for r in rows(table)}
    assert {(r["command"], r["action"]) for r in rows("inference_calibration.csv")} - named == set()


def test_every_decoder_names_interfaces_of_the_interface_table():
    assert [(m.__name__, n) for m in interfaces.MODULES for n in m.INTERFACES if interface_uuid(n) is None] == []
    decoded = [u for m in interfaces.MODULES for u in interfaces.uuids(m)]
    assert len(decoded) == len(set(decoded)) > 15  # one decoder per interface
    assert interfaces.decoder_for("367ABB81-9844-35F1-AD32-98F038001003") is interfaces.svcctl


def test_zeek_names_point_at_known_interfaces_and_operations():
    zeek = rows("zeek_dce_rpc.csv")
    endpoints = {row["uuid"] for row in zeek if not row["operation"]}
    known = {row["uuid"] for row in rows("rpc_interfaces.csv")}
    assert [r["endpoint"] for r in zeek if not r["operation"] and r["uuid"] in known and
            r["endpoint"].lower() == interfaces.interface_name(r["uuid"]).lower()] == []  # only where Zeek differs
    assert [r["operation"] for r in zeek if r["operation"] and r["uuid"] not in known | endpoints] == []


def _sigma_selections() -> Iterator[Tuple[str, str, List[str]]]:
    """(rule, rpc_interface, operations) of each selection of the network Sigma rules that names an interface."""
    for path in sorted(SIGMA.rglob("*.yml")):
        for block in re.split(r"\n    (?=\w+:\n)", path.read_text(encoding="utf-8")):
            interface = re.search(r"^\s+rpc_interface:\s*(\S+)\s*$", block, re.M)
            if not interface:
                continue
            listed = re.search(r"^\s+operation:\s*\n((?:\s+- .+\n?)+)", block, re.M)
            single = re.search(r"^\s+operation:\s*(\w+)\s*$", block, re.M)
            operations = re.findall(r"- (\S+)", listed.group(1)) if listed else [single.group(1)] if single else []
            yield path.name, interface.group(1), operations


def test_sigma_rules_name_interfaces_and_operations_the_engine_writes():
    selections = list(_sigma_selections())
    assert len(selections) >= 4
    written = {(r["interface"], r["operation"]) for r in rows("rpc_operations.csv")}
    interface_names = {r["interface"] for r in rows("rpc_operations.csv")}
    assert [(rule, i) for rule, i, _ in selections if i not in interface_names] == []  # as records name it
    assert [(rule, i, o) for rule, i, ops in selections for o in ops if (i, o) not in written] == []


def test_sigma_windows_rules_use_known_message_codes():
    codes = {row["code"] for row in rows("windows_messages.csv")}
    used = {code for path in SIGMA.rglob("*.yml") for code in re.findall(r"%%\d+", path.read_text(encoding="utf-8"))}
    assert used and used - codes == set()


# -- arguments ---------------------------------------------------------------------------------------------


def test_argument_names_and_roles_are_defined_once():
    table = rows("arguments.csv")
    assert [n for n, count in Counter(r["name"] for r in table).items() if count > 1] == []
    assert all(r["meaning"] for r in table)
    roles: Dict[str, List[int]] = {}
    for row in table:
        for entry in lookups.cells(row["roles"]):
            role, _, rank = entry.partition(":")
            assert role in ROLES, (row["name"], role)
            roles.setdefault(role, []).append(int(rank) if rank else 0)
    assert set(roles) == set(ROLES)
    for role, ranks in roles.items():  # a role is ranked throughout (1..n) or not at all
        assert sorted(ranks) in ([0] * len(ranks), list(range(1, len(ranks) + 1))), role


def test_argument_roles_keep_their_order():
    assert lookups.argument_names("identifies")[:3] == ("service_name", "binary_path", "task_name")
    carried = lookups.argument_names("carried")
    assert carried[:len(lookups.argument_names("identifies"))] == lookups.argument_names("identifies")
    assert lookups.argument_names("report")[0] == "inferred"
    assert lookups.argument_names("handle_context")[:3] == ("service_name", "key", "hive")


def _rule_arguments() -> Iterator[Tuple[str, str]]:
    """(where, argument name) for every argument a rule reads or a table writes."""
    for row in rows("command_signatures.csv"):
        for column in ("anchor", "requires", "absorbs"):
            for name in re.findall(r"(?:^|[\s|])arg:(\w+):", row[column]):
                yield f"command_signatures {row['command']} {row['action']}", name
    for row in rows("host_commands.csv"):
        for name in re.findall(r"args\.(\w+)", row["match"]):
            yield f"host_commands {row['command']} {row['action']}", name
    for row in rows("suspicion.csv"):
        if row["rule"] == "arg":
            yield f"suspicion {row['reason']}", row["field"]
    for row in rows("command_lines.csv"):
        for name in re.findall(r"\(\?P<(\w+)>", row["command_line"]):
            yield f"command_lines {row['command']}", name
    for row in rows("windows_events.csv"):
        for pair in filter(None, row["args"].split(";")):
            yield f"windows_events {row['event_id']}", pair.split("=", 1)[0].strip()


def test_every_argument_a_rule_reads_or_a_table_writes_is_in_the_vocabulary():
    used = list(_rule_arguments())
    assert len(used) > 200
    known = _argument_names()
    assert [(where, name) for where, name in used if name not in known] == []


def test_every_argument_rules_read_is_written_by_something():
    """A rule's argument is one an event mapping or a command line writes, or a network decoder (a role list)."""
    written = {name for where, name in _rule_arguments() if where.startswith(("windows_events", "command_lines"))}
    written |= {name for role in ROLES for name in lookups.argument_names(role)}
    read = [(where, name) for where, name in _rule_arguments()
            if where.startswith(("command_signatures", "host_commands", "suspicion"))]
    assert [(where, name) for where, name in read if name not in written] == []


# -- access rights -----------------------------------------------------------------------------------------


def test_access_rights_are_single_bits_named_once_and_match_windows_messages():
    table = rows("access_rights.csv")
    masks = [int(r["mask"], 16) for r in table]
    assert all(m and m & (m - 1) == 0 for m in masks) and len(set(masks)) == len(masks)
    assert len({r["name"] for r in table}) == len(table)
    messages = {r["code"]: int(r["mask"], 16) for r in rows("windows_messages.csv") if r["kind"] == "access"}
    assert [r["name"] for r in table if r["message"] and messages.get(r["message"]) != int(r["mask"], 16)] == []
    network = dict(lookups.access_rights("network"))
    assert set(network.items()) <= set(lookups.access_rights("host"))  # the network reports a subset, same names
    assert lookups.access_names(0x12019F, "network") == ["read_data", "write_data", "append_data"]
    assert "synchronize" in lookups.access_names(0x12019F, "host")


def test_host_rules_match_access_rights_by_known_names():
    """An `access~` condition names access rights as records carry them: our names for file and pipe rights,
    Windows' texts for the others."""
    ours = {r["name"] for r in rows("access_rights.csv")}
    windows_words = {w for r in rows("windows_messages.csv") if r["kind"] == "access" for w in r["text"].split()}
    used = [(row["command"], word) for row in rows("host_commands.csv")
            for condition in re.findall(r"access~([^&]+)", row["match"])
            for word in re.findall(r"[A-Za-z_]+", re.sub(r"\\[a-zA-Z]|\(\?\w+\)", " ", condition))]
    assert used
    assert [(command, word) for command, word in used if word not in ours | windows_words] == []
