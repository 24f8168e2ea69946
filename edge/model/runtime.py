"""Running model files the way the station runs them: onnxruntime CPU sessions (with the
optimizers the station switches off) and ai-edge-litert for TFLite files.

onnxruntime and ai-edge-litert are imported inside the functions that use them: a
link-only or lean station install imports :mod:`edge.model` without either.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from edge.model.format import BundleError

__all__ = ["DISABLED_ORT_OPTIMIZERS", "open_onnx_session", "run_onnx", "litert_available", "run_tflite"]

#: onnxruntime graph optimizers the station switches off (see :func:`open_onnx_session`)
DISABLED_ORT_OPTIMIZERS = ("NhwcTransformer",)


def open_onnx_session(model: bytes | str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session the way the station runs models (``threads`` intra-op
    threads, one inter-op thread, warnings off).

    ONNX Runtime's ``NhwcTransformer`` is switched off: on these 1-D models it wraps every
    int8 ``QLinearConv`` in a pair of Transposes (NCHW <-> NHWC) that cost more than the int8
    convolution saves (measured on a Conv-only int8 graph: 0.97x fp32 with it, 0.86x without;
    docs/performance.md).
    fp32 graphs are not affected."""
    import onnxruntime as ort  # deferred: heavy, and only needed once a model runs

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = model if isinstance(model, (bytes, bytearray)) else str(model)
    return ort.InferenceSession(bytes(src) if isinstance(src, bytearray) else src,
                                sess_options=so, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_ORT_OPTIMIZERS))


def run_onnx(model: bytes | str | os.PathLike, inputs: Mapping[str, np.ndarray],
             threads: int = 1) -> dict[str, np.ndarray]:
    """Run an ONNX model once with the station's session settings: ``{output: array}``.
    The export side computes a bundle's expected self-test outputs with this."""
    sess = open_onnx_session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(inputs))))

def litert_available() -> bool:
    """Whether ai-edge-litert (the optional TFLite runtime) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def run_tflite(model: bytes, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One run of a TFLite model's first signature in ai-edge-litert; int8 outputs are
    dequantised with their scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter  # deferred: optional dependency

    interp = Interpreter(model_content=model, num_threads=1)
    sigs = interp.get_signature_list()
    if not sigs:
        raise BundleError("TFLite model has no signature to run", "selftest")
    key = next(iter(sigs))
    runner = interp.get_signature_runner(key)
    raw = runner(**{k: np.asarray(v) for k, v in inputs.items()})
    details = runner.get_output_details()
    out = {}
    for name, arr in raw.items():
        scale, zero = details.get(name, {}).get("quantization", (0.0, 0))
        if scale and np.issubdtype(arr.dtype, np.integer):
            arr = (arr.astype(np.float32) - zero) * scale
        out[name] = arr
    return out

