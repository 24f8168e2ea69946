"""Bossea features and pre-training attributes (edge.signal.features)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import obspy
import pytest
from obspy import UTCDateTime
from obspy.signal.trigger import classic_sta_lta as obspy_classic_sta_lta

from edge.signal.features import ATTRIBUTES, BOSSEA_FEATURES, attributes, bossea_features, classic_sta_lta
from edge.signal.preprocess import WindowSpec, preprocess_stream

FS = 250.0
N = 3000
T = np.arange(N) / FS
B = {name: i for i, name in enumerate(BOSSEA_FEATURES)}
A = {name: i for i, name in enumerate(ATTRIBUTES)}


def rjob_window(channels: str = "EH?"):
    return preprocess_stream(obspy.read().select(channel=channels), UTCDateTime("2009-08-24T00:20:08"), WindowSpec())


def test_names_and_shapes():
    assert len(BOSSEA_FEATURES) == 8 and len(set(BOSSEA_FEATURES)) == 8
    assert len(set(ATTRIBUTES)) == len(ATTRIBUTES)
    w = rjob_window()
    b = bossea_features(w)
    assert b.shape == (8,) and b.dtype == np.float64 and np.all(np.isfinite(b))
    a = attributes(w)
    assert a.shape == (len(ATTRIBUTES),) and a.dtype == np.float32 and np.all(np.isfinite(a))
    # a Window and its Z row as a plain array give the same Bossea features
    np.testing.assert_array_equal(bossea_features(w.data[0], FS), b)
    np.testing.assert_array_equal(attributes(w.data, FS), a)


@pytest.mark.parametrize("f, band", [(12.0, 10.0), (10.0, 10.0), (37.5, 35.0), (3.0, 0.0)])
def test_sine_peak_frequency_and_dominant_band(f, band):
    x = np.sin(2 * np.pi * f * T)
    b = bossea_features(x, FS)
    assert b[B["peak_frequency_hz"]] == pytest.approx(f, abs=FS / N)
    assert b[B["dominant_band_hz"]] == band
    assert b[B["bandwidth_80_hz"]] <= 2 * FS / N
    a = attributes(x, FS)
    assert a[A["spectral_centroid_hz"]] == pytest.approx(f, rel=0.02)
    assert a[A["zero_crossing_rate_hz"]] == pytest.approx(2 * f, rel=0.02)


def test_two_tones_bandwidth():
    x = np.sin(2 * np.pi * 10.0 * T) + np.sin(2 * np.pi * 40.0 * T)
    bw = bossea_features(x, FS)[B["bandwidth_80_hz"]]
    assert bw == pytest.approx(30.0, abs=0.2)  # 10 % energy reached at 10 Hz, 90 % at 40 Hz


def test_durations_impulse_vs_emergent():
    rng = np.random.default_rng(0)
    carrier = np.sin(2 * np.pi * 25.0 * T)
    impulse = np.where(T >= 2.0, np.exp(-(T - 2.0) / 0.1), 0.0) * carrier
    ramp = np.clip((T - 2.0) / 4.0, 0.0, 1.0) * np.where(T < 10.0, 1.0, np.exp(-(T - 10.0) / 0.3))
    emergent = ramp * carrier
    noise = 1e-4 * rng.standard_normal(N)
    bi, be = bossea_features(impulse + noise, FS), bossea_features(emergent + noise, FS)
    assert bi[B["bracketed_duration_s"]] < 0.5 < 6.0 < be[B["bracketed_duration_s"]]
    for b in (bi, be):
        assert 0 < b[B["uniform_duration_s"]] <= b[B["bracketed_duration_s"]]
    assert bi[B["max_mean_ratio"]] > 5 * be[B["max_mean_ratio"]]
    assert bi[B["max_over_uniform_duration"]] > be[B["max_over_uniform_duration"]]


def test_bracketed_duration_exact():
    x = np.zeros(N)
    x[[100, 110, 350]] = [0.5, -1.0, 0.05]  # 0.05 == threshold counts as above
    b = bossea_features(x, FS)
    assert b[B["bracketed_duration_s"]] == pytest.approx(251 / FS)
    assert b[B["uniform_duration_s"]] == pytest.approx(3 / FS)
    assert b[B["max_over_uniform_duration"]] == pytest.approx(1.0 / (3 / FS))


def test_kurtosis_impulsive_vs_gaussian():
    rng = np.random.default_rng(1)
    gauss = rng.standard_normal(N)
    spiky = 0.01 * rng.standard_normal(N)
    spiky[[700, 1500, 2300]] = [5.0, -4.0, 6.0]
    kg = bossea_features(gauss, FS)[B["kurtosis"]]
    ks = bossea_features(spiky, FS)[B["kurtosis"]]
    assert abs(kg) < 0.3
    assert ks > 100 * max(abs(kg), 1.0)
    assert attributes(spiky, FS)[A["kurtosis"]] == pytest.approx(ks, rel=1e-5)


def test_all_zero_trace_rejected_by_bossea():
    with pytest.raises(ValueError, match="all zeros"):
        bossea_features(np.zeros(N), FS)


def test_sta_lta_matches_obspy():
    x = obspy.read()[0].data.astype(np.float64)
    np.testing.assert_allclose(classic_sta_lta(x, 20, 200), obspy_classic_sta_lta(x, 20, 200), rtol=1e-6, atol=1e-9)


def test_envelope_peak_and_decay():
    tau = 0.5
    x = np.where(T >= 5.0, np.exp(-(T - 5.0) / tau), 0.0) * np.sin(2 * np.pi * 30.0 * T)
    a = attributes(x, FS)
    assert a[A["envelope_peak_time_s"]] == pytest.approx(5.0, abs=0.1)
    assert a[A["envelope_decay_per_s"]] == pytest.approx(1 / tau, rel=0.2)
    assert a[A["sta_lta_max"]] > 5.0


def test_hf_lf_ratio_sign_and_h_over_v():
    hi = attributes(np.sin(2 * np.pi * 80.0 * T), FS)[A["log10_hf_lf_energy_ratio"]]
    lo = attributes(np.sin(2 * np.pi * 5.0 * T), FS)[A["log10_hf_lf_energy_ratio"]]
    assert hi > 3 and lo < -3
    z = np.sin(2 * np.pi * 10.0 * T)
    a = attributes(np.stack([z, 2 * z, 0.5 * z]), FS)
    assert a[A["rms_n_over_z"]] == pytest.approx(2.0, rel=1e-5)
    assert a[A["rms_e_over_z"]] == pytest.approx(0.5, rel=1e-5)
    assert a[A["log10_peak"]] == pytest.approx(np.log10(2 * np.abs(z).max()), rel=1e-5)


def test_attributes_finite_on_edge_cases():
    rng = np.random.default_rng(2)
    single = rjob_window("EHZ")
    a = attributes(single)
    assert np.all(np.isfinite(a))
    assert a[A["rms_n_over_z"]] == 0.0 and a[A["rms_e_over_z"]] == 0.0
    x = np.zeros((3, N))
    x[0, 1234] = 1e-30  # one tiny spike, horizontals zero
    cases = [x, rng.standard_normal((3, N)), np.stack([np.ones(N), np.zeros(N), np.zeros(N)]),
             1e12 * rng.standard_normal((3, N))]
    for data in cases:
        assert np.all(np.isfinite(attributes(data, FS)))


def test_edge_modules_import_without_torch_and_features_without_obspy():
    code = (
        "import sys, edge.signal.features\n"
        "assert 'obspy' not in sys.modules, 'features imported obspy'\n"
        "import edge.signal.preprocess, edge.signal.dataset, edge.signal.picking\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'trainer', 'export')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
