"""``microseis synth --sites train|other``: event windows at drawn sites (trainer/synth/site_events.py)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import obspy
import pytest
from conftest import microseis_cli

from edge.signal.dataset import iter_windows, read_stations
from edge.signal.magnitude import station_magnitude
from trainer.synth.sites import SPLITS


def _synth(out: Path, *extra: str) -> Path:
    microseis_cli("synth", "--out", str(out), "--events", "16", "--seed", "5", "--balance", "equal",
                  "--events-per-site", "2", *extra)
    return out


@pytest.fixture(scope="module")
def train_ds(tmp_path_factory) -> Path:
    return _synth(tmp_path_factory.mktemp("sites") / "train", "--jobs", "2")


def _rows(root: Path, name: str) -> list[dict]:
    with open(root / name, newline="") as f:
        return list(csv.DictReader(f))


def test_each_event_is_recorded_at_its_site(train_ds):
    meta = json.loads((train_ds / "synth.json").read_text())
    sites = {f"{s['network']}.{s['station']}": s for s in meta["sites"]}
    assert meta["site_split"] == "train" and len(sites) == 8
    inv = read_stations(train_ds)
    assert {f"{n.code}.{s.code}" for n in inv for s in n} == set(sites)
    seen_rates = set()
    for row in _rows(train_ds, "labels.csv"):
        site = sites[row["station"]]
        st = obspy.read(str(train_ds / row["path"]))
        assert len(st) == 3 and {tr.stats.sampling_rate for tr in st} == {site["sampling_rate"]}
        assert sorted(tr.stats.channel for tr in st) == sorted(site["channels"])
        assert all(tr.data.dtype == np.int32 for tr in st)
        seen_rates.add(site["sampling_rate"])
        assert site["sampling_rate"] in SPLITS["train"].rates
        assert site["instrument"] in SPLITS["train"].instruments
        t = obspy.UTCDateTime(row["trigger_time"])
        assert st[0].stats.starttime + 11.9 < t < st[0].stats.endtime - 2.9
    assert len(seen_rates) >= 2, "eight sites draw more than one sampling rate"


def test_windows_are_in_m_per_s_at_the_model_rate_and_ml_matches_the_label(train_ds):
    truth = {r["path"]: r for r in _rows(train_ds, "truth.csv")}
    inv = read_stations(train_ds)
    errors: list = []
    n_quakes = checked = 0
    for row, w in iter_windows(train_ds, errors=errors):
        assert w.units == "m/s" and w.sampling_rate == 250.0 and w.data.shape == (3, 3000)
        if row.label != "earthquake":
            continue
        n_quakes += 1
        if float(truth[row.path]["snr_db"]) < 20:  # near the noise the noise adds to the peak
            continue
        checked += 1
        st = obspy.read(str(train_ds / row.path))
        ml = station_magnitude(st, inv, float(truth[row.path]["distance_km"]))
        # the label is the ML of the noise-free ground motion: through the written
        # StationXML the physical ML of the recorded counts gives it back
        assert ml == pytest.approx(row.magnitude, abs=0.1), row.path
    assert not errors and n_quakes == 4 and checked >= 1


def test_other_split_uses_only_held_out_values_and_same_seed_same_bytes(train_ds, tmp_path):
    other = _synth(tmp_path / "other", "--sites", "other")
    meta = json.loads((other / "synth.json").read_text())
    for s in meta["sites"]:
        assert s["station"].startswith("O")
        assert s["sampling_rate"] in SPLITS["other"].rates and s["instrument"] in SPLITS["other"].instruments
        assert any(lo <= s["noise_slope"] <= hi for lo, hi in SPLITS["other"].noise_slope)
    again = _synth(tmp_path / "again")  # --jobs 1 this time
    for name in ("labels.csv", "truth.csv", "stations.xml"):
        assert (again / name).read_bytes() == (train_ds / name).read_bytes()
    for row in _rows(train_ds, "labels.csv"):
        assert (again / row["path"]).read_bytes() == (train_ds / row["path"]).read_bytes()


def test_bad_sites_option_exits_2(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "edge", "synth", "--out", str(tmp_path / "x"),
                          "--sites", "moon"], capture_output=True, text=True)
    assert res.returncode == 2 and "--sites" in res.stderr
    res = subprocess.run([sys.executable, "-m", "edge", "synth", "--out", str(tmp_path / "x"),
                          "--events-per-site", "0"], capture_output=True, text=True)
    assert res.returncode == 2 and "--events-per-site" in res.stderr
