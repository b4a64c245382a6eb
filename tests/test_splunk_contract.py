"""Every search the package runs names only what exists: each macro is defined, each sourcetype and source
is one the inputs write (or Splunk's own / the Windows add-on's), and each field a saved search, macro or
dashboard search reads is in the events the packaged inputs write for the lab recordings, in what the
packaged fusion writes from them, in the package's own search-time knowledge (props, lookups), or a
documented field of the Splunk Add-on for Microsoft Windows or of Splunk itself.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Set

import pytest

from helpers.splunk_sim import Macros, expression_fields, json_fields, read_conf, search_reads, split_pipeline, tstats_use
from smbtrail.splunk import events, fusecommand, winevent, zeekevent
from smbtrail.zeek.logs import USED as ZEEK_LOGS
from test_splunk_flow import fuse_in_splunk

# Splunk's own fields, and those of its logs the health searches read (sourcetypes scheduler, splunkd)
SPLUNK_FIELDS = {"_time", "_raw", "_indextime", "index", "sourcetype", "source", "host", "eventtype", "tag",
                 "splunk_server", "linecount", "savedsearch_name", "status", "reason", "job.resultCount"}
SPLUNK_SOURCETYPES = {"scheduler", "splunkd"}
# The Windows add-on's System fields (XML names, and the classic rendering's own names)
WINDOWS_SYSTEM = {"EventCode", "EventID", "EventRecordID", "Computer", "Channel", "RecordNumber", "ComputerName",
                  "LogName", "SourceName"}
WINDOWS_SOURCE = re.compile(r"^(Xml)?WinEventLog:[\w/ -]+$")
# Zeek's own field names the base search filters on (the Splunk Add-on for Zeek keeps them; its TSV
# sourcetypes' indexed extractions name them with `_` for `.`)
ZEEK_FIELDS = {"id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "uid", "_path", "id_resp_p"}


def zeek_sourcetype(name: str) -> bool:
    """A sourcetype of the Splunk Add-on for Zeek, for one of the logs the engine reads."""
    match = zeekevent.SOURCETYPE.match(name)
    return bool(match) and match.group(1).lower() in ZEEK_LOGS


def windows_fields() -> Set[str]:
    """Field names Windows events carry as the Splunk Add-on for Microsoft Windows extracts them: the
    <Data Name=...> names the engine maps (lookups/windows_events.csv) and their classic equivalents."""
    names = set(WINDOWS_SYSTEM) | set(winevent.CLASSIC) | set(winevent.CLASSIC.values()) | set(winevent.PAIRED)
    with (Path(__file__).resolve().parents[1] / "lookups" / "windows_events.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for column, cell in row.items():
                if column in ("event_id", "channel", "name", "meaning"):
                    continue
                names.update(re.findall(r"(?:^|[=;|])\s*([A-Z][A-Za-z]+)", cell or ""))
    names.update(f"{side}{what}" for side in ("Subject", "Target") for what in winevent.PAIRED.values())
    return names


def argument_fields() -> Set[str]:
    """`args.<name>` for the argument names the engine's knowledge tables give records: the Windows
    event mapping, the command-line patterns, host command rules and suspicion rules."""
    lookups = Path(__file__).resolve().parents[1] / "lookups"
    names = set()
    for path, pattern in (("windows_events.csv", r"(\w+)="), ("command_lines.csv", r"\(\?P<(\w+)>"),
                          ("host_commands.csv", r"args\.(\w+)")):
        names.update(re.findall(pattern, (lookups / path).read_text(encoding="utf-8")))
    with (lookups / "suspicion.csv").open(encoding="utf-8") as handle:
        names.update(row["field"] for row in csv.DictReader(handle) if row["field"])
    return {f"args.{name}" for name in names}


def props_fields(stage: Path) -> Set[str]:
    props = read_conf(stage / "default" / "props.conf")
    made = set()
    for settings in props.values():
        for key, value in settings.items():
            if key.startswith("EVAL-"):
                made.add(key[5:])
            elif key.startswith("EXTRACT-"):
                made.update(re.findall(r"\(\?<(\w+)>", value))
            elif key.startswith("FIELDALIAS-"):
                made.update(re.findall(r"\bAS\s+(\w+)", value, flags=re.I))
            elif key.startswith("LOOKUP-"):
                made.update(re.findall(r"\bAS\s+(\w+)", value.split("OUTPUT", 1)[-1], flags=re.I))
    return made


@pytest.fixture(scope="module")
def package(built, lab_indexed, tmp_path_factory) -> Dict[str, object]:
    stage = built["stage"]
    indexed = [e for mode in lab_indexed.values() for e in mode]
    fused, _ = fuse_in_splunk(stage, indexed, tmp_path_factory.mktemp("fused"))
    fields = {name for e in indexed for name in e.fields} | set(fusecommand.OUTPUT_FIELDS)
    fields |= {name for record in fused for name in json_fields(json.dumps(record))}
    return {
        "stage": stage, "macros": Macros(read_conf(stage / "default" / "macros.conf")),
        "fields": fields | props_fields(stage) | argument_fields() | windows_fields() | SPLUNK_FIELDS | ZEEK_FIELDS,
        "sourcetypes": ({e.meta["sourcetype"] for e in indexed} | SPLUNK_SOURCETYPES
                        | {n for n in read_conf(stage / "default" / "props.conf") if n.startswith("smbtrail:")}),
    }


def saved_searches(stage: Path) -> Dict[str, str]:
    saved = read_conf(stage / "default" / "savedsearches.conf")
    return {name: s["search"] for name, s in saved.items() if "search" in s}


def view_searches(stage: Path) -> Dict[str, str]:
    """Each dashboard search (post-process searches after their base), tokens as literals."""
    found = {}
    for view in sorted((stage / "default" / "data" / "ui" / "views").glob("*.xml")):
        root = ET.parse(view).getroot()
        bases = {s.get("id"): s.findtext("query") for s in root.iter("search") if s.get("id")}
        for number, search in enumerate(root.iter("search")):
            query = search.findtext("query")
            if not query:
                continue
            if search.get("base"):
                query = f"{bases[search.get('base')]} | {query}"
            found[f"{view.stem}#{number}"] = re.sub(r"\$[^$\s]+\$", '"token"', query)
    return found


def test_every_macro_a_search_uses_is_defined_and_every_macro_is_used(package):
    macros, stage = package["macros"], package["stage"]
    texts = list(saved_searches(stage).values()) + list(view_searches(stage).values())
    for text in texts:
        macros.expand(text)  # raises on an undefined macro
    used = set()
    pending = [re.findall(r"`(\w+)", t) for t in texts]
    seen = [name for names in pending for name in names]
    while seen:
        name = seen.pop()
        if name in used:
            continue
        used.add(name)
        for (defined, _), (_, body) in macros.defs.items():
            if defined == name:
                seen += re.findall(r"`(\w+)", body)
    assert set(macros.names()) - used == set()


@pytest.mark.parametrize("kind", ["saved searches", "dashboards"])
def test_every_field_sourcetype_and_source_a_search_reads_exists(package, kind):
    stage, macros = package["stage"], package["macros"]
    searches = saved_searches(stage) if kind == "saved searches" else view_searches(stage)
    assert searches
    unknown = {}
    for name, text in searches.items():
        reads = search_reads(macros.expand(text))
        missing = sorted({f for f, _ in reads.fields} - package["fields"] - {"token"})
        if missing:
            unknown[name] = missing
        assert all(s in package["sourcetypes"] or zeek_sourcetype(s) for s in reads.sourcetypes), name
        for source in reads.sources:
            assert source == events.FUSED_SOURCE or WINDOWS_SOURCE.match(source), (name, source)
    assert unknown == {}


def data_model(stage: Path) -> Dict[str, Dict[str, object]]:
    """The app's data model by dataset lineage: its constraint, own fields, calculated fields, root."""
    model = json.loads((stage / "default" / "data" / "models" / "smbtrail.json").read_text(encoding="utf-8"))
    assert model["modelName"] == "smbtrail" and model["objectNameList"] == [o["objectName"] for o in model["objects"]]
    out: Dict[str, Dict[str, object]] = {}
    for obj in model["objects"]:
        out[obj["lineage"]] = {
            "root": obj["lineage"].split(".")[0], "constraint": obj["constraints"][0]["search"],
            "fields": {f["fieldName"] for f in obj["fields"]},
            "calculated": {f["fieldName"]: c["expression"] for c in obj["calculations"] for f in c["outputFields"]}}
    return out


