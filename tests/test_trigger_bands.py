"""Several trigger bands (edge.trigger.stream with ``bands``) and the station's choice of bands
(edge.trigger.bands): against ObsPy on ObsPy's real UH recordings, and on a high-frequency
burst a 1-20 Hz trigger does not see."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, UTCDateTime, read

from edge.trigger.bands import BandError, band_sta_s, station_bands, station_trigger
from edge.trigger.stream import StreamingTrigger, TriggerConfig
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
    bands, warn = station_bands(cfg, 500.0, CLASSES)  # the fracture band follows the digitizer
    assert bands == [(2.0, 20.0), (5.0, 50.0), (20.0, 225.0)] and warn == []
    assert station_bands(cfg, 1000.0, CLASSES)[0] == [(2.0, 20.0), (5.0, 50.0), (20.0, 450.0)]
    assert station_bands(cfg, 250.0, CLASSES)[0] == [(2.0, 20.0), (5.0, 50.0), (20.0, 112.5)]
    bands, warn = station_bands(cfg, 100.0, CLASSES)  # 0.45 x 100 = 45 Hz
    assert bands == [(2.0, 20.0), (5.0, 45.0), (20.0, 45.0)] and warn == []
    bands, warn = station_bands(cfg, 40.0, CLASSES)  # 18 Hz: the fracture band is above it
    assert bands == [(2.0, 18.0), (5.0, 18.0)]
    assert len(warn) == 1 and "20 Hz and up (fracture) does not fit below 18 Hz" in warn[0] and "dropped" in warn[0]


def test_band_sta_matches_the_band() -> None:
    """STA = max(0.05 s, 0.6 / low, 5 / bandwidth): short for the wide fracture band, longer
    for a narrow one and for a band reaching down to low frequencies."""
    assert band_sta_s(2.0, 20.0) == 0.3
    assert band_sta_s(1.0, 20.0) == 0.6
    assert band_sta_s(5.0, 50.0) == 0.12
    assert band_sta_s(20.0, 225.0) == 0.05 and band_sta_s(20.0, 450.0) == 0.05
    assert band_sta_s(20.0, 45.0) == 0.2  # a 100 Hz digitizer: 25 Hz of band
    assert band_sta_s(20.0, 90.0) == 0.071


def test_station_trigger_gives_the_bundle_bands_their_sta_and_keeps_configured_ones() -> None:
    trig, warn = station_trigger(TriggerConfig(), 500.0, CLASSES)
    assert trig.bands_hz() == [(2.0, 20.0), (5.0, 50.0), (20.0, 225.0)] and warn == []
    # only the fracture band (impulsive) goes below sta_s = 0.2 s; rockfalls' 5-50 Hz would
    # get 0.12 s from band_sta_s
    assert trig.bands_sta_s() == [0.3, 0.2, 0.05]
    assert StreamingTrigger(trig).stas == [0.3, 0.2, 0.05]
    trig, _ = station_trigger(TriggerConfig(sta_s=0.1), 500.0, CLASSES)
    assert trig.bands_sta_s() == [0.3, 0.12, 0.05]
    mine = TriggerConfig(sta_s=0.4, bands=[[1, 20], [20, 120, 0.08]])
    trig, _ = station_trigger(mine, 500.0, CLASSES)
    assert trig == mine and trig.bands_sta_s() == [0.4, 0.08]
    trig, _ = station_trigger(TriggerConfig(freqmin=3, freqmax=12, sta_s=0.5), 100.0, CLASSES)
    assert trig.bands_hz() == [(3.0, 12.0)] and trig.bands_sta_s() == [0.5]
    assert TriggerConfig.from_dict(trig.to_dict()) == trig


def test_a_band_with_its_own_sta_is_obspys_trigger_with_that_sta(uh3: Trace) -> None:
    """A bands entry's third item is that band's STA window: each band gives ObsPy's
    trigger_onset on ObsPy's recursive_sta_lta with its own nsta."""
    base = {k: v for k, v in UH.items() if k not in ("freqmin", "freqmax", "coincidence_sum")}
    fs = uh3.stats.sampling_rate
    want = []
    for lo, hi, sta in [(2.0, 8.0, 1.0), (10.0, 20.0, 0.2)]:
        cfg = TriggerConfig(**{**base, "sta_s": sta}, freqmin=lo, freqmax=hi, coincidence_sum=1.0)
        want += expected_picks(obspy_cft(uh3, cfg), cfg, fs)
    cfg2 = TriggerConfig(**base, bands=[[2.0, 8.0, 1.0], [10.0, 20.0, 0.2]], coincidence_sum=1.0)
    got = ended(run(cfg2, [uh3], (13, 101, 7)))
    assert samples(got, uh3) == union(want) and got
    # and not what the shared sta_s (0.5 s) gives
    cfg3 = TriggerConfig(**base, bands=[[2.0, 8.0], [10.0, 20.0]], coincidence_sum=1.0)
    assert samples(ended(run(cfg3, [uh3], 37)), uh3) != samples(got, uh3)


