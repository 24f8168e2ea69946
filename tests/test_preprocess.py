"""The model-input contract (edge.signal.preprocess) on real ObsPy recordings and synthetic traces."""
from __future__ import annotations

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime
from obspy.core.util import get_example_file

from edge.signal.preprocess import (
    PreprocessError,
    WindowSpec,
    component_of,
    normalize,
    preprocess_stream,
    resample_factors,
)

RJOB_ONSET = UTCDateTime("2009-08-24T00:20:08")  # obspy.read() example, BW.RJOB 100 Hz
T0 = UTCDateTime(2020, 1, 1)


def rjob() -> Stream:
    return obspy.read()


def loc_rjob() -> tuple[Stream, UTCDateTime]:
    """ObsPy's 200 Hz local earthquake (plain ASCII, P at 30.635 s)."""
    start = UTCDateTime(2005, 8, 1, 14, 57, 19, 850000)
    traces = [
        Trace(
            np.loadtxt(get_example_file(f"loc_RJOB20050801145719850.{c}")),
            header=dict(network="XX", station="RJOB", channel=f"EH{c.upper()}", sampling_rate=200.0, starttime=start),
        )
        for c in "zne"
    ]
    return Stream(traces), start + 30.635


def synthetic(fs: float, func, duration: float = 40.0, channels=("HHZ",), station="SYN") -> Stream:
    t = np.arange(int(round(duration * fs))) / fs
    return Stream(
        [Trace(np.asarray(func(t), dtype=np.float64),
               header=dict(network="XX", station=station, channel=ch, sampling_rate=fs, starttime=T0))
         for ch in channels]
    )


# --------------------------------------------------------------------------- spec


def test_spec_defaults_and_round_trip():
    spec = WindowSpec()
    assert spec.n_samples == 3000
    assert spec.taper_s == pytest.approx(0.8)
    d = spec.to_dict()
    assert d["components"] == ["Z", "N", "E"]
    assert WindowSpec.from_dict(d) == spec
    with pytest.raises(ValueError, match="unknown WindowSpec keys: foo"):
        WindowSpec.from_dict({**d, "foo": 1})
    with pytest.raises(ValueError, match="Nyquist"):
        WindowSpec(sampling_rate=200.0)
    with pytest.raises(ValueError, match="including Z"):
        WindowSpec(components=("N", "E"))


def test_component_names_and_factors():
    channels = ("EHZ", "EHN", "EHE", "HH1", "HH2", "LOG", "")
    assert [component_of(c) for c in channels] == ["Z", "N", "E", "N", "E", None, None]
    assert [resample_factors(fs, 250.0) for fs in (50, 100, 200, 250, 500, 1000)] == [
        (5, 1), (5, 2), (5, 4), (1, 1), (1, 2), (1, 4)]
    with pytest.raises(PreprocessError, match="exceed"):
        resample_factors(250.0013, 250.0)


# --------------------------------------------------------------------------- real data


def test_rjob_window_shape_units_and_timing():
    st = rjob()
    before = [tr.data.copy() for tr in st]
    w = preprocess_stream(st, RJOB_ONSET, WindowSpec())
    assert w.data.shape == (3, 3000) and w.data.dtype == np.float32
    assert w.present == (True, True, True)
    assert w.channels == ("BW.RJOB..EHZ", "BW.RJOB..EHN", "BW.RJOB..EHE")
    assert w.coverage == 1.0 and w.gap_fraction == 0.0 and w.flags == ()
    assert w.units == "counts" and w.sampling_rate == 250.0
    assert abs(w.starttime - (RJOB_ONSET - 2.0)) <= 0.5 / 250
    assert np.all(np.isfinite(w.data))
    # the event is after the 2 s pre-trigger: its quiet start is much smaller than the event
    z = np.abs(w.data[0])
    assert z[:400].max() < 0.2 * z[500:].max()
    for tr, d in zip(st, before):  # input untouched
        assert np.array_equal(tr.data, d)


