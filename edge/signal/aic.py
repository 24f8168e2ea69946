"""Akaike information criterion (AIC) onset picking (Maeda 1985): numpy only, so the
station's ML path loads no ``obspy.signal`` (docs/performance.md)."""
from __future__ import annotations

import numpy as np

__all__ = ["aic_curve", "aic_onset"]


def aic_curve(x: np.ndarray) -> np.ndarray:
    """Maeda's AIC of splitting ``x`` (1-D) before sample ``k``, for ``k = 1 .. n - 2``:
    ``k log var(x[:k]) + (n - k - 1) log var(x[k:])``. Its minimum is the most likely onset
    of a change in variance (an arrival). Length ``n - 2`` (index ``j`` is ``k = j + 1``)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 3:
        return np.empty(0)
    i = np.arange(1, n + 1, dtype=np.float64)
    m1, q1 = np.cumsum(x) / i, np.cumsum(x * x) / i
    xr = x[::-1]
    m2, q2 = (np.cumsum(xr) / i)[::-1], (np.cumsum(xr * xr) / i)[::-1]
    k = np.arange(1, n - 1)
    v1 = np.maximum(q1[k - 1] - m1[k - 1] ** 2, 1e-300)
    v2 = np.maximum(q2[k] - m2[k] ** 2, 1e-300)
    return k * np.log(v1) + (n - k - 1) * np.log(v2)


def aic_onset(traces: list[np.ndarray], edge: int = 0) -> int | None:
    """The onset (sample index) of a change in variance common to ``traces`` (equal-length
    1-D arrays, e.g. the two horizontals): the minimum of the sum of their
    :func:`aic_curve`, not within ``edge`` samples of either end (where the AIC of a few
    samples is meaningless). None when the window is too short."""
    total = None
    for x in traces:
        a = aic_curve(x)
        total = a if total is None else total + a
    if total is None or total.size <= 2 * edge:
        return None
    j = edge + int(np.argmin(total[edge:total.size - edge]))
    return j + 1