def burst_trace(fs: float, f0: float, amp: float, decay_s: float, seed: int = 5,
                t_on: float = 40.0) -> Trace:
    """60 s of white noise (rms 100 counts) with a decaying ``f0`` Hz burst at ``t_on`` s."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 100, int(60 * fs))
    t = np.arange(int(1.0 * fs)) / fs
    i0 = int(t_on * fs)
    x[i0:i0 + t.size] += amp * np.sin(2 * np.pi * f0 * t) * np.exp(-t / decay_s)
    return Trace(x.astype(np.int32), header={"network": "XX", "station": "S1", "channel": "DPZ",
                                             "sampling_rate": fs, "starttime": UTCDateTime(0)})


def test_station_bands_catch_a_short_high_fracture_the_old_band_missed() -> None:
    """A 140 Hz fracture decaying in 30 ms on a 500 Hz digitizer (as the train split's missed
    ones): the old 20-120 Hz band with a 0.2 s STA misses it, the station's bands (20-225 Hz,
    STA 0.05 s) catch it, at its onset."""
    tr = burst_trace(500.0, 140.0, 900.0, 0.03)
    old = ended(run(TriggerConfig(bands=[[1.0, 20.0], [5.0, 50.0], [20.0, 120.0]]), [tr], 50))
    new_cfg, _ = station_trigger(TriggerConfig(), 500.0, CLASSES)
    new = ended(run(new_cfg, [tr], 50))
    assert old == []
    assert len(new) == 1 and new[0].bands == [(20.0, 225.0)]
    assert abs(new[0].trigger_on - UTCDateTime(40)) < 0.05


def test_station_bands_stay_quiet_on_noise_near_their_low_corner() -> None:
    """Noise whose energy in 1-20 Hz sits at 1-2.5 Hz (a broadband sensor's low end): the
    classic 1-20 Hz band with a 0.2 s STA triggers on it again and again, the station's
    2-20 Hz band with its 0.3 s STA does not."""
    from obspy.signal.filter import bandpass

    fs = 100.0
    rng = np.random.default_rng(7)
    n = int(1800 * fs)
    x = 40 * bandpass(rng.normal(0, 100, n), 0.8, 2.5, fs, corners=2) + rng.normal(0, 20, n)
    tr = Trace(x.astype(np.int32), header={"network": "XX", "station": "S1", "channel": "HHZ",
                                           "sampling_rate": fs, "starttime": UTCDateTime(0)})
    old = ended(run(TriggerConfig(bands=[[1.0, 20.0]]), [tr], 100))
    new = ended(run(TriggerConfig(bands=[[2.0, 20.0, band_sta_s(2.0, 20.0)]]), [tr], 100))
    assert len(old) >= 5 and len(new) <= len(old) // 5


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
