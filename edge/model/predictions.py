"""Summary of Monte-Carlo-dropout passes: mean probabilities, predicted class, uncertainty and
magnitude -- numpy only, shared by the station (:mod:`edge.model.inference`) and the trainer
(:mod:`trainer.predict_torch`), so both report the same numbers from the same samples.

Uncertainty (all divided by ``log(C)``, C = number of classes, so they lie in [0, 1]):

* ``uncertainty`` -- predictive entropy ``H[p̄] = -Σ_c p̄_c log p̄_c`` of the mean probabilities
  ``p̄`` (total uncertainty: 0 = one class certain, 1 = uniform);
* ``mutual_information`` -- ``H[p̄] - mean_t H[p_t]``, the part due to disagreement between the
  passes (epistemic; 0 for a single pass);
* ``std`` -- standard deviation over the passes of the probability of the predicted class.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from edge.signal.labels import MAG_BIN_CENTRES, N_MAG_BINS

__all__ = ["Predictions", "predictions_from_samples", "normalized_entropy"]

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
    def concatenate(cls, parts: Sequence[Predictions]) -> Predictions:
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
