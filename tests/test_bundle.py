"""Signed model bundles: writer (export side), verifier/installer (station side), CLI.

A tiny real ONNX model is built with ``onnx.helper`` (no torch): class and magnitude
probabilities from the mean absolute amplitude of each channel and ``log_peak``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from obspy import UTCDateTime  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edge.model.format  # noqa: E402
import edge.model.keys  # noqa: E402
from edge.model import selftest  # noqa: E402
from edge.model.container import read_entries  # noqa: E402
from edge.model.format import BundleError  # noqa: E402
from edge.model.install import (  # noqa: E402
    current_model_dir,
    install_bundle,
    previous_model_dir,
    read_manifest,
    rollback,
)
from edge.model.keys import key_id, load_public_key  # noqa: E402
from edge.model.manifest import StationCompat  # noqa: E402
from edge.model.runtime import run_onnx  # noqa: E402
from edge.model.verify import inspect_bundle, verify_bundle  # noqa: E402
from edge.signal.labels import CLASSES, N_MAG_BINS  # noqa: E402
from edge.signal.preprocess import Window, WindowSpec  # noqa: E402
from export.bundle_writer import make_selftest, write_bundle, zip_entries  # noqa: E402
from export.signing import generate_keypair, load_private_key, signature_file  # noqa: E402

N = WindowSpec().n_samples  # 3000
ZNE = StationCompat(channels=("Z", "N", "E"), sampling_rate=250.0)


# --------------------------------------------------------------------------- fixtures


def tiny_model(kind: str = "plain", seed: int = 0) -> bytes:
    """x (B,3,N), log_peak (B,1) [, noise (B,4)] -> class_probs (B,4), mag_probs (B,30).

    ``kind="random"`` adds a RandomUniformLike term (samples inside the graph);
    ``kind="noise"`` applies a dropout mask from the ``noise`` input."""
    rng = np.random.default_rng(seed)
    wc = numpy_helper.from_array(rng.normal(size=(4, len(CLASSES))).astype(np.float32), "wc")
    wm = numpy_helper.from_array(rng.normal(size=(4, N_MAG_BINS)).astype(np.float32), "wm")
    bc = numpy_helper.from_array(rng.normal(size=(len(CLASSES),)).astype(np.float32), "bc")
    nodes = [
        helper.make_node("Abs", ["x"], ["ax"]),
        helper.make_node("ReduceMean", ["ax"], ["m"], axes=[2], keepdims=0),
        helper.make_node("Concat", ["m", "log_peak"], ["feat0"], axis=1),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, N]),
              helper.make_tensor_value_info("log_peak", TensorProto.FLOAT, ["B", 1])]
    inits = [wc, wm, bc]
    if kind == "noise":
        inputs.append(helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["B", 4]))
        inits += [numpy_helper.from_array(np.array(0.2, np.float32), "p"),
                  numpy_helper.from_array(np.array(1.25, np.float32), "scale")]
        nodes += [helper.make_node("GreaterOrEqual", ["noise", "p"], ["keepb"]),
                  helper.make_node("Cast", ["keepb"], ["keep"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["feat0", "keep"], ["f1"]),
                  helper.make_node("Mul", ["f1", "scale"], ["feat"])]
    else:
        nodes.append(helper.make_node("Identity", ["feat0"], ["feat"]))
    nodes += [helper.make_node("MatMul", ["feat", "wc"], ["c0"]),
              helper.make_node("Add", ["c0", "bc"], ["c1"])]
    if kind == "random":
        nodes += [helper.make_node("RandomUniformLike", ["c1"], ["r"], low=0.0, high=1.0),
                  helper.make_node("Add", ["c1", "r"], ["c"])]
    else:
        nodes.append(helper.make_node("Identity", ["c1"], ["c"]))
    nodes += [helper.make_node("Softmax", ["c"], ["class_probs"], axis=1),
              helper.make_node("MatMul", ["feat", "wm"], ["mg"]),
              helper.make_node("Softmax", ["mg"], ["mag_probs"], axis=1)]
    outputs = [helper.make_tensor_value_info("class_probs", TensorProto.FLOAT, ["B", len(CLASSES)]),
               helper.make_tensor_value_info("mag_probs", TensorProto.FLOAT, ["B", N_MAG_BINS])]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def selftest_inputs(kind: str = "plain") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, N)).astype(np.float32)
    x /= np.abs(x).max(axis=(1, 2), keepdims=True)
    inputs = {"x": x, "log_peak": rng.uniform(-7, -3, size=(4, 1)).astype(np.float32)}
    if kind == "noise":
        inputs["noise"] = rng.uniform(size=(4, 4)).astype(np.float32)
    return inputs


def manifest_for(kind: str = "plain", **over) -> dict:
    inputs = [{"name": "x", "shape": ["B", 3, N], "dtype": "float32", "kind": "waveform"},
              {"name": "log_peak", "shape": ["B", 1], "dtype": "float32", "kind": "log_peak"}]
    mc = {"how": "none", "passes": 1}
    if kind == "noise":
        inputs.append({"name": "noise", "shape": ["B", 4], "dtype": "float32", "kind": "noise"})
        mc = {"how": "noise_input", "passes": 20, "input": "noise", "p": 0.2}
    m = {
        "name": "tiny-cnn", "version": "1.0.0", "created": "2026-05-01T12:00:00Z",
        "description": "tiny test model",
        "classes": list(CLASSES),
        "magnitude_bins": {"min": 0.0, "max": 3.0, "width": 0.1, "n": N_MAG_BINS},
        "input": {"channels": ["Z", "N", "E"], "sampling_rate": 250.0, "n_samples": N,
                  "window": WindowSpec().to_dict()},
        "inputs": inputs,
        "outputs": [{"name": "class_probs", "shape": ["B", len(CLASSES)], "dtype": "float32",
                     "kind": "class_probs"},
                    {"name": "mag_probs", "shape": ["B", N_MAG_BINS], "dtype": "float32",
                     "kind": "mag_probs"}],
        "mc_dropout": mc,
        "models": [{"file": "model.int8.onnx", "format": "onnx", "precision": "int8", "default": True}],
        "training_data": {"description": "synthetic events from microseis synth, seed 0",
                          "synthetic": True,
                          "notice": "trained on SYNTHETIC data only: not validated on real recordings"},
        "parity": {"top_class_agreement": 1.0, "max_abs_diff": 0.0, "per_class": {"noise": 1.0}},
        "selftest": {"atol": {"class_probs": 1e-4, "mag_probs": 1e-4}, "top_class_must_match": True,
                     "class_output": "class_probs"},
        "software": "microseis-edge test",
    }
    m.update(over)
    return m


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    priv, pub = generate_keypair(d, "proj")
    opriv, opub = generate_keypair(d, "other")
    return {"priv": load_private_key(priv), "pub": pub, "other_priv": load_private_key(opriv),
            "other_pub": opub, "dir": d}


@pytest.fixture(scope="module")
def model() -> bytes:
    return tiny_model()


def build(path: Path, keys, model_bytes: bytes, kind: str = "plain", expected_edit=None,
          key=None, verify: bool = True, **manifest_over) -> Path:
    inputs = selftest_inputs(kind)
    expected = run_onnx(model_bytes, inputs)
    if expected_edit:
        expected = expected_edit(expected)
    return write_bundle(path, manifest_for(kind, **manifest_over), {"model.int8.onnx": model_bytes},
                        make_selftest(inputs, expected), key or keys["priv"], verify=verify)


@pytest.fixture(scope="module")
def good(tmp_path_factory, keys, model) -> Path:
    return build(tmp_path_factory.mktemp("b") / "tiny.msb", keys, model)


def entries_of(path: Path) -> dict[str, bytes]:
    return read_entries(path.read_bytes())


def reject(source, keys_list, match: str, code: str | None = None, **kw) -> BundleError:
    with pytest.raises(BundleError) as ei:
        verify_bundle(source, keys_list, **kw)
    assert match in str(ei.value), str(ei.value)
    if code:
        assert ei.value.code == code
    return ei.value


# --------------------------------------------------------------------------- format


def test_good_bundle_verifies_and_is_deterministic(good, keys, model, tmp_path):
    vb = verify_bundle(good, [keys["pub"]], station=ZNE)
    assert vb.key_id == key_id(load_public_key(keys["pub"])) == vb.manifest.signer
    assert vb.selftest["status"] == "passed" and vb.selftest["rows"] == 4
    assert vb.selftest["outputs"]["class_probs"]["max_abs_diff"] <= 1e-4
    assert vb.manifest.default_model.file == "model.int8.onnx" and vb.manifest.synthetic
    assert any("SYNTHETIC" in n for n in vb.notes)
    # a directory of *.pub and a {key id: key} mapping work too
    verify_bundle(good.read_bytes(), [keys["dir"]], station=ZNE, run_selftest=False)
    # plain uncompressed ZIP, sorted names, fixed timestamps; same inputs -> same bytes
    with zipfile.ZipFile(good) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(["manifest.json", "signature.json",
                                                  "model.int8.onnx", "selftest.npz"])
    assert all(i.compress_type == zipfile.ZIP_STORED and i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert build(tmp_path / "again.msb", keys, model).read_bytes() == good.read_bytes()
    man = json.loads(entries_of(good)["manifest.json"])
    assert set(man["files"]) == {"model.int8.onnx", "selftest.npz"}
    assert man["models"][0]["sha256"] == man["files"]["model.int8.onnx"]["sha256"]
    sig = json.loads(entries_of(good)["signature.json"])
    assert sig["key_id"] == vb.key_id and sig["algorithm"] == "ed25519"


def test_inspect_needs_no_key(good):
    info = inspect_bundle(good)
    assert {"path", "name", "version", "sha256", "classes"} <= set(info)
    assert info["name"] == "tiny-cnn" and info["version"] == "1.0.0" and info["classes"] == list(CLASSES)
    import hashlib
    assert info["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert info["synthetic"] is True and info["verified"] is False
    assert info["parity"] == {"top_class_agreement": 1.0, "max_abs_diff": 0.0}
    assert info["models"][0]["default"] is True and info["signer"] == info["signature_key_id"]


def test_noise_input_mc_dropout_bundle_verifies(keys, tmp_path):
    m = tiny_model("noise")
    vb = verify_bundle(build(tmp_path / "n.msb", keys, m, kind="noise"), [keys["pub"]], station=ZNE)
    assert vb.selftest["status"] == "passed" and vb.manifest.mc_dropout["how"] == "noise_input"


# --------------------------------------------------------------------------- rejections


def test_flipped_byte_in_model_file(good, keys, model):
    data = bytearray(good.read_bytes())
    at = bytes(data).find(model) + len(model) // 2
    data[at] ^= 0x01
    reject(bytes(data), [keys["pub"]], "model.int8.onnx: sha256 mismatch", "hash_mismatch")


def test_flipped_byte_in_manifest(good, keys):
    data = good.read_bytes()
    assert data.count(b'"tiny test model"') == 1
    bad = data.replace(b'"tiny test model"', b'"tiny test modeL"')
    reject(bad, [keys["pub"]], "signature invalid", "bad_signature")


def test_wrong_key(good, keys):
    other = key_id(load_public_key(keys["other_pub"]))
    signer = key_id(load_public_key(keys["pub"]))
    err = reject(good, [keys["other_pub"]], f"signed by untrusted key {signer}", "untrusted_key")
    assert other in str(err)
    reject(good, [], "signed by untrusted key", "untrusted_key")


def test_signature_swapped_for_another_keys(good, keys):
    """A valid-looking signature.json by the other (trusted) key over the real manifest bytes
    of *another* manifest: the manifest's signer field does not match."""
    e = entries_of(good)
    e["signature.json"] = signature_file(e["manifest.json"], keys["other_priv"])
    reject(zip_entries(e), [keys["pub"], keys["other_pub"]], "manifest names signer", "bad_signature")