def test_every_tstats_search_names_what_the_data_model_defines(package):
    stage, macros = package["stage"], package["macros"]
    model = data_model(stage)
    uses = []
    for name, text in {**saved_searches(stage), **view_searches(stage)}.items():
        uses += [(name, tstats_use(p[len("| tstats "):] if p.startswith("|") else p[len("tstats "):]))
                 for p in split_pipeline(macros.expand(text)) if re.match(r"\|?\s*tstats\s", p)]
    assert len(uses) >= 9  # the overview panels aggregate with tstats
    for name, use in uses:
        model_name, root = use.datamodel.split(".", 1)
        assert model_name == "smbtrail" and root in model, (name, use.datamodel)
        known = model[root]["fields"] | set(model[root]["calculated"])  # type: ignore[operator]
        assert {f.split(".", 1)[1] for f in use.fields if f.split(".", 1)[0] == root} <= known, (name, use.fields)
        assert all(f.split(".", 1)[0] == root for f in use.fields), (name, use.fields)
        assert all(node in model and node.startswith(root + ".") for node in use.nodes), (name, use.nodes)
    wrong = tstats_use("count from datamodel=smbtrail.Network where nodename=Network.Sesions by Network.sever")
    assert not {"sever"} <= model["Network"]["fields"] | set(model["Network"]["calculated"])  # type: ignore
    assert wrong.fields == ["Network.sever"] and "Network.Sesions" not in model


