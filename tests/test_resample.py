"""Streaming polyphase resampler (edge.signal.resample): scipy's filter, chunk-invariant bytes."""
from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime
from scipy.signal import firwin, resample_poly

from edge.signal.preprocess import PreprocessError, preprocess_stream
from edge.signal.resample import (
    MAX_RESAMPLE_FACTOR,
    StreamResampler,
    fir_taps,
    resample_array,
    resample_factors,
    resample_trace,
)

REPO = Path(__file__).resolve().parents[1]
FIELD_RATES = [50.0, 100.0, 200.0, 500.0, 1000.0]
T0 = UTCDateTime(2024, 5, 1, 12, 0, 0)


def noise(n: int, seed: int = 0) -> np.ndarray:
    """Brown-ish noise plus an offset: broadband, like raw counts."""
    rng = np.random.default_rng(seed)
    return 3000.0 + np.cumsum(rng.standard_normal(n)) * 50.0 + rng.standard_normal(n) * 200.0


def chunked(rs: StreamResampler, x: np.ndarray, sizes) -> np.ndarray:
    """Feed ``x`` in chunks of the given sizes (cycled), then flush."""
    out, i, k = [], 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        out.append(rs.process(x[i : i + n]))
        i += n
        k += 1
    out.append(rs.flush())
    return np.concatenate(out)


# --------------------------------------------------------------------------- the filter


@pytest.mark.parametrize("up,down", [(5, 1), (5, 2), (5, 4), (1, 2), (1, 4), (1, 40), (250, 333), (7, 3)])
def test_taps_equal_scipy_firwin(up, down):
    max_rate = max(up, down)
    ref = up * firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    h = fir_taps(up, down)
    assert h.dtype == np.float64 and h.shape == ref.shape
    np.testing.assert_array_equal(h, ref)


@pytest.mark.parametrize("fs", [50.0, 100.0, 200.0, 500.0, 1000.0])
def test_resampler_uses_those_taps(fs):
    rs = StreamResampler(fs, 250.0)
    assert np.array_equal(rs.taps, fir_taps(rs.up, rs.down))
    assert rs.half_len == 10 * max(rs.up, rs.down)


def test_factors_for_field_rates():
    assert [resample_factors(fs, 250.0) for fs in FIELD_RATES + [250.0]] == [
        (5, 1), (5, 2), (5, 4), (1, 2), (1, 4), (1, 1)]
    assert resample_factors(10_000.0, 250.0) == (1, 40)
    assert MAX_RESAMPLE_FACTOR == 1000


@pytest.mark.parametrize("rate", [0, 0.0, -50.0, float("nan"), float("inf"), 333.3333, 250.0013, 1e-4])
def test_bad_rates_name_the_rate(rate):
    with pytest.raises(ValueError) as exc:
        StreamResampler(rate, 250.0)
    msg = str(exc.value)
    assert msg.startswith("input sampling rate") and (str(rate) in msg or f"{rate:g}" in msg), msg
    if rate == 333.3333:
        assert "333.3333 Hz cannot be resampled to 250 Hz" in msg and "exceed 1000" in msg


@pytest.mark.parametrize("rate", ["250", True, None])
def test_non_numeric_rates_are_refused(rate):
    with pytest.raises(ValueError, match="must be a number of Hz"):
        StreamResampler(rate, 250.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output sampling rate"):
        StreamResampler(250.0, rate)  # type: ignore[arg-type]


def test_resample_trace_bad_rate_names_trace_and_rate():
    tr = Trace(noise(100), header=dict(network="XX", station="S", channel="HHZ", sampling_rate=333.3333))
    with pytest.raises(ValueError,
                       match=r"XX\.S\.\.HHZ: input sampling rate 333\.3333 Hz cannot be resampled to 250 Hz"):
        resample_trace(tr, 250.0)
    with pytest.raises(ValueError, match=r"XX\.S\.\.HHZ: output sampling rate must be a finite rate"):
        resample_trace(tr, float("nan"))


def test_preprocess_refuses_unsupported_rate_naming_channel():
    st = Stream([Trace(noise(40_000), header=dict(network="XX", station="S", channel="HHZ",
                                                  sampling_rate=333.3333, starttime=T0))])
    with pytest.raises(PreprocessError, match=r"XX\.S\.\.HHZ: input sampling rate 333\.3333 Hz cannot be"):
        preprocess_stream(st, T0 + 30.0)


# --------------------------------------------------------------------------- equal to resample_poly


@pytest.mark.parametrize("fs", FIELD_RATES + [10_000.0])
def test_whole_trace_equals_resample_poly(fs):
    x = noise(int(fs * 8) + 3, seed=int(fs))
    rs = StreamResampler(fs, 250.0)
    y = resample_array(x, fs, 250.0)
    ref = resample_poly(x, rs.up, rs.down)
    assert y.dtype == np.float64 and y.shape == ref.shape == (math.ceil(x.size * rs.up / rs.down),)
    edge = 2 * rs.half_len // rs.down + 2  # outputs whose filter reaches past the ends
    np.testing.assert_allclose(y[edge:-edge], ref[edge:-edge], rtol=1e-9, atol=0)
    # the ends too (resample_poly pads with zeros, so does flush)
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-12 * np.abs(x).max())


