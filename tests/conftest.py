"""Shared fixtures: paths of real ObsPy recordings (see shared/notes/real-data.md)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEC = Path(os.environ.get("MICROSEIS_SPEC", REPO.parent / "shared" / "spec"))


@pytest.fixture(scope="session")
def obspy_data() -> Path:
    """Folder of ObsPy's real test recordings (``obspy/signal/tests/data``)."""
    import obspy

    return Path(obspy.__file__).parent / "signal" / "tests" / "data"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    if not SPEC.is_dir():
        pytest.fail(f"shared/spec not found at {SPEC} (set MICROSEIS_SPEC)")
    return SPEC
