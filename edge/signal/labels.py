"""Event classes and magnitude bins: the label contract shared by trainer and station.

numpy only (the station never imports torch). The models emit

* ``class_logits`` (batch, ``N_CLASSES``) in the order of :data:`CLASSES`;
* ``mag_logits`` (batch, ``N_MAG_BINS``): magnitude as a *classification* over 30 bins of
  0.1 magnitude units covering M 0.0-3.0 (as in the ResNet18-CBAM magnitude paper). Bin
  ``i`` covers ``[MAG_MIN + i*0.1, MAG_MIN + (i+1)*0.1)`` and stands for its centre
  ``0.05 + 0.1*i`` (0.05 ... 2.95).

Magnitudes outside the range are clipped into the first/last bin for training
(:func:`magnitude_to_bin`); a reported 2.95 therefore means "2.9 or more".

What the station reports: :func:`expected_magnitude` with the default ``method="argmax"``,
the centre of the most probable bin, as in the paper. ``method="mean"`` (the
probability-weighted mean of the bin centres) is available for analysis; it is smoother
but is pulled towards the middle of the range when the distribution is wide.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CLASSES",
    "N_CLASSES",
    "MAG_MIN",
    "MAG_MAX",
    "MAG_BIN_WIDTH",
    "N_MAG_BINS",
    "MAG_BIN_EDGES",
    "MAG_BIN_CENTRES",
    "class_index",
    "magnitude_to_bin",
    "magnitudes_to_bins",
    "bin_to_magnitude",
    "expected_magnitude",
    "softmax",
]

CLASSES: tuple[str, ...] = ("fracture", "rockfall", "earthquake", "noise")
N_CLASSES: int = len(CLASSES)

MAG_MIN: float = 0.0
MAG_MAX: float = 3.0
MAG_BIN_WIDTH: float = 0.1
N_MAG_BINS: int = 30

#: Bin edges, shape (31,): 0.0, 0.1, ..., 3.0.
MAG_BIN_EDGES: np.ndarray = np.round(MAG_MIN + MAG_BIN_WIDTH * np.arange(N_MAG_BINS + 1), 10)
#: Bin centres, shape (30,): 0.05, 0.15, ..., 2.95 (the value a bin stands for).
MAG_BIN_CENTRES: np.ndarray = np.round(MAG_BIN_EDGES[:-1] + MAG_BIN_WIDTH / 2, 10)
MAG_BIN_EDGES.setflags(write=False)
MAG_BIN_CENTRES.setflags(write=False)

# (m - MAG_MIN) / width is computed in binary floating point: 0.3 / 0.1 = 2.9999999999999996.
# Nudging by this much puts values that are on an edge in decimal into the upper bin.
_EDGE_EPS = 1e-9


def class_index(name: str) -> int:
    """Index of a class name in :data:`CLASSES` (``ValueError`` for an unknown name)."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; expected one of {CLASSES}") from None


def magnitudes_to_bins(m: Sequence[float] | np.ndarray) -> np.ndarray:
    """Vectorised :func:`magnitude_to_bin`: int64 array of bin indices, clipped to 0..29."""
    arr = np.asarray(m, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError("magnitude is NaN")
    idx = np.floor((arr - MAG_MIN) / MAG_BIN_WIDTH + _EDGE_EPS)
    return np.clip(idx, 0, N_MAG_BINS - 1).astype(np.int64)


def magnitude_to_bin(m: float) -> int:
    """Bin index of magnitude ``m``: ``floor((m - 0.0) / 0.1)`` clipped to ``0..29``.

    A value on a bin edge belongs to the upper bin (0.3 -> 3). Magnitudes below 0 go to
    bin 0, magnitudes of 2.9 and above to bin 29. NaN raises ``ValueError``.
    """
    m = float(m)
    if math.isnan(m):
        raise ValueError("magnitude is NaN")
    return int(magnitudes_to_bins(m))


def bin_to_magnitude(i: int) -> float:
    """Centre of bin ``i`` (0.05 + 0.1*i); ``IndexError`` outside ``0..N_MAG_BINS-1``."""
    i = int(i)
    if not 0 <= i < N_MAG_BINS:
        raise IndexError(f"magnitude bin {i} outside 0..{N_MAG_BINS - 1}")
    return float(MAG_BIN_CENTRES[i])


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (for logits coming out of an ONNX/TFLite model)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def expected_magnitude(probs: np.ndarray, method: str = "argmax") -> float | np.ndarray:
    """Magnitude estimate from bin probabilities.

    Args:
        probs: shape (N_MAG_BINS,) -> returns a float; or (batch, N_MAG_BINS) -> returns a
            float64 array (batch,). Need not be normalised (for ``"mean"`` it is divided by
            its sum); pass probabilities, not logits.
        method: ``"argmax"`` (default, what the station reports): centre of the most
            probable bin. ``"mean"``: probability-weighted mean of the bin centres.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[-1] != N_MAG_BINS:
        raise ValueError(f"expected shape ({N_MAG_BINS},) or (batch, {N_MAG_BINS}), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probabilities contain NaN/inf")
    if method == "argmax":
        out = MAG_BIN_CENTRES[np.argmax(p, axis=-1)]
    elif method == "mean":
        if (p < 0).any():
            raise ValueError("probabilities must be >= 0 for method='mean'")
        total = p.sum(axis=-1)
        if (total <= 0).any():
            raise ValueError("probabilities sum to 0")
        out = (p * MAG_BIN_CENTRES).sum(axis=-1) / total
    else:
        raise ValueError(f"method must be 'argmax' or 'mean', got {method!r}")
    return float(out) if p.ndim == 1 else np.asarray(out, dtype=np.float64)