def test_float32_and_int_input_match_float64():
    x = np.round(noise(4000)).astype(np.int32)
    a = resample_array(x, 1000.0, 250.0)
    b = resample_array(x.astype(np.float64), 1000.0, 250.0)
    assert a.tobytes() == b.tobytes()
    c = resample_array(x.astype(np.float32), 1000.0, 250.0)
    assert c.tobytes() == b.tobytes()  # these integers are exact in float32


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("fs", FIELD_RATES + [250.0, 10_000.0])
def test_any_chunking_is_bit_identical(fs):
    x = noise(int(fs * 3) + 11, seed=1)
    whole = resample_array(x, fs, 250.0)
    for sizes in ([1], [7], [100], [x.size], [x.size - 1], [3, 0, 1000, 1, 250, 13]):
        got = chunked(StreamResampler(fs, 250.0), x, sizes)
        assert got.tobytes() == whole.tobytes(), sizes


def test_random_chunking_long_trace_bit_identical():
    """Chunks from 1 sample to a few seconds mix both compute paths (small-chunk 2-D product
    and the per-tap loop) within one stream."""
    rng = np.random.default_rng(5)
    x = noise(200_000, seed=2)
    whole = resample_array(x, 1000.0, 250.0)
    sizes = list(rng.integers(1, 5000, size=200)) + [1, 1, 2, 3]
    assert chunked(StreamResampler(1000.0, 250.0), x, sizes).tobytes() == whole.tobytes()
    x = noise(30_000, seed=3)
    whole = resample_array(x, 100.0, 250.0)
    sizes = list(rng.integers(1, 800, size=100))
    assert chunked(StreamResampler(100.0, 250.0), x, sizes).tobytes() == whole.tobytes()


