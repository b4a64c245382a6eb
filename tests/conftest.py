import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMBTRAIL_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public development data set; absent on a user's machine, so tests skip with the reason."""
    if not SHARED.is_dir():
        pytest.skip(f"public test data not found at {SHARED} (set SMBTRAIL_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def built(request) -> Dict[str, object]:
    """The Splunk package as package.sh builds it (once a test run; build venvs reused from build/), with
    AppInspect's report and the forwarder / search-head packages Splunk's packaging toolkit cuts. Under
    pytest-xdist the first worker that needs it builds it; the others wait for it and take the same."""
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    run = getattr(request.config, "workerinput", {}).get("testrunuid")
    stamp = build / "built-by-run.json"
    with open(build / "built.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        made = json.loads(stamp.read_text()) if stamp.is_file() else {}
        if not run or made.get("run") != run:
            stamp.unlink(missing_ok=True)
            done = subprocess.run(["bash", str(ROOT / "package.sh"), "--inspect", "--partition"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=1800,
                                  env={**os.environ, "SMBTRAIL_BUILD_DIR": str(build), "PYTHON": sys.executable})
            assert done.returncode == 0, done.stderr[-4000:]
            made = {"run": run, "tgz": done.stdout.strip().splitlines()[-1], "log": done.stderr}
            stamp.write_text(json.dumps(made))
    return {"tgz": Path(made["tgz"]), "log": made["log"], "stage": build / "pkg" / "smbtrail", "build": build}


@pytest.fixture(scope="session")
def lab_indexed(built, tmp_path_factory) -> Dict[str, list]:
    """What the packaged inputs write for the lab recordings shipped in the repo (each mode's captures
    and its Samba logs), as the events Splunk would index: per lab mode, read once a session."""
    from helpers.splunk_sim import run_input

    lab, out = FIXTURES / "lab", {}
    for mode in ("plain", "enc-global", "addc"):
        work = tmp_path_factory.mktemp(f"indexed-{mode}")
        for name, pattern in (("pcap", "*.pcapng"), ("logs", "*.full_audit.log"), ("logs", "*.audit.jsonl")):
            (work / name).mkdir(exist_ok=True)
            for path in sorted((lab / mode).glob(pattern)):
                (work / name / path.name).write_bytes(path.read_bytes())
        out[mode] = (run_input(built["stage"], "smbtrail_pcap", str(work / "pcap" / "*"), work)
                     + run_input(built["stage"], "smbtrail_hostlog", str(work / "logs" / "*"), work))
    return out


# pytest-xdist (pyproject: -n auto --dist loadfile): a test file is one unit of work, so its module fixtures
# are made once; the files that test the built package are one unit, so `built` and `lab_indexed` are made
# once; the files that ask helpers.network for the same lab runs are one unit, so its cache serves them all;
# and the longest units start first, so that no worker is left alone with one at the end.
UNITS = {"the Splunk package": ("test_splunk_contract.py", "test_splunk_flow.py", "test_splunk_fusehead.py",
                                "test_splunk_package.py", "test_splunk_zeek.py"),
         # the encrypted lab captures each of these reads without keys
         "the encrypted lab captures": ("test_lab_trails.py", "test_inference.py", "test_whatif.py")}
LONGEST_FIRST = ("the encrypted lab captures", "test_capture_pipeline.py", "the Splunk package",
                 "test_splunk_input_faults.py", "test_cli_faults.py", "test_hostlog_evtx.py", "test_hostile_input.py")


def _work_unit(nodeid: str) -> str:
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return next((unit for unit, files in UNITS.items() if name in files), name)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            rank = {unit: n for n, unit in enumerate(LONGEST_FIRST)}
            first = min(self.workqueue, key=lambda unit: rank.get(unit, len(rank)))  # else: most tests first
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return FileScheduling(config, log)
