"""``microseis evaluate``: MC-dropout predictions, Grad-CAM, metrics.json / predictions.csv /
figures, skipped rows and the command's errors. Kept short (tiny models, tiny datasets)."""
from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from edge.signal.labels import CLASSES  # noqa: E402
from edge.signal.preprocess import WindowSpec  # noqa: E402
from trainer.models.registry import build_model  # noqa: E402
from trainer.run import model_inputs, run_info, save_run  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ helpers
def _recalibrate_bn(model, *inputs) -> None:
    """Replace BatchNorm running statistics by those of ``inputs`` (after a short training the
    exponential averages still remember the first steps)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(*inputs)
    model.eval()


def _assert_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, path
    assert float(img[..., :3].std()) > 0.01, f"{path} is blank"


def _cli(argv: list[str]) -> int:
    from trainer.cli.evaluate import register

    p = argparse.ArgumentParser(prog="microseis")
    sub = p.add_subparsers(dest="command")
    register(sub)
    args = p.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread is several times faster than two
    threads competing with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from trainer.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("evsynth") / "ds"
    generate_dataset(SynthConfig(n_events=24, seed=5, balance="equal"), out)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evcache")


@pytest.fixture(scope="module")
def trained_run(synth, cache, tmp_path_factory) -> Path:
    """cnn1d trained for a dozen full-batch steps on the 24 synthetic events (+ a history)."""
    from trainer.data import load_dataset

    arrays, errors = load_dataset(synth, WindowSpec(), CLASSES, cache_dir=cache, progress=False)
    assert not errors
    torch.manual_seed(0)
    model = build_model("cnn1d")
    inputs = model_inputs(model, arrays.x, arrays.log_peak, 250.0)
    y = torch.from_numpy(arrays.y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(12):
        logits, _ = model(*inputs)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _recalibrate_bn(model, *inputs)
    run = tmp_path_factory.mktemp("evrun") / "cnn1d"
    save_run(run, model, run_info(model, WindowSpec(), CLASSES, {"steps": 12}, {"synthetic": True}))
    history = [{"stage": "train", "epoch": i + 1, "loss": 1.4 / (i + 1), "val_loss": 1.5 / (i + 1),
                "val_macro_f1": 0.3 + 0.06 * i, "lr": 1e-2 * 0.8**i} for i in range(10)]
    (run / "history.json").write_text(json.dumps(history))
    return run


@pytest.fixture(scope="module")
def evaluated(trained_run, synth, cache, tmp_path_factory) -> tuple[Path, dict]:
    from trainer.evaluate import evaluate

    out = tmp_path_factory.mktemp("evout") / "eval"
    metrics = evaluate(trained_run, synth, out, mc_passes=5, gradcam_events=4, cache_dir=cache)
    return out, metrics


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(1)
    return build_model("resnet18_cbam", n_attributes=12).eval()


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_writes_metrics_predictions_and_figures(evaluated, trained_run):
    out, m = evaluated
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == m
    for key in ("macro_f1", "precision", "recall", "f1", "confusion", "magnitude", "uncertainty",
                "model", "data", "synthetic", "gradcam", "plots"):
        assert key in m, key
    for key in ("hit_0_2", "hit_0_3", "mae"):
        assert 0 <= m["magnitude"][key] < 10
    assert set(m["precision"]) == set(CLASSES) and len(m["confusion"]["matrix"]) == 4
    assert m["model"]["path"] == str(trained_run.resolve()) and m["model"]["architecture"] == "cnn1d"
    assert m["data"]["n_events"] == 24 and m["data"]["n_skipped"] == 0
    assert m["synthetic"] == {"model": True, "data": True}
    u = m["uncertainty"]
    for key in ("mean_correct", "mean_wrong", "ratio_wrong_to_correct", "target_ratio", "mc_passes"):
        assert key in u
    assert u["mc_passes"] == 5 == m["mc_passes"]
    # behaviour: a dozen training steps already separate the classes far above chance (0.25)
    assert m["macro_f1"] >= 0.5, m["macro_f1"]

    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    cols = list(rows[0])
    assert cols[:4] == ["path", "line", "label", "predicted"]
    for col in [f"p_{c}" for c in CLASSES] + ["uncertainty", "magnitude", "predicted_magnitude"]:
        assert col in cols
    for r in rows:
        p = np.array([float(r[f"p_{c}"]) for c in CLASSES])
        assert abs(p.sum() - 1) < 1e-4 and CLASSES[int(np.argmax(p))] == r["predicted"]
        assert 0 <= float(r["uncertainty"]) <= 1 and int(r["line"]) >= 2
        assert (r["magnitude"] != "") == (r["label"] == "earthquake")

    for name in ("confusion", "per_class", "magnitude", "uncertainty", "curves"):
        assert name in m["plots"], name
    assert m["gradcam"]["available"] is True and len(m["gradcam"]["events"]) == 4
    gc = [k for k in m["plots"] if k.startswith("gradcam_")]
    assert len(gc) == 4  # one event per true class
    for fname in m["plots"].values():
        _assert_png(out / fname)


def test_spectrogram_model_skips_gradcam_and_magnitude(synth, cache, tmp_path):
    from trainer.evaluate import evaluate

    torch.manual_seed(0)
    model = build_model("spectrogram_cnn")
    save_run(tmp_path / "run", model, run_info(model, WindowSpec(), CLASSES, {}, {"synthetic": True}))
    m = evaluate(tmp_path / "run", synth, tmp_path / "out", mc_passes=2, gradcam_events=4,
                 cache_dir=cache)
    assert m["gradcam"]["available"] is False and "spectrogram_cnn" in m["gradcam"]["reason"]
    assert "magnitude" not in m and any("magnitude" in n for n in m["notes"])
    assert not any(k.startswith("gradcam_") for k in m["plots"])
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv", newline="")))
    assert len(rows) == 24 and all(r["predicted_magnitude"] == "" for r in rows)


def test_unknown_labels_are_reported_with_lines_and_skipped(synth, trained_run, cache, tmp_path):
    from trainer.evaluate import evaluate

    ds = tmp_path / "ds"
    shutil.copytree(synth, ds)
    lines = (ds / "labels.csv").read_text().splitlines()
    parts = lines[3].split(",")
    path4 = parts[0]
    lines[3] = ",".join([parts[0], "avalanche"] + parts[2:])  # labels.csv line 4
    parts = lines[7].split(",")
    lines[7] = ",".join([parts[0], ""] + parts[2:])  # line 8: no label
    (ds / "labels.csv").write_text("\n".join(lines) + "\n")
    m = evaluate(trained_run, ds, tmp_path / "out", mc_passes=1, gradcam_events=0, cache_dir=cache)
    assert m["data"]["n_events"] == 22 and m["data"]["n_skipped"] == 2
    by_line = {s["line"]: s for s in m["data"]["skipped"]}
    assert set(by_line) == {4, 8}
    assert "unknown label 'avalanche'" in by_line[4]["message"]
    assert by_line[4]["path"] == path4
    assert "line 4" in by_line[4]["text"]
    assert m["gradcam"]["available"] is None
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["data"]["skipped"] == m["data"]["skipped"]


def test_without_stations_xml_the_learned_magnitude_is_not_a_number_in_counts(synth, trained_run, cache, tmp_path):
    from trainer.evaluate import evaluate

    ds = tmp_path / "ds"
    shutil.copytree(synth, ds)
    (ds / "stations.xml").unlink()
    m = evaluate(trained_run, ds, tmp_path / "out", mc_passes=1, gradcam_events=0, cache_dir=cache)
    assert m["data"]["units"] == "counts"
    assert "magnitude" not in m
    assert any("needs m/s" in n for n in m["notes"])
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["predicted_magnitude"] == "" for r in rows)


# ------------------------------------------------------------------------------ predict
def test_mc_dropout_passes_differ_and_are_seeded(resnet, synth, cache):
    from trainer.data import load_dataset
    from trainer.models.layers import mc_dropout_modules
    from trainer.predict_torch import predict

    arrays, _ = load_dataset(synth, WindowSpec(), CLASSES, cache_dir=cache, progress=False)
    data = (arrays.x[:6], arrays.log_peak[:6])
    one = predict(resnet, data, 250.0, mc_passes=1)
    mc = predict(resnet, data, 250.0, mc_passes=20, seed=3)
    again = predict(resnet, data, 250.0, mc_passes=20, seed=3)
    other = predict(resnet, data, 250.0, mc_passes=20, seed=4)
    one_b = predict(resnet, data, 250.0, mc_passes=1, seed=99)

    assert one.probs.shape == (6, 4) and mc.mag_probs.shape == (6, 30)
    assert not np.allclose(one.probs, mc.probs)
    np.testing.assert_array_equal(one.probs, one_b.probs)  # no dropout: seed irrelevant
    np.testing.assert_allclose(mc.probs, again.probs, rtol=0, atol=1e-12)
    assert not np.allclose(mc.probs, other.probs)
    for p in (one, mc):
        assert np.all((p.uncertainty >= 0) & (p.uncertainty <= 1))
        assert np.all((p.mutual_information >= 0) & (p.mutual_information <= 1))
        np.testing.assert_allclose(p.probs.sum(1), 1, atol=1e-9)
        np.testing.assert_array_equal(p.pred, p.probs.argmax(1))
        assert np.all(np.isin(np.round(p.magnitude, 2), np.round(0.05 + 0.1 * np.arange(30), 2)))
    assert np.all(one.mutual_information == 0) and np.all(one.std == 0)
    assert np.all(mc.std > 0) and mc.mc_passes == 20
    # the model is handed back deterministic, in eval mode
    assert not resnet.training and not any(m.mc for m in mc_dropout_modules(resnet))
    # EventArrays are accepted directly
    direct = predict(resnet, arrays.subset(np.arange(6)), 250.0, mc_passes=20, seed=3)
    np.testing.assert_allclose(direct.probs, mc.probs, atol=1e-12)


def test_uncertainty_summary_by_hand():
    from trainer.predict_torch import predictions_from_samples

    certain = np.array([[1.0, 0, 0, 0]])
    uniform = np.full((1, 4), 0.25)
    p = predictions_from_samples(np.stack([certain, uniform]))  # (T=2, N=1, C=4)
    mean = np.array([0.625, 0.125, 0.125, 0.125])
    h = -(mean * np.log(mean)).sum() / np.log(4)
    assert p.uncertainty[0] == pytest.approx(h)
    assert p.mutual_information[0] == pytest.approx(h - 0.5)  # mean H of passes = (0 + 1) / 2
    assert p.std[0] == pytest.approx(0.375) and p.pred[0] == 0 and p.magnitude is not None
    assert np.isnan(p.magnitude[0])


# ------------------------------------------------------------------------------ Grad-CAM
def test_gradcam_shape_and_range(resnet, synth, cache):
    from trainer.data import load_dataset
    from trainer.gradcam import GradCamUnsupported, gradcam

    arrays, _ = load_dataset(synth, WindowSpec(), CLASSES, cache_dir=cache, progress=False)
    cam = gradcam(resnet, arrays.x[:3], arrays.log_peak[:3])
    assert cam.shape == (3, 3000) and cam.dtype == np.float32
    # each map is min-max normalised; an untrained model may have no positive evidence for
    # an event, and then its map stays all zero
    assert cam.min() >= 0 and cam.max() <= 1
    assert np.all((cam.max(1) == 1) | (cam.max(1) == 0)) and cam.max() == 1
    cam2 = gradcam(resnet, arrays.x[:3], arrays.log_peak[:3], target=2)
    assert cam2.shape == (3, 3000)
    assert all(p.grad is None for p in resnet.parameters())
    with pytest.raises(GradCamUnsupported):
        gradcam(build_model("spectrogram_cnn"), arrays.x[:1], arrays.log_peak[:1])


def test_gradcam_points_at_the_burst_that_decides_the_class():
    """Class 0 = a 40 Hz burst, class 3 = an 8 Hz burst, anywhere in the window over the same
    noise: only the burst tells the classes apart, so the map must peak on it."""
    from trainer.gradcam import gradcam

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    n, w, fs = 1024, 96, 250.0
    t = np.arange(w) / fs
    bursts = {0: np.sin(2 * np.pi * 40 * t) * np.hanning(w), 3: np.sin(2 * np.pi * 8 * t) * np.hanning(w)}

    def make(b):
        x = rng.normal(0, 0.1, (b, 3, n))
        y = np.where(np.arange(b) % 2 == 0, 0, 3)
        centre = rng.integers(w, n - w, b)
        for i in range(b):
            x[i, :, centre[i] - w // 2:centre[i] + w // 2] += bursts[y[i]] * rng.uniform(0.5, 1, (3, 1))
        x /= np.abs(x).max(axis=(1, 2), keepdims=True)
        return x.astype(np.float32), y, centre

    model = build_model("cnn1d", pools=(2, 2, 2, 2, 2))  # 32 feature steps of 32 samples
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    lp = torch.full((16, 1), -5.0)
    model.train()
    for _ in range(30):
        x, y, _ = make(16)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x), lp)[0], torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, _, _ = make(32)
    _recalibrate_bn(model, torch.from_numpy(x), torch.full((32, 1), -5.0))

    x, y, centre = make(32)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x), torch.full((32, 1), -5.0))[0].argmax(1).numpy() == y).mean())
    assert acc >= 0.8, acc
    cam = gradcam(model, x, np.full(32, -5.0, np.float32))
    near = np.abs(cam.argmax(1) - centre) <= w
    inside = np.array([cam[i, c - w // 2:c + w // 2].mean() for i, c in enumerate(centre)])
    assert near.mean() >= 0.7, near.mean()
    assert (inside > cam.mean(1)).mean() >= 0.8


# ------------------------------------------------------------------------------ command
def test_cli_json_last_line_and_table(trained_run, synth, cache, tmp_path, capsys):
    rc = _cli(["evaluate", "--model", str(trained_run), "--data", str(synth), "--out",
               str(tmp_path / "o"), "--mc-passes", "2", "--gradcam", "0", "--cache-dir", str(cache),
               "--json"])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = json.loads(last)
    assert "macro_f1" in m and m["mc_passes"] == 2 and (tmp_path / "o" / "metrics.json").is_file()

    from trainer.cli.evaluate import format_table

    table = format_table(m)
    assert "macro-F1" in table and "uncertainty" in table and "fracture" in table


def test_cli_errors_are_one_line_exit_2(trained_run, synth, cache, tmp_path, capsys):
    from edge.cli import CommandError

    with pytest.raises(CommandError, match="no such run directory"):
        _cli(["evaluate", "--model", str(tmp_path / "nope"), "--data", str(synth), "--out", str(tmp_path / "o")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no model.pt"):
        _cli(["evaluate", "--model", str(tmp_path / "empty"), "--data", str(synth), "--out", str(tmp_path / "o")])
    bundle = tmp_path / "m.msb"
    bundle.write_bytes(b"PK\x03\x04")
    with pytest.raises(CommandError, match="bundle rejected: not a bundle"):
        _cli(["evaluate", "--model", str(bundle), "--data", str(synth), "--out", str(tmp_path / "o")])
    with pytest.raises(CommandError, match="no such data directory"):
        _cli(["evaluate", "--model", str(trained_run), "--data", str(tmp_path / "nodata"),
              "--out", str(tmp_path / "o")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labels.csv").write_text("path,label\nwaveforms/x.mseed,avalanche\n")
    with pytest.raises(CommandError, match="no usable rows"):
        _cli(["evaluate", "--model", str(trained_run), "--data", str(bad), "--out", str(tmp_path / "o"),
              "--cache-dir", str(cache)])

    # through the installed `microseis` command (entry point), when it is registered
    from importlib.metadata import entry_points

    if "evaluate" not in {ep.name for ep in entry_points(group="microseis.commands")}:
        pytest.skip("evaluate entry point not installed")
    from edge.cli import main

    capsys.readouterr()
    rc = main(["evaluate", "--model", str(tmp_path / "nope"), "--data", str(synth), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("microseis evaluate: error:") and "nope" in err[-1]


def test_gradcam_event_selection_honours_the_total():
    from trainer.evaluate import select_gradcam_events

    y = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    pred = np.array([0, 1, 0, 1, 1, 2, 3, 0])
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.5, 0.4, 0.99])
    sel = select_gradcam_events(y, pred, conf, 4, 2)
    assert sum(len(v) for v in sel.values()) == 2 and set(sel) == {0, 1}
    sel = select_gradcam_events(y, pred, conf, 4, 8)
    assert sel[0] == [0, 1] and sel[1] == [4, 3] and sel[2] == [5] and sel[3] == [6, 7]
    assert select_gradcam_events(y, pred, conf, 4, 0) == {}


def test_history_replot_handles_stages_and_odd_records(tmp_path):
    from trainer.plots import load_history, plot_history

    h = [{"stage": "pretrain", "epoch": i + 1, "loss": 1 / (i + 1), "lr": 1e-3} for i in range(3)]
    h += [{"stage": "train", "epoch": i + 1, "loss": 1 / (i + 1), "val_macro_f1": 0.1 * i,
           "val_hit_0_3": None, "lr": 1e-3, "best": i == 2} for i in range(4)]
    (tmp_path / "history.json").write_text(json.dumps({"epochs": h}))
    assert load_history(tmp_path / "history.json") == h
    assert load_history(tmp_path / "missing.json") is None
    _assert_png(plot_history(tmp_path / "c.png", h, best_epoch=3))
    assert plot_history(tmp_path / "d.png", [{"epoch": 1, "note": "x"}]) is None
