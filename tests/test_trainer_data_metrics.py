"""Dataset → arrays with the station's code, and the metrics everyone scores with."""
from __future__ import annotations

import numpy as np
import pytest

from edge.signal.dataset import iter_windows
from edge.signal.preprocess import normalize
from trainer.data import dataset_description, load_dataset
from trainer.metrics import classification_metrics, evaluation_metrics, magnitude_metrics


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory):
    from trainer.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_dataset(SynthConfig(n_events=16, seed=11, balance="equal"), out)
    return out


def test_arrays_are_exactly_what_the_station_computes(small_synth, tmp_path):
    arrays, errors = load_dataset(small_synth, cache_dir=tmp_path, progress=False)
    assert errors == [] and len(arrays) == 16
    assert arrays.units == "m/s" and set(arrays.class_counts().values()) == {4}
    row, window = next(iter_windows(small_synth))
    x, log_peak = normalize(window.data)
    i = arrays.paths.index(row.path)
    assert arrays.x[i].tobytes() == x.tobytes() and arrays.log_peak[i] == np.float32(log_peak)
    eq = arrays.y == arrays.classes.index("earthquake")
    assert np.all(np.isfinite(arrays.magnitude[eq])) and np.all(np.isnan(arrays.magnitude[~eq]))
    # second load comes from the cache, identical
    again, _ = load_dataset(small_synth, cache_dir=tmp_path, progress=False)
    assert again.x.tobytes() == arrays.x.tobytes() and again.paths == arrays.paths
    sub = arrays.subset(arrays.y == 0)
    assert len(sub) == 4 and np.all(sub.y == 0)
    assert dataset_description(small_synth)["synthetic"] is True


def test_unknown_labels_and_broken_files_are_row_errors(small_synth, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(small_synth, ds)
    lines = (ds / "labels.csv").read_text().splitlines()
    first = lines[1].split(",")
    blast = ",".join([first[0], "blast"] + first[2:])
    lines += [blast, "waveforms/missing.mseed,noise,,,"]
    (ds / "labels.csv").write_text("\n".join(lines) + "\n")
    arrays, errors = load_dataset(ds, cache_dir=tmp_path / "c", progress=False)
    assert len(arrays) == 16
    by_line = {e.line: e.message for e in errors}
    assert "unknown label 'blast'" in by_line[18]
    assert "not found" in by_line[19]


def test_classification_metrics_by_hand():
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 3, 3])
    m = classification_metrics(y_true, y_pred, ("a", "b", "c", "d"))
    assert m["confusion"]["matrix"][0] == [1, 1, 0, 0]
    assert m["precision"]["b"] == pytest.approx(2 / 3) and m["recall"]["a"] == 0.5
    assert m["f1"]["d"] == 1.0
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 / 1.5, 1.0]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


def test_magnitude_hits_count_the_boundary():
    m = magnitude_metrics(np.array([1.0, 1.0, 1.0, np.nan]), np.array([1.3, 1.2, 1.35, 2.0]))
    assert m["n"] == 3 and m["hit_0_3"] == pytest.approx(2 / 3) and m["hit_0_2"] == pytest.approx(1 / 3)
    out = evaluation_metrics(np.array([2, 0]), np.array([2, 0]), ("fracture", "rockfall", "earthquake", "noise"),
                             np.array([1.0, 1.0]), np.array([1.05, 3.0]), uncertainty=np.array([0.1, 0.2]))
    assert out["magnitude"]["n"] == 1  # only the earthquake is scored
    assert out["uncertainty"]["n_wrong"] == 0