def test_outputs_are_emitted_as_soon_as_their_inputs_are_in():
    """Fed one sample at a time, output m appears once input (m*down + half_len) // up has
    arrived: its latency is the filter's group delay (rs.delay)."""
    for fs, expected_delay in [(1000.0, 0.040), (500.0, 0.040), (200.0, 0.050), (100.0, 0.100), (50.0, 0.200)]:
        rs = StreamResampler(fs, 250.0)
        assert rs.delay == pytest.approx(expected_delay)
        x = noise(int(fs) * 2)
        for i in range(x.size):
            y = rs.process(x[i : i + 1])
            # every output now out needs inputs <= i; the next one needs input i + 1 or later
            assert rs.n_out == 0 or (rs.n_out - 1) * rs.down + rs.half_len < (i + 1) * rs.up
            assert rs.n_out * rs.down + rs.half_len >= (i + 1) * rs.up
            assert y.size <= -(-rs.up // rs.down)
        # latency in seconds: the last output's time vs the last input's time
        lag = (rs.n_in - 1) / fs - (rs.n_out - 1) / 250.0
        assert expected_delay - 1 / fs - 1e-9 <= lag <= expected_delay + 1 / 250.0 + 1e-9
        assert rs.n_out + rs.flush().size == math.ceil(x.size * rs.up / rs.down)


# --------------------------------------------------------------------------- identity


def test_equal_rates_pass_samples_through_as_copies():
    x = noise(1234)
    rs = StreamResampler(250.0, 250.0)
    assert (rs.up, rs.down, rs.delay) == (1, 1, 0.0)
    y = rs.process(x)
    assert y.tobytes() == x.tobytes() and y is not x
    y[0] = -1.0
    assert x[0] != -1.0
    assert rs.flush().size == 0 and rs.n_out == 0  # flush resets
    ints = np.arange(10, dtype=np.int16)
    assert np.array_equal(resample_array(ints, 250.0, 250.0), ints)
    assert resample_array(ints, 250, 250).dtype == np.float64
    tr = Trace(x.copy(), header=dict(sampling_rate=250.0, starttime=T0))
    out = resample_trace(tr, 250.0)
    assert out.data.tobytes() == x.tobytes() and out.stats.starttime == T0
    # 250.0004 Hz is 250 Hz to 1 mHz: also a pass-through
    assert StreamResampler(250.0004, 250.0).up == 1


# --------------------------------------------------------------------------- timing


@pytest.mark.parametrize("fs", FIELD_RATES)
def test_first_output_sample_has_the_first_input_time(fs):
    """A Gaussian pulse lands on the output sample of its own time; starttime is kept."""
    t_pulse = 3.4567
    n = int(fs * 8)
    t = np.arange(n) / fs
    x = np.exp(-0.5 * ((t - t_pulse) / 0.05) ** 2)
    tr = Trace(x, header=dict(network="XX", station="S", channel="HHZ", sampling_rate=fs, starttime=T0))
    out = resample_trace(tr, 250.0)
    assert out.stats.starttime == T0 and out.stats.sampling_rate == 250.0
    assert out.stats.npts == math.ceil(n * 250.0 / fs)
    assert tr.stats.sampling_rate == fs and tr.data is not out.data  # input untouched
    # the resampled pulse, sampled at T0 + m / 250, matches the analytic pulse there
    tm = np.arange(out.stats.npts) / 250.0
    inner = (tm > 1.0) & (tm < 7.0)
    expected = np.exp(-0.5 * ((tm - t_pulse) / 0.05) ** 2)
    assert np.abs(out.data[inner] - expected[inner]).max() < 2e-3
    peak = int(np.argmax(out.data))
    assert abs(peak - t_pulse * 250.0) <= 0.5


def test_upsampling_50_to_250_reconstructs_a_sine():
    fs, f = 50.0, 7.0
    t = np.arange(int(fs * 20)) / fs
    x = np.sin(2 * np.pi * f * t + 0.4)
    y = chunked(StreamResampler(fs, 250.0), x, [13])
    tm = np.arange(y.size) / 250.0
    inner = (tm > 2.0) & (tm < 18.0)
    err = np.abs(y[inner] - np.sin(2 * np.pi * f * tm[inner] + 0.4)).max()
    assert err < 5e-3
    # original samples are kept (to the filter's pass-band ripple) on every fifth output
    assert np.abs(y[::5][int(2 * fs) : int(18 * fs)] - x[int(2 * fs) : int(18 * fs)]).max() < 5e-3


def test_anti_alias_attenuates_above_the_new_nyquist():
    fs = 1000.0
    t = np.arange(int(fs * 10)) / fs
    low = np.sin(2 * np.pi * 10.0 * t)
    high = np.sin(2 * np.pi * 200.0 * t)  # would alias to 50 Hz at 250 Hz
    ylow = resample_array(low, fs, 250.0)[250:-250]
    yhigh = resample_array(high, fs, 250.0)[250:-250]
    assert np.abs(ylow).max() == pytest.approx(1.0, abs=2e-3)
    assert np.abs(yhigh).max() < 2e-3


# --------------------------------------------------------------------------- gaps and reset


def test_reset_starts_a_new_segment():
    a, b = noise(3000, seed=1), noise(2000, seed=2)
    rs = StreamResampler(1000.0, 250.0)
    rs.process(a[:1500])
    rs.reset()
    assert (rs.n_in, rs.n_out) == (0, 0)
    got = chunked(rs, b, [77])
    assert got.tobytes() == resample_array(b, 1000.0, 250.0).tobytes()


def test_flush_at_a_gap_gives_each_segment_as_a_whole_trace():
    a, b = noise(3001, seed=1), noise(2003, seed=2)
    for fs in (50.0, 1000.0):
        rs = StreamResampler(fs, 250.0)
        first = np.concatenate([rs.process(a[:1000]), rs.process(a[1000:]), rs.flush()])
        second = np.concatenate([rs.process(b), rs.flush()])
        assert first.tobytes() == resample_array(a, fs, 250.0).tobytes()
        assert second.tobytes() == resample_array(b, fs, 250.0).tobytes()
        assert rs.flush().size == 0  # nothing pending after a flush


def test_bad_input_shapes():
    rs = StreamResampler(1000.0, 250.0)
    with pytest.raises(ValueError, match="1-D"):
        rs.process(np.zeros((3, 10)))
    assert rs.process(np.zeros(0)).size == 0
    masked = Trace(np.ma.masked_array(noise(100), mask=[False] * 50 + [True] * 50),
                   header=dict(network="XX", station="S", channel="HHZ", sampling_rate=1000.0))
    with pytest.raises(ValueError, match=r"XX\.S\.\.HHZ: trace has masked samples"):
        resample_trace(masked, 250.0)


# --------------------------------------------------------------------------- preprocess uses it


def test_preprocess_window_from_any_rate_matches_native():
    """The same ground motion recorded at 1000 Hz and at 250 Hz gives nearly the same window,
    and a 50 Hz recording is accepted with a warning."""
    rng = np.random.default_rng(9)
    fs_hi = 1000.0
    t = np.arange(int(40 * fs_hi)) / fs_hi
    burst = np.exp(-0.5 * ((t - 21.0) / 0.4) ** 2)
    motion = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip((3.0, 8.0, 17.0), rng.uniform(0, 6, 3))) * burst

    def stream(fs: float) -> Stream:
        step = int(fs_hi / fs) if fs <= fs_hi else 1
        return Stream([Trace(motion[::step] * 1e4, header=dict(network="XX", station="S", channel="HHZ",
                                                              sampling_rate=fs, starttime=T0))])

    native = preprocess_stream(stream(250.0), T0 + 20.0)
    fast = preprocess_stream(stream(1000.0), T0 + 20.0)
    assert fast.starttime == native.starttime and fast.data.shape == native.data.shape
    peak = np.abs(native.data).max()
    assert np.abs(fast.data - native.data).max() < 0.01 * peak