def test_deterministic_bytes():
    a = preprocess_stream(rjob(), RJOB_ONSET, WindowSpec())
    b = preprocess_stream(rjob(), RJOB_ONSET, WindowSpec())
    assert a.data.tobytes() == b.data.tobytes()
    st, onset = loc_rjob()
    c = preprocess_stream(st, onset, WindowSpec())
    d = preprocess_stream(st.copy(), onset, WindowSpec())
    assert c.data.tobytes() == d.data.tobytes()
    assert normalize(c.data)[0].tobytes() == normalize(d.data)[0].tobytes()


def test_loc_rjob_200hz_onset_after_pre_trigger():
    st, onset = loc_rjob()
    w = preprocess_stream(st, onset, WindowSpec())
    assert w.present == (True, True, True) and w.coverage == 1.0
    env = np.abs(w.data).max(axis=0)
    first_big = int(np.argmax(env > 0.1 * env.max()))
    assert 500 <= first_big < 600  # P at 2.0 s (sample 500) into the window


def test_sensitivity_scalar_and_mapping():
    counts = preprocess_stream(rjob(), RJOB_ONSET)
    sens = 2.5168e9
    w = preprocess_stream(rjob(), RJOB_ONSET, sensitivity=sens)
    assert w.units == "m/s"
    np.testing.assert_allclose(w.data.astype(np.float64) * sens, counts.data, rtol=1e-5, atol=1e-3)
    per = {"BW.RJOB..EHZ": 1.0, "EHN": 2.0, "E": 4.0}
    m = preprocess_stream(rjob(), RJOB_ONSET, sensitivity=per)
    np.testing.assert_allclose(m.data * np.array([[1.0], [2.0], [4.0]]), counts.data, rtol=1e-5, atol=1e-3)
    with pytest.raises(PreprocessError, match="no sensitivity given for BW.RJOB..EHE"):
        preprocess_stream(rjob(), RJOB_ONSET, sensitivity={"Z": 1.0, "N": 1.0})
    with pytest.raises(PreprocessError, match="sensitivity must be"):
        preprocess_stream(rjob(), RJOB_ONSET, sensitivity=0.0)


def test_z12_naming_equals_zne():
    st = rjob()
    st.select(channel="EHN")[0].stats.channel = "EH1"
    st.select(channel="EHE")[0].stats.channel = "EH2"
    w = preprocess_stream(st, RJOB_ONSET)
    ref = preprocess_stream(rjob(), RJOB_ONSET)
    assert w.present == (True, True, True)
    assert w.data.tobytes() == ref.data.tobytes()


def test_single_component_z():
    w = preprocess_stream(rjob().select(channel="EHZ"), RJOB_ONSET)
    assert w.present == (True, False, False)
    assert not w.data[1:].any()
    assert w.data[0].tobytes() == preprocess_stream(rjob(), RJOB_ONSET).data[0].tobytes()
    assert "N: missing, set to zero" in w.flags


# --------------------------------------------------------------------------- resampling


def _amplitude_at(x: np.ndarray, fs: float, f: float) -> float:
    """Least-squares amplitude of a sinusoid of frequency f (Hz) in x."""
    t = np.arange(x.size) / fs
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)
    return float(np.hypot(*coef))


@pytest.mark.parametrize("fs", [50.0, 100.0, 200.0, 250.0, 500.0, 1000.0])
def test_resampling_keeps_10hz_amplitude(fs):
    st = synthetic(fs, lambda t: 1000.0 * np.sin(2 * np.pi * 10.0 * t + 0.3))
    w = preprocess_stream(st, T0 + 20.0)
    assert w.present == (True, False, False)
    amp = _amplitude_at(w.data[0, 250:2750], 250.0, 10.0)
    assert amp == pytest.approx(1000.0, rel=0.01)


@pytest.mark.parametrize("fs", [100.0, 200.0, 250.0, 500.0])
def test_pulse_lands_on_the_same_sample(fs):
    t_pulse = 21.5  # s after T0; trigger at 20.0 -> pulse 3.5 s into the window
    pulse = lambda t: np.exp(-0.5 * ((t - t_pulse) / 0.03) ** 2) * np.cos(2 * np.pi * 15.0 * (t - t_pulse))
    w = preprocess_stream(synthetic(fs, pulse), T0 + 20.0)
    expected = (T0 + t_pulse - w.starttime) * 250.0
    assert abs(int(np.argmax(np.abs(w.data[0]))) - expected) <= 1.0


