"""STEAD/INSTANCE-style HDF5 + CSV archives: selection, streams, labels, row errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from obspy import UTCDateTime

h5py = pytest.importorskip("h5py")

from edge.signal.features import attributes, bossea_features  # noqa: E402
from edge.signal.preprocess import WindowSpec, normalize, preprocess_stream  # noqa: E402
from trainer.stead import SteadError, SteadRowError, iter_stead, load_stead  # noqa: E402

FS = 100.0
N = 6000
START = "2015-10-21 06:38:04.820000"
COLUMNS = ["network_code", "receiver_code", "receiver_type", "p_arrival_sample", "s_arrival_sample",
           "source_magnitude", "source_magnitude_type", "source_distance_km", "trace_start_time",
           "trace_category", "trace_name"]


def _burst(rng, p, s, mag):
    """(6000, 3) counts, columns E, N, Z: background noise plus a P and a larger S wavetrain."""
    t = np.arange(N) / FS
    a = 100.0 * 10 ** mag
    out = rng.normal(0.0, 10.0, (N, 3))
    for onset, amp, f, decay in ((p, a, 8.0, 1.5), (s, 3 * a, 5.0, 0.8)):
        tt = np.clip(t - onset / FS, 0, None)
        w = amp * np.sin(2 * np.pi * f * tt) * np.exp(-decay * tt) * (t >= onset / FS)
        out += w[:, None] * np.array([0.7, 0.5, 1.0])[None, :]
    return out


# (trace name, category, magnitude, magnitude type, p, s, what goes into the HDF5)
ROWS = [
    ("EQ1_EV", "earthquake_local", 1.2, "ml", 800, 1100, "ok"),         # line 2
    ("EQ2_EV", "earthquake_local", 2.0, "ML", 900, 1400, "ok"),         # line 3
    ("NOISE1_NO", "noise", None, None, None, None, "noise"),            # line 4
    ("EQ_NAN_EV", "earthquake_local", 1.5, "ml", 700, 900, "nan"),      # line 5
    ("EQ3_EV", "earthquake_local", 0.8, "md", 1000, 1200, "ok"),        # line 6
    ("EQ_MISSING_EV", "earthquake_local", 1.0, "ml", 800, 1000, None),  # line 7
    ("EQ4_EV", "earthquake_local", 2.5, "ml", 600, 1300, "ok"),         # line 8
    ("EQ_NOP_EV", "earthquake_local", 1.1, "ml", None, 1000, "ok"),     # line 9
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("stead")
    rng = np.random.default_rng(5)
    h5_path, csv_path = d / "waveforms.hdf5", d / "metadata.csv"
    with h5py.File(h5_path, "w") as f:
        g = f.create_group("data")
        for name, cat, mag, _mtype, p, s, kind in ROWS:
            if kind is None:
                continue
            if kind == "noise":
                data = rng.normal(0.0, 10.0, (N, 3))
            else:
                data = _burst(rng, p or 800, s, mag)
            if kind == "nan":
                data[3000:3010, 2] = np.nan
            ds = g.create_dataset(name, data=data.astype(np.float32))
            ds.attrs["trace_category"] = cat
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for name, cat, mag, mtype, p, s, _ in ROWS:
            w.writerow(["XX", "ST01", "HH", "" if p is None else f"{p:.1f}", "" if s is None else f"{s:.1f}",
                        "" if mag is None else mag, mtype or "", "" if mag is None else 12.5, START, cat, name])
    return h5_path, csv_path


def test_iter_stead_builds_streams_and_reports_bad_rows(archive):
    h5_path, csv_path = archive
    errors: list = []
    items = list(iter_stead(h5_path, csv_path, errors=errors))
    assert [r.trace_name for r, _ in items] == ["EQ1_EV", "EQ2_EV", "EQ3_EV", "EQ4_EV"]
    row, st = items[0]
    assert row.line == 2 and row.magnitude == pytest.approx(1.2) and row.magnitude_type == "ml"
    assert sorted(tr.stats.channel for tr in st) == ["HHE", "HHN", "HHZ"]
    assert {tr.id for tr in st} == {"XX.ST01..HHE", "XX.ST01..HHN", "XX.ST01..HHZ"}
    z = st.select(channel="HHZ")[0]
    assert z.stats.sampling_rate == FS and z.stats.npts == N
    assert z.stats.starttime == UTCDateTime("2015-10-21T06:38:04.82")
    assert row.trigger_time == z.stats.starttime + 8.0
    with h5py.File(h5_path) as f:
        assert np.array_equal(z.data, f["data/EQ1_EV"][:, 2].astype(np.float64))
    by_line = {e.line: e for e in errors}
    assert sorted(by_line) == [5, 7, 9] and all(isinstance(e, SteadRowError) for e in errors)
    assert "NaN" in by_line[5].message and by_line[5].path == "EQ_NAN_EV"
    assert "not in waveforms.hdf5" in by_line[7].message
    assert "empty p_arrival_sample" in by_line[9].message
    assert str(by_line[7]).startswith("metadata.csv line 7 (EQ_MISSING_EV)")


def test_selection_by_magnitude_type_and_max_events(archive):
    h5_path, csv_path = archive
    ml = [r.trace_name for r, _ in iter_stead(h5_path, csv_path, magnitude_types=("ML",))]
    assert ml == ["EQ1_EV", "EQ2_EV", "EQ4_EV"]  # md row not selected, case-insensitive
    assert len(list(iter_stead(h5_path, csv_path, max_events=2))) == 2
    noise = list(iter_stead(h5_path, csv_path, categories=("noise",)))
    assert len(noise) == 1
    row, st = noise[0]
    start = st[0].stats.starttime
    assert row.magnitude is None
    assert start + 4.0 <= row.trigger_time <= start + 60.0 - 12.0  # the window fits the trace


def test_load_stead_labels_magnitudes_and_station_chain(archive):
    h5_path, csv_path = archive
    spec = WindowSpec()
    arrays, errors = load_stead(h5_path, csv_path, spec)
    assert arrays.paths == ["EQ1_EV", "EQ2_EV", "NOISE1_NO", "EQ3_EV", "EQ4_EV"]
    assert arrays.lines == [2, 3, 4, 6, 8]
    assert [arrays.classes[i] for i in arrays.y] == ["earthquake"] * 2 + ["noise"] + ["earthquake"] * 2
    np.testing.assert_allclose(arrays.magnitude[[0, 1, 3, 4]], [1.2, 2.0, 0.8, 2.5], rtol=1e-6)
    assert np.isnan(arrays.magnitude[2])
    assert arrays.units == "counts" and arrays.x.shape == (5, 3, spec.n_samples)
    assert arrays.features.shape == (5, 8) and arrays.attributes.shape == (5, 12)
    assert [e.line for e in errors] == [5, 7, 9]
    # bigger magnitude, bigger peak (same distance, same synthetic source)
    peaks = dict(zip(arrays.paths, arrays.log_peak))
    assert peaks["EQ3_EV"] < peaks["EQ1_EV"] < peaks["EQ2_EV"] < peaks["EQ4_EV"]
    # exactly the station's chain: preprocess -> normalize / attributes / Bossea features
    row, st = next(iter_stead(h5_path, csv_path))
    window = preprocess_stream(st, row.trigger_time, spec)
    x, log_peak = normalize(window.data)
    assert arrays.x[0].tobytes() == x.tobytes() and arrays.log_peak[0] == np.float32(log_peak)
    np.testing.assert_array_equal(arrays.features[0], bossea_features(window))
    np.testing.assert_array_equal(arrays.attributes[0], attributes(window))
    # a class list without noise turns noise rows into errors, not samples
    eq_only, errs = load_stead(h5_path, csv_path, spec, classes=("earthquake",))
    assert len(eq_only) == 4 and any(e.line == 4 and "not one of the classes" in e.message for e in errs)


def test_instance_style_columns_and_transposed_data(tmp_path):
    rng = np.random.default_rng(1)
    h5_path, csv_path = tmp_path / "instance.hdf5", tmp_path / "events.csv"
    with h5py.File(h5_path, "w") as f:
        f.create_group("data").create_dataset("IV.AAA.ev1", data=_burst(rng, 1000, 1300, 1.5).T)
    csv_path.write_text(
        "trace_name,station_network_code,station_code,station_channels,trace_P_arrival_sample,"
        "source_magnitude,source_magnitude_type,trace_start_time\n"
        "IV.AAA.ev1,IV,AAA,HN,1000,1.5,ML,2016-08-24T01:36:32.000000Z\n")
    with pytest.raises(SteadError, match="trace_category"):
        list(iter_stead(h5_path, csv_path))
    [(row, st)] = list(iter_stead(h5_path, csv_path, default_category="earthquake_local"))
    assert {tr.id for tr in st} == {"IV.AAA..HNE", "IV.AAA..HNN", "IV.AAA..HNZ"}
    assert row.trigger_time == UTCDateTime("2016-08-24T01:36:42")
    with pytest.raises(SteadError, match="no such file"):
        list(iter_stead(tmp_path / "none.hdf5", csv_path))
