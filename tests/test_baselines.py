"""Classic feature baselines (Bossea PCA + k-means, random forest, boosting) and their CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from edge.signal.features import BOSSEA_FEATURES  # noqa: E402
from trainer.baselines import (  # noqa: E402
    CLASSIFIERS,
    FeatureTransform,
    PCAKMeansClassifier,
    magnitude_baseline,
    run_baselines,
)
from trainer.data import load_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train: 80 events (seed 1), test: 40 events (seed 2), equal classes, cached arrays."""
    from trainer.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("baselines")
    generate_dataset(SynthConfig(n_events=80, seed=1, balance="equal"), root / "train")
    generate_dataset(SynthConfig(n_events=40, seed=2, balance="equal"), root / "test")
    cache = root / "cache"
    train, e1 = load_dataset(root / "train", cache_dir=cache, progress=False)
    test, e2 = load_dataset(root / "test", cache_dir=cache, progress=False)
    assert e1 == [] and e2 == []
    return {"root": root, "cache": cache, "train": train, "test": test}


@pytest.fixture(scope="module")
def results(data):
    return run_baselines(data["train"], data["test"], seed=0)


def test_feature_transform_logs_heavy_tails_and_uses_training_statistics():
    rng = np.random.default_rng(0)
    f = np.abs(rng.lognormal(0, 2, (50, len(BOSSEA_FEATURES)))) + 0.1
    f[:, BOSSEA_FEATURES.index("kurtosis")] -= 2.0  # excess kurtosis may be negative (>= -2)
    tf = FeatureTransform().fit(f)
    z = tf.transform(f)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-9)
    j = BOSSEA_FEATURES.index("max_mean_ratio")
    np.testing.assert_allclose(tf.mean_[j], np.log10(f[:, j]).mean())
    k = BOSSEA_FEATURES.index("kurtosis")
    np.testing.assert_allclose(tf.mean_[k], np.log10(f[:, k] + 3).mean())
    p = BOSSEA_FEATURES.index("peak_frequency_hz")
    np.testing.assert_allclose(tf.mean_[p], f[:, p].mean())  # frequencies stay linear
    shifted = tf.transform(f * 10)  # test data are scaled with the training statistics
    assert not np.allclose(shifted.mean(0), 0)


def test_supervised_baselines_beat_chance(results, data):
    assert set(CLASSIFIERS) <= set(results) and "magnitude" in results
    for name in CLASSIFIERS:
        m = results[name]
        assert m["n"] == len(data["test"]) and set(m["f1"]) == set(data["test"].classes)
        assert 0 <= m["accuracy"] <= 1 and len(m["confusion"]["matrix"]) == 4
    # chance macro-F1 with four equal classes is 0.25; measured: RF 0.75, GB 0.66, RF+attributes 0.75
    assert results["random_forest"]["macro_f1"] > 0.6
    assert results["gradient_boosting"]["macro_f1"] > 0.5
    assert results["random_forest_attributes"]["macro_f1"] > 0.6
    assert results["pca_kmeans"]["model"]["n_clusters"] == 4
    assert results["pca_kmeans_3k"]["model"]["n_clusters"] == 12


def test_pca_kmeans_clusters_are_named_by_training_majority(data):
    train = data["train"]
    x = FeatureTransform().fit_transform(train.features)
    no_noise = train.y != train.classes.index("noise")
    model = PCAKMeansClassifier(n_clusters=6, seed=3).fit(x[no_noise], train.y[no_noise], 4)
    assert np.sum(model.pca_.explained_variance_ratio_) >= 0.95
    seen = set(train.y[no_noise].tolist())
    assert set(model.cluster_to_class_.tolist()) <= seen
    members = model.kmeans_.labels_
    for c, cls in enumerate(model.cluster_to_class_):
        counts = np.bincount(train.y[no_noise][members == c], minlength=4)
        assert cls == int(np.argmax(counts))  # majority vote of the training labels
    pred = model.predict(FeatureTransform().fit(train.features[no_noise]).transform(data["test"].features))
    assert set(pred.tolist()) <= set(model.cluster_to_class_.tolist())  # never an unseen class
    assert train.classes.index("noise") not in pred


def test_deterministic_with_a_seed_and_unlabelled_events_are_ignored(data, results):
    again = run_baselines(data["train"], data["test"], seed=0, methods=["pca_kmeans", "gradient_boosting"],
                          magnitude=False)
    for name in again:
        a = {k: v for k, v in again[name].items() if k != "fit_s"}
        b = {k: v for k, v in results[name].items() if k != "fit_s"}
        assert a == b
    test = data["test"].subset(np.arange(len(data["test"])))
    test.y = test.y.copy()
    test.y[:3] = -1
    r = run_baselines(data["train"], test, methods=["random_forest"], magnitude=False)
    assert r["random_forest"]["n"] == len(test) - 3
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baselines(data["train"], data["test"], methods=["svm"])


def test_magnitude_regression_on_earthquakes(results, data):
    mag = results["magnitude"]
    eq = data["train"].classes.index("earthquake")
    assert mag["n_train"] == int(np.sum(data["train"].y == eq)) == 20
    assert mag["n_test"] == int(np.sum(data["test"].y == eq))
    for name in ("linear", "gradient_boosting"):
        r = mag[name]
        assert r["n"] == mag["n_test"] and 0 <= r["hit_0_2"] <= r["hit_0_3"] <= 1 and r["mae"] >= 0
    few = data["train"].subset(np.flatnonzero(data["train"].y == eq)[:3])
    assert "only 3" in magnitude_baseline(few, data["test"])["skipped"]


def _main(monkeypatch, argv):
    """``microseis`` with this module's ``baselines`` plug-in (whether or not it is registered)."""
    import edge.cli as cli

    class _EP:
        name = "baselines"

        def load(self):
            from trainer.cli.baselines import register
            return register

    real = cli.entry_points
    monkeypatch.setattr(cli, "entry_points", lambda group: [
        e for e in real(group=group) if e.name == "synth"] + [_EP()])
    return cli.main(argv)


def test_cli_writes_json_table_and_plots(data, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MICROSEIS_CACHE", str(data["cache"]))
    out = tmp_path / "out"
    rc = _main(monkeypatch, ["baselines", "--train", str(data["root"] / "train"),
                             "--test", str(data["root"] / "test"), "--out", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((out / "baselines.json").read_text())
    assert printed == saved and saved["synthetic"] is True and saved["seed"] == 0
    assert saved["train"]["class_counts"] == {"fracture": 20, "rockfall": 20, "earthquake": 20, "noise": 20}
    assert set(CLASSIFIERS) <= set(saved["results"]) and "magnitude" in saved["results"]
    for png in ("baselines.png", "pca.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "baselines.txt").read_text()
    assert "random_forest" in table and "macro-F1" in table and "±0.3" in table


def test_cli_exits_2_with_one_line_for_bad_folders(data, monkeypatch, tmp_path, capsys):
    missing = tmp_path / "nope"
    rc = _main(monkeypatch, ["baselines", "--train", str(missing), "--test", str(data["root"] / "test"),
                             "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].endswith(f"--train {missing}: no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = _main(monkeypatch, ["baselines", "--train", str(data["root"] / "train"), "--test", str(empty),
                             "--out", str(tmp_path / "o")])
    assert rc == 2 and "no labels.csv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