# --------------------------------------------------------------------------- gaps and coverage


def test_gap_is_zero_filled_and_recorded():
    st = rjob()
    z = st.select(channel="EHZ")[0]
    a, b = z.copy(), z.copy()
    a.trim(endtime=RJOB_ONSET + 3.0)
    b.trim(starttime=RJOB_ONSET + 4.0)
    st.remove(z)
    st += Stream([a, b])
    w = preprocess_stream(st, RJOB_ONSET)
    assert w.gap_fraction == pytest.approx(1.0 / 12.0, abs=0.01)
    assert w.coverage == pytest.approx(11.0 / 12.0, abs=0.01)
    assert np.all(np.isfinite(w.data))
    assert any("zero-filled gaps" in f for f in w.flags)


def test_window_beyond_file_end_is_padded():
    w = preprocess_stream(rjob(), UTCDateTime("2009-08-24T00:20:25"))
    assert w.coverage == pytest.approx(10.0 / 12.0, abs=0.005)
    assert w.data.shape == (3, 3000)


# --------------------------------------------------------------------------- failures


def test_missing_z_raises():
    with pytest.raises(PreprocessError, match="no Z component"):
        preprocess_stream(rjob().select(channel="EHN"), RJOB_ONSET)


def test_nan_raises_for_any_component():
    for ch in ("EHZ", "EHE"):
        st = rjob()
        st.select(channel=ch)[0].data[800] = np.nan
        with pytest.raises(PreprocessError, match=f"BW.RJOB..{ch}: data contain NaN or inf"):
            preprocess_stream(st, RJOB_ONSET)


def test_constant_z_raises_constant_horizontal_is_absent():
    st = rjob()
    st.select(channel="EHZ")[0].data[:] = 7.0
    with pytest.raises(PreprocessError, match="BW.RJOB..EHZ: constant trace"):
        preprocess_stream(st, RJOB_ONSET)
    st = rjob()
    st.select(channel="EHN")[0].data[:] = 7.0
    w = preprocess_stream(st, RJOB_ONSET)
    assert w.present == (True, False, True)
    assert not w.data[1].any()
    assert any(f.startswith("N: BW.RJOB..EHN: constant trace") for f in w.flags)


def test_empty_and_out_of_window_z_raise():
    st = rjob()
    st.select(channel="EHZ")[0].data = np.array([], dtype=np.float64)
    with pytest.raises(PreprocessError, match="BW.RJOB..EHZ: empty trace"):
        preprocess_stream(st, RJOB_ONSET)
    with pytest.raises(PreprocessError, match="no samples inside the (cut|window)"):
        preprocess_stream(rjob(), RJOB_ONSET + 3600)


def test_several_stations_or_channels_raise():
    st = rjob()
    other = st.copy()
    for tr in other:
        tr.stats.station = "OTHER"
    with pytest.raises(PreprocessError, match="several stations"):
        preprocess_stream(st + other, RJOB_ONSET)
    st = rjob()
    hh = st.select(channel="EHZ")[0].copy()
    hh.stats.channel = "HHZ"
    with pytest.raises(PreprocessError, match="ambiguous Z component: channels EHZ, HHZ"):
        preprocess_stream(st + hh, RJOB_ONSET)


# --------------------------------------------------------------------------- normalize


def test_normalize():
    w = preprocess_stream(rjob(), RJOB_ONSET)
    x, log_peak = normalize(w.data)
    assert x.dtype == np.float32 and x.shape == w.data.shape
    assert float(np.abs(x).max()) == pytest.approx(1.0)
    assert log_peak == pytest.approx(np.log10(np.abs(w.data).max()))
    with pytest.raises(PreprocessError, match="peak 0"):
        normalize(np.zeros((3, 10), dtype=np.float32))