def test_the_data_model_reads_what_the_events_hold(package):
    """Each dataset's constraint, fields and calculations name fields, sourcetypes and sources that exist."""
    stage, macros, fields = package["stage"], package["macros"], package["fields"]
    for lineage, dataset in data_model(stage).items():
        reads = search_reads(macros.expand(str(dataset["constraint"])))
        assert {f for f, _ in reads.fields} <= fields, lineage
        assert set(reads.sourcetypes) <= package["sourcetypes"], lineage
        assert all(source == events.FUSED_SOURCE for source in reads.sources), lineage
        assert dataset["fields"] <= fields, (lineage, dataset["fields"] - fields)  # type: ignore[operator]
        for name, expression in dataset["calculated"].items():  # type: ignore[union-attr]
            assert set(expression_fields(expression)) <= fields, (lineage, name)


def test_the_fused_source_is_what_collect_writes_and_what_props_read(package):
    stage = package["stage"]
    collect = package["macros"].expand("`smbtrail_collect`")
    assert f'source="{events.FUSED_SOURCE}"' in collect
    assert f"source::{events.FUSED_SOURCE}" in read_conf(stage / "default" / "props.conf")
    eventtypes = read_conf(stage / "default" / "eventtypes.conf")
    assert any(events.FUSED_SOURCE in e.get("search", "") for e in eventtypes.values())


def test_the_analyzer_sees_a_field_that_does_not_exist(package):
    """The contract check itself: a misspelled field in a search is reported."""
    reads = search_reads(package["macros"].expand('`smbtrail_inputs` kind="command" | stats count by dest_hots'))
    assert "dest_hots" in {f for f, _ in reads.fields} - package["fields"]
    assert {f for f, _ in reads.fields} - package["fields"] == {"dest_hots"}


def test_every_record_indexed_from_the_lab_has_an_id_of_its_own(lab_indexed):
    """Splunk dedups on uid: 5 pairs of inferred commands of the lab set shared theirs, and real records were
    dropped. Every distinct record the packaged inputs send for the lab's recordings and logs (in clear,
    encrypted without keys, Kerberos) has an id of its own (one file's error records: test_cli_faults)."""
    seen: Dict[str, str] = {}
    for event in (e for mode in lab_indexed.values() for e in mode if e.meta["sourcetype"] != events.HEALTH):
        uid = json.loads(event.raw)["uid"]
        assert seen.setdefault(uid, event.raw) == event.raw, f"two records share {uid}"
    assert len(seen) > 500 and any('"inferred": true' in raw for raw in seen.values())
