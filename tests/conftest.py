import os
from pathlib import Path

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
