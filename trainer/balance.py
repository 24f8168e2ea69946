"""Validation split, few-label subsampling and class balancing of labeled training events.

numpy (+ imbalanced-learn for SMOTE); every function is deterministic for a given seed.

* :func:`stratified_split` -- per class, a seeded shuffle and ``round(fraction * n)`` events to
  validation (at least 1 when the class has 2 or more events, never all of them).
* :func:`stratified_subsample` -- ``n`` events with the class proportions kept (largest
  remainder, every class at least one): the few-label experiments (``--max-labeled``).
* :func:`balanced_order` -- one epoch of indices drawn with replacement with probability
  ``1 / count(class)``: every class is seen equally often on average (``--balance weighted``,
  the equivalent of a ``WeightedRandomSampler``).
* :func:`smote_resample` -- SMOTE on the flattened inputs (+ ``log_peak``), every minority
  class brought up to the majority count (``--balance smote``).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["stratified_split", "stratified_subsample", "balanced_order", "smote_resample"]


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``, both sorted, for labels ``y`` (ints >= 0)."""
    y = np.asarray(y)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([int(seed), 101])
    train, val = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        n = idx.size
        k = 0 if n < 2 else min(n - 1, max(1, _round_half_up(fraction * n)))
        val.append(idx[:k])
        train.append(idx[k:])
    cat = (lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64))
    return cat(train).astype(np.int64), cat(val).astype(np.int64)


def stratified_subsample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` events of ``y`` with the class proportions kept.

    Every class present keeps at least one event, so ``n`` must be at least the number of
    classes present. ``n >= len(y)`` returns every index.
    """
    y = np.asarray(y)
    if n >= y.size:
        return np.arange(y.size, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    if n < classes.size:
        raise ValueError(f"cannot keep {n} labeled events: there are {classes.size} classes and "
                         "each needs at least one")
    exact = n * counts / counts.sum()
    alloc = np.minimum(np.maximum(1, np.floor(exact)).astype(np.int64), counts)
    while alloc.sum() < n:  # largest remainder, among classes that still have events
        room = alloc < counts
        j = int(np.argmax(np.where(room, exact - alloc, -np.inf)))
        alloc[j] += 1
    while alloc.sum() > n:  # the "at least one" rule over-allocated: take from the largest
        j = int(np.argmax(np.where(alloc > 1, alloc - exact, -np.inf)))
        alloc[j] -= 1
    rng = np.random.default_rng([int(seed), 202])
    keep = [rng.choice(np.flatnonzero(y == c), size=int(a), replace=False)
            for c, a in zip(classes, alloc)]
    return np.sort(np.concatenate(keep)).astype(np.int64)


def balanced_order(y: np.ndarray, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """``n`` (default ``len(y)``) indices drawn with replacement, P(i) ~ 1 / count(y[i])."""
    y = np.asarray(y)
    counts = np.bincount(y)
    w = 1.0 / counts[y]
    return rng.choice(y.size, size=y.size if n is None else int(n), replace=True, p=w / w.sum())


def smote_resample(inputs: np.ndarray, log_peak: np.ndarray, y: np.ndarray, seed: int,
                   k_neighbors: int = 5, class_names: tuple[str, ...] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """SMOTE every class up to the majority count.

    The feature vector of an event is its flattened input (normalised waveform, or
    spectrogram image) with ``log_peak`` appended, float32 to keep memory in check
    (2000 events x 9001 values = 72 MB). ``k_neighbors`` is lowered to
    ``smallest class - 1``; a class with a single event cannot be interpolated
    (``ValueError``).

    Returns ``(inputs, log_peak, y, n_new)``: the original rows first, in their order, then
    the ``n_new`` synthetic rows.
    """
    from imblearn.over_sampling import SMOTE

    y = np.asarray(y)
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    if present.size < 2 or counts[present].min() == counts[present].max():
        return inputs, log_peak, y, 0
    smallest = present[np.argmin(counts[present])]
    k = min(int(k_neighbors), int(counts[smallest]) - 1)
    if k < 1:
        name = class_names[smallest] if class_names else str(smallest)
        raise ValueError(f"SMOTE needs at least 2 training events of every class ({name!r} has "
                         f"{counts[smallest]}); use --balance weighted")
    n = y.size
    shape = inputs.shape[1:]
    X = np.empty((n, int(np.prod(shape)) + 1), np.float32)
    X[:, :-1] = inputs.reshape(n, -1)
    X[:, -1] = log_peak
    Xr, yr = SMOTE(k_neighbors=k, random_state=int(seed)).fit_resample(X, y)
    del X
    if yr.size == n:
        return inputs, log_peak, y, 0
    if not np.array_equal(yr[:n], y):  # imbalanced-learn keeps the originals first
        raise RuntimeError("unexpected SMOTE output order")
    new = np.asarray(Xr[n:], np.float32)
    out_inputs = np.concatenate([inputs, new[:, :-1].reshape((-1,) + shape)])
    out_lp = np.concatenate([np.asarray(log_peak, np.float32), new[:, -1]])
    return out_inputs, out_lp, np.asarray(yr, np.int64), int(new.shape[0])
