"""Several trigger bands (edge.trigger.stream with ``bands``) and the station's choice of bands
(edge.trigger.bands): against ObsPy on ObsPy's real UH recordings, and on a high-frequency
burst a 1-20 Hz trigger does not see."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, UTCDateTime, read

from edge.trigger.bands import FALLBACK_CLASS_BANDS, BandError, station_bands
from edge.trigger.stream import TriggerConfig
from tests.test_stream_trigger import UH, ended, expected_picks, obspy_cft, run, samples

CLASSES = ("fracture", "rockfall", "earthquake", "noise")


@pytest.fixture(scope="module")
def uh3(obspy_data: Path) -> Trace:
    return read(str(obspy_data / "BW.UH3._.SHZ.D.2010.147.cut.slist.gz"))[0]


def union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping (or touching) intervals merged: an event lasts while any band is on."""
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def test_one_band_in_bands_is_the_single_band_trigger(uh3: Trace) -> None:
    base = {**UH, "coincidence_sum": 1.0}
    single = run(TriggerConfig(**base), [uh3], 37)
    del base["freqmin"], base["freqmax"]
    listed = run(TriggerConfig(**base, bands=[[10.0, 20.0]]), [uh3], 37)
    assert [(t.kind, t.event.trigger_on, t.event.trigger_off) for t in single] == \
        [(t.kind, t.event.trigger_on, t.event.trigger_off) for t in listed]
    assert ended(single)  # the recording has events: the comparison is not empty


@pytest.mark.parametrize("sizes", [1, 50, (13, 101, 7)], ids=["1", "50", "mixed"])
def test_two_bands_give_the_union_of_obspys_triggers_per_band(uh3: Trace, sizes) -> None:
    base = {k: v for k, v in UH.items() if k not in ("freqmin", "freqmax", "coincidence_sum")}
    bands = [[2.0, 8.0], [10.0, 20.0]]
    fs = uh3.stats.sampling_rate
    want = []
    for lo, hi in bands:
        cfg = TriggerConfig(**base, freqmin=lo, freqmax=hi, coincidence_sum=1.0)
        want += expected_picks(obspy_cft(uh3, cfg), cfg, fs)
    cfg2 = TriggerConfig(**base, bands=bands, coincidence_sum=1.0)
    got = ended(run(cfg2, [uh3], sizes))
    assert samples(got, uh3) == union(want)
    # each event names the bands that saw it
    assert all(ev.bands and set(ev.bands) <= {(2.0, 8.0), (10.0, 20.0)} for ev in got)
    assert len(union(want)) < len(want) or len(want) >= 3  # both bands fired on the quakes


def test_a_high_band_catches_a_burst_the_low_band_misses() -> None:
    """A 2 s, 80 Hz burst (a rock fracture's band) in noise at 250 Hz: 1-20 Hz sees nothing,
    20-120 Hz triggers once; with both bands the one event names the high band."""
    fs = 250.0
    rng = np.random.default_rng(3)
    n = int(60 * fs)
    x = rng.normal(0, 100, n)
    t = np.arange(int(2 * fs)) / fs
    i0 = int(40 * fs)
    x[i0:i0 + t.size] += 3000 * np.sin(2 * np.pi * 80 * t) * np.exp(-t / 0.4)
    tr = Trace(x.astype(np.int32), header={"network": "XX", "station": "S1", "channel": "HHZ",
                                           "sampling_rate": fs, "starttime": UTCDateTime(0)})
    low = ended(run(TriggerConfig(bands=[[1.0, 20.0]]), [tr], 25))
    both = ended(run(TriggerConfig(bands=[[1.0, 20.0], [20.0, 120.0]]), [tr], 25))
    assert low == []
    assert len(both) == 1 and both[0].bands == [(20.0, 120.0)]
    assert abs(both[0].trigger_on - UTCDateTime(40)) < 0.1


# --------------------------------------------------------------------------- station bands


def test_bundle_without_class_bands_uses_the_fallback_table_clipped_to_the_digitizer() -> None:
    cfg = TriggerConfig()
    bands, warn = station_bands(cfg, 500.0, CLASSES)
    assert bands == sorted(FALLBACK_CLASS_BANDS.values()) and warn == []
    assert station_bands(cfg, 250.0, CLASSES)[0] == [(1.0, 20.0), (5.0, 50.0), (20.0, 112.5)]
    bands, warn = station_bands(cfg, 100.0, CLASSES)  # 0.45 x 100 = 45 Hz
    assert bands == [(1.0, 20.0), (5.0, 45.0), (20.0, 45.0)] and warn == []
    bands, warn = station_bands(cfg, 40.0, CLASSES)  # 18 Hz: the fracture band is above it
    assert bands == [(1.0, 18.0), (5.0, 18.0)]
    assert len(warn) == 1 and "20-120 Hz (fracture) does not fit below 18 Hz" in warn[0] and "dropped" in warn[0]


def test_manifest_class_bands_and_configured_bands_win() -> None:
    bands, _ = station_bands(TriggerConfig(), 250.0, CLASSES,
                             {"earthquake": (2.0, 15.0), "fracture": (30.0, 100.0), "noise": (1, 5)})
    assert bands == [(2.0, 15.0), (30.0, 100.0)]  # noise is no event: no band
    cfg = TriggerConfig(bands=[[1, 10], [10, 40]])
    assert station_bands(cfg, 100.0, CLASSES)[0] == [(1.0, 10.0), (10.0, 40.0)]
    assert station_bands(TriggerConfig(freqmin=3, freqmax=12), 50.0, CLASSES)[0] == [(3.0, 12.0)]


def test_a_configured_band_at_nyquist_names_the_key() -> None:
    with pytest.raises(BandError, match=r"^\[trigger\] bands\[1\]: 20-120 Hz reaches the Nyquist "
                                        r"frequency \(50 Hz\) of the 100 Hz digitizer"):
        station_bands(TriggerConfig(bands=[[1, 20], [20, 120]]), 100.0, CLASSES)
    with pytest.raises(BandError, match=r"^\[trigger\] freqmax: "):
        station_bands(TriggerConfig(freqmin=1, freqmax=25), 50.0, CLASSES)
