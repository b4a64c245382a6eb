"""Sigma rules -> per-entity Splunk alerts and ES correlation searches (savedsearches.conf), and their
tuning macros.

Runs at build time in the build's own venv (sigma-cli/pySigma + the Splunk backend); nothing of
pySigma ships in the app. Usage:
    python sigma/build_savedsearches.py RULES_DIR PIPELINE.yml SAVEDSEARCHES_OUT MACROS_OUT
Both outputs are appended to (the build copies the static default/*.conf first).

Every alert is built the same way, whatever its rule:
- the rule's match, converted by pySigma through our pipeline (sources and indexes are macros);
- one result per entity: `stats ... by src dest` (per trail for trail rules), so an alert is triggered
  per result (`alert.digest_mode = 0`) and throttled per entity with the fields that are in the result;
- a `trail_link` to the Trail explorer on that entity and the time of the activity;
- windows by index time: each run reads what was indexed in the 15 minutes before it (continuous
  schedule, no run skipped), over 24 h of event time, so late data is searched exactly once;
- the Enterprise Security correlation-search settings (notable, risk with ATT&CK annotations), which
  Splunk without ES ignores;
- shipped disabled: the admin enables them on the search head, never on a forwarder.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from sigma.backends.splunk import SplunkBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.processing.pipeline import ProcessingPipeline

APP = "smbtrail"
SEVERITY = {"informational": 2, "low": 3, "medium": 4, "high": 5, "critical": 6}
RISK = {"informational": 10, "low": 25, "medium": 50, "high": 75, "critical": 100}
ES_SEVERITY = {"informational": "informational", "low": "low", "medium": "medium", "high": "high",
               "critical": "critical"}
# index-time window of one run; the cron below runs every WINDOW minutes, so windows are contiguous
INDEX_EARLIEST, INDEX_LATEST, EVENT_EARLIEST = "-20m@m", "-5m@m", "-24h@h"
LINK_MARGIN = 3600  # seconds of context around the activity when the explorer opens


@dataclass(frozen=True)
class Product:
    entities: str  # the macro that sets src, dest, user and record (the event's own id) on its events
    group_by: Tuple[str, ...]
    domain: str  # ES security domain


PRODUCTS = {
    "network": Product("`smbtrail_network_entities`", ("src", "dest"), "network"),
    "host": Product("`smbtrail_network_entities`", ("src", "dest"), "endpoint"),
    "trail": Product("`smbtrail_network_entities`", ("trail_id", "src", "dest"), "network"),
    "windows": Product("`smbtrail_winevent_entities`", ("src", "dest"), "endpoint"),
}
# Sigma's Windows field names -> the entity fields every alert groups by
ENTITY_FIELDS = {"Computer": "dest", "ComputerName": "dest", "IpAddress": "src", "TargetUserName": "user",
                 "SubjectUserName": "user"}


def main(argv: List[str]) -> int:
    rules_dir, pipeline_path, saved_out, macros_out = argv[1:5]
    pipeline = ProcessingPipeline.from_yaml(Path(pipeline_path).read_text(encoding="utf-8"))
    collection = SigmaCollection.load_ruleset([rules_dir])
    backend = SplunkBackend(pipeline)
    stanzas, macros, failures = [], [], []
    ordered = sorted(collection, key=lambda r: (isinstance(r, SigmaCorrelationRule), _path(r)))
    for index, rule in enumerate(ordered):
        try:
            built = build(backend, rule)
        except Exception as exc:  # report every rule that does not convert, then fail the build
            failures.append(f"{_path(rule) or rule.title}: {str(exc)[:300]}")
            continue
        if built is None:
            continue  # only referenced by a correlation (Sigma `generate: false` / informational)
        query, product = built
        name = macro_name(rule)
        stanzas.append(stanza(rule, query, product, name, index))
        macros.append(f"[{name}]\ndefinition = search *\ndescription = Local tuning of: {rule.title}\n")
    for failure in failures:
        print(f"sigma: cannot convert {failure}", file=sys.stderr)
    with open(saved_out, "a", encoding="utf-8") as handle:
        handle.write("\n" + "\n".join(stanzas))
    with open(macros_out, "a", encoding="utf-8") as handle:
        handle.write("\n" + "\n".join(macros))
    print(f"sigma: {len(stanzas)} alerts, {len(failures)} failures", file=sys.stderr)
    return 1 if failures or not stanzas else 0


def product_of(rule) -> str:
    source = rule.logsource
    return "windows" if source.product == "windows" else str(source.service)


def build(backend: SplunkBackend, rule) -> Optional[Tuple[str, str]]:
    """(search, product) of one rule, None for a rule that is only a correlation's building block."""
    if isinstance(rule, SigmaCorrelationRule):
        return correlation_query(backend, rule), "windows"
    converted = backend.convert_rule(rule)  # also when only a correlation uses it: that needs its query
    if not converted or (rule.level is not None and rule.level.name.lower() == "informational"):
        return None  # a correlation's building block only
    query = _one_line(converted[0])
    query = query.partition(" | table ")[0]  # the result is one row per entity, built below
    product = PRODUCTS[product_of(rule)]
    fields = _detail_fields(rule, product.group_by)
    return f"{query} | {product.entities} | {per_entity(product.group_by, fields)}", product_of(rule)


