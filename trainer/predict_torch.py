"""Class and magnitude predictions of a torch model, with Monte-Carlo-dropout uncertainty.

:func:`predict` runs a model (a :mod:`trainer.models` network, as :func:`trainer.run.load_run`
returns it) over events and returns :class:`Predictions`. With ``mc_passes > 1`` the model is in
``eval()`` mode (BatchNorm uses its running statistics) and its MC-dropout masks are switched on
(:func:`trainer.models.layers.set_mc_dropout`), so every pass samples a different sub-network;
the passes are averaged.

The summary of the passes (:func:`predictions_from_samples`) is numpy only, so a scorer that
runs an exported ONNX model (``RandomUniformLike`` dropout masks) gets the same numbers from its
own samples.

Uncertainty (all divided by ``log(C)``, C = number of classes, so they lie in [0, 1]):

* ``uncertainty`` -- predictive entropy ``H[p̄] = -Σ_c p̄_c log p̄_c`` of the mean probabilities
  ``p̄`` (total uncertainty: 0 = one class certain, 1 = uniform);
* ``mutual_information`` -- ``H[p̄] - mean_t H[p_t]``, the part due to disagreement between the
  passes (epistemic; 0 for a single pass);
* ``std`` -- standard deviation over the passes of the probability of the predicted class.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Iterable, Sequence

import numpy as np

from edge.labels import MAG_BIN_CENTRES, N_MAG_BINS

__all__ = ["Predictions", "predict", "predictions_from_samples", "normalized_entropy"]

_EPS = 1e-12


@dataclass
class Predictions:
    """Per-event outputs of a model (row ``i`` = event ``i``)."""

    #: (N, C) float64 mean class probabilities (over the MC passes)
    probs: np.ndarray
    #: (N,) int64 argmax of ``probs``
    pred: np.ndarray
    #: (N,) float64 predictive entropy of ``probs`` / log(C), in [0, 1]
    uncertainty: np.ndarray
    #: (N,) float64 mutual information (epistemic part of ``uncertainty``) / log(C), in [0, 1]
    mutual_information: np.ndarray
    #: (N,) float64 std over the passes of the predicted class's probability (0 for one pass)
    std: np.ndarray
    #: (N, 30) float64 mean magnitude-bin probabilities, or None (model without magnitude head)
    mag_probs: np.ndarray | None = None
    #: (N,) float64 centre of the most probable magnitude bin (what the station reports); NaN
    #: when the model has no magnitude head
    magnitude: np.ndarray | None = None
    #: number of passes averaged
    mc_passes: int = 1

    def __post_init__(self) -> None:
        if self.magnitude is None:
            self.magnitude = np.full(len(self.pred), np.nan)

    def __len__(self) -> int:
        return int(self.pred.shape[0])

    @property
    def confidence(self) -> np.ndarray:
        """(N,) probability of the predicted class."""
        return self.probs[np.arange(len(self)), self.pred] if len(self) else np.zeros(0)

    @property
    def has_magnitude(self) -> bool:
        return self.mag_probs is not None

    @classmethod
    def concatenate(cls, parts: Sequence["Predictions"]) -> "Predictions":
        if not parts:
            raise ValueError("nothing to concatenate")
        kw: dict[str, Any] = {}
        for f in fields(cls):
            vals = [getattr(p, f.name) for p in parts]
            if f.name == "mc_passes":
                kw[f.name] = vals[0]
            elif any(v is None for v in vals):
                kw[f.name] = None
            else:
                kw[f.name] = np.concatenate(vals)
        return cls(**kw)


def normalized_entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy of probability vectors divided by log(C): 0 (certain) .. 1 (uniform)."""
    p = np.asarray(p, dtype=np.float64)
    c = p.shape[axis]
    if c < 2:
        return np.zeros(np.delete(p.shape, axis % p.ndim))
    h = -np.sum(p * np.log(np.clip(p, _EPS, 1.0)), axis=axis)
    return np.clip(h / math.log(c), 0.0, 1.0)


def predictions_from_samples(class_probs: np.ndarray, mag_probs: np.ndarray | None = None) -> Predictions:
    """Summarise MC samples: ``class_probs`` (T, N, C) and ``mag_probs`` (T, N, 30) or None.

    A (N, C) ``class_probs`` is read as one pass.
    """
    cp = np.asarray(class_probs, dtype=np.float64)
    if cp.ndim == 2:
        cp = cp[None]
    if cp.ndim != 3:
        raise ValueError(f"class_probs must be (T, N, C) or (N, C), got {cp.shape}")
    t, n, _ = cp.shape
    mean = cp.mean(axis=0)
    pred = np.argmax(mean, axis=1).astype(np.int64)
    total = normalized_entropy(mean)
    expected = normalized_entropy(cp).mean(axis=0) if t > 1 else total
    mi = np.clip(total - expected, 0.0, 1.0)
    top = cp[:, np.arange(n), pred]  # (T, N)
    std = top.std(axis=0) if t > 1 else np.zeros(n)
    mag_mean = magnitude = None
    if mag_probs is not None:
        mp = np.asarray(mag_probs, dtype=np.float64)
        if mp.ndim == 2:
            mp = mp[None]
        if mp.shape[-1] != N_MAG_BINS:
            raise ValueError(f"mag_probs must have {N_MAG_BINS} bins, got {mp.shape}")
        mag_mean = mp.mean(axis=0)
        magnitude = MAG_BIN_CENTRES[np.argmax(mag_mean, axis=1)].astype(np.float64)
    return Predictions(probs=mean, pred=pred, uncertainty=total, mutual_information=mi, std=std,
                       mag_probs=mag_mean, magnitude=magnitude, mc_passes=t)


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
            (normalised windows, as :func:`edge.preprocess.normalize` makes them).
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