def test_preprocess_low_rate_warns_once(caplog):
    from edge.signal import preprocess

    t = np.arange(40 * 50) / 50.0
    st = Stream([Trace(1e4 * np.sin(2 * np.pi * 5.0 * t),
                       header=dict(network="XX", station="LOW", channel=f"HH{c}", sampling_rate=50.0, starttime=T0))
                 for c in "ZNE"])
    preprocess._warned_upsampled.discard(("XX.LOW..HHZ", 50.0, 250.0))
    with caplog.at_level(logging.WARNING, logger="edge.signal.preprocess"):
        w1 = preprocess_stream(st, T0 + 20.0)
        w2 = preprocess_stream(st, T0 + 20.0)
    assert w1.data.tobytes() == w2.data.tobytes() and w1.present == (True, True, True)
    z_warnings = [r for r in caplog.records if r.getMessage().startswith("XX.LOW..HHZ: recorded at 50 Hz")]
    assert len(z_warnings) == 1 and "nothing above 25 Hz" in z_warnings[0].getMessage()


def test_components_at_different_rates_are_each_resampled():
    """Z at 250 Hz, N at 10 kHz, E at 100 Hz: each goes onto the model grid on its own, and
    each row equals the window of that component alone."""
    fs_by = {"Z": 250.0, "N": 10_000.0, "E": 100.0}
    traces = []
    for c, fs in fs_by.items():
        t = np.arange(int(30 * fs)) / fs
        x = 1e4 * np.sin(2 * np.pi * 4.0 * t) * np.exp(-0.5 * ((t - 16.0) / 1.0) ** 2)
        traces.append(Trace(x, header=dict(network="XX", station="MIX", channel=f"HH{c}", sampling_rate=fs,
                                           starttime=T0)))
    w = preprocess_stream(Stream(traces), T0 + 15.0)
    assert w.present == (True, True, True) and w.coverage == 1.0
    for row, tr in enumerate(traces):
        alone = tr.copy()
        alone.stats.channel = "HHZ"  # the same trace as the only (vertical) component
        assert preprocess_stream(Stream([alone]), T0 + 15.0).data[0].tobytes() == w.data[row].tobytes()


def test_station_side_module_imports_no_scipy():
    code = ("import sys, edge.signal.resample; "
            "bad = [m for m in sys.modules if m.startswith('scipy')]; assert not bad, bad[:5]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_real_recording_rjob_100hz():
    """ObsPy's RJOB example (100 Hz) through the stream in 0.1 s chunks equals the whole trace."""
    tr = obspy.read()[0]
    whole = resample_trace(tr, 250.0)
    rs = StreamResampler(tr.stats.sampling_rate, 250.0)
    got = chunked(rs, np.asarray(tr.data), [10])
    assert got.tobytes() == whole.data.tobytes()
    np.testing.assert_allclose(whole.data, resample_poly(tr.data.astype(np.float64), 5, 2),
                               rtol=1e-9, atol=1e-12 * np.abs(tr.data).max())