def test_missing_and_extra_files(good, keys):
    e = entries_of(good)
    del e["model.int8.onnx"]
    reject(zip_entries(e), [keys["pub"]],
           "model.int8.onnx is listed in the manifest but missing from the bundle", "missing_file")
    e = entries_of(good)
    del e["signature.json"]
    reject(zip_entries(e), [keys["pub"]], "bundle has no signature.json", "missing_file")
    e = entries_of(good)
    del e["manifest.json"]
    reject(zip_entries(e), [keys["pub"]], "bundle has no manifest.json", "missing_file")
    e = entries_of(good)
    e["extra.bin"] = b"payload"
    reject(zip_entries(e), [keys["pub"]], "unlisted file 'extra.bin'", "extra_file")


def test_truncated_not_zip_and_oversized(good, keys, tmp_path):
    data = good.read_bytes()
    reject(data[: len(data) // 2], [keys["pub"]], "truncated or corrupt ZIP", "not_zip")
    reject(data[:-10], [keys["pub"]], "truncated or corrupt ZIP", "not_zip")
    reject(b"hello, I am not a bundle" * 4, [keys["pub"]], "not a ZIP archive", "not_zip")
    reject(b"", [keys["pub"]], "not a ZIP archive", "not_zip")
    reject(good, [keys["pub"]], f"bundle is {len(data)} bytes, more than the 1000-byte limit",
           "too_large", max_bytes=1000)
    reject(data, [keys["pub"]], "more than the limit of 3", "too_large", max_entries=3)
    reject(tmp_path / "nope.msb", [keys["pub"]], "no such bundle file", "not_found")


@pytest.mark.parametrize("name", ["../evil.onnx", "/etc/evil", "sub/model.onnx", ".hidden", "a\\b"])
def test_unsafe_entry_names(good, keys, name):
    e = entries_of(good)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, body in e.items():
            zf.writestr(n, body)
        zf.writestr(zipfile.ZipInfo(name), b"x")
    reject(buf.getvalue(), [keys["pub"]], "unsafe entry name", "unsafe_name")


def test_compressed_and_duplicate_entries(good, keys):
    e = entries_of(good)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, body in e.items():
            zf.writestr(n, body)
    reject(buf.getvalue(), [keys["pub"]], "is compressed", "not_zip")
    buf = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "w") as zf:
        for n, body in e.items():
            zf.writestr(n, body)
        zf.writestr("model.int8.onnx", b"evil")
    reject(buf.getvalue(), [keys["pub"]], "duplicate entry 'model.int8.onnx'", "unsafe_name")


def test_station_with_other_channels_or_rate(good, keys):
    reject(good, [keys["pub"]], "the model needs channels Z,N,E but the station has Z (missing N,E)",
           "incompatible", station=StationCompat(channels=("Z",), sampling_rate=250.0))
    reject(good, [keys["pub"]], "the station's sampling_rate 333.3333 Hz cannot be resampled to "
           "the model's 250 Hz", "incompatible", station=StationCompat(sampling_rate=333.3333))
    reject(good, [keys["pub"]], "the model needs 250 Hz but the station samples at 100 Hz",
           "incompatible", station=StationCompat(sampling_rate=100.0, allow_upsample=False))
    # a slower digitizer is accepted, with a note saying what the model cannot see
    vb = verify_bundle(good, [keys["pub"]], station=StationCompat(sampling_rate=100.0), run_selftest=False)
    assert "digitizer 100 Hz < model 250 Hz: the model cannot see above 50 Hz (upsampled to 250 Hz)" in vb.notes
    reject(good, [keys["pub"]], "differ from the station's", "incompatible",
           station=StationCompat(classes=("earthquake", "noise")))
    # a faster digitizer downsamples (as preprocess_stream does); Z12 channels are Z, N, E
    vb = verify_bundle(good, [keys["pub"]], station=StationCompat(channels=("Z", "1", "2"), sampling_rate=500.0),
                       run_selftest=False)
    assert any("downsamples 500 Hz" in n for n in vb.notes)


def test_selftest_mismatch_after_resigning(keys, model, tmp_path):
    def edit(exp):
        exp = dict(exp)
        exp["class_probs"] = exp["class_probs"].copy()
        exp["class_probs"][2, 1] += 0.25
        return exp

    path = build(tmp_path / "st.msb", keys, model, expected_edit=edit, verify=False)
    # signature and hashes are fine ...
    verify_bundle(path, [keys["pub"]], station=ZNE, run_selftest=False)
    # ... only the self-test fails, naming the output, the difference and the tolerance
    err = reject(path, [keys["pub"]], "self-test mismatch: output 'class_probs' differs from the "
                 "expected values by up to 0.25 (tolerance 0.0001)", "selftest", station=ZNE)
    assert "mag_probs" not in str(err)
    with pytest.raises(BundleError, match="self-test mismatch"):  # the writer refuses it
        build(tmp_path / "st2.msb", keys, model, expected_edit=edit)
    assert not (tmp_path / "st2.msb").exists()


def test_graph_that_samples_inside_is_refused(keys, tmp_path):
    with pytest.raises(BundleError, match="is not deterministic"):
        build(tmp_path / "r.msb", keys, tiny_model("random"))
    with pytest.raises(ValueError, match="feed the dropout noise as a graph input"):
        build(tmp_path / "r.msb", keys, tiny_model(), mc_dropout={"how": "random_op", "passes": 20})


def test_manifest_lying_about_the_graph(keys, model, tmp_path):
    m = manifest_for()
    m["inputs"][1]["shape"] = ["B", 2]
    with pytest.raises(BundleError, match="input 'log_peak' has shape"):
        build(tmp_path / "l.msb", keys, model, inputs=m["inputs"])


def test_signed_bad_json_and_unknown_format(good, keys):
    e = entries_of(good)
    e["manifest.json"] = b"{not json"
    e["signature.json"] = signature_file(e["manifest.json"], keys["priv"])
    reject(zip_entries(e), [keys["pub"]], "manifest.json is not valid JSON", "bad_manifest")
    e = entries_of(good)
    man = json.loads(e["manifest.json"])
    man["format"] = "microseis-bundle/2"
    e["manifest.json"] = json.dumps(man).encode()
    e["signature.json"] = signature_file(e["manifest.json"], keys["priv"])
    reject(zip_entries(e), [keys["pub"]], "unknown bundle format 'microseis-bundle/2'", "unknown_format")


def test_writer_insists_on_plain_synthetic_notice(keys, model, tmp_path):
    td = {"description": "synthetic events", "synthetic": True, "notice": ""}
    with pytest.raises(ValueError, match="must say so plainly"):
        build(tmp_path / "s.msb", keys, model, training_data=td)
    with pytest.raises(ValueError, match="^manifest: training_data.synthetic: is missing$"):
        build(tmp_path / "s.msb", keys, model, training_data={"description": "real"})
    assert not (tmp_path / "s.msb").exists()


def test_tflite_only_bundle_skips_selftest_and_is_not_installed(keys, tmp_path, monkeypatch):
    monkeypatch.setattr(selftest, "litert_available", lambda: False)
    inputs = selftest_inputs()
    expected = {"class_probs": np.full((4, 4), 0.25, np.float32),
                "mag_probs": np.full((4, N_MAG_BINS), 1 / N_MAG_BINS, np.float32)}
    man = manifest_for(models=[{"file": "model.int8.tflite", "format": "tflite", "precision": "int8",
                                "default": True}])
    path = write_bundle(tmp_path / "t.msb", man, {"model.int8.tflite": b"TFL3 not really"},
                        make_selftest(inputs, expected), keys["priv"])
    vb = verify_bundle(path, [keys["pub"]])
    assert vb.selftest["status"] == "skipped" and "ai-edge-litert is not installed" in vb.selftest["note"]
    with pytest.raises(BundleError, match="not installed: self-test skipped"):
        install_bundle(path.read_bytes(), tmp_path / "models", [keys["pub"]], ZNE)
    assert current_model_dir(tmp_path / "models") is None


# --------------------------------------------------------------------------- install


def _amplitude_bundle(tmp_path, keys, quantiles) -> Path:
    td = {"description": "synthetic", "synthetic": True, "units": "m/s",
          "notice": "trained on SYNTHETIC data only: not validated on real recordings"}
    if quantiles is not None:
        td["log_peak_quantiles"] = quantiles
    return build(tmp_path / "amp.msb", keys, tiny_model("noise"), kind="noise", training_data=td)


def _window(scale: float, units: str) -> Window:
    rng = np.random.default_rng(4)
    data = (rng.normal(size=(3, N)) * scale).astype(np.float32)
    return Window(data=data, starttime=UTCDateTime(0), sampling_rate=250.0, present=(True,) * 3,
                  coverage=1.0, units=units)


def test_window_of_unknown_calibration_is_classified_over_the_training_amplitudes(keys, tmp_path):
    """An m/s model on a station without response (counts): the amplitude input is not a
    number in counts but the bundle's training amplitudes, one per MC pass -- the classes do
    not depend on the digitizer's gain. In m/s the amplitude counts."""
    from edge.model.inference import EventClassifier

    clf = EventClassifier.load(_amplitude_bundle(tmp_path, keys, [-7.0, -5.0, -3.0]), trusted_keys=[keys["pub"]])
    assert clf.marginalises_amplitude and clf.input_units == "m/s"
    p1, p2 = (clf.predict_window(_window(k, "counts")).probs for k in (1.0, 1000.0))
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    assert np.isnan(clf.model_input(_window(1.0, "counts"))[1])
    # the same windows said to be m/s: their amplitudes reach the graph
    q1, q2 = (clf.predict_window(_window(k, "m/s")).probs for k in (1e-6, 1e-3))
    assert np.abs(q1 - q2).max() > 1e-3
    # the marginal is the mean over the prior: neither end of it alone
    lo, hi = (clf.predict(clf.model_input(_window(1.0, "counts"))[0][None], np.array([v], np.float32)).probs
              for v in (-7.0, -3.0))
    assert np.abs(p1 - lo).max() > 1e-4 and np.abs(p1 - hi).max() > 1e-4


def test_older_bundle_without_training_amplitudes_feeds_the_window_peak(keys, tmp_path):
    from edge.model.inference import EventClassifier

    clf = EventClassifier.load(_amplitude_bundle(tmp_path, keys, None), trusted_keys=[keys["pub"]])
    assert not clf.marginalises_amplitude
    w = _window(1000.0, "counts")
    assert clf.model_input(w)[1] == pytest.approx(np.log10(np.abs(w.data).max()))


@pytest.mark.parametrize("bad", [[], ["a"], [True], [1e9], list(range(40)), "x"])
def test_bad_training_amplitudes_refused_naming_the_field(keys, tmp_path, bad):
    from edge.model.inference import EventClassifier

    with pytest.raises(BundleError) as ei:
        EventClassifier.load(_amplitude_bundle(tmp_path, keys, bad), trusted_keys=[keys["pub"]])
    assert "training_data.log_peak_quantiles" in str(ei.value)


def test_install_switch_reject_and_rollback(keys, model, good, tmp_path):
    models = tmp_path / "models"
    v2 = build(tmp_path / "v2.msb", keys, model, version="1.1.0")
    v3 = build(tmp_path / "v3.msb", keys, model, version="1.2.0")
    a = install_bundle(good.read_bytes(), models, [keys["pub"]], ZNE)
    assert current_model_dir(models) == a and previous_model_dir(models) is None
    assert a.name.startswith("tiny-cnn-1.0.0-") and (a / "model.int8.onnx").read_bytes() == model
    assert (a / "bundle.msb").read_bytes() == good.read_bytes()
    assert read_manifest(a).version == "1.0.0"
    b = install_bundle(v2.read_bytes(), models, [keys["pub"]], ZNE)
    assert current_model_dir(models) == b and previous_model_dir(models) == a
    # installing the current bundle again changes nothing (it says so)
    with pytest.raises(BundleError, match="already installed") as ei:
        install_bundle(v2.read_bytes(), models, [keys["pub"]], ZNE)
    assert ei.value.code == "already_installed"
    assert current_model_dir(models) == b and previous_model_dir(models) == a

    before = sorted(p.name for p in models.iterdir())
    data = bytearray(v3.read_bytes())
    at = bytes(data).find(model) + 100
    data[at] ^= 0xFF
    bad_cases = [
        (bytes(data), ZNE, "sha256 mismatch"),
        (v3.read_bytes(), StationCompat(channels=("Z",), sampling_rate=250.0), "station has Z"),
        (v3.read_bytes()[:500], ZNE, "truncated"),
    ]
    for blob, station, why in bad_cases:
        with pytest.raises(BundleError, match=why):
            install_bundle(blob, models, [keys["pub"]], station)
        assert current_model_dir(models) == b and previous_model_dir(models) == a
        assert sorted(p.name for p in models.iterdir()) == before  # nothing half-installed
    with pytest.raises(BundleError, match="untrusted key"):
        install_bundle(v3.read_bytes(), models, [keys["other_pub"]], ZNE)
    assert sorted(p.name for p in models.iterdir()) == before

    assert rollback(models) == a
    assert current_model_dir(models) == a and previous_model_dir(models) == b
    assert rollback(models) == b  # a second rollback undoes the first
    c = install_bundle(v3.read_bytes(), models, [keys["pub"]], ZNE)
    assert current_model_dir(models) == c and previous_model_dir(models) == b
    assert not a.exists()  # neither current nor previous: pruned
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == sorted(
        ["current", "previous", b.name, c.name])


def test_older_version_refused_unless_allowed_once(keys, model, good, tmp_path):
    """Anti-rollback: an older bundle signed by a trusted key is refused (2.0.0 -> 1.0.0 ->
    0.0.1 must not install); naming its sha256 in allow_downgrade lets exactly that one in, and
    the model it replaced stays the rollback target."""
    models = tmp_path / "models"
    v2 = build(tmp_path / "v2.msb", keys, model, version="2.0.0")
    v0 = build(tmp_path / "v0.msb", keys, model, version="0.0.1")
    top = install_bundle(v2.read_bytes(), models, [keys["pub"]], ZNE)
    for older in (good, v0):
        with pytest.raises(BundleError, match=r"older than the installed 2\.0\.0") as ei:
            install_bundle(older.read_bytes(), models, [keys["pub"]], ZNE)
        assert ei.value.code == "downgrade" and current_model_dir(models) == top
    # allowed for another bundle: still refused
    with pytest.raises(BundleError, match="older"):
        install_bundle(v0.read_bytes(), models, [keys["pub"]], ZNE,
                       allow_downgrade=hashlib.sha256(good.read_bytes()).hexdigest())
    down = install_bundle(good.read_bytes(), models, [keys["pub"]], ZNE,
                          allow_downgrade=hashlib.sha256(good.read_bytes()).hexdigest())
    assert current_model_dir(models) == down and previous_model_dir(models) == top
    # the station's running model may be given explicitly (e.g. the shipped default)
    with pytest.raises(BundleError, match="older than the installed 9"):
        install_bundle(v2.read_bytes(), tmp_path / "other", [keys["pub"]], ZNE, running=("9", "0" * 64))


def test_rollback_without_previous(keys, good, tmp_path):
    with pytest.raises(BundleError, match="no previous model"):
        rollback(tmp_path)
    install_bundle(good.read_bytes(), tmp_path / "m", [keys["pub"]], ZNE)
    with pytest.raises(BundleError, match="no previous model to roll back to"):
        rollback(tmp_path / "m")


# --------------------------------------------------------------------------- CLI


def _main(monkeypatch, argv):
    """``microseis`` with the keygen and bundle plug-ins (whether or not they are registered)."""
    import edge.cli as cli

    class _EP:
        def __init__(self, name, load):
            self.name, self._load = name, load

        def load(self):
            return self._load()

    def keygen():
        from export.cli.keygen import register
        return register

    def bundle():
        from edge.cli.bundle import register
        return register

    monkeypatch.setattr(cli, "entry_points", lambda group: [_EP("keygen", keygen), _EP("bundle", bundle)])
    return cli.main(argv)


def test_cli_keygen(monkeypatch, tmp_path, capsys):
    rc = _main(monkeypatch, ["keygen", "--out", str(tmp_path / "k"), "--name", "site", "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["private_key"].endswith("site.key") and len(res["key_id"]) == 16
    assert stat.S_IMODE(os.stat(res["private_key"]).st_mode) == 0o600
    assert key_id(load_public_key(res["public_key"])) == res["key_id"]
    rc = _main(monkeypatch, ["keygen", "--out", str(tmp_path / "k"), "--name", "site"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "already exists; refusing to overwrite" in err[0]


def test_cli_verify_exit_codes(monkeypatch, good, keys, tmp_path, capsys):
    pub = str(keys["pub"])
    assert _main(monkeypatch, ["bundle", "verify", str(good), "--pubkey", pub]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {good}: tiny-cnn 1.0.0") and "self-test: passed" in out and "SYNTHETIC" in out

    assert _main(monkeypatch, ["bundle", "verify", str(good), "--pubkey", pub, "--json",
                               "--channels", "HHZ,HHN,HHE", "--rate", "250"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["ok"] and res["selftest"]["status"] == "passed" and res["name"] == "tiny-cnn"

    rc = _main(monkeypatch, ["bundle", "verify", str(good), "--pubkey", str(keys["other_pub"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "REJECTED: signed by untrusted key" in err[0]

    rc = _main(monkeypatch, ["bundle", "verify", str(good), "--pubkey", pub, "--channels", "Z", "--json"])
    cap = capsys.readouterr()
    res = json.loads(cap.out.strip().splitlines()[-1])
    assert rc == 1 and not res["ok"] and res["code"] == "incompatible" and "station has Z" in res["error"]

    bad = tmp_path / "bad.msb"
    bad.write_bytes(good.read_bytes()[:300])
    assert _main(monkeypatch, ["bundle", "verify", str(bad), "--pubkey", pub]) == 1
    assert "truncated" in capsys.readouterr().err

    missing = tmp_path / "edge_models" / "default.msb"
    monkeypatch.setattr(edge.model.format, "DEFAULT_BUNDLE", missing)
    assert _main(monkeypatch, ["bundle", "verify", "--pubkey", pub]) == 1
    assert f"no shipped default bundle at {missing}" in capsys.readouterr().err
    monkeypatch.setattr(edge.model.keys, "KEYS_DIR", tmp_path / "no_keys")
    assert _main(monkeypatch, ["bundle", "verify", str(good)]) == 1
    assert "no trusted public keys" in capsys.readouterr().err


def test_cli_inspect(monkeypatch, good, capsys, tmp_path):
    assert _main(monkeypatch, ["bundle", "inspect", str(good), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"path", "name", "version", "sha256", "classes"} <= set(res)
    assert res["path"] == str(good) and res["classes"] == list(CLASSES)
    assert _main(monkeypatch, ["bundle", "inspect", str(good)]) == 0
    out = capsys.readouterr().out
    assert "tiny-cnn" in out and "SYNTHETIC" in out and "not verified" in out
    junk = tmp_path / "junk.msb"
    junk.write_bytes(b"junk" * 10)
    assert _main(monkeypatch, ["bundle", "inspect", str(junk)]) == 2
    assert "not a ZIP archive" in capsys.readouterr().err


# --------------------------------------------------------------------------- the manifest schema


def _shipped_manifest() -> dict:
    with zipfile.ZipFile(Path(edge.model.format.__file__).parents[1] / "models" / "default.msb") as z:
        return json.loads(z.read("manifest.json"))


def _set(d: dict, path: tuple, value) -> dict:
    d = json.loads(json.dumps(d))
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


@pytest.mark.parametrize("path, value, message", [
    (("input", "sampling_rate"), 0, "input.sampling_rate: must be > 0, got 0"),
    (("input", "channels"), ["Z", "Z", "E"], "input.channels: must be distinct, got [\"Z\", \"Z\", \"E\"]"),
    (("inputs", 0, "shape"), ["B", 0, 3000], "inputs[0].shape[1]: must be > 0, got 0"),
    (("inputs", 0, "shape"), ["B", 1.5, 3000], "inputs[0].shape[1]: expected an integer or a string, got float 1.5"),
    (("inputs", 0, "kind"), "class_probs", "inputs[0].kind: must be one of waveform, log_peak"),
    (("magnitude_bins", "n"), 29, "magnitude_bins: n = 29 bins of"),
    (("magnitude_bins", "width"), "x", "magnitude_bins.width: expected a number, got string \"x\""),
    (("mc_dropout", "how"), "random_op", "mc_dropout.how: must be one of \"none\", \"noise_input\", got "
                                         "\"random_op\" (a graph that samples inside"),
    (("files", "manifest.json"), {"sha256": "0" * 64, "size": 1}, "files: must not list manifest.json"),
    (("files", "../x"), {"sha256": "0" * 64, "size": 1}, "files.\"../x\": must match"),
    (("signer",), "ABC", "signer: must match ^[0-9a-f]{16}$, got \"ABC\""),
    (("training_data", "synthetic"), "yes", "training_data.synthetic: expected a boolean (true or false), got "
                                            "string \"yes\""),
    (("bogus",), 1, "unknown field(s) bogus for format microseis-bundle/1 (opaque additions go into 'extra')"),
])
def test_manifest_errors_name_the_field(path, value, message):
    from edge.model.manifest import Manifest

    with pytest.raises(BundleError) as err:
        Manifest.from_dict(_set(_shipped_manifest(), path, value))
    assert err.value.code == "bad_manifest"
    assert str(err.value).startswith("manifest: " + message), str(err.value)


def test_manifest_round_trip_and_defaults_from_files():
    from edge.model.manifest import Manifest

    d = _shipped_manifest()
    m = Manifest.from_dict(d)
    assert Manifest.from_dict(m.to_dict()) == m and m.to_dict()["training_data"] == d["training_data"]
    bare = json.loads(json.dumps(d))
    for entry in bare["models"]:
        entry.pop("sha256", None), entry.pop("size", None)
    bare["selftest"].pop("class_output", None)
    again = Manifest.from_dict(bare)
    assert [(f.sha256, f.size) for f in again.models] == [(f.sha256, f.size) for f in m.models]
    assert again.selftest.class_output == next(t.name for t in m.outputs if t.kind.startswith("class"))
