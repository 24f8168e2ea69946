"""Site generator and continuous records (``trainer.synth.sites``, ``trainer.synth.continuous``,
``microseis synth-continuous``), checked on the written files: ObsPy reads the MiniSEED and
the StationXML, the response comes off, the catalogue fits the records, the station's own
ML code finds the catalogue magnitude, and the ``other`` split shares no held-out value with
``train``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

obspy = pytest.importorskip("obspy")
from obspy import Stream, Trace, UTCDateTime, read, read_inventory  # noqa: E402
from scipy.signal import welch  # noqa: E402

from edge.cli import main as microseis  # noqa: E402
from edge.signal.magnitude import station_magnitude  # noqa: E402
from trainer.synth.continuous import (  # noqa: E402
    CLASSES,
    EVENT_RANGES,
    GUARD_S,
    NoiseSource,
    SiteModel,
    draw_sites,
    make_quake,
    site_event,
)
from trainer.synth.earthquake import earthquake  # noqa: E402
from trainer.synth.generate import _energy_window  # noqa: E402
from trainer.synth.instruments import INSTRUMENTS  # noqa: E402
from trainer.synth.sites import RATES, SPLITS, Site, draw_site, site_inventory  # noqa: E402
from trainer.synth.sources import rockfall  # noqa: E402

START = "2025-01-01T00:00:00Z"
HOURS = "0.5"  # seed 1: a 500 Hz geophone site and a 250 Hz MEMS site, 23 events, 3 quakes


def _run(*argv: str) -> int:
    return microseis(["synth-continuous", *argv])


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cont") / "A"
    assert _run("--out", str(out), "--hours", HOURS, "--sites", "2", "--seed", "1") == 0
    return out


def _catalog(root: Path) -> list[dict[str, str]]:
    with open(root / "catalog.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _sites(root: Path) -> list[Site]:
    return [Site.from_dict(d) for d in json.loads((root / "sites.json").read_text())["sites"]]


def _record(root: Path, site: Site) -> Stream:
    st = read(str(root / site.station / "*.mseed"))
    st.merge(method=0)
    return st


# ------------------------------------------------------------------------------ files
def test_records_are_continuous_int32_at_the_site_rate(run_a):
    sites = _sites(run_a)
    assert [s.station for s in sites] == ["T001", "T002"]
    for site in sites:
        assert site.split == "train" and site.sampling_rate in RATES
        st = _record(run_a, site)
        assert sorted(tr.stats.channel for tr in st) == sorted(site.channel_codes())
        for tr in st:
            assert not np.ma.isMaskedArray(tr.data)  # one gap-free trace per channel
            assert tr.data.dtype == np.int32
            assert tr.stats.sampling_rate == site.sampling_rate
            assert tr.stats.starttime == UTCDateTime(START)
            assert tr.stats.npts == int(round(float(HOURS) * 3600 * site.sampling_rate))
            assert np.std(tr.data) > 1.0  # background noise, not a flat line


def test_stationxml_reads_and_the_response_comes_off(run_a):
    inv = read_inventory(str(run_a / "stations.xml"))
    for site in _sites(run_a):
        own = read_inventory(str(run_a / site.station / f"{site.net_sta}.xml"))
        st = _record(run_a, site)
        fs = site.sampling_rate
        for tr in st:
            resp = own.get_response(tr.id, tr.stats.starttime)
            f0 = site.inst.norm_freq_hz
            h = resp.get_evalresp_response_for_frequencies([f0], output="DEF")[0]
            assert abs(h) == pytest.approx(resp.instrument_sensitivity.value, rel=1e-3)
        # The first 28 s have no event (warm-up): the vertical's velocity PSD after
        # remove_response is the model's (ground noise + sensor/digitizer noise) within 3 dB.
        q = st.slice(st[0].stats.starttime, st[0].stats.starttime + 28).copy()
        q.detrend("linear")
        q.remove_response(inventory=inv, output="VEL", pre_filt=(0.3, 0.6, 0.42 * fs, 0.47 * fs),
                          water_level=None)
        z = q.select(component="Z")[0].data
        assert np.all(np.isfinite(z))
        f, p = welch(z, fs, nperseg=int(4 * fs))
        m = SiteModel(site)
        noise = NoiseSource(m, [0], UTCDateTime(START).timestamp)
        g = noise._diurnal(0)
        h2 = np.abs(m.response_spectrum(m.n_seg)) ** 2
        p_model = (m.p_low + g * g * m.p_high + m.p_white) / np.maximum(h2, 1e-300)
        band = (f >= 5.0) & (f <= 20.0)
        ratio_db = 10 * np.log10(np.mean(p[band]) / np.mean(np.interp(f[band], m.f, p_model)))
        assert abs(ratio_db) < 3.0, (site.station, ratio_db)


def test_catalog_rows_fit_the_records(run_a):
    rows = _catalog(run_a)
    header = (run_a / "catalog.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["time", "label", "magnitude", "duration_s"]
    assert len(rows) >= 10, "half an hour at two sites holds many events"
    assert {r["label"] for r in rows} == set(CLASSES)
    t0 = UTCDateTime(START)
    end = t0 + float(HOURS) * 3600
    vp, vs = EVENT_RANGES["vp_km_s"], EVENT_RANGES["vs_km_s"]
    by_site: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        assert r["label"] in CLASSES
        t = UTCDateTime(r["time"])
        assert r["time"].endswith("Z") and t0 + 30 <= t and t + float(r["duration_s"]) <= end
        by_site.setdefault(r["site"], []).append(r)
        if r["label"] == "earthquake":
            m, d = float(r["magnitude"]), float(r["distance_km"])
            assert -0.5 <= m <= 3.0 and 5.0 <= d <= 100.0
            assert float(r["sp_s"]) == pytest.approx(d * (1 / vs - 1 / vp), abs=1e-3)
        else:
            assert r["magnitude"] == "" and r["distance_km"] == ""
        if r["label"] == "rockfall":
            assert 4 <= int(r["n_impacts"]) <= 25 and 5.0 <= float(r["duration_s"]) <= 60.0
    sites = {s.net_sta: s for s in _sites(run_a)}
    for key, evs in by_site.items():
        times = [UTCDateTime(r["time"]) for r in evs]
        assert times == sorted(times)
        for a, b in zip(evs, evs[1:]):  # never overlapping
            assert UTCDateTime(b["time"]) - UTCDateTime(a["time"]) >= float(a["duration_s"]) + GUARD_S
        for r in evs:
            if r["label"] == "fracture":
                lo, hi = (float(x) for x in r["band_hz"].split("-"))
                assert (lo, hi) == sites[key].fracture_band_hz
                assert hi <= 0.4 * sites[key].sampling_rate and lo <= float(r["peak_freq_hz"]) <= hi


def test_station_ml_from_the_written_records(run_a):
    """Every catalogued quake with SNR >= 10 dB: the station's ML from the MiniSEED files and
    stations.xml, with the catalogue distance, is the catalogue ML within 0.3."""
    inv = read_inventory(str(run_a / "stations.xml"))
    records = {s.net_sta: _record(run_a, s) for s in _sites(run_a)}
    quakes = [r for r in _catalog(run_a) if r["label"] == "earthquake" and float(r["snr_db"]) >= 10]
    assert quakes
    for r in quakes:
        t = UTCDateTime(r["time"])
        win = records[r["site"]].slice(t - 10, t + float(r["duration_s"]) + 5)
        ml = station_magnitude(win, inv, float(r["distance_km"]))
        assert ml == pytest.approx(float(r["magnitude"]), abs=0.3), r


def test_same_seed_same_bytes_any_jobs_other_seed_differs(run_a, tmp_path):
    b = tmp_path / "B"
    assert _run("--out", str(b), "--hours", HOURS, "--sites", "2", "--seed", "1", "--jobs", "2") == 0
    files_a = sorted(p.relative_to(run_a) for p in run_a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 3 + 2 * 4
    for rel in files_a:
        assert (run_a / rel).read_bytes() == (b / rel).read_bytes(), rel
    c = tmp_path / "C"
    assert _run("--out", str(c), "--hours", HOURS, "--sites", "2", "--seed", "2") == 0
    assert (c / "sites.json").read_bytes() != (run_a / "sites.json").read_bytes()


def test_other_split_run_crosses_an_hour_without_a_seam(tmp_path):
    out = tmp_path / "O"
    assert _run("--out", str(out), "--hours", "0.05", "--split", "other", "--seed", "1",
                "--start", "2025-03-01T00:59:00Z") == 0
    (site,) = _sites(out)
    assert site.station == "O001" and site.split == "other"
    assert site.sampling_rate == 200.0 and site.instrument == "geophone-10"
    files = sorted(p.name for p in (out / "O001").glob("*.mseed"))
    assert len(files) == 6 and {n.split(".")[-2] for n in files} == {"00", "01"}  # two UTC hours
    st = _record(out, site)
    assert len(st) == 3 and all(tr.stats.npts == 0.05 * 3600 * 200 for tr in st)
    z = st.select(component="Z")[0].data.astype(float)
    i = int(60 * 200)  # 01:00:00, where the files meet
    jump = abs(z[i] - z[i - 1])
    assert jump < 6 * np.std(np.diff(z))


# ------------------------------------------------------------------------------ splits
def test_other_split_never_overlaps_train():
    tr, ot = SPLITS["train"], SPLITS["other"]
    assert not set(tr.rates) & set(ot.rates) and set(tr.rates) | set(ot.rates) == set(RATES)
    assert not set(tr.instruments) & set(ot.instruments)
    assert set(tr.instruments) | set(ot.instruments) == set(INSTRUMENTS)
    for a, b in tr.noise_slope:
        for c, d in ot.noise_slope:
            assert b < c or d < a
    drawn = {sp: [draw_site(np.random.default_rng([9, i]), sp) for i in range(150)] for sp in SPLITS}
    for sp, sites in drawn.items():
        r = SPLITS[sp]
        for s in sites:
            assert s.sampling_rate in r.rates and s.instrument in r.instruments
            assert any(a <= s.noise_slope <= b for a, b in r.noise_slope)
            assert s.fracture_band_hz[1] <= 0.4 * s.sampling_rate
            assert s.rockfall_band_hz[1] <= 0.4 * s.sampling_rate
    train_slopes = [s.noise_slope for s in drawn["train"]]
    other_slopes = [s.noise_slope for s in drawn["other"]]
    assert not {s.sampling_rate for s in drawn["train"]} & {s.sampling_rate for s in drawn["other"]}
    assert not {s.instrument for s in drawn["train"]} & {s.instrument for s in drawn["other"]}
    assert all(not (min(train_slopes) <= x <= max(train_slopes)) for x in other_slopes)
    assert len({s.instrument for s in drawn["train"]}) == 3  # the draw reaches every value
    assert {s.sampling_rate for s in drawn["train"]} == set(SPLITS["train"].rates)
    with pytest.raises(ValueError, match="unknown split"):
        draw_site(np.random.default_rng(0), "test")


# ------------------------------------------------------------------------------ ML
def _site_with(instrument: str) -> Site:
    split = "other" if instrument in SPLITS["other"].instruments else "train"
    for i in range(200):
        s = draw_site(np.random.default_rng([21, i]), split)
        if s.instrument == instrument:
            return s
    raise AssertionError(f"no {instrument} site drawn")


@pytest.mark.parametrize("instrument", sorted(INSTRUMENTS))
def test_station_ml_recovers_the_catalogue_ml(instrument):
    """A generated quake in the site's background noise, through its response, written as
    int32 counts: the station's ML code with the StationXML and the known distance returns
    the catalogue ML within 0.3."""
    site = _site_with(instrument)
    m = SiteModel(site)
    fs = m.fs
    rng = np.random.default_rng(3)
    # a MEMS accelerometer's self-noise hides all but large, close events
    mag, r, snr_min = (3.0, 5.0, 10.0) if instrument == "mems" else (2.5, 15.0, 20.0)
    src, snr = make_quake(m, rng, mag, r)
    assert snr > snr_min
    counts = m.to_counts(src.velocity)
    i0 = int(10 * fs)
    n = i0 + counts.shape[1] + int(5 * fs)
    x = NoiseSource(m, [1], UTCDateTime(START).timestamp).get(0, n)
    x[:, i0:i0 + counts.shape[1]] += counts
    assert np.max(np.abs(x)) < 0.8 * site.inst.full_scale_counts
    st = Stream([Trace(np.rint(x[c]).astype(np.int32), header={
        "network": site.network, "station": site.station, "location": site.location,
        "channel": code, "sampling_rate": fs, "starttime": UTCDateTime(START)})
        for c, code in enumerate(site.channel_codes())])
    inv = site_inventory([site], START)
    ml = station_magnitude(st, inv, r)
    assert ml == pytest.approx(mag, abs=0.15)


# ------------------------------------------------------------------------------ pieces
def test_rockfall_with_a_given_number_of_impacts():
    src = rockfall(np.random.default_rng(1), 250.0, (5.0, 60.0), (10.0, 60.0), n_impacts=7)
    assert src.meta["impacts"] == 7 and src.meta["impact_rate_max"] is None
    assert 5.0 <= src.meta["duration_s"] <= 60.0 and abs(src.velocity[:, 0]).max() == 0.0


def _s_energy_s(v: np.ndarray, fs: float, sp_s: float) -> float:
    """Seconds holding 5-95 % of the horizontal energy after the S onset."""
    h = v[1:, int(sp_s * fs):]
    a, b = _energy_window((h**2).sum(axis=0))
    return (b - a) / fs


def test_pulse_like_quakes_have_a_short_s_and_coda():
    """The smallest path duration and coda scale give a clean S pulse (BW.UH3's induced
    quakes); unset, the Boore 0.05 s/km wave train and the full coda, as the single-site
    benchmark always had."""
    fs, mag, r = 250.0, 1.0, 10.0
    train = earthquake(np.random.default_rng(5), fs, mag, r)
    pulse = earthquake(np.random.default_rng(5), fs, mag, r, path_s_per_km=(0.005, 0.005),
                       coda_scale=(0.1, 0.1))
    assert train.meta["path_s_per_km"] == 0.05 and train.meta["coda_scale"] == 1.0
    assert pulse.meta["s_duration_s"] < 0.5 * train.meta["s_duration_s"]
    sp = train.meta["s_minus_p_s"]
    assert _s_energy_s(pulse.velocity, fs, sp) < 0.3 * _s_energy_s(train.velocity, fs, sp)
    assert pulse.n < train.n


def test_site_quakes_span_glitch_snr_and_pulse_like_s():
    """Quakes of a drawn site reach the SNR of the noise class's glitches (spikes: 6-30 dB +
    20 dB) and include pulse-like S waves: neither SNR nor a long S train alone can tell a
    quake from a glitch."""
    site = draw_sites(1, "train", 1)[0]
    m = SiteModel(site)
    rows, durations = [], []
    for k in range(40):
        ev = site_event(m, "earthquake", np.random.default_rng([7, k]))
        rows.append(ev["row"])
    snrs = [float(r["snr_db"]) for r in rows]
    assert min(snrs) >= EVENT_RANGES["quake_snr_min_db"] - 3.0
    assert max(snrs) >= 35.0, sorted(snrs)
    for k in range(40):
        src = earthquake(np.random.default_rng([8, k]), m.fs, 1.0, 10.0,
                         path_s_per_km=EVENT_RANGES["quake_path_s_per_km"],
                         coda_scale=EVENT_RANGES["quake_coda_scale"])
        durations.append(src.meta["s_duration_s"])
    assert min(durations) < 0.2 < max(durations), sorted(durations)


def test_draw_sites_is_deterministic():
    a = [s.to_dict() for s in draw_sites(3, "train", 4)]
    assert a == [s.to_dict() for s in draw_sites(3, "train", 4)]
    assert a != [s.to_dict() for s in draw_sites(3, "train", 5)]


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("argv,message", [
    (["--hours", "0"], "--hours must be > 0"),
    (["--hours", "-2"], "--hours must be > 0"),
    (["--hours", "x"], "--hours must be a number"),
    (["--split", "test"], "--split must be train or other"),
    (["--sites", "0"], "--sites must be >= 1"),
    (["--seed", "1.5"], "--seed must be an integer"),
    (["--start", "yesterday"], "--start is not a UTC time"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert _run("--out", str(tmp_path / "x"), *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x").exists()


def test_unwritable_or_busy_out_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run("--out", str(blocker / "sub"), "--hours", "0.01") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert _run("--out", str(busy), "--hours", "0.01") == 2
    assert "not empty" in capsys.readouterr().err
    assert _run("--out", str(busy), "--hours", "0.01", "--force") == 0
    assert (busy / "keep.txt").exists() and (busy / "catalog.csv").exists()
