"""The bounded fuzz run (issue 16): hypothesis-drawn edits of real inputs through every parser that takes raw
bytes, and hostile strings through every writer. Deterministic here (derandomized); `scripts/fuzz.py` runs
the same targets for longer, with fresh seeds, and prints the counts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from helpers.fuzz_targets import targets

BUDGET = {"ndr": 300, "json_lines": 300, "samba_log": 80, "full_audit": 150, "event_xml": 150, "host_file": 150,
          "evtx_python": 12, "writers": 120,
          "json_shapes": 200}


@pytest.mark.parametrize("name", sorted(BUDGET))
def test_fuzz(name):
    make, check = targets()[name]
    strategy = make()
    if strategy is None:
        pytest.skip(f"no seed inputs for {name} (public samples absent)")

    @settings(max_examples=BUDGET[name], deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(example):
        check(example)

    one()
