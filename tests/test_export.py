"""``microseis export``: a training run -> int8 ONNX (and TFLite) -> parity report -> signed,
self-checking bundle; ``microseis evaluate`` on a bundle; the shipped default bundle.

The small bundle is built once per session by the project's own commands (conftest
``tiny_bundle``); TFLite export runs only where litert-torch is installed (its own venv,
``.venv-tflite``: see docs/bundle.md).
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edge.cli import main  # noqa: E402
from edge.model.format import DEFAULT_BUNDLE  # noqa: E402
from edge.model.inference import EventClassifier  # noqa: E402
from edge.model.keys import default_trusted_keys  # noqa: E402
from edge.model.verify import inspect_bundle, verify_bundle  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("manifest.json"))


def _export(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["export", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------- the bundle


def test_bundle_manifest_parity_and_selftest(tiny_bundle):
    m = _manifest(tiny_bundle["bundle"])
    assert m["format"] == "microseis-bundle/1"
    assert [f["file"] for f in m["models"]] == ["model.int8.onnx"]
    assert m["models"][0]["default"] and m["models"][0]["precision"] == "int8"
    assert m["input"]["channels"] == ["Z", "N", "E"] and m["input"]["sampling_rate"] == 250.0
    assert m["input"]["n_samples"] == 3000 and m["input"]["window"]["pre_s"] == 2.0
    assert m["mc_dropout"]["how"] == "noise_input" and m["mc_dropout"]["passes"] == 20
    assert m["magnitude_bins"] == {"min": 0.0, "max": 3.0, "width": 0.1, "n": 30}
    # trained on synth output: the manifest says so in plain words
    td = m["training_data"]
    assert td["synthetic"] is True and "SYNTHETIC" in td["description"] and "re-train" in td["notice"]
    # parity: every format built, against the fp32 graph, on the run's data
    par = m["parity"]
    assert par["reference"] == "onnx-fp32" and set(par["formats"]) == {"onnx-fp32", "onnx-int8"}
    assert par["events"] == 60 and par["mc_passes"] == 20
    for fmt in par["formats"].values():
        assert 0 <= fmt["top_class_agreement"] <= 1
        assert fmt["latency_ms"]["p50"] > 0 and fmt["latency_ms"]["p99"] >= fmt["latency_ms"]["p50"]
        assert fmt["size_bytes"] > 0
        for k in ("macro_f1", "macro_f1_drop_points", "hit_0_3", "hit_0_3_drop_points"):
            assert k in fmt
    assert par["formats"]["onnx-fp32"]["top_class_agreement"] == 1.0
    int8, fp32 = par["formats"]["onnx-int8"], par["formats"]["onnx-fp32"]
    assert int8["size_bytes"] < 0.6 * fp32["size_bytes"]  # int8 weights
    # the export of the torch model itself is exact
    assert par["torch_vs_reference"]["top_class_agreement"] == 1.0
    assert par["torch_vs_reference"]["class_probs_max_abs_diff"] < 1e-4
    # the bundle passes its own checks with the test key
    vb = verify_bundle(tiny_bundle["bundle"], trusted_keys=[tiny_bundle["pub"]])
    assert vb.selftest["status"] == "passed"
    # it carries the amplitudes of its training windows (what an uncalibrated station's
    # windows are classified over), in the units it was trained on
    td = vb.manifest.training_data
    q = td["log_peak_quantiles"]
    assert td["units"] == "m/s" and len(q) == 5 and q == sorted(q) and -12 < q[0] < q[-1] < 0


def test_int8_agrees_with_fp32_on_the_same_windows(tiny_bundle, tmp_path, capsys):
    """--fp32 ships both graphs; run through the station's classifier they agree."""
    out = tmp_path / "both.msb"
    rc, _, err = _export(capsys, "--run", str(tiny_bundle["run"]), "--out", str(out), "--key",
                         str(tiny_bundle["key"]), "--int8", "--fp32", "--latency-repeats", "10", "--quiet")
    assert rc == 0, err
    m = _manifest(out)
    assert [(f["file"], f["default"]) for f in m["models"]] == [("model.int8.onnx", True),
                                                               ("model.fp32.onnx", False)]
    vb = verify_bundle(out, trusted_keys=[tiny_bundle["pub"]])
    from edge.model.inference import OnnxRunner, WindowPredictor
    from edge.signal.preprocess import WindowSpec
    from trainer.data import load_dataset

    arrays, _ = load_dataset(tiny_bundle["ds"], WindowSpec(), tuple(m["classes"]), progress=False,
                             use_cache=False)
    preds = {}
    for name in ("model.int8.onnx", "model.fp32.onnx"):
        wp = WindowPredictor(OnnxRunner(vb.file(name)), noise="noise", noise_dim=192, mc_passes=5)
        preds[name] = wp.predict(arrays.x, arrays.log_peak)
    a, b = preds["model.int8.onnx"], preds["model.fp32.onnx"]
    assert np.mean(a.pred == b.pred) >= 0.95
    assert np.abs(a.probs - b.probs).max() < 0.2


