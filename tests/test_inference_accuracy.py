"""The evaluation script's leave-one-source-out discipline, on three lab recordings standing for three sources
(the full evaluation over ../shared/data is scripts/inference_accuracy.py, not a test)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from smbtrail.encryption.fingerprints import Fingerprint

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ROOT / "tests" / "fixtures" / "lab" / "plain"
SOURCES = {"sc_create_start_stop_delete": "first", "psexec_impacket": "second", "at_netrjobadd": "third"}


def _script():
    spec = importlib.util.spec_from_file_location("inference_accuracy", ROOT / "scripts" / "inference_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("inference_accuracy", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    script = _script()
    paths = {name: PLAIN / f"{name}.pcapng" for name in SOURCES}
    if not all(p.is_file() for p in paths.values()):
        pytest.skip("lab fixtures not present")
    work = str(tmp_path_factory.mktemp("acc"))
    cases = [c for name, path in paths.items()
             for c in script.read_capture(script.Capture(name, SOURCES[name], str(path)), work)]
    return script, cases


def test_a_source_is_never_scored_with_what_was_fitted_on_it(evaluation, monkeypatch):
    """Fails if any fold (outer, or the nested folds that fit thresholds) scores a case with fingerprints or
    thresholds fitted on the case's own source."""
    script, cases = evaluation
    assert all(c.prints for c in cases if c.scope == "server"), "each source measures fingerprints of its own"
    scored = []
    original = script.candidates

    def watch(case, model):
        measured = {s for p in model.prints if p.source != "ndr" for s in p.source.split(";")}
        scored.append((case.source, set(model.fitted_on), measured,
                       {g.sources for g in model.gates.values()}))
        return original(case, model)

    monkeypatch.setattr(script, "candidates", watch)
    outcomes, models = script.leave_one_source_out(cases)
    assert outcomes and set(models) == set(SOURCES.values())
    assert {source for source, *_ in scored} == set(SOURCES.values())
    for source, fitted_on, measured, gate_sources in scored:
        assert source not in fitted_on and source not in measured, (source, fitted_on, measured)
        assert not any(source in s.split(";") for s in gate_sources), (source, gate_sources)


def test_scoring_a_source_with_a_model_fitted_on_it_is_refused(evaluation):
    script, cases = evaluation
    case = next(c for c in cases if c.source == "first" and c.scope == "server")
    everything = frozenset(SOURCES.values())
    with pytest.raises(script.LeakError):
        script.candidates(case, script.fit(cases, everything))
    others = everything - {"first"}
    sneaked = script.Model(script.fingerprints(cases, others) + case.prints, {}, others)  # a row measured on it
    with pytest.raises(script.LeakError):
        script.candidates(case, sneaked)
    assert script.candidates(case, script.Model(script.fingerprints(cases, others), {}, others)) is not None


def test_thresholds_rise_above_a_labels_wrong_answers():
    """A label right at high scores and wrong at a low one is shown only above the wrong one (so is a label
    only ever wrong); a label without outcomes of its own gets the common threshold."""
    script = _script()
    case = script.Case("c", "s", "server", [], set(), set(), set(), [])

    def outcome(label, score, right):
        return script.Outcome(case, ("a", "b", label), score, right)

    outcomes = ([outcome("write file write", 0.64, True) for _ in range(6)]
                + [outcome("read file read", 0.4, False), outcome("read file read", 0.64, True),
                   outcome("read file read", 0.64, True), outcome("net use map", 0.5, False)])
    gates = script.fit_gates(outcomes, frozenset({"s"}))
    assert gates[("read file", "read")].min_score == 0.64
    assert gates[("net use", "map")].min_score > 0.5
    assert gates[("*", "*")].min_score is not None and gates[("*", "*")].min_score <= 0.64
    assert script.gate_for(gates, ("sc", "create")) is gates[("*", "*")]


def test_fingerprint_rows_keep_the_sources_they_were_measured_on():
    script = _script()
    one = Fingerprint("svcctl", "svcctl", 0, "RCloseServiceHandle", (44, 44), (48, 48), "lab", 3)
    two = Fingerprint("svcctl", "svcctl", 0, "RCloseServiceHandle", (44, 44), (48, 48), "otrf", 2)
    idl = Fingerprint("svcctl", "svcctl", 0, "RCloseServiceHandle", (44, 44), (48, 48), "ndr", 1)
    merged = script.merge([[one], [two, idl]])
    assert sorted((p.source, p.count) for p in merged) == [("lab;otrf", 5), ("ndr", 1)]
