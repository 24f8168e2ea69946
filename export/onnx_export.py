"""PyTorch -> ONNX: the fp32 graph a bundle ships, and its static int8 QDQ version.

The graph (``shared/notes/toolchain.md`` has the traps these choices avoid):

* inputs ``x`` (B, 3, n) float32 -- normalised waveforms, ``log_peak`` (B, 1) float32 and,
  for a model with MC-dropout, ``noise`` (B, D) float32 uniform [0, 1) that replaces the
  dropout masks' ``rand_like``: the graph is deterministic (a bundle self-test can check it)
  and the station draws the noise once per MC pass. Outputs ``class_probs`` (B, C) and
  ``mag_probs`` (B, 30), softmax probabilities.
* the legacy TorchScript exporter, opset 17, dynamic batch; the time length is fixed to the
  model's window (the bundle declares it).
* int8: ``onnxruntime.quantization.quantize_static`` in QDQ format, per-channel int8 weights
  and uint8 activations, MinMax calibration on real training windows. Only ``Conv`` and
  ``Relu`` nodes are quantized (a quantized Relu folds into the QLinearConv before it): on
  this CPU quantizing the small Gemm/Mul/Add nodes of the attention and shrinkage blocks
  added more Quantize/Dequantize work than it saved. The station opens sessions with
  ONNX Runtime's NhwcTransformer off (:func:`edge.model.runtime.open_onnx_session`). Measured on
  the default ResNet18-CBAM, one thread, p50 relative to fp32: Conv only 0.86, Conv + Relu
  0.83, Conv + Relu + Gemm 1.06, every op 1.12 (docs/performance.md).
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "export_fp32", "quantize_int8", "calibration_feeds",
           "graph_feeds"]

INPUT_NAMES = ("x", "log_peak", "noise")
OUTPUT_NAMES = ("class_probs", "mag_probs")
OPSET = 17
#: node types quantized to int8 (see the module docstring)
QUANTIZED_OPS = ("Conv", "Relu")


def graph_feeds(x: np.ndarray, log_peak: np.ndarray, noise: np.ndarray | None) -> dict[str, np.ndarray]:
    """Named graph inputs for windows ``x`` (N, 3, n), ``log_peak`` (N,) and ``noise``."""
    feeds = {"x": np.ascontiguousarray(x, np.float32),
             "log_peak": np.asarray(log_peak, np.float32).reshape(-1, 1)}
    if noise is not None:
        feeds["noise"] = np.ascontiguousarray(noise, np.float32)
    return feeds


def export_fp32(model, n_samples: int, path: str | os.PathLike | None = None) -> bytes:
    """Export a trainer waveform model (``forward(x, log_peak, noise=...)``) as the fp32
    graph described above; returns the ONNX bytes (and writes them to ``path`` if given).

    MC-dropout is switched on during the export so that the dropout masks are taken from the
    ``noise`` input; the model is left in ``eval()`` with MC-dropout off.
    """
    import torch

    from trainer.models.heads import ProbabilityModel
    from trainer.models.layers import mc_dropout_modules, set_mc_dropout

    model.eval()
    has_noise = any(m.p > 0 for m in mc_dropout_modules(model))
    set_mc_dropout(model, has_noise)
    try:
        wrapped = ProbabilityModel(model).eval()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, int(n_samples), generator=g)
        x = x / x.abs().amax(dim=(1, 2), keepdim=True)
        lp = torch.full((2, 1), -5.0)
        args: tuple = (x, lp)
        names = ["x", "log_peak"]
        if has_noise:
            args = (x, lp, torch.rand(2, model.noise_dim, generator=g))
            names.append("noise")
        buf = io.BytesIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped, args, buf, dynamo=False, opset_version=OPSET,
                input_names=names, output_names=list(OUTPUT_NAMES),
                dynamic_axes={k: {0: "B"} for k in names + list(OUTPUT_NAMES)},
            )
    finally:
        set_mc_dropout(model, False)
        model.eval()
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def calibration_feeds(x: np.ndarray, log_peak: np.ndarray, noise_dim: int, n: int = 256,
                      seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Up to ``n`` calibration inputs (batch 1 each) drawn evenly from training windows, each
    with its own noise draw (so the dropout-masked activations are calibrated too)."""
    rng = np.random.default_rng(seed)
    idx = np.linspace(0, len(x) - 1, num=min(n, len(x))).round().astype(int)
    out = []
    for i in idx:
        noise = rng.random((1, noise_dim), dtype=np.float32) if noise_dim else None
        out.append(graph_feeds(x[i:i + 1], log_peak[i:i + 1], noise))
    return out


class _Reader:
    """``CalibrationDataReader`` over a list of feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax
        pass


def quantize_int8(fp32: bytes, feeds: Sequence[dict[str, np.ndarray]],
                  ops: Sequence[str] = QUANTIZED_OPS) -> bytes:
    """Static int8 QDQ of an fp32 graph, calibrated on ``feeds``; returns the ONNX bytes."""
    if not feeds:
        raise ValueError("int8 quantization needs calibration windows (got none)")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Reader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="microseis-int8-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(pre))
            quantize_static(
                str(pre), str(out), Reader(feeds), quant_format=QuantFormat.QDQ,
                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=list(ops), calibrate_method=CalibrationMethod.MinMax,
            )
        return out.read_bytes()
