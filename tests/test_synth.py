"""Synthetic benchmark (``trainer.synth``, ``microseis synth``) and ``edge.signal.magnitude``.

The physics checks measure the *written files* the way a seismologist would: read the
MiniSEED counts, remove the response with ``stations.xml``, then look at spectra, envelopes,
picks and Wood-Anderson amplitudes.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

obspy = pytest.importorskip("obspy")
from obspy import UTCDateTime, read, read_inventory  # noqa: E402
from scipy.signal import butter, sosfiltfilt  # noqa: E402
from scipy.signal.windows import tukey  # noqa: E402

from edge.signal.magnitude import (  # noqa: E402
    WOOD_ANDERSON_PAZ,
    hypocentral_distance_km,
    ml_hutton_boore,
    s_minus_p_s,
    station_magnitude,
    wood_anderson_peak_mm,
)
from trainer.synth import BOSSEA_COUNTS, CLASSES, SynthConfig, class_counts, event_plan, generate_dataset  # noqa: E402
from trainer.synth.response import apply_response  # noqa: E402

FS = 250.0


# ------------------------------------------------------------------------------ helpers
def _rows(root: Path, name: str = "labels.csv") -> list[dict[str, str]]:
    with open(root / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _truth(root: Path) -> dict[str, dict[str, str]]:
    return {r["path"]: r for r in _rows(root, "truth.csv")}


def _zne(st) -> list:
    return [next(tr for tr in st if tr.stats.channel[-1] == c) for c in "ZNE"]


def _velocity(root: Path, path: str, inv, trigger: str) -> tuple[np.ndarray, int, float]:
    """Ground velocity (3, n) rows Z, N, E, band 3 Hz - 0.45 fs; onset index; noise rms."""
    st = read(str(root / path))
    st.detrend("linear")
    fs = st[0].stats.sampling_rate
    st.remove_response(inventory=inv, output="VEL", pre_filt=(0.2, 0.5, 0.45 * fs, 0.49 * fs))
    x = np.vstack([tr.data for tr in _zne(st)])
    x = sosfiltfilt(butter(4, [3.0, 0.45 * fs], "bandpass", fs=fs, output="sos"), x, axis=1)
    i0 = int(round((UTCDateTime(trigger) - st[0].stats.starttime) * fs))
    noise = x[:, int(2 * fs): i0 - int(fs)]
    return x, i0, float(np.sqrt(np.mean(noise**2)))


def _moving_rms(x: np.ndarray, w: int) -> np.ndarray:
    e = np.sum(x**2, axis=0) / x.shape[0]
    return np.sqrt(np.convolve(e, np.ones(w) / w, "same"))


def _duration_above(x: np.ndarray, i0: int, fs: float, win_s: float, thr: float, end: int | None = None) -> float:
    env = _moving_rms(x, max(1, int(win_s * fs)))
    a = i0 - int(fs)
    idx = np.where(env[a:end] > thr)[0]
    return float(idx[-1] - idx[0]) / fs if idx.size else 0.0


def _dominant_freq(x: np.ndarray, i0: int, fs: float) -> float:
    seg = x[:, i0 - int(0.25 * fs): i0 + int(0.75 * fs)]
    n = 2048
    p = np.sum(np.abs(np.fft.rfft(seg * tukey(seg.shape[1], 0.1), n=n, axis=1)) ** 2, axis=0)
    return float(np.fft.rfftfreq(n, 1 / fs)[int(np.argmax(p))])


def _aic(x: np.ndarray) -> np.ndarray:
    n = x.size
    k = np.arange(1, n - 1)
    c1, s1 = np.cumsum(x**2), np.cumsum(x)
    v1 = c1[k - 1] / k - (s1[k - 1] / k) ** 2
    v2 = (c1[-1] - c1[k - 1]) / (n - k) - ((s1[-1] - s1[k - 1]) / (n - k)) ** 2
    return k * np.log(np.maximum(v1, 1e-300)) + (n - k - 1) * np.log(np.maximum(v2, 1e-300))


def _pick_s(x: np.ndarray, i0: int, fs: float) -> float:
    """S-P (s): AIC pick on the 1-20 Hz horizontals between P + 0.1 s and their energy peak."""
    y = sosfiltfilt(butter(4, [1.0, 20.0], "bandpass", fs=fs, output="sos"), x, axis=1)
    h = np.convolve(y[1] ** 2 + y[2] ** 2, np.ones(int(0.2 * fs)) / int(0.2 * fs), "same")
    a = i0 + int(0.1 * fs)
    imax = a + int(np.argmax(h[a + int(0.1 * fs):])) + int(0.1 * fs)
    aic = _aic(y[1][a:imax + 1]) + _aic(y[2][a:imax + 1])
    return (a + 1 + int(np.argmin(aic)) - i0) / fs


def _synth_cli(argv: list[str]) -> int:
    from trainer.cli.synth import register

    p = argparse.ArgumentParser(prog="microseis")
    sub = p.add_subparsers(dest="command")
    register(sub)
    args = p.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """40 events, 10 per class, SNR 20-30 dB (physics is measured on clear events)."""
    root = tmp_path_factory.mktemp("synth") / "bench"
    generate_dataset(SynthConfig(n_events=40, seed=11, balance="equal", snr_db=(20.0, 30.0)), root)
    return root


@pytest.fixture(scope="module")
def inv(bench):
    return read_inventory(str(bench / "stations.xml"))


def _of(bench: Path, label: str) -> list[dict[str, str]]:
    return [r for r in _rows(bench) if r["label"] == label]


# ------------------------------------------------------------------------------ folder format
def test_folder_obeys_dataset_spec(bench, inv):
    text = (bench / "labels.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "path,label,magnitude,trigger_time,station"
    rows = _rows(bench)
    assert len(rows) == 40
    ids = {f"{n.code}.{s.code}" for n in inv for s in n}
    for r in rows:
        assert r["label"] in CLASSES
        assert r["station"] in ids
        assert r["trigger_time"].endswith("Z")
        st = read(str(bench / r["path"]))
        assert len(st) == 3
        assert sorted(tr.stats.channel[-1] for tr in st) == ["E", "N", "Z"]
        assert {tr.stats.station for tr in st} == {r["station"].split(".")[1]}
        for tr in st:
            assert tr.stats.sampling_rate == FS
            assert tr.data.dtype == np.int32
            assert np.abs(tr.data).max() < 2**23
            assert 30.0 - 1e-6 <= tr.stats.npts / FS <= 80.0
            pre = UTCDateTime(r["trigger_time"]) - tr.stats.starttime
            assert pre >= 12.0 - 1e-6, "at least 12 s of pre-event noise for a 10 s LTA"
            assert pre < tr.stats.npts / FS
        if r["label"] == "earthquake":
            assert 0.0 <= float(r["magnitude"]) <= 3.0
        else:
            assert r["magnitude"] == ""
    meta = json.loads((bench / "synth.json").read_text())
    assert meta["synthetic"] is True and meta["seed"] == 11
    assert meta["counts"] == {c: 10 for c in CLASSES}
    assert meta["config"]["snr_db"] == [20.0, 30.0]
    assert set(_truth(bench)) == {r["path"] for r in rows}


def test_stationxml_sensitivity_and_response(inv, bench):
    r0 = _rows(bench)[0]
    t = UTCDateTime(r0["trigger_time"])
    for net in inv:
        for sta in net:
            for ch in sta:
                resp = inv.get_response(f"{net.code}.{sta.code}.{ch.location_code}.{ch.code}", t)
                sens = resp.instrument_sensitivity
                assert sens.input_units == "M/S" and sens.output_units == "COUNTS"
                assert sens.frequency == 10.0
                full = abs(resp.get_evalresp_response_for_frequencies([10.0], output="VEL")[0])
                assert full == pytest.approx(sens.value, rel=1e-6)
                # 28.8 V/(m/s) geophone x preamp x 2**23 counts / 10 V; 4.5 Hz corner
                gain = resp.response_stages[1].stage_gain
                assert sens.value == pytest.approx(28.8 * 0.98394 * gain * 2**23 / 10, rel=1e-3)
                assert 4e5 <= resp.response_stages[2].stage_gain <= 1e6
                at45 = abs(resp.get_evalresp_response_for_frequencies([4.5], output="VEL")[0])
                assert at45 / sens.value == pytest.approx(0.5 / 0.7 * 1.0164, rel=0.02)  # 1/(2h)


def test_remove_response_round_trips_ground_velocity(inv):
    from obspy import Trace

    rng = np.random.default_rng(0)
    lead, n = int(5 * FS), int(60 * FS)
    v = sosfiltfilt(butter(4, [1, 100], "bandpass", fs=FS, output="sos"), rng.standard_normal(lead + n)) * 2e-7
    t0 = UTCDateTime("2025-03-01T00:00:00Z")
    for sta, gain in (("S1", 32.0), ("S2", 16.0)):
        counts = np.rint(apply_response(v, gain, FS)[lead:]).astype(np.int32)
        tr = Trace(counts, header={"network": "XX", "station": sta, "location": "00",
                                   "channel": "DPN", "sampling_rate": FS, "starttime": t0})
        tr.remove_response(inventory=inv, output="VEL")
        sos = butter(4, [3, 80], "bandpass", fs=FS, output="sos")
        got = sosfiltfilt(sos, tr.data)[2500:-2500]
        want = sosfiltfilt(sos, v[lead:])[2500:-2500]
        assert np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want**2)) < 0.02


# ------------------------------------------------------------------------------ reproducibility
def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    cfg = SynthConfig(n_events=12, seed=7)
    generate_dataset(cfg, tmp_path / "a")
    generate_dataset(cfg, tmp_path / "b", jobs=2)  # parallel generation gives the same bytes
    generate_dataset(SynthConfig(n_events=12, seed=8), tmp_path / "c")
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert a == b
    assert a["labels.csv"] != c["labels.csv"]
    wf = sorted(k for k in a if k.endswith(".mseed"))
    assert len(wf) == 12
    assert all(a[k] != c.get(k) for k in wf)


# ------------------------------------------------------------------------------ class physics
def test_fracture_is_short_and_above_50_hz(bench, inv):
    rows = _of(bench, "fracture")
    ok = 0
    for r in rows:
        x, i0, nrms = _velocity(bench, r["path"], inv, r["trigger_time"])
        fd = _dominant_freq(x, i0, FS)
        dur = _duration_above(x, i0, FS, 0.05, 4 * nrms, i0 + int(4 * FS))
        ok += fd > 50.0 and 0.0 < dur < 1.0
    assert ok >= 0.9 * len(rows)


def test_rockfall_is_long_and_in_10_60_hz(bench, inv):
    truth = _truth(bench)
    rows = _of(bench, "rockfall")
    ok = 0
    for r in rows:
        x, i0, nrms = _velocity(bench, r["path"], inv, r["trigger_time"])
        dur = _duration_above(x, i0, FS, 0.5, 2 * nrms)
        seg = x[:, i0: i0 + int(float(truth[r["path"]]["duration_s"]) * FS)]
        p = np.sum(np.abs(np.fft.rfft(seg, axis=1)) ** 2, axis=0)
        f = np.fft.rfftfreq(seg.shape[1], 1 / FS)
        band = p[(f >= 10) & (f <= 60)].sum() / p.sum()
        ok += dur >= 5.0 and band >= 0.7
    assert ok >= 0.9 * len(rows)


def test_earthquake_s_minus_p_matches_distance(bench, inv):
    truth = _truth(bench)
    rows = _of(bench, "earthquake")
    ok = 0
    for r in rows:
        r_km = float(truth[r["path"]]["distance_km"])
        expected = r_km * (1 / 3.5 - 1 / 6.0)
        assert float(truth[r["path"]]["s_minus_p_s"]) == pytest.approx(expected, abs=1e-3)
        x, i0, _ = _velocity(bench, r["path"], inv, r["trigger_time"])
        ok += abs(_pick_s(x, i0, FS) - expected) <= 0.25 + 0.03 * expected
    assert ok >= 0.9 * len(rows)


def test_ml_from_counts_matches_label(bench, inv):
    truth = _truth(bench)
    rows = _of(bench, "earthquake")
    errs = []
    for r in rows:
        st = read(str(bench / r["path"]))
        ml = station_magnitude(st, inv, float(truth[r["path"]]["distance_km"]))
        errs.append(ml - float(r["magnitude"]))
    errs = np.abs(np.array(errs))
    assert np.mean(errs <= 0.1) >= 0.9, errs


def test_season_shift_moves_fracture_frequency(tmp_path):
    freqs = {}
    for shift in (0.0, -20.0):
        root = tmp_path / f"s{shift:g}"
        generate_dataset(SynthConfig(n_events=12, seed=3, balance={"fracture": 1}, snr_db=(25.0, 30.0),
                                     season_shift_hz=shift), root)
        inv = read_inventory(str(root / "stations.xml"))
        freqs[shift] = np.array([
            _dominant_freq(*_velocity(root, r["path"], inv, r["trigger_time"])[:2], FS) for r in _rows(root)
        ])
        assert {r["label"] for r in _rows(root)} == {"fracture"}
    d = float(np.median(freqs[-20.0] - freqs[0.0]))
    assert -26.0 <= d <= -14.0


# ------------------------------------------------------------------------------ balance
def test_class_balance():
    assert class_counts(355, {k: float(v) for k, v in BOSSEA_COUNTS.items()}) == BOSSEA_COUNTS
    assert SynthConfig(n_events=40).class_counts() == {"fracture": 29, "rockfall": 2, "earthquake": 4, "noise": 5}
    assert SynthConfig(n_events=40, balance="equal").class_counts() == {c: 10 for c in CLASSES}
    small = SynthConfig(n_events=6).class_counts()
    assert sum(small.values()) == 6 and min(small.values()) >= 1
    n = 2000
    c = SynthConfig(n_events=n).class_counts()
    for k, v in BOSSEA_COUNTS.items():
        assert abs(c[k] / n - v / 355) < 1e-3
    plan = event_plan(SynthConfig(n_events=40, seed=2))
    assert {k: plan.count(k) for k in CLASSES} == SynthConfig(n_events=40).class_counts()
    assert plan != sorted(plan)  # shuffled
    with pytest.raises(ValueError):
        SynthConfig(balance="nope").validate()


# ------------------------------------------------------------------------------ CLI
def test_cli_refuses_non_empty_dir_and_prints_json(tmp_path, capsys):
    from edge.cli import CommandError

    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(CommandError, match="not empty"):
        _synth_cli(["synth", "--out", str(out), "--events", "4"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert _synth_cli(["synth", "--out", str(out), "--events", "4", "--force", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["n_events"] == 4 and summary["synthetic"] is True
    assert sum(summary["counts"].values()) == 4
    assert (out / "keep.txt").exists() and len(_rows(out)) == 4
    with pytest.raises(CommandError):
        _synth_cli(["synth", "--out", str(tmp_path / "new"), "--snr-db", "30", "10"])


# ------------------------------------------------------------------------------ edge.signal.magnitude
def test_magnitude_formulas():
    from obspy.signal.invsim import WOODANDERSON

    assert ml_hutton_boore(1.0, 100.0) == pytest.approx(3.0)
    assert ml_hutton_boore(10.0, 17.0) == pytest.approx(1 + 3 + 1.110 * math.log10(0.17) + 0.00189 * (17 - 100))
    for a, b in zip(WOOD_ANDERSON_PAZ["poles"], WOODANDERSON["poles"]):
        assert abs(a - b) < 1e-3
    assert WOOD_ANDERSON_PAZ["sensitivity"] == 2080
    # A 5 Hz velocity sinusoid of 1e-6 m/s: WA amplitude = 2080 * |H| * v / omega.
    f, v0 = 5.0, 1e-6
    t = np.arange(int(40 * FS)) / FS
    w0, h, s = 2 * math.pi / 0.8, 0.8, 2j * math.pi * f
    hfac = abs(s * s / (s * s + 2 * h * w0 * s + w0 * w0))
    expected_mm = 2080 * hfac * v0 / (2 * math.pi * f) * 1000
    assert wood_anderson_peak_mm(v0 * np.sin(2 * math.pi * f * t), FS) == pytest.approx(expected_mm, rel=0.01)
    assert hypocentral_distance_km(s_minus_p_s(42.0)) == pytest.approx(42.0)
    with pytest.raises(ValueError):
        wood_anderson_peak_mm(np.zeros(100))  # no sampling rate for a plain array
