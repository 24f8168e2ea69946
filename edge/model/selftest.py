"""The bundle self-test: the ``selftest.npz`` file (writing and reading it) and running the
default model on its inputs, which must reproduce the expected outputs deterministically.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge.model.format import BundleError
from edge.model.manifest import Manifest
from edge.model.runtime import litert_available, open_onnx_session, run_tflite

__all__ = ["npz_bytes", "selftest_arrays", "run_selftest"]

_ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A deterministic, uncompressed ``.npz`` (fixed timestamps, sorted names) that
    ``np.load`` reads; no pickled objects allowed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name])
            if arr.dtype == object:
                raise ValueError(f"self-test array {name!r} has dtype object")
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, body.getvalue())
    return buf.getvalue()


def selftest_arrays(npz: bytes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, expected)`` from a self-test ``.npz`` (keys ``input.<name>`` and
    ``expected.<name>``); raises :class:`BundleError` for anything else in it."""
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the same verdict
        raise BundleError(f"self-test file is not a readable .npz: {exc}", "selftest") from None
    inputs, expected = {}, {}
    for k, v in arrays.items():
        if k.startswith("input."):
            inputs[k[6:]] = v
        elif k.startswith("expected."):
            expected[k[9:]] = v
        else:
            raise BundleError(f"self-test file has an unexpected array {k!r} (keys are input.<name> "
                              "and expected.<name>)", "selftest")
    return inputs, expected


def _check_graph(sess, manifest: Manifest, model_file: str) -> None:
    """The session's graph inputs/outputs must be what the manifest declares."""
    for what, declared, actual in (("input", manifest.inputs, sess.get_inputs()),
                                   ("output", manifest.outputs, sess.get_outputs())):
        have = {a.name: a for a in actual}
        want = {t.name for t in declared}
        if what == "input" and set(have) != want:
            raise BundleError(f"{model_file}: graph inputs {sorted(have)} differ from the manifest's "
                              f"{sorted(want)}", "bad_manifest")
        for t in declared:
            a = have.get(t.name)
            if a is None:
                raise BundleError(f"{model_file}: the graph has no {what} {t.name!r} (manifest "
                                  f"declares it)", "bad_manifest")
            dtype = _ORT_DTYPES.get(a.type, a.type)
            if dtype != t.dtype:
                raise BundleError(f"{model_file}: {what} {t.name!r} is {dtype} in the graph but "
                                  f"{t.dtype} in the manifest", "bad_manifest")
            shape = list(a.shape) if a.shape is not None else None
            if shape is None:
                continue
            if len(shape) != len(t.shape) or any(
                    isinstance(g, int) and (isinstance(m, str) or g != m)
                    for g, m in zip(shape, t.shape)):
                raise BundleError(f"{model_file}: {what} {t.name!r} has shape {shape} in the graph but "
                                  f"{list(t.shape)} in the manifest", "bad_manifest")


def run_selftest(manifest: Manifest, entries: Mapping[str, bytes]) -> dict[str, Any]:
    """Run the default model on the self-test inputs twice (it must be deterministic) and
    compare with the expected outputs; :class:`BundleError` (code ``selftest``) on a mismatch.
    Returns the report kept in :attr:`edge.model.verify.VerifiedBundle.selftest`."""
    model = manifest.default_model
    inputs, expected = selftest_arrays(entries[manifest.selftest.file])
    for t in manifest.inputs:
        if t.name not in inputs:
            raise BundleError(f"self-test file has no input {t.name!r}", "selftest")
        if inputs[t.name].dtype.name != t.dtype:
            raise BundleError(f"self-test input {t.name!r} is {inputs[t.name].dtype.name}, the "
                              f"graph takes {t.dtype}", "selftest")
    for name in sorted(set(inputs) - {t.name for t in manifest.inputs}):
        raise BundleError(f"self-test file has input {name!r} that the graph does not take", "selftest")
    for t in manifest.outputs:
        if t.name not in expected:
            raise BundleError(f"self-test file has no expected output {t.name!r}", "selftest")

    body = entries[model.file]
    if model.format == "onnx":
        try:
            sess = open_onnx_session(body)
        except Exception as exc:  # noqa: BLE001
            raise BundleError(f"self-test: onnxruntime cannot load {model.file}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                              "selftest") from None
        _check_graph(sess, manifest, model.file)
        names = [t.name for t in manifest.outputs]

        def run_once() -> dict[str, np.ndarray]:
            try:
                return dict(zip(names, sess.run(names, inputs)))
            except Exception as exc:  # noqa: BLE001
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BundleError(f"self-test: {model.file} failed to run: {msg}", "selftest") from None
    else:
        if not litert_available():
            return {"status": "skipped", "model": model.file,
                    "note": f"self-test skipped: default model {model.file} is TFLite and "
                            "ai-edge-litert is not installed (pip install ai-edge-litert)"}

        def run_once() -> dict[str, np.ndarray]:
            try:
                return run_tflite(body, inputs)
            except BundleError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise BundleError(f"self-test: {model.file} failed to run in ai-edge-litert: {exc}",
                                  "selftest") from None

    got = run_once()
    again = run_once()
    for t in manifest.outputs:
        if t.name not in got:
            raise BundleError(f"self-test: {model.file} produced no output {t.name!r}", "selftest")
        if not np.array_equal(got[t.name], again[t.name], equal_nan=True):
            diff = float(np.max(np.abs(np.asarray(got[t.name], np.float64) - again[t.name])))
            raise BundleError(
                f"self-test: {model.file} is not deterministic (output {t.name!r} changed by "
                f"{diff:.3g} between two identical runs); bundle format 1 needs the MC-dropout "
                "noise as a graph input (mc_dropout.how = 'noise_input')", "selftest")

    report: dict[str, Any] = {}
    rows = None
    for t in manifest.outputs:
        g = np.asarray(got[t.name], dtype=np.float64)
        e = np.asarray(expected[t.name], dtype=np.float64)
        atol = manifest.selftest.atol[t.name]
        if g.shape != e.shape:
            raise BundleError(f"self-test mismatch: output {t.name!r} has shape {list(g.shape)}, "
                              f"expected {list(e.shape)}", "selftest")
        if not np.all(np.isfinite(g)):
            raise BundleError(f"self-test mismatch: output {t.name!r} contains NaN/inf", "selftest")
        diff = float(np.max(np.abs(g - e))) if g.size else 0.0
        if not diff <= atol:
            raise BundleError(f"self-test mismatch: output {t.name!r} differs from the expected "
                              f"values by up to {diff:.3g} (tolerance {atol:g})", "selftest")
        report[t.name] = {"max_abs_diff": diff, "atol": atol}
        rows = g.shape[0] if g.ndim else rows
    if manifest.selftest.top_class_must_match:
        name = manifest.selftest.class_output
        g = np.asarray(got[name])
        e = np.asarray(expected[name])
        if g.ndim >= 1 and g.size:
            bad = np.flatnonzero(np.argmax(g.reshape(g.shape[0], -1), -1) != np.argmax(e.reshape(e.shape[0], -1), -1))
            if bad.size:
                raise BundleError(f"self-test mismatch: top class of {name!r} differs from the "
                                  f"expected one in {bad.size} of {g.shape[0]} rows (first row {int(bad[0])})",
                                  "selftest")
    return {"status": "passed", "model": model.file, "rows": rows, "outputs": report,
            "note": f"default model {model.file} reproduced the expected outputs"}
