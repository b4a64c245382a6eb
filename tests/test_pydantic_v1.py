"""Under pydantic 1.10 (what the Splunk app vendors) the engine writes the same bytes as under pydantic 2.

The pure-Python pydantic pinned in package.sh comes from the package registry into build/ once. This
file, run as a script, drives the engine over lab recordings and host logs (fused, decrypted), sends
each record through the Splunk event round-trip and writes a coverage report; the test runs it in a
subprocess per pydantic, the chosen one first on sys.path, and compares the outputs byte for byte.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "tests" / "fixtures" / "lab"
PIN = re.search(r"(?m)^PYDANTIC=(\S+)", (ROOT / "package.sh").read_text()).group(1)
V1_LIB = ROOT / "build" / f"pydantic-{PIN}"


def lab_output(workdir: str) -> str:
    """Fused and decrypted records as the CLI and the Splunk inputs write them, and a coverage report."""
    from smbtrail.engine import Options, analyze
    from smbtrail.pydantic_api import SecretStr
    from smbtrail.whatif.coverage import coverage_report

    addc = str(LAB / "addc" / "krb_net_user_add")
    plain = [str(LAB / "plain" / f"{name}.pcapng") for name in ("psexec_impacket", "schtasks_atexec")]
    lines = _events(analyze([addc + ".pcapng"], [addc + ".audit.jsonl"], Options(keys_file=addc + ".keys")))
    lines += _events(analyze(plain, [], Options(passwords=[SecretStr("Lab-Passw0rd!")])))
    report = coverage_report(plain[:1], [], keep_dir=workdir)
    lines.append(json.dumps(report.model_dump(mode="json"), indent=2))
    lines += [stats.model_dump_json(indent=2) for result in report.results for stats in result.rewrites]
    return "\n".join(lines) + "\n"


def evtx_output(evtx_dir: str) -> str:
    """Host records of .evtx files (every event, covered or not), through the Splunk round-trip."""
    from smbtrail.engine import Options, analyze

    paths = sorted(glob.glob(os.path.join(evtx_dir, "*.evtx")))
    return "\n".join(_events(analyze([], paths, Options(all_events=True)))) + "\n"


def _events(records: Iterable) -> List[str]:
    from smbtrail.splunk.events import event_json, record_from_body

    lines = []
    for rec in records:
        lines.append(rec.to_json())
        lines.append(event_json(record_from_body(json.loads(event_json(rec)))))
    return lines


def main(major: str, what: str, path: str) -> int:
    import pydantic

    if pydantic.VERSION.split(".")[0] != major:
        sys.stderr.write(f"expected pydantic {major}, imported {pydantic.VERSION} from {pydantic.__file__}\n")
        return 2
    sys.stdout.write(lab_output(path) if what == "lab" else evtx_output(path))
    return 0


@pytest.fixture(scope="module")
def pydantic_v1() -> Path:
    """pydantic's py3-none-any wheel, as package.sh vendors it, installed once into build/."""
    if not (V1_LIB / "pydantic" / "main.py").is_file():
        V1_LIB.parent.mkdir(parents=True, exist_ok=True)
        partial = tempfile.mkdtemp(dir=V1_LIB.parent, prefix=V1_LIB.name + ".")  # a concurrent run has its own
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--no-compile", "--upgrade", "--target", partial, "--only-binary=:all:",
                               "--implementation", "py", "--abi", "none", "--platform", "any", "--python-version",
                               "3.9", f"pydantic=={PIN}"], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.skip(f"cannot install pydantic {PIN} from the package registry: {done.stderr.strip()[-300:]}")
        try:
            os.rename(partial, V1_LIB)
        except OSError:  # another run installed it first
            shutil.rmtree(partial, ignore_errors=True)
    return V1_LIB


def run_engine(lib: Optional[Path], what: str, path: Path) -> str:
    """This file as a script in a subprocess: pydantic 1 from `lib`, or the venv's pydantic 2."""
    pythonpath = [str(p) for p in (lib, ROOT / "src") if p is not None] + [os.environ.get("PYTHONPATH", "")]
    major = "1" if lib else "2"
    done = subprocess.run([sys.executable, __file__, major, what, str(path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def assert_same(v1: str, v2: str) -> None:
    assert v1.splitlines() == v2.splitlines()  # pytest shows the first differing line
    assert v1 == v2


def test_lab_records_identical_under_pydantic_1_and_2(pydantic_v1, tmp_path):
    v2 = run_engine(None, "lab", tmp_path)  # both runs rewrite into the same dir: same paths in the report
    v1 = run_engine(pydantic_v1, "lab", tmp_path)
    kinds = {json.loads(line)["kind"] for line in v2.splitlines() if line.startswith('{"time"')}
    assert {"trail", "command", "host_event", "operation", "session"} <= kinds
    assert '"results": [' in v2 and '"smb2_messages_encrypted"' in v2
    assert_same(v1, v2)


def test_evtx_records_identical_under_pydantic_1_and_2(pydantic_v1, shared_data):
    evtx_dir = shared_data / "evtx-attack-samples" / "Lateral Movement"
    v2 = run_engine(None, "evtx", evtx_dir)
    assert v2.count("\n") > 100
    assert_same(run_engine(pydantic_v1, "evtx", evtx_dir), v2)


if __name__ == "__main__":  # python tests/test_pydantic_v1.py MAJOR lab WORKDIR | MAJOR evtx EVTX_DIR
    sys.exit(main(*sys.argv[1:]))
