"""PyTorch -> TFLite (LiteRT) with litert-torch: the fp32 graph and its static int8 version.

Needs the ``tflite-export`` extra (``litert-torch``, which brings ai-edge-litert, torchao and
jax: about 2 GB, so it lives in its own virtual environment; see docs/bundle.md).

The graph has the same inputs and outputs as the ONNX one (:mod:`export.onnx_export`):
``x`` (1, 3, n), ``log_peak`` (1, 1) and ``noise`` (1, D) -> ``class_probs`` (1, C),
``mag_probs`` (1, 30). Facts behind the choices (``shared/notes/toolchain.md``):

* litert-torch cannot convert a dynamic time length, so the graph has one fixed-length
  signature (``n`` samples, batch 1); :class:`edge.model.tflite.TfliteRunner` runs larger
  batches row by row.
* ``rand_like`` does not lower: the MC-dropout masks come from the ``noise`` input, as in
  the ONNX graph.
* int8: ai-edge-quantizer's static int8 (int8 weights and activations) of the ``CONV_2D``
  ops of the fp32 flatbuffer, calibrated on training windows (each with its own noise draw)
  with min/max statistics over all of them (its default averages them and clips large
  waveforms). Quantizing ``FULLY_CONNECTED`` (or every supported op) as well makes a graph
  that ai-edge-litert 2.3's XNNPACK delegate refuses to prepare ("failed to create XNNPACK
  runtime"). Measured here (docs/performance.md), int8 is *slower* than fp32 in LiteRT on
  x86: fp32 runs in XNNPACK's fast float kernels, and the int8 graph adds a quantize and a
  dequantize around every convolution. litert-torch's own PT2E path fails on these 1-D
  convolutions ("tfl.reshape op quantization parameters violate the same scale constraint" at
  the Conv1d reshape).
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["export_tflite", "SIGNATURE"]

#: the signature name of the converted graph
SIGNATURE = "serving_default"
#: TFLite ops quantized to int8 (see the module docstring)
QUANTIZED_TFL_OPS = ("CONV_2D",)


def _require_litert():
    try:
        import litert_torch  # noqa: F401
    except ImportError as exc:
        raise ImportError("TFLite export needs litert-torch: pip install -c constraints.txt "
                          "'.[tflite-export]' (in its own virtual environment, about 2 GB)"
                          f" ({exc})") from None
    return litert_torch


def export_tflite(model, path: str | os.PathLike, n_samples: int, int8: bool = False,
                  calibration: tuple[np.ndarray, np.ndarray] | None = None,
                  calibration_events: int = 128, seed: int = 0) -> Path:
    """Convert a trainer waveform model to a TFLite flatbuffer at ``path``.

    Args:
        model: a trainer waveform model (``forward(x, log_peak, noise=...)``).
        path: output ``.tflite`` file.
        n_samples: the fixed window length (samples) of the graph.
        int8: PT2E static int8 (needs ``calibration``) instead of fp32.
        calibration: ``(x (N, 3, n), log_peak (N,))`` training windows for int8.
        calibration_events: at most this many calibration windows (drawn evenly).
        seed: noise draws of the calibration passes.

    Returns the path. The model is left in ``eval()`` with MC-dropout off.
    """
    litert_torch = _require_litert()
    import torch

    from trainer.models.heads import ProbabilityModel
    from trainer.models.layers import mc_dropout_modules, set_mc_dropout

    model.eval()
    noise_dim = int(getattr(model, "noise_dim", 0) or 0)
    has_noise = noise_dim > 0 and any(m.p > 0 for m in mc_dropout_modules(model))
    set_mc_dropout(model, has_noise)
    try:
        wrapped = _named_outputs_cls()(ProbabilityModel(model)).eval()
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, 3, int(n_samples), generator=g)
        # keyword inputs and a dict of outputs give the signature the graph's names
        kwargs = {"x": x / x.abs().amax(), "log_peak": torch.full((1, 1), -5.0)}
        if has_noise:
            kwargs["noise"] = torch.rand(1, noise_dim, generator=g)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            out = Path(path)
            litert_torch.convert(wrapped, sample_args=(), sample_kwargs=kwargs).export(str(out))
            body = out.read_bytes()
            if int8:
                body = _quantize_int8(body, calibration, calibration_events,
                                      noise_dim if has_noise else 0, seed)
    finally:
        set_mc_dropout(model, False)
        model.eval()
    out.write_bytes(body)
    return out


def _named_outputs_cls():
    import torch

    class NamedOutputs(torch.nn.Module):
        """``forward(x, log_peak, noise)`` -> ``{"class_probs", "mag_probs"}``."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.train(inner.training)

        def forward(self, x, log_peak, noise=None):
            c, m = self.inner(x, log_peak, noise=noise)
            return {"class_probs": c, "mag_probs": m}

    return NamedOutputs


def _quantize_int8(float_tflite: bytes, calibration, calibration_events: int, noise_dim: int,
                   seed: int) -> bytes:
    """Static int8 (int8 weights and activations) of a fp32 flatbuffer with ai-edge-quantizer,
    calibrated on training windows with min/max statistics over all of them."""
    from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    if calibration is None or len(calibration[0]) == 0:
        raise ValueError("TFLite int8 needs calibration windows (got none)")
    cx, clp = calibration
    idx = np.linspace(0, len(cx) - 1, num=min(int(calibration_events), len(cx))).round().astype(int)
    rng = np.random.default_rng(seed)
    feeds = []
    for i in idx:
        feed = {"x": np.ascontiguousarray(cx[i:i + 1], np.float32),
                "log_peak": np.array([[clp[i]]], np.float32)}
        if noise_dim:
            feed["noise"] = rng.random((1, noise_dim), dtype=np.float32)
        feeds.append(feed)
    rm = recipe_manager.RecipeManager()
    for op in QUANTIZED_TFL_OPS:
        rm.add_static_config(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                             activation_num_bits=8, weight_num_bits=8)
    qt = quantizer.Quantizer(float_tflite)
    qt.load_quantization_recipe(rm.get_quantization_recipe())
    # the default statistics average min/max over the samples and clip large waveforms
    calib = calibrator.Calibrator(float_tflite, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate({SIGNATURE: feeds}, qt._recipe_manager)
    result = qt.quantize(calib.get_model_qsvs(), enable_progress_report=False)
    return bytes(result.quantized_model)
