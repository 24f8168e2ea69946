"""ObsPy's AR-AIC P/S picker (:func:`obspy.signal.trigger.ar_pick`) without ``obspy.signal``
and ``scipy.signal``.

Why: ``obspy.signal``'s package init imports matplotlib, and ``obspy.signal.trigger`` imports
all of ``scipy.signal`` (~110 MB resident on the station together, docs/performance.md). The
picker itself is C (``ar_picker`` in ObsPy's libsignal, declared in :mod:`edge.trigger.clib`);
its Python wrapper only detrends, converts and scales the three components. :func:`ar_pick`
does exactly that:

* :func:`detrend_linear` is ``scipy.signal.detrend(x, type="linear")`` of a 1-D array: the
  least-squares line from LAPACK's ``?gelsd`` (what ``scipy.linalg.lstsq`` calls), taken from
  scipy's compiled ``scipy.linalg._flapack`` loaded without ``scipy/linalg/__init__.py``
  (:mod:`edge.signal.private_ext`: +3.5 MB instead of +26 MB), with scipy's work-size rules
  and the same numpy operations, so the result is scipy's bit for bit (float32 stays float32,
  as in scipy). Where that module is missing, ``scipy.linalg.lstsq`` (same result, the
  import cost) is used and :data:`PRIVATE_LAPACK` is False;
* float32 C-contiguous copies; components whose largest absolute value is below 100 are
  scaled to 1e6 (Z alone, N and E with one common factor), as ObsPy does.

tests/test_arpick.py compares :func:`ar_pick` with ObsPy's on real recordings, bit for bit.
"""
from __future__ import annotations

import ctypes as C
from typing import Any

import numpy as np

from edge.signal.private_ext import load_extension
from edge.trigger.clib import clibsignal

__all__ = ["PRIVATE_LAPACK", "ar_pick", "detrend_linear"]

_flapack = load_extension("scipy.linalg._flapack")
#: whether :func:`detrend_linear` uses scipy's compiled LAPACK module directly
PRIVATE_LAPACK = _flapack is not None


def _work_size(value: Any, single: bool) -> int:
    """scipy's ``_check_work_float``: an integer work size from LAPACK's float answer (the
    next float32 up for single-precision routines, which may truncate it)."""
    if single:
        value = np.nextafter(value, np.inf, dtype=np.float32)
    return int(value)


def _lstsq_gelsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``scipy.linalg.lstsq(a, b)[0]`` (driver ``gelsd``, ``cond`` = eps of the type) for
    real ``a`` (m, n) with m >= n and ``b`` (m, k) of the same float type."""
    if _flapack is None:
        from scipy.linalg import lstsq  # deferred: only where scipy's private module moved

        return lstsq(a, b)[0]
    a = np.asarray_chkfinite(a)
    b = np.asarray_chkfinite(b)
    single = a.dtype == np.float32 and b.dtype == np.float32
    prefix = "s" if single else "d"
    gelsd, gelsd_lwork = getattr(_flapack, f"{prefix}gelsd"), getattr(_flapack, f"{prefix}gelsd_lwork")
    m, n = a.shape
    nrhs = b.shape[1] if b.ndim == 2 else 1
    cond = np.finfo(np.float32 if single else np.float64).eps
    work, iwork, info = gelsd_lwork(m, n, nrhs, cond)
    if info != 0:
        raise ValueError(f"Internal work array size computation failed: {info}")
    lwork, liwork = _work_size(np.real(work), single), _work_size(np.real(iwork), single)
    x, _s, _rank, info = gelsd(a, b, lwork, liwork, cond, False, False)
    if info > 0:
        raise np.linalg.LinAlgError("SVD did not converge in Linear Least Squares")
    if info < 0:
        raise ValueError(f"illegal value in {-info}-th argument of internal gelsd")
    return x[:n] if m > n else x


def detrend_linear(data: np.ndarray) -> np.ndarray:
    """``scipy.signal.detrend(data, type="linear")`` of a 1-D array: a new array (float32
    and float64 keep their type, other types become float64) less its least-squares line."""
    x = np.asarray(data)
    if x.ndim != 1:
        raise ValueError(f"data: expected a 1-D array, got shape {x.shape}")
    dtype = x.dtype.char if x.dtype.char in "df" else "d"
    n = x.shape[0]
    bp = np.sort(np.unique(np.concatenate(np.atleast_1d(0, 0, n))))
    newdata = x.reshape(n, -1).copy()
    if newdata.dtype.char not in "df":
        newdata = newdata.astype(dtype)
    for m in range(len(bp) - 1):
        npts = bp[m + 1] - bp[m]
        a = np.ones((npts, 2), dtype)
        a[:, 0] = np.arange(1, npts + 1, dtype=dtype) / npts
        sl = slice(bp[m], bp[m + 1])
        coef = _lstsq_gelsd(a, newdata[sl])
        newdata[sl] = newdata[sl] - a @ coef
    return newdata.reshape(n)


def ar_pick(a: np.ndarray, b: np.ndarray, c: np.ndarray, samp_rate: float, f1: float, f2: float,
            lta_p: float, sta_p: float, lta_s: float, sta_s: float, m_p: int, m_s: int,
            l_p: float, l_s: float, s_pick: bool = True) -> tuple[float, float]:
    """:func:`obspy.signal.trigger.ar_pick`: P and S onsets (s after the first sample) of the
    Z (``a``), N (``b``) and E (``c``) components, all of the same length.

    ``samp_rate``, ``f1``, ``f2`` (band-pass corners) in Hz; ``lta_*``/``sta_*`` (STA/LTA
    windows) and ``l_*`` (variance windows) in s; ``m_*`` AR orders. Raises ValueError on
    components of different lengths, MemoryError/RuntimeError when the C picker fails.
    """
    if not (len(a) == len(b) == len(c)):
        raise ValueError("All three data arrays must have the same length.")
    a, b, c = (np.require(detrend_linear(x), dtype=np.float32, requirements=["C_CONTIGUOUS"]) for x in (a, b, c))
    data_max = np.abs(a).max()
    if data_max < 100:
        a *= 1e6
        a /= data_max
    data_max = max(np.abs(b).max(), np.abs(c).max())
    if data_max < 100:
        for x in (b, c):
            x *= 1e6
            x /= data_max
    ptime, stime = C.c_float(), C.c_float()
    err = clibsignal.ar_picker(a, b, c, len(a), samp_rate, f1, f2, lta_p, sta_p, lta_s, sta_s, m_p, m_s,
                               C.byref(ptime), C.byref(stime), l_p, l_s, C.c_int(s_pick))
    if err != 0:
        bufs = ["buff1", "buff1_s", "buff2", "buff3", "buff4", "buff4_s", "f_error", "b_error", "ar_f",
                "ar_b", "buf_sta", "buf_lta", "extra_tr1", "extra_tr2", "extra_tr3"]
        if err <= len(bufs):
            raise MemoryError(f"Unable to allocate {bufs[err - 1]}!")
        raise RuntimeError(f"ar_picker failed (error {err})")
    return ptime.value, stime.value
