"""Any digitizer rate through the whole station (the daemon as ``microseis run`` builds it).

ObsPy's real RJOB local earthquake (200 Hz, 3 components, P at 30.635 s) brought to 50, 100,
200, 500 and 1000 Hz with the project's resampler, replayed in 1 s chunks: the trigger and
the ring buffer run at the digitizer's rate, and the model window is the cut resampled to
the model's 250 Hz by ``preprocess_stream`` -- the same bytes as training's preprocessing of
the whole recording.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from edge.model.format import BundleError
from edge.model.inference import EventClassifier
from edge.model.manifest import Manifest
from edge.signal.preprocess import preprocess_stream
from edge.signal.resample import resample_trace
from tests.station_run import as_counts, run_station

RJOB_START = UTCDateTime("2005-08-01T14:57:19.85")
P_TIME = RJOB_START + 30.635  # ObsPy's pick (shared/notes/real-data.md)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rjob(obspy_data: Path) -> Stream:
    st = Stream()
    for c in "zne":
        d = np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}")
        st += Trace(d - d.mean(), header={"channel": f"HH{c.upper()}", "sampling_rate": 200.0,
                                          "starttime": RJOB_START})
    return st


@pytest.fixture(scope="module")
def spec():
    return EventClassifier.load().window_spec


@pytest.mark.parametrize("rate", [50.0, 100.0, 200.0, 500.0, 1000.0])
def test_every_rate_through_the_station(rjob: Stream, rate: float, tmp_path: Path, spec) -> None:
    st = as_counts(Stream([tr if rate == 200.0 else resample_trace(tr, rate) for tr in rjob]))
    assert {tr.stats.sampling_rate for tr in st} == {rate}
    daemon, col = run_station(tmp_path, st, rate)
    assert len(col.new) == 1 and len(col.end) == 1, [m["trigger_on"] for m in col.end]
    end = col.end[0]
    assert end["id"] == col.new[0]["id"]
    assert abs(UTCDateTime(end["trigger_on"]) - P_TIME) < 0.1
    assert end["window"]["coverage"] == 1.0 and end["sub_triggers"]["count"] == 1
    assert end["magnitude"]["ml"] is not None, end["magnitude"]
    warnings = col.health.get("warnings", [])
    nyq = rate / 2
    if nyq < spec.freqmax:  # the model's band reaches above what the digitizer records
        assert f"digitizer {rate:g} Hz < model 250 Hz: the model cannot see above {nyq:g} Hz " \
               "(upsampled to 250 Hz)" in warnings
    else:
        assert not any(w.startswith("digitizer") for w in warnings)
    # the trigger ran at the digitizer's rate, on the bundle's bands clipped to 0.45 x rate
    assert max(hi for _, hi in daemon.pipeline.trigger.bands) <= 0.45 * rate
    # what the model saw: the station's chunks, buffered at the native rate and cut, give the
    # same window as preprocessing the whole recording (training's path), byte for byte
    on = UTCDateTime(end["trigger_on"])
    station = preprocess_stream(daemon.pipeline.ring.stream(on - 10, on + 30), on, spec)
    training = preprocess_stream(st, on, spec)
    assert station.data.tobytes() == training.data.tobytes()
    assert station.sampling_rate == 250.0


def test_a_rate_the_resampler_cannot_serve_exits_2_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[station]
id = "XX.S1"
sampling_rate = 333.3333
[source]
kind = "simulate"
[mqtt]
enabled = false
[state]
dir = "{tmp_path / 'state'}"
""")
    for extra in ([], ["--check"]):
        res = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(cfg), *extra],
                             capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
        assert res.returncode == 2
        last = res.stderr.strip().splitlines()[-1]
        assert "sampling_rate 333.3333 Hz cannot be resampled to the model's 250 Hz" in last
        assert "Traceback" not in res.stderr


def test_a_configured_band_above_nyquist_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[station]
id = "XX.S1"
sampling_rate = 100
[source]
kind = "simulate"
[trigger]
bands = [[1, 20], [20, 120]]
[mqtt]
enabled = false
[state]
dir = "{tmp_path / 'state'}"
""")
    res = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(cfg), "--check"],
                         capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].endswith(
        "[trigger] bands[1]: 20-120 Hz reaches the Nyquist frequency (50 Hz) of the 100 Hz "
        "digitizer; keep the high corner below 45 Hz")


def test_manifest_class_bands() -> None:
    d = EventClassifier.load().bundle.manifest.to_dict()
    assert "class_bands" not in d  # the shipped bundle has none: the fallback table applies
    d["class_bands"] = {"fracture": [25, 110], "earthquake": [1, 15]}
    m = Manifest.from_dict(d)
    assert m.class_bands == {"fracture": (25.0, 110.0), "earthquake": (1.0, 15.0)}
    assert Manifest.from_dict(m.to_dict()) == m
    for bad, msg in (({"quake": [1, 2]}, "class_bands.quake: 'quake' is not one of the classes"),
                     ({"fracture": [110, 25]}, "class_bands.fracture: must have 0 < low < high"),
                     ({"fracture": [1]}, "class_bands.fracture: Expected `array` of length 2, got 1"),
                     ([1, 2], "class_bands: expected a table of arrays of 2 numbers, got an array")):
        d["class_bands"] = bad
        with pytest.raises(BundleError, match=r"^manifest: " + msg.replace("[", r"\[").replace("]", r"\]")):
            Manifest.from_dict(d)