def _one_line(query: str) -> str:
    return " ".join(line.strip() for line in query.splitlines() if line.strip())


def _detail_fields(rule, group_by: Tuple[str, ...]) -> List[str]:
    fields = [ENTITY_FIELDS.get(str(f), str(f)) for f in (getattr(rule, "fields", None) or [])]
    return [f for f in dict.fromkeys(["user"] + fields) if f not in group_by]


def per_entity(group_by: Tuple[str, ...], fields: List[str]) -> str:
    values = " ".join(f"values({f}) AS {f}" for f in fields)
    keys = " ".join(group_by)
    return (f"fillnull value=\"-\" {keys} | stats count min(_time) AS first_time max(_time) AS last_time "
            f"{values} values(record) AS record by {keys}")


def correlation_query(backend: SplunkBackend, rule) -> str:
    """A temporal correlation: its rules' matches on the same entity within the timespan (either order),
    fired when one of them was indexed in this run's window: each combination fires once, when it
    completes, however late its parts arrive (within the event-time range)."""
    if rule.type.name.lower() != "temporal":
        raise ValueError(f"correlation type {rule.type.name} is not supported")
    converted = _one_line(backend.convert_correlation_rule(rule)[0])
    prefix, _, body = converted.partition("| multisearch")
    subsearches = body[: body.index("| bin ")].strip().replace("[ search ", f"[ search {prefix.strip()} ")
    keys = " ".join(sorted({ENTITY_FIELDS.get(str(f), str(f)) for f in rule.group_by}))
    span = int(rule.timespan.seconds)
    needed = int(rule.condition.count) if rule.condition and rule.condition.count else len(rule.rules)
    window = f"streamstats time_window={span}s values(event_type) AS {{}} by {keys}"
    return (f"| multisearch {subsearches} | `smbtrail_winevent_entities` | `smbtrail_fresh_flag` "
            f"| fillnull value=\"-\" {keys} | sort 0 _time | {window.format('before')} "
            f"| sort 0 -_time | {window.format('after')} "
            f"| eval matched=mvcount(mvdedup(mvappend(before, after))) | where smbtrail_fresh=1 AND matched>={needed} "
            f"| stats count min(_time) AS first_time max(_time) AS last_time values(event_type) AS sigma_rules "
            f"values(user) AS user values(src) AS src values(record) AS record by {keys}")


def _path(rule) -> str:
    return str(rule.source.path) if rule.source else ""


def macro_name(rule) -> str:
    stem = Path(str(rule.source.path)).stem if rule.source else re.sub(r"\W+", "_", rule.title.lower())
    return f"smbtrail_{stem}_filter"


def attack_ids(rule) -> List[str]:
    """ATT&CK technique ids from the Sigma tags (attack.t1021.002 -> T1021.002)."""
    found = []
    for tag in rule.tags or []:
        if str(tag.namespace) == "attack" and re.fullmatch(r"t\d{4}(\.\d{3})?", str(tag.name)):
            found.append(str(tag.name).upper())
    return found


