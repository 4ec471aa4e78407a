"""Shared fixtures.  ``SHARED_CP2K`` is the real CP2K run beside the checkout (present in CI)."""

from pathlib import Path

import pytest

SHARED_CP2K = Path(__file__).resolve().parents[2] / "shared" / "data" / "cp2k" / "h2o-32"


@pytest.fixture
def shared_cp2k_dir():
    if not (SHARED_CP2K / "h2o-32.inp").exists():
        pytest.skip(f"the shared CP2K run is not at {SHARED_CP2K}")
    return SHARED_CP2K