def test_export_writes_nothing_on_bad_input(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "x.msb"
    base = ["--run", str(tiny_bundle["run"]), "--out", str(out)]
    (tmp_path / "bad.key").write_text("not a key\n")
    (tmp_path / "empty").mkdir()
    key = str(tiny_bundle["key"])
    cases = [
        (base + ["--key", str(tmp_path / "missing.key")], "signing key .*missing.key"),
        (base + ["--key", str(tmp_path / "bad.key")], "signing key .*bad.key"),
        (["--run", str(tmp_path / "norun"), "--out", str(out), "--key", key], "norun: not a run directory"),
        (base + ["--key", key, "--parity-data", str(tmp_path / "empty")], "parity data .*empty.*labels.csv"),
        (base + ["--key", key, "--mc-passes", "0"], "--mc-passes must be >= 1"),
    ]
    import re

    for argv, pattern in cases:
        rc, _, err = _export(capsys, *argv)
        line = err.strip().splitlines()[-1]
        assert rc == 2 and line.startswith("microseis export: error:"), (argv, err)
        assert re.search(pattern, line), (pattern, line)
    assert not out.exists()


def test_cli_json_and_synthetic_note(tiny_bundle, tmp_path):
    out = tmp_path / "j.msb"
    res = subprocess.run([sys.executable, "-m", "edge", "export", "--run", str(tiny_bundle["run"]),
                          "--out", str(out), "--key", str(tiny_bundle["key"]), "--int8",
                          "--latency-repeats", "10", "--quiet", "--json"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    j = json.loads(res.stdout.strip().splitlines()[-1])
    assert j["path"] == str(out) and j["size"] == out.stat().st_size and j["synthetic"] is True
    assert j["shipped"] == ["model.int8.onnx"] and "onnx-int8" in j["parity"]["formats"]
    assert inspect_bundle(out)["name"] == j["name"] == "microseis-resnet18-cbam"


# --------------------------------------------------------------------------- evaluate on a bundle


def test_evaluate_accepts_a_bundle(tiny_bundle, tmp_path, capsys):
    rc = main(["evaluate", "--model", str(tiny_bundle["bundle"]), "--pubkey", str(tiny_bundle["pub"]),
               "--data", str(tiny_bundle["ds"]), "--out", str(tmp_path / "ev"), "--mc-passes", "5",
               "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["n"] == 60 and 0 <= metrics["macro_f1"] <= 1
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["macro_f1"] == metrics["macro_f1"]
    rows = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 61
    # the bundle's predictions are the station classifier's
    clf = EventClassifier.load(tiny_bundle["bundle"], trusted_keys=[tiny_bundle["pub"]], mc_passes=5)
    assert clf.info.precision == "int8"


def test_evaluate_refuses_untrusted_bundle(tiny_bundle, tmp_path, capsys):
    rc = main(["evaluate", "--model", str(tiny_bundle["bundle"]), "--data", str(tiny_bundle["ds"]),
               "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "untrusted key" in err and not (tmp_path / "ev" / "metrics.json").exists()


# --------------------------------------------------------------------------- TFLite (own venv)


def test_tflite_export_and_run(tiny_bundle, tmp_path, capsys):
    pytest.importorskip("litert_torch", reason="TFLite export needs litert-torch (.venv-tflite)")
    out = tmp_path / "t.msb"
    rc, _, err = _export(capsys, "--run", str(tiny_bundle["run"]), "--out", str(out), "--key",
                         str(tiny_bundle["key"]), "--int8", "--tflite", "--latency-repeats", "10", "--quiet")
    assert rc == 0, err
    m = _manifest(out)
    assert {"tflite-fp32", "tflite-int8"} <= set(m["parity"]["formats"])
    assert [f["file"] for f in m["models"]] == ["model.int8.onnx", "model.int8.tflite"]
    onnx = EventClassifier.load(out, trusted_keys=[tiny_bundle["pub"]], runtime="onnx", mc_passes=3)
    tfl = EventClassifier.load(out, trusted_keys=[tiny_bundle["pub"]], runtime="tflite", mc_passes=3)
    assert tfl.info.format == "tflite" and onnx.info.format == "onnx"
    assert m["parity"]["formats"]["tflite-fp32"]["top_class_agreement"] >= 0.95


# --------------------------------------------------------------------------- the shipped bundle


def test_shipped_default_bundle():
    """The bundle a station starts with: signed by the project key that ships in edge/keys,
    at most 1 MB, says it is synthetic, and its stored parity meets the export targets."""
    assert DEFAULT_BUNDLE.is_file() and DEFAULT_BUNDLE.stat().st_size <= 1_000_000
    vb = verify_bundle(DEFAULT_BUNDLE, default_trusted_keys())  # the keys in edge/keys/
    assert vb.selftest["status"] == "passed"
    m = _manifest(DEFAULT_BUNDLE)
    assert m["models"][0]["precision"] == "int8" and m["models"][0]["format"] == "onnx"
    assert m["training_data"]["synthetic"] is True and "SYNTHETIC" in m["description"]
    par = m["parity"]
    assert par["events"] >= 1000 and "bench-test" in par["dataset"]
    int8 = par["formats"]["onnx-int8"]
    assert int8["top_class_agreement"] >= 0.99
    assert int8["macro_f1_drop_points"] <= 1.0 and int8["hit_0_3_drop_points"] <= 1.0
    clf = EventClassifier.load()
    assert clf.classes == ("fracture", "rockfall", "earthquake", "noise")
