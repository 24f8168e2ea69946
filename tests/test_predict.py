"""``microseis predict``: batch classification on the station runtime (no torch) -> CSV.

One real signed bundle is built per module from a tiny trained run (synth -> train ->
keygen -> export, ~40 s), then the command runs in-process on the dataset folder, on loose
SAC files (one per component), on broken inputs and on ObsPy's real RJOB recording.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")  # building the test bundle needs the trainer and exporter

import obspy  # noqa: E402
from obspy import Stream, Trace, UTCDateTime  # noqa: E402

from edge.cli import main  # noqa: E402
from edge.model.inference import EventClassifier  # noqa: E402
from edge.signal.dataset import iter_windows, read_labels  # noqa: E402
from edge.signal.picking import pick_trigger  # noqa: E402
from edge.signal.resample import resample_trace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: RJOB: 200 Hz plain ASCII, no header; start time from the file name, P at 30.635 s
RJOB_START = UTCDateTime("2005-08-01T14:57:19.85")
RJOB_P_S = 30.635


@pytest.fixture(scope="module")
def env(tiny_bundle) -> dict[str, Path]:
    """A synthetic dataset, a 1-epoch run, a test key pair and the signed int8 bundle."""
    return tiny_bundle


@pytest.fixture(scope="module")
def clf(env) -> EventClassifier:
    return EventClassifier.load(env["bundle"], trusted_keys=[env["pub"]])


def run_predict(capsys, env, *args: str, model: Path | None = None, pubkey: bool = True):
    """``microseis predict`` in-process -> (exit status, stdout, stderr)."""
    argv = ["predict", "--model", str(model or env["bundle"])]
    if pubkey:
        argv += ["--pubkey", str(env["pub"])]
    capsys.readouterr()
    rc = main(argv + list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def split_to_sac(src: Path, dst: Path) -> list[Path]:
    """One SAC file per component of a 3-component MiniSEED file."""
    paths = []
    for tr in obspy.read(str(src)):
        p = dst / f"{src.stem}.{tr.stats.channel}.SAC"
        tr.write(str(p), format="SAC")
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- dataset folder


def test_dataset_folder_matches_event_classifier(env, clf, capsys, tmp_path):
    out = tmp_path / "pred.csv"
    rc, stdout, err = run_predict(capsys, env, str(env["ds"]), "--out", str(out), "--json")
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    labels, _ = read_labels(env["ds"], check_files=False)
    rows = read_csv(out)
    assert len(rows) == len(labels) == summary["rows"] == summary["classified"] == 60
    assert summary["errors"] == 0 and summary["out"] == str(out)
    assert sum(summary["by_class"].values()) == 60
    assert set(summary["by_class"]) == set(clf.classes)
    assert list(rows[0])[:5] == ["path", "station", "trigger_time", "trigger_source", "class"]
    assert [f"p_{c}" for c in clf.classes] == [k for k in rows[0] if k.startswith("p_")]

    windows = {str(env["ds"] / row.path): (row, w) for row, w in iter_windows(env["ds"], clf.window_spec)}
    for r, lab in zip(rows, labels):
        assert r["path"] == str(env["ds"] / lab.path)
        assert r["trigger_source"] == "label" and r["trigger_time"].endswith("Z")
        assert UTCDateTime(r["trigger_time"]) == lab.trigger_time
        assert r["station"] == lab.station and r["label"] == lab.label
        assert r["units"] == "m/s"  # the folder's stations.xml calibrates
        probs = np.array([float(r[f"p_{c}"]) for c in clf.classes])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        # the batch gives what the station's classifier gives for this one window
        one = clf.row(clf.predict_window(windows[r["path"]][1]))
        assert r["class"] == one["class"]
        np.testing.assert_allclose(probs, [one["probabilities"][c] for c in clf.classes], atol=1e-5)
        assert float(r["uncertainty"]) == pytest.approx(one["uncertainty"], abs=1e-5)
        assert r["magnitude"] == ("" if one["magnitude"] is None else f"{one['magnitude']:.2f}")


def test_result_does_not_depend_on_batch_size(env, capsys, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run_predict(capsys, env, str(env["ds"]), "--out", str(a), "--batch", "7")[0] == 0
    assert run_predict(capsys, env, str(env["ds"]), "--out", str(b), "--batch", "64")[0] == 0
    ra, rb = read_csv(a), read_csv(b)
    for x, y in zip(ra, rb):
        assert x["class"] == y["class"]
        assert float(x["p_noise"]) == pytest.approx(float(y["p_noise"]), abs=1e-5)


def test_dataset_rows_without_trigger_or_file(env, capsys, tmp_path):
    """Empty trigger_time -> picked; a missing file and a bad row -> error rows in place."""
    labels, _ = read_labels(env["ds"], check_files=False)
    d = tmp_path / "mini"
    (d / "w").mkdir(parents=True)
    src = env["ds"] / labels[1].path
    (d / "w" / "a.mseed").write_bytes(src.read_bytes())
    (d / "labels.csv").write_text("path,label,magnitude,trigger_time\n"
                                  "w/a.mseed,fracture,,\n"
                                  "w/gone.mseed,noise,,\n"
                                  "w/a.mseed,noise,big,\n")
    out = tmp_path / "o.csv"
    rc, _, err = run_predict(capsys, env, str(d), "--out", str(out))
    assert rc == 0, err
    a, gone, bad = read_csv(out)
    assert a["trigger_source"] == "picked" and a["class"] and a["label"] == "fracture"
    assert abs(UTCDateTime(a["trigger_time"]) - pick_trigger(obspy.read(str(src))).time) < 1e-3
    assert a["units"] == "counts"  # no stations.xml in this folder
    assert gone["class"] == "" and gone["note"] == "labels.csv line 3: file not found"
    assert bad["class"] == "" and "line 4" in bad["note"] and "bad magnitude" in bad["note"]


# --------------------------------------------------------------------------- loose files


def test_loose_sac_files_grouped_and_trigger_picked(env, capsys, tmp_path):
    labels, _ = read_labels(env["ds"], check_files=False)
    chosen = labels[1:4]
    files = []
    for lab in chosen:
        files += split_to_sac(env["ds"] / lab.path, tmp_path)
    out = tmp_path / "loose.csv"
    rc, stdout, err = run_predict(capsys, env, *map(str, files), "--out", str(out))
    assert rc == 0, err
    assert "rockfall" in stdout and "wrote" in stdout  # the summary table
    rows = read_csv(out)
    assert len(rows) == 3  # 9 SAC files -> 3 events
    close = 0
    for r, lab in zip(rows, chosen):
        assert len(r["path"].split(";")) == 3 and r["class"] in ("fracture", "rockfall", "earthquake", "noise")
        assert r["trigger_source"] == "picked" and r["station"] == lab.station
        st = obspy.read(str(env["ds"] / lab.path))
        t = UTCDateTime(r["trigger_time"])
        assert abs(t - pick_trigger(st).time) < 1e-3
        close += abs(t - lab.trigger_time) < 0.5
        # no sensitivity: counts, no magnitude, and the note says so
        assert r["units"] == "counts" and r["magnitude"] == "" and "sensitivity" in r["note"]
    assert close >= 2


def test_loose_files_with_sensitivity_or_stationxml_are_m_per_s(env, capsys, tmp_path):
    labels, _ = read_labels(env["ds"], check_files=False)
    files = split_to_sac(env["ds"] / labels[1].path, tmp_path)
    for extra in (["--sensitivity", "1.52136e9"], ["--stationxml", str(env["ds"] / "stations.xml")]):
        out = tmp_path / "s.csv"
        rc, _, err = run_predict(capsys, env, *map(str, files), "--out", str(out), *extra)
        assert rc == 0, err
        (r,) = read_csv(out)
        assert r["units"] == "m/s" and "sensitivity" not in r["note"] and r["class"]


def test_directory_walk_and_broken_files_give_error_rows(env, capsys, tmp_path):
    labels, _ = read_labels(env["ds"], check_files=False)
    d = tmp_path / "batch"
    d.mkdir()
    split_to_sac(env["ds"] / labels[1].path, d)
    (d / "garbage.SAC").write_bytes(b"this is not a waveform" * 20)
    (d / "empty.mseed").write_bytes(b"")
    st = obspy.read(str(env["ds"] / labels[2].path)).select(component="N")
    st.write(str(d / "horizontal_only.mseed"), format="MSEED")
    (d / "notes.csv").write_text("skipped when walking a directory\n")
    out = tmp_path / "o.csv"
    rc, stdout, err = run_predict(capsys, env, str(d), str(tmp_path / "missing.SAC"), "--out", str(out), "--json")
    assert rc == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    rows = read_csv(out)
    assert summary == {**summary, "rows": 5, "classified": 1, "errors": 4}
    by_file = {Path(r["path"].split(";")[0]).name: r for r in rows}
    assert "notes.csv" not in by_file
    assert "unreadable" in by_file["garbage.SAC"]["note"] and by_file["garbage.SAC"]["class"] == ""
    assert "empty file" in by_file["empty.mseed"]["note"]
    assert "no Z component" in by_file["horizontal_only.mseed"]["note"]
    assert by_file["horizontal_only.mseed"]["class"] == ""
    assert by_file["missing.SAC"]["note"] == "file not found"
    good = [r for r in rows if r["class"]]
    assert len(good) == 1 and len(good[0]["path"].split(";")) == 3


def test_nothing_classified_exits_1(env, capsys, tmp_path):
    bad = tmp_path / "bad.sac"
    bad.write_bytes(b"\x00\x01garbage" * 50)
    out = tmp_path / "o.csv"
    rc, stdout, err = run_predict(capsys, env, str(bad), "--out", str(out), "--json")
    assert rc == 1
    assert json.loads(stdout.strip().splitlines()[-1])["classified"] == 0
    (r,) = read_csv(out)
    assert r["class"] == "" and "unreadable" in r["note"]


def test_station_filter(env, capsys, tmp_path):
    labels, _ = read_labels(env["ds"], check_files=False)
    lab = labels[1]
    st = obspy.read(str(env["ds"] / lab.path))
    other = st.copy()
    for tr in other:
        tr.stats.station = "OTHER"
    both = tmp_path / "two_stations.mseed"
    (st + other).write(str(both), format="MSEED")
    out = tmp_path / "o.csv"
    assert run_predict(capsys, env, str(both), "--out", str(out))[0] == 0
    assert sorted(r["station"] for r in read_csv(out)) == sorted([lab.station, "XX.OTHER"])
    assert run_predict(capsys, env, str(both), "--out", str(out), "--station", lab.station)[0] == 0
    assert [r["station"] for r in read_csv(out)] == [lab.station]
    rc, _, err = run_predict(capsys, env, str(both), "--out", str(out), "--station", "nodot")
    assert rc == 2 and "NET.STA" in err


def test_any_digitizer_rate(env, capsys, tmp_path):
    """One dataset event recorded (resampled) at 50, 100, 500 and 1000 Hz instead of the
    model's 250 Hz: every rate is classified; the faster digitizers give the 250 Hz numbers."""
    labels, _ = read_labels(env["ds"], check_files=False)
    lab = labels[1]
    st = obspy.read(str(env["ds"] / lab.path))
    assert {tr.stats.sampling_rate for tr in st} == {250.0}
    d = tmp_path / "rates"
    (d / "w").mkdir(parents=True)
    lines = ["path,label,magnitude,trigger_time,station"]
    for fs in (250, 50, 100, 500, 1000):
        Stream([resample_trace(tr, float(fs)) for tr in st]).write(str(d / "w" / f"{fs}.mseed"), format="MSEED",
                                                                    encoding="FLOAT64")
        lines.append(f"w/{fs}.mseed,{lab.label},,{lab.trigger_time.isoformat()}Z,{lab.station}")
    (d / "labels.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "rates.csv"
    rc, _, err = run_predict(capsys, env, str(d), "--out", str(out))
    assert rc == 0, err
    rows = {Path(r["path"]).stem: r for r in read_csv(out)}
    assert all(r["class"] for r in rows.values()), rows
    ref = np.array([float(v) for k, v in rows["250"].items() if k.startswith("p_")])
    for fs in ("500", "1000"):
        probs = np.array([float(v) for k, v in rows[fs].items() if k.startswith("p_")])
        np.testing.assert_allclose(probs, ref, atol=2e-3)


# --------------------------------------------------------------------------- real data


def test_real_rjob_recording(env, capsys, tmp_path, obspy_data):
    """ObsPy's RJOB local earthquake (plain ASCII, 200 Hz) as three SAC files."""
    files = []
    for c in "zne":
        data = np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}")
        tr = Trace(data, header={"network": "BW", "station": "RJOB", "channel": f"EH{c.upper()}",
                                 "sampling_rate": 200.0, "starttime": RJOB_START})
        files.append(tmp_path / f"RJOB.EH{c.upper()}.SAC")
        tr.write(str(files[-1]), format="SAC")
    out = tmp_path / "rjob.csv"
    rc, _, err = run_predict(capsys, env, *map(str, files), "--out", str(out), "--sensitivity", "4e8")
    assert rc == 0, err
    (r,) = read_csv(out)
    assert r["station"] == "BW.RJOB" and r["trigger_source"] == "picked" and r["class"]
    assert abs((UTCDateTime(r["trigger_time"]) - RJOB_START) - RJOB_P_S) < 0.3
    probs = [float(r[k]) for k in r if k.startswith("p_")]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert r["units"] == "m/s"


# --------------------------------------------------------------------------- bad bundles


def test_tampered_bundle_exit_2(env, capsys, tmp_path):
    data = bytearray(env["bundle"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "tampered.msb"
    bad.write_bytes(bytes(data))
    rc, _, err = run_predict(capsys, env, str(env["ds"]), "--out", str(tmp_path / "o.csv"), model=bad)
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("microseis predict: error:") and "bundle rejected" in line
    assert "tampered.msb" in line


def test_missing_bundle_exit_2(env, capsys, tmp_path):
    rc, _, err = run_predict(capsys, env, str(env["ds"]), "--out", str(tmp_path / "o.csv"),
                             model=tmp_path / "nope.msb")
    assert rc == 2 and "no such bundle file" in err.strip().splitlines()[-1]


def test_untrusted_signer_needs_pubkey(env, capsys, tmp_path):
    rc, _, err = run_predict(capsys, env, str(env["ds"]), "--out", str(tmp_path / "o.csv"), pubkey=False)
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert "untrusted key" in line and "--pubkey" in line


def test_station_side_imports_no_torch():
    code = ("import sys, edge.model.batch_predict, edge.cli.predict; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'trainer', 'export')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
