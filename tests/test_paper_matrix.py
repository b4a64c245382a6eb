"""scripts/paper_matrix.py on the lab recordings: the fused column counts host evidence of the command only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "tests" / "fixtures" / "lab"
pytestmark = pytest.mark.skipif(not (LAB / "manifest.csv").exists(), reason="no lab fixtures: run tests/lab/run.sh")


@pytest.fixture(scope="module")
def matrix():
    spec = importlib.util.spec_from_file_location("paper_matrix", ROOT / "scripts" / "paper_matrix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _source(matrix, name):
    found = [s for s in matrix.lab_sources(LAB) if s.name == name]
    assert found, f"{name} not in the lab manifest"
    return found[0]


@pytest.mark.parametrize("name", ["lab:addc/krb_file_read_impacket", "lab:plain/file_delete_smbclient",
                                  "lab:plain/net_use_smbclient"])
def test_server_wide_encryption_fused_with_full_audit(matrix, name, tmp_path):
    src = _source(matrix, name)
    assert any(p.endswith(".full_audit.log") for p in src.hostlogs)
    result = matrix.evaluate(src, str(tmp_path))
    assert result[""]["host"] == matrix.OBTAINED
    server = result["server"]
    assert server["network"] != matrix.OBTAINED and server["fused"] == matrix.OBTAINED
    assert "account_host_time" in server["joins"]


@pytest.mark.parametrize("name", ["lab:addc/krb_sc_query", "lab:plain/reg_add_impacket"])
def test_rpc_over_pipes_is_not_reproducible_for_fusion(matrix, name, tmp_path):
    """Samba logs the IPC$ connect but no pipe I/O, service or registry event: nothing to fuse."""
    result = matrix.evaluate(_source(matrix, name), str(tmp_path))
    assert result[""]["host"] == matrix.LOST
    assert result["server"]["fused"] == matrix.NO_HOST_EVIDENCE
