"""Class and magnitude predictions of a torch model, with Monte-Carlo-dropout uncertainty.

:func:`predict` runs a model (a :mod:`trainer.models` network, as :func:`trainer.run.load_run`
returns it) over events and returns :class:`Predictions`. With ``mc_passes > 1`` the model is in
``eval()`` mode (BatchNorm uses its running statistics) and its MC-dropout masks are switched on
(:func:`trainer.models.layers.set_mc_dropout`), so every pass samples a different sub-network;
the passes are averaged.

The summary of the passes (:func:`predictions_from_samples`) is numpy only, so a scorer that
runs an exported ONNX model (``RandomUniformLike`` dropout masks) gets the same numbers from its
own samples.

Uncertainty measures: :mod:`edge.model.predictions` (shared with the station).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from edge.model.predictions import Predictions, normalized_entropy, predictions_from_samples
from edge.signal.labels import N_MAG_BINS

__all__ = ["Predictions", "predict", "predictions_from_samples", "normalized_entropy"]



def _split_input(data: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(data, "x") and hasattr(data, "log_peak"):
        return np.asarray(data.x, np.float32), np.asarray(data.log_peak, np.float32)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0], np.float32), np.asarray(data[1], np.float32).reshape(-1)
    raise TypeError("expected EventArrays or a tuple (x (N, 3, n), log_peak (N,))")


def _heads_only_mc(model) -> bool:
    """True when every MC-dropout module sits in ``model.heads``: the (deterministic) body then
    runs once per batch and only the heads are sampled ``mc_passes`` times."""
    from trainer.models.layers import mc_dropout_modules

    heads = getattr(model, "heads", None)
    if heads is None or not callable(getattr(model, "features", None)):
        return False
    in_heads = {id(m) for m in mc_dropout_modules(heads)}
    return all(id(m) in in_heads for m in mc_dropout_modules(model))


def predict(model, arrays_or_x_logpeak: Any, sampling_rate: float, mc_passes: int = 20,
            batch_size: int = 64, seed: int = 0) -> Predictions:
    """Predict events with ``model``.

    Args:
        model: a trainer model (``model.config`` set, as built by the registry).
        arrays_or_x_logpeak: :class:`~trainer.data.EventArrays` or ``(x (N, 3, n), log_peak (N,))``
            (normalised windows, as :func:`edge.signal.preprocess.normalize` makes them).
        sampling_rate: Hz of the windows (for the spectrogram model's input).
        mc_passes: forward passes with MC-dropout on; ``1`` (or less) = one deterministic pass
            with dropout off.
        batch_size: events per forward call.
        seed: torch seed of the dropout masks: same seed (and batch_size), same outputs. The
            global torch RNG state is restored afterwards.

    The model is left in ``eval()`` mode with MC-dropout off.
    """
    from trainer.run import model_inputs

    x, log_peak = _split_input(arrays_or_x_logpeak)
    if x.ndim != 3 or log_peak.shape[0] != x.shape[0]:
        raise ValueError(f"x must be (N, channels, n) with one log_peak per event, got {x.shape}, "
                         f"{log_peak.shape}")
    batch_size = max(1, int(batch_size))
    batches = (model_inputs(model, x[s:s + batch_size], log_peak[s:s + batch_size], sampling_rate)
               for s in range(0, x.shape[0], batch_size))
    return predict_batches(model, batches, mc_passes, seed)


def predict_batches(model, batches: Iterable[tuple], mc_passes: int = 20, seed: int = 0) -> Predictions:
    """The MC-dropout loop over ready model inputs (tuples of tensors, one per batch).

    ``mc_passes == 1``: one deterministic pass (dropout off); more: eval mode (BatchNorm on
    its running statistics) with MC-dropout on, dropout masks from ``torch.manual_seed(seed)``.
    When all dropout sits in the heads, the body runs once per batch and only the heads are
    sampled (the same distribution, far faster).
    """
    import torch

    from trainer.models.layers import set_mc_dropout
    from trainer.run import is_spectrogram_model

    passes = max(1, int(mc_passes))
    spectro = is_spectrogram_model(model)
    fast = passes > 1 and not spectro and _heads_only_mc(model)
    n_classes = model.config.n_classes if getattr(model.config, "n_classes", None) else None

    model.eval()
    set_mc_dropout(model, passes > 1)
    parts: list[Predictions] = []
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(seed))
            for inputs in batches:
                cls_s, mag_s = [], []
                if fast:
                    emb = model.features(inputs[0])
                    outs = [model.heads(emb, inputs[1]) for _ in range(passes)]
                else:
                    outs = [model(*inputs) for _ in range(passes)]
                for out in outs:
                    c, m = (out if isinstance(out, tuple) else (out, None))
                    cls_s.append(torch.softmax(c.double(), -1).numpy())
                    if m is not None and m.shape[-1] == N_MAG_BINS:
                        mag_s.append(torch.softmax(m.double(), -1).numpy())
                parts.append(predictions_from_samples(np.stack(cls_s),
                                                      np.stack(mag_s) if mag_s else None))
    finally:
        set_mc_dropout(model, False)
        model.eval()
    if not parts:
        c = n_classes or 0
        has_mag = not spectro
        return Predictions(probs=np.zeros((0, c)), pred=np.zeros(0, np.int64),
                           uncertainty=np.zeros(0), mutual_information=np.zeros(0), std=np.zeros(0),
                           mag_probs=np.zeros((0, N_MAG_BINS)) if has_mag else None,
                           magnitude=np.zeros(0), mc_passes=passes)
    return Predictions.concatenate(parts)