def attack_tactics(rule) -> List[str]:
    return [str(t.name) for t in rule.tags or []
            if str(t.namespace) == "attack" and not re.fullmatch(r"t\d{4}(\.\d{3})?", str(t.name))]


def throttle_keys(rule, product: str) -> str:
    """The fields an alert is throttled on: those its results are grouped by."""
    if isinstance(rule, SigmaCorrelationRule):
        return ",".join(sorted({ENTITY_FIELDS.get(str(f), str(f)) for f in rule.group_by}))
    return ",".join(PRODUCTS[product].group_by)


def link_eval(product: str) -> str:
    """The Trail explorer on this result's entity (its trail, for trail rules), around its time; every
    value URL-encoded."""
    trail = '."&form.trail=".`smbtrail_urlencode(trail_id)`' if product == "trail" else ""
    return ('eval trail_link="/app/smbtrail/smbtrail_trail?form.entity=".`smbtrail_urlencode(dest)`'
            f'."&form.time.earliest=".tostring(floor(first_time-{LINK_MARGIN}))'
            f'."&form.time.latest=".tostring(ceiling(last_time+{LINK_MARGIN})){trail}')


def stanza(rule, query: str, product: str, filter_macro: str, index: int) -> str:
    level = str(rule.level.name).lower() if rule.level else "medium"
    correlation = isinstance(rule, SigmaCorrelationRule)
    score = RISK.get(level, 50)
    risk_score = "if(isnum(score), score, " + str(score) + ")" if product == "trail" else str(score)
    search = (f"{query} | eval risk_score={risk_score} | {link_eval(product)} | `{filter_macro}`")
    minute = (index * 4) % 15
    description = " ".join(str(rule.description or rule.title).split())
    title = f"smbtrail - {rule.title}"
    keys = throttle_keys(rule, product)
    techniques = attack_ids(rule)
    annotations = {"mitre_attack": techniques, "kill_chain_phases": attack_tactics(rule)}
    risk = [{"risk_object_field": "dest", "risk_object_type": "system", "risk_score": score},
            {"threat_object_field": "src", "threat_object_type": "system"}]
    lines = [
        f"[{title}]",
        f"description = {description} (Sigma rule {rule.id}, level {level})",
        f"search = {search}",
        "enableSched = 1",
        f"cron_schedule = {','.join(str(minute + 15 * k) for k in range(4))} * * * *",
        f"dispatch.earliest_time = {EVENT_EARLIEST}",
        "dispatch.latest_time = now",
        *([] if correlation else [f"dispatch.index_earliest = {INDEX_EARLIEST}"]),
        f"dispatch.index_latest = {INDEX_LATEST}",
        "realtime_schedule = 0",
        "schedule_window = 0",
        "counttype = number of events",
        "relation = greater than",
        "quantity = 0",
        "alert.track = 1",
        "alert.digest_mode = 0",
        f"alert.severity = {SEVERITY.get(level, 4)}",
        "alert.suppress = 1",
        "alert.suppress.period = 1h",
        f"alert.suppress.fields = {keys}",
        "action.correlationsearch.enabled = 1",
        f"action.correlationsearch.label = {title}",
        f"action.correlationsearch.annotations = {json.dumps(annotations)}",
        "action.notable = 1",
        f"action.notable.param.rule_title = {rule.title}: $src$ -> $dest$",
        f"action.notable.param.rule_description = {description}",
        f"action.notable.param.security_domain = {PRODUCTS[product].domain}",
        f"action.notable.param.severity = {ES_SEVERITY.get(level, 'medium')}",
        f"action.notable.param.nes_fields = {keys}",
        "action.notable.param.drilldown_name = Trail of $dest$ (smbtrail Trail explorer: trail_link)",
        "action.notable.param.drilldown_search = `smbtrail_fused` \"$dest$\"",
        "action.notable.param.drilldown_earliest_offset = 3600",
        "action.notable.param.drilldown_latest_offset = 3600",
        "action.risk = 1",
        f"action.risk.param._risk = {json.dumps(risk)}",
        f"action.risk.param._risk_message = {rule.title}: $src$ -> $dest$",
        f"action.risk.param._risk_score = {score}",
        f"request.ui_dispatch_app = {APP}",
        "request.ui_dispatch_view = search",
        "disabled = 1",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
