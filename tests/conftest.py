"""Shared fixtures: paths of real ObsPy recordings, the interface contract (``docs/spec`` of
this checkout) and one small signed model bundle built by the project's own commands."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the interface contract, inside the checkout (``docs/spec/README.md``)
SPEC = REPO / "docs" / "spec"


@pytest.fixture(scope="session")
def obspy_data() -> Path:
    """Folder of ObsPy's real test recordings (``obspy/signal/tests/data``)."""
    import obspy

    return Path(obspy.__file__).parent / "signal" / "tests" / "data"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """``docs/spec`` of this checkout (cli.md, mqtt.md, schemas/event.schema.json, ...)."""
    if not SPEC.is_dir():
        pytest.fail(f"docs/spec not found at {SPEC}: the checkout is incomplete")
    return SPEC


def microseis_cli(*argv: str) -> subprocess.CompletedProcess:
    """``python -m edge ARGV`` in a subprocess; raises with its stderr when it fails."""
    res = subprocess.run([sys.executable, "-m", "edge", *argv], capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"microseis {' '.join(argv)} exited {res.returncode}:\n{res.stderr[-3000:]}")
    return res


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> dict[str, Path]:
    """A synthetic dataset, a 1-epoch run, a test key pair and the signed int8 bundle
    (synth -> train -> keygen -> export, about 40 s). Needs torch (the trainer and exporter)."""
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("bundle")
    microseis_cli("synth", "--out", str(d / "DS"), "--events", "60", "--seed", "7", "--sites", "fixed")
    microseis_cli("train", "--data", str(d / "DS"), "--out", str(d / "RUN"), "--epochs", "1",
                  "--max-batches", "3", "--quiet", "--force")
    microseis_cli("keygen", "--out", str(d / "KEYS"), "--name", "test")
    microseis_cli("export", "--run", str(d / "RUN"), "--out", str(d / "B.msb"), "--key",
                  str(d / "KEYS" / "test.key"), "--int8", "--latency-repeats", "20", "--quiet")
    return {"dir": d, "ds": d / "DS", "run": d / "RUN", "bundle": d / "B.msb",
            "key": d / "KEYS" / "test.key", "pub": d / "KEYS" / "test.pub"}
