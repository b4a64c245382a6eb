"""Sigma rules -> scheduled, throttled Splunk alerts (savedsearches.conf) and their filter macros.

Runs at build time in the build's own venv (sigma-cli/pySigma + the Splunk backend); nothing of
pySigma ships in the app. Usage:
    python sigma/build_savedsearches.py RULES_DIR PIPELINE.yml SAVEDSEARCHES_OUT MACROS_OUT
Both outputs are appended to (the build copies the static default/*.conf first).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from sigma.backends.splunk import SplunkBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.processing.pipeline import ProcessingPipeline

APP = "smbtrail"
SEVERITY = {"informational": 2, "low": 3, "medium": 4, "high": 5, "critical": 6}
MACRO = {"smbtrail": "`smbtrail_index`", "windows": "`smbtrail_wineventlog_index`"}
SUPPRESS = {"smbtrail": "src_ip,dest_ip,dest_host", "windows": "Computer"}
TRAIL_LINK = {
    "smbtrail": f'if(isnotnull(trail_id), "/app/{APP}/smbtrail_trail?form.trail=".trail_id, '
                f'"/app/{APP}/smbtrail_trail?form.uid=".uid)',
    "windows": f'"/app/{APP}/smbtrail_trail?form.host=".coalesce(Computer, ComputerName)',
}


def main(argv: List[str]) -> int:
    rules_dir, pipeline_path, saved_out, macros_out = argv[1:5]
    pipeline = ProcessingPipeline.from_yaml(Path(pipeline_path).read_text(encoding="utf-8"))
    collection = SigmaCollection.load_ruleset([rules_dir])
    backend = SplunkBackend(pipeline)
    products = {str(r.id): r.logsource.product for r in collection if not isinstance(r, SigmaCorrelationRule)}
    stanzas, macros, failures = [], [], []
    # base rules first: a correlation is built from its rules' conversions
    ordered = sorted(collection, key=lambda r: (isinstance(r, SigmaCorrelationRule), _path(r)))
    for index, rule in enumerate(ordered):
        try:
            query, product = convert(backend, rule, products)
        except Exception as exc:  # report every rule that does not convert, then fail the build
            failures.append(f"{_path(rule) or rule.title}: {str(exc)[:300]}")
            continue
        if query is None:
            continue  # only referenced by a correlation (Sigma `generate: false`)
        name = macro_name(rule)
        stanzas.append(stanza(rule, query, product, name, index))
        macros.append(f"[{name}]\ndefinition = search *\ndescription = Local tuning of: {rule.title}\n")
    for failure in failures:
        print(f"sigma: cannot convert {failure}", file=sys.stderr)
    with open(saved_out, "a", encoding="utf-8") as handle:
        handle.write("\n".join(stanzas))
    with open(macros_out, "a", encoding="utf-8") as handle:
        handle.write("\n" + "\n".join(macros))
    print(f"sigma: {len(stanzas)} alerts, {len(failures)} failures", file=sys.stderr)
    return 1 if failures or not stanzas else 0


def convert(backend: SplunkBackend, rule, products: Dict[str, str]) -> Tuple[str, str]:
    if isinstance(rule, SigmaCorrelationRule):
        queries = backend.convert_correlation_rule(rule)
        refs = [products.get(str(getattr(r, "id", r)), "windows") for r in _referenced(rule)]
        product = refs[0] if refs else "windows"
        return (_correlation_query(queries[0], MACRO[product]) if queries else None), product
    queries = backend.convert_rule(rule)
    return (queries[0] if queries else None), rule.logsource.product


def _path(rule) -> str:
    return str(rule.source.path) if rule.source else ""


def _referenced(rule) -> List:
    return [ref.rule for ref in rule.rules if getattr(ref, "rule", None) is not None]


def _correlation_query(query: str, macro: str) -> str:
    """The pipeline's prefix lands before `| multisearch`; move it into each subsearch."""
    body = query[query.index("| multisearch"):]
    return body.replace("[ search ", f"[ search {macro} ")


def macro_name(rule) -> str:
    stem = Path(str(rule.source.path)).stem if rule.source else re.sub(r"\W+", "_", rule.title.lower())
    return f"smbtrail_{stem}_filter"


def stanza(rule, query: str, product: str, filter_macro: str, index: int) -> str:
    query = " ".join(line.strip() for line in query.splitlines() if line.strip())
    query = with_link_and_filter(query, product, filter_macro)
    minute = (index * 4) % 15
    description = " ".join(str(rule.description or rule.title).split())
    lines = [
        f"[smbtrail - {rule.title}]",
        f"description = {description} (Sigma rule {rule.id}, level {rule.level})",
        f"search = {query}",
        "enableSched = 1",
        f"cron_schedule = {','.join(str(minute + 15 * k) for k in range(4))} * * * *",
        f"dispatch.earliest_time = {'-80m@m' if isinstance(rule, SigmaCorrelationRule) else '-20m@m'}",
        "dispatch.latest_time = -5m@m",
        "schedule_window = auto",
        "counttype = number of events",
        "relation = greater than",
        "quantity = 0",
        "alert.track = 1",
        "alert.digest_mode = 1",
        f"alert.severity = {SEVERITY.get(str(rule.level.name).lower() if rule.level else 'medium', 4)}",
        "alert.suppress = 1",
        "alert.suppress.period = 1h",
        f"alert.suppress.fields = {SUPPRESS[product]}",
        f"request.ui_dispatch_app = {APP}",
        "request.ui_dispatch_view = search",
        "disabled = 0",
        "",
    ]
    return "\n".join(lines)


def with_link_and_filter(query: str, product: str, filter_macro: str) -> str:
    """Add `trail_link` (drilldown to the trail dashboard) and the tuning macro before any `| table`."""
    link = f"| eval trail_link={TRAIL_LINK[product]} | `{filter_macro}`"
    head, sep, table = query.partition(" | table ")
    if sep:
        return f"{head} {link} | table {table},trail_link"
    return f"{query} {link}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
