"""``microseis train``: short variants of every training path on a tiny synthetic dataset.

Each run is 1-2 epochs of at most a few batches of 8 events, one torch thread, so the whole
module stays well under a minute on two loaded cores.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("obspy")
pytest.importorskip("imblearn")

from edge.cli import main as microseis  # noqa: E402
from edge.signal.labels import CLASSES, MAG_BIN_CENTRES, magnitude_to_bin  # noqa: E402
from trainer.balance import (  # noqa: E402
    balanced_order,
    smote_resample,
    stratified_split,
    stratified_subsample,
)
from trainer.config import TrainConfig, TrainError  # noqa: E402
from trainer.run import CURVES_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, RUN_FILE, load_run  # noqa: E402
from trainer.train import SYNTHETIC_NOTICE, train  # noqa: E402
from trainer.training.inputs import augment_waveforms, magnitude_targets  # noqa: E402
from trainer.training.validation import SPLIT_FILE, evaluate_arrays, validation_arrays  # noqa: E402

#: mildly imbalanced (16/8/8/8) so that weighted sampling and SMOTE have work to do
BALANCE = {"fracture": 2, "rockfall": 1, "earthquake": 1, "noise": 1}
QUICK = dict(epochs=2, batch_size=8, max_batches=3, mc_passes=5, threads=1, patience=0)
TIMING_KEYS = {"seconds", "train_seconds"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from trainer.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("train") / "tiny"
    generate_dataset(SynthConfig(n_events=40, seed=7, balance=BALANCE), root)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cnn_run(tiny, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cnn"
    lines: list[str] = []
    result = train([tiny], out, TrainConfig(model="cnn1d", seed=3, **QUICK), cache_dir=cache,
                   progress=False, say=lines.append)
    return result, lines


def _no_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


# ------------------------------------------------------------------------------ end to end
def test_run_directory_and_metrics_recompute(cnn_run, cache):
    result, lines = cnn_run
    out = result.run_dir
    for name in (MODEL_FILE, RUN_FILE, HISTORY_FILE, METRICS_FILE, CURVES_FILE, SPLIT_FILE):
        assert (out / name).is_file(), name
    assert (out / CURVES_FILE).stat().st_size > 1000
    info = json.loads((out / RUN_FILE).read_text())
    assert info["synthetic"] is True and info["notice"] == SYNTHETIC_NOTICE
    assert info["train"]["model"] == "cnn1d" and info["train"]["epochs"] == 2
    assert info["train"]["backbone_lr_factor"] == 1.0
    assert info["data"]["folders"]["train"][0]["synthetic"] is True
    assert info["data"]["counts"]["train"] == {"fracture": 14, "rockfall": 7, "earthquake": 7, "noise": 7}
    assert 1 <= info["best_epoch"] <= 2
    history = json.loads((out / HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == [1, 2] and {h["stage"] for h in history} == {"train"}
    for key in ("loss", "loss_class", "loss_mag", "val_macro_f1", "val_hit_0_3", "lr", "seconds"):
        assert key in history[0]
    assert any(line.startswith("epoch   1/2") and "val F1" in line for line in lines)

    # load_run gives the kept model; its validation metrics recompute to metrics.json
    model, run_info = load_run(out)
    assert run_info["best_epoch"] == info["best_epoch"]
    saved = json.loads((out / METRICS_FILE).read_text())
    val = validation_arrays(out, cache_dir=cache)
    assert len(val) == saved["n"] == 5
    mc = saved["mc_dropout"]
    again = evaluate_arrays(model, val, mc_passes=mc["passes"], seed=mc["seed"], batch_size=mc["batch_size"])
    again = json.loads(json.dumps(again))
    for key in ("macro_f1", "accuracy", "f1", "confusion", "magnitude", "uncertainty"):
        assert again[key] == saved[key], key
    assert 0.0 <= saved["uncertainty"]["mean_wrong" if saved["uncertainty"]["n_wrong"] else "mean_correct"] <= 1.0

    split = json.loads((out / SPLIT_FILE).read_text())
    train_paths = {r["path"] for r in split["train"]}
    assert len(train_paths) == 35 and not train_paths & {r["path"] for r in split["val"]}


def test_same_seed_same_history(cnn_run, tiny, cache, tmp_path):
    first, _ = cnn_run
    second = train([tiny], tmp_path / "again", TrainConfig(model="cnn1d", seed=3, **QUICK),
                   cache_dir=cache, progress=False, say=lambda m: None)
    assert _no_timing(second.history) == _no_timing(first.history)
    assert second.metrics == first.metrics
    a = torch.load(first.run_dir / MODEL_FILE, weights_only=True)["state_dict"]
    b = torch.load(second.run_dir / MODEL_FILE, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train([tiny], tmp_path / "other", TrainConfig(model="cnn1d", seed=4, **QUICK),
                  cache_dir=cache, progress=False, say=lambda m: None)
    assert other.history[0]["loss"] != first.history[0]["loss"]


def test_resnet_smote_via_cli_json(tiny, cache, tmp_path, capsys):
    out = tmp_path / "resnet"
    rc = microseis(["train", "--data", str(tiny), "--out", str(out), "--balance", "smote",
                    "--epochs", "1", "--batch-size", "8", "--max-batches", "2", "--mc-passes", "3",
                    "--threads", "1", "--cache-dir", str(cache), "--quiet", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["run"] == str(out) and summary["model"] == "resnet18_cbam"
    assert summary["best_epoch"] == 1 and set(summary["val_f1"]) == set(CLASSES)
    assert 0.0 <= summary["val_macro_f1"] <= 1.0
    assert set(summary["magnitude"]) == {"n", "hit_0_2", "hit_0_3", "mae"}
    info = json.loads((out / RUN_FILE).read_text())
    # 14 fractures in training: SMOTE brings rockfall/earthquake/noise from 7 to 14 each
    assert info["data"]["counts"]["smote_rows"] == 21
    assert info["data"]["counts"]["train_rows_after_balance"] == 56
    model, _ = load_run(out)
    assert model.config.name == "resnet18_cbam"


def test_spectrogram_cnn_smote_on_spectrograms(tiny, cache, tmp_path):
    r = train([tiny], tmp_path / "spec", TrainConfig(model="spectrogram_cnn", balance="smote", **QUICK),
              cache_dir=cache, progress=False, say=lambda m: None)
    assert r.info["data"]["counts"]["smote_rows"] == 21
    assert "magnitude" not in r.metrics and r.history[0]["val_hit_0_3"] is None
    assert r.info["model"]["options"]["input_shape"] == [3, 65, 45]


def test_two_stage_then_transfer(tiny, cache, tmp_path):
    quick = dict(QUICK, epochs=1, pretrain_epochs=2, max_batches=2)
    two = train([tiny], tmp_path / "two", TrainConfig(model="cnn1d", **quick), pretrain_data=[tiny],
                cache_dir=cache, progress=False, say=lambda m: None)
    stages = [h["stage"] for h in two.history]
    assert stages == ["pretrain", "pretrain", "train"]
    pre = two.info["pretrain"]
    assert pre["events"] == 35 and pre["left_out"] == 5  # validation events never pre-train
    assert len(pre["attributes"]["mean"]) == 12 and two.info["model"]["n_attributes"] == 12
    assert two.info["train"]["backbone_lr_factor"] == 0.3
    hist = json.loads((two.run_dir / HISTORY_FILE).read_text())
    assert hist[0]["stage"] == "pretrain" and "val_loss" in hist[0]

    # transfer: every tensor fits; with the backbone frozen for the only epoch it stays as it was
    tr = train([tiny], tmp_path / "transfer",
               TrainConfig(**dict(quick, max_labeled=8, freeze_backbone_epochs=1)),
               init=two.run_dir, cache_dir=cache, progress=False, say=lambda m: None)
    assert tr.info["init"]["tensors_loaded"] == len(torch.load(two.run_dir / MODEL_FILE)["state_dict"])
    assert tr.info["init"]["skipped"] == [] and tr.config.model == "cnn1d"
    assert tr.history[0]["frozen_backbone"] is True
    assert len(json.loads((tr.run_dir / SPLIT_FILE).read_text())["train"]) == 8
    src = torch.load(two.run_dir / MODEL_FILE)["state_dict"]
    dst = torch.load(tr.run_dir / MODEL_FILE)["state_dict"]
    backbone = [k for k in src if k.startswith("body.")]
    assert backbone and all(torch.equal(src[k], dst[k]) for k in backbone)
    assert not all(torch.equal(src[k], dst[k]) for k in src if k.startswith("heads."))

    with pytest.raises(TrainError, match="resnet18_cbam cannot take"):
        train([tiny], tmp_path / "bad", TrainConfig(model="resnet18_cbam", **quick), init=two.run_dir,
              cache_dir=cache, progress=False, say=lambda m: None)


# ------------------------------------------------------------------------------ bad input
def test_bad_folder_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    rc = microseis(["train", "--data", str(missing), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and str(missing) in err and "no such folder" in err
    (tmp_path / "empty").mkdir()
    assert microseis(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no labels.csv" in capsys.readouterr().err


def test_bad_folder_exit_2_from_the_console(tmp_path):
    missing = tmp_path / "nowhere"
    proc = subprocess.run([sys.executable, "-m", "edge", "train", "--data", str(missing), "--out",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"microseis train: error: --data {missing}: no such folder"


def test_missing_class_and_bad_rows(tiny, cache, tmp_path, capsys):
    ds = tmp_path / "fractures_only"
    shutil.copytree(tiny, ds)
    lines = (ds / "labels.csv").read_text().splitlines()
    rows = [line for line in lines[1:] if line.split(",")[1] == "fracture"]
    blast = rows[0].split(",")
    blast[1] = "blast"
    (ds / "labels.csv").write_text("\n".join([lines[0], *rows, ",".join(blast),
                                              "waveforms/missing.mseed,noise,,,"]) + "\n")
    rc = microseis(["train", "--data", str(ds), "--out", str(tmp_path / "r"), "--cache-dir", str(cache)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "2 row(s) of labels.csv skipped" in err and "unknown label 'blast'" in err
    assert "line 18" in err and "file not found" in err
    assert err.strip().splitlines()[-1].startswith("microseis train: error: class 'rockfall', 'earthquake'")


def test_options_are_checked_and_runs_not_overwritten(cnn_run, tiny, cache, capsys):
    out = str(cnn_run[0].run_dir)
    assert microseis(["train", "--data", str(tiny), "--out", out + "_x", "--val-fraction", "0.9"]) == 2
    assert "--val-fraction: must be within (0, 0.5], got 0.9" in capsys.readouterr().err
    assert microseis(["train", "--data", str(tiny), "--out", out]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(TrainError, match="max-labeled"):
        train([tiny], out + "_y", TrainConfig(max_labeled=3, **QUICK), progress=False, say=lambda m: None,
              cache_dir=cache)


# ------------------------------------------------------------------------------ pieces
def test_stratified_split_and_subsample():
    y = np.repeat([0, 1, 2, 3], [257, 21, 36, 41])
    tr, va = stratified_split(y, 0.15, seed=1)
    assert np.intersect1d(tr, va).size == 0 and tr.size + va.size == y.size
    assert np.bincount(y[va]).tolist() == [39, 3, 5, 6]
    assert np.array_equal(stratified_split(y, 0.15, seed=1)[1], va)
    assert not np.array_equal(stratified_split(y, 0.15, seed=2)[1], va)
    keep = stratified_subsample(y[tr], 262, seed=0)
    counts = np.bincount(y[tr][keep])
    assert keep.size == 262 and counts.min() >= 1 and abs(counts[0] / 262 - 218 / 302) < 0.01
    tiny = stratified_subsample(np.repeat([0, 1, 2, 3], [100, 1, 2, 3]), 4, seed=0)
    assert np.bincount(np.repeat([0, 1, 2, 3], [100, 1, 2, 3])[tiny]).tolist() == [1, 1, 1, 1]
    order = balanced_order(y, np.random.default_rng(0), 40000)
    assert np.allclose(np.bincount(y[order]) / 40000, 0.25, atol=0.02)


def test_smote_resample_keeps_originals_and_equalises():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [12, 3, 5])
    x = rng.normal(size=(20, 3, 50)).astype(np.float32)
    lp = rng.normal(-5, 1, size=20).astype(np.float32)
    xs, lps, ys, n_new = smote_resample(x, lp, y, seed=0, class_names=("a", "b", "c"))
    assert n_new == 16 and np.bincount(ys).tolist() == [12, 12, 12]
    assert np.array_equal(xs[:20], x) and np.array_equal(ys[:20], y) and xs.dtype == np.float32
    assert np.isfinite(lps).all() and lps[20:].min() >= lp.min() - 1e-6
    with pytest.raises(ValueError, match="'b' has 1"):
        smote_resample(x[:14], lp[:14], np.repeat([0, 1, 2], [12, 1, 1]), seed=0, class_names=("a", "b", "c"))


def test_magnitude_targets_and_augmentation():
    q = magnitude_targets(np.array([1.23, np.nan, 3.7, 0.0]), sigma=0.1)
    assert np.allclose(q[[0, 2, 3]].sum(axis=1), 1.0) and not q[1].any()
    assert int(np.argmax(q[0])) == magnitude_to_bin(1.23) and int(np.argmax(q[2])) == 29
    assert np.isclose(MAG_BIN_CENTRES @ q[0], 1.23, atol=0.02)
    hard = magnitude_targets(np.array([0.3]), sigma=0.0)
    assert hard[0, 3] == 1.0 and hard.sum() == 1.0

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(16, 3, 1000)).astype(np.float32)
    out, shift, sign = augment_waveforms(x, np.random.default_rng(1), 250.0, shift_s=0.3)
    assert out.shape == x.shape and np.abs(shift).max() <= 0.3 and set(np.unique(sign)) <= {-1.0, 1.0}
    for i in range(16):
        k = int(round(shift[i] * 250))
        expect = np.zeros_like(x[i])
        if k >= 0:
            expect[:, k:] = x[i, :, :1000 - k]
        else:
            expect[:, :1000 + k] = x[i, :, -k:]
        assert np.array_equal(out[i], sign[i] * expect)


def test_train_options_come_from_train_config():
    """Each option is declared once, in TrainConfig: the names the CLI offers are the registry's,
    a bad value names its option, and the defaults are the config's."""
    import argparse

    from edge.schema.render import add_options, from_args
    from trainer.config import MODEL_NAMES
    from trainer.models.registry import MODELS

    assert set(MODEL_NAMES) == set(MODELS)
    parser = argparse.ArgumentParser()
    add_options(parser, TrainConfig)
    assert from_args(TrainConfig, parser.parse_args([])) == TrainConfig()
    got = from_args(TrainConfig, parser.parse_args(["--no-augment", "--shift", "0.1", "--model", "cnn1d"]))
    assert (got.augment, got.shift_s, got.model, got.flip) == (False, 0.1, "cnn1d", True)
    bad = r"^--epochs: must be >= 1, got 0; --dropout: must be within \[0, 1\), got 1.5$"
    with pytest.raises(TrainError, match=bad):
        TrainConfig(epochs=0, dropout=1.5).validate()
