"""Butterworth filters of ObsPy's ``bandpass``/``highpass`` without importing ``scipy.signal``.

Why: ``import scipy.signal`` runs its package init, which imports scipy.stats, optimize,
interpolate and spatial (+75 MB resident, +0.6 s on the development VM), and
``obspy.signal``'s package init imports matplotlib. The station only needs a Butterworth
design and ``sosfilt`` (docs/performance.md, "Half the memory").

* :func:`butter_sos` is :func:`scipy.signal.iirfilter` (``ftype="butter"``,
  ``output="sos"``) ported to numpy: analog prototype, pre-warp, ``lp2bp``/``lp2hp``/``lp2lp``,
  bilinear transform and ``zpk2sos`` with scipy's ``"nearest"`` pairing, the same numpy
  operations in the same order, so the sections equal scipy's (tests/test_iir.py checks
  them against scipy to 1e-12). Designs are cached per (corners, band, kind).
* :data:`sosfilt_kernel` is scipy's compiled in-place kernel behind
  :func:`scipy.signal.sosfilt` (``scipy/signal/_sosfilt``, a private extension module),
  loaded from its file **without** running ``scipy/signal/__init__.py`` (+1 MB instead of
  +75 MB). It is registered under its own name in ``sys.modules``, so a later
  ``import scipy.signal`` (a feature that needs it) reuses it. Where scipy no longer has it
  there, ``scipy.signal.sosfilt`` (identical results, the import cost) takes its place and
  :data:`PRIVATE_KERNEL` is False; tests/test_iir.py fails loudly then.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np

from edge.signal.private_ext import load_extension

__all__ = ["PRIVATE_KERNEL", "bandpass", "butter_sos", "highpass", "sosfilt", "sosfilt_inplace", "sosfilt_kernel",
           "sosfilt_zi", "sosfiltfilt"]

log = logging.getLogger(__name__)

_KERNEL_MODULE = "scipy.signal._sosfilt"


def _load_private_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """scipy's ``_sosfilt`` extension loaded from its file, or None (layout changed)."""
    mod = load_extension(_KERNEL_MODULE)
    return None if mod is None else getattr(mod, "_sosfilt", None)


def sosfilt_inplace(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    """:func:`scipy.signal.sosfilt` of ``x`` (shape (k, n), float64) in place, carrying the
    state ``zi`` (shape (k, sections, 2)) in place too."""
    from scipy.signal import sosfilt as _public  # deferred: only where the kernel is missing

    for i in range(x.shape[0]):
        y, z = _public(sos, x[i], zi=zi[i])
        x[i] = y
        zi[i] = z


_kernel = _load_private_kernel()
#: whether :data:`sosfilt_kernel` is scipy's compiled kernel (else the public function)
PRIVATE_KERNEL = _kernel is not None
#: ``sosfilt_kernel(sos, x, zi)``: second-order sections ``sos`` (float64, (sections, 6),
#: C order) run in place on ``x`` (float64, (k, n), C order) with the state ``zi``
#: (float64, (k, sections, 2)) carried in place; the arithmetic of scipy's sosfilt
sosfilt_kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], None] = _kernel or sosfilt_inplace


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None) -> np.ndarray:
    """:func:`scipy.signal.sosfilt` of a 1-D array (a new float64 array); ``zi`` (shape
    (sections, 2)), when given, is the initial state and is updated in place."""
    y = np.array(x, dtype=np.float64, ndmin=2, order="C", copy=True)
    state = np.zeros((1, len(sos), 2)) if zi is None else zi.reshape(1, len(sos), 2)
    sosfilt_kernel(np.ascontiguousarray(sos, dtype=np.float64), y, state)
    if zi is not None and not np.shares_memory(state, zi):
        zi[...] = state[0]
    return y[0]


def _lfilter_zi(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """scipy's ``lfilter_zi(b, a)`` of one section (``a[0]`` nonzero, equal lengths): the
    state of the step response's steady state, solved with numpy as scipy does."""
    if a[0] != 1.0:
        b = b / a[0]
        a = a / a[0]
    n = a.shape[0]
    companion = np.zeros((n - 1, n - 1), dtype=a.dtype)  # scipy.linalg.companion(a)
    companion[0] = -a[1:] / (1.0 * a[0])
    companion[list(range(1, n - 1)), list(range(0, n - 2))] = 1
    i_minus_a = np.eye(n - 1) - companion.T
    return np.linalg.solve(i_minus_a, b[1:] - a[1:] * b[0])


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """:func:`scipy.signal.sosfilt_zi`: initial state (sections, 2) of ``sos`` for a step."""
    zi = np.empty((sos.shape[0], 2), dtype=sos.dtype)
    scale = 1.0
    for section in range(sos.shape[0]):
        b, a = sos[section, :3], sos[section, 3:]
        zi[section] = scale * _lfilter_zi(b, a)
        scale *= np.sum(b) / np.sum(a)
    return zi


def sosfiltfilt(sos: np.ndarray, x: np.ndarray, padlen: int | None = None) -> np.ndarray:
    """:func:`scipy.signal.sosfiltfilt` of a 1-D array with its default odd padding: forward
    and backward through ``sos``, each started in the steady state of the padded signal's
    first sample. ``padlen`` (samples at each end) defaults to scipy's
    ``3 * (2 * sections + 1 - min(#zero b2, #zero a2))``; it must be below ``len(x)``."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x: expected a 1-D array, got shape {x.shape}")
    ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = ntaps * 3 if padlen is None else int(padlen)
    if x.size <= edge:
        raise ValueError(f"x: the length of the input must be greater than padlen, which is {edge}")
    if edge > 0:  # scipy's odd_ext
        ext = np.concatenate((2 * x[:1] - x[edge:0:-1], x, 2 * x[-1:] - x[-2:-(edge + 2):-1]))
    else:
        ext = x
    zi = sosfilt_zi(sos)
    state = zi * ext[0]
    y = sosfilt(sos, ext, zi=state)
    state = zi * y[-1]
    y = sosfilt(sos, y[::-1], zi=state)[::-1]
    return y[edge:-edge] if edge > 0 else y


# --------------------------------------------------------------------------- design


def _poly(roots: np.ndarray) -> np.ndarray:
    """:func:`numpy.poly` of one or two roots (what scipy's zpk2tf runs)."""
    return np.poly(roots) if len(roots) else np.array([1.0])


def _section(z: list, p: list) -> np.ndarray:
    """scipy's ``_single_zpksos(z, p, 1)``."""
    sos = np.zeros(6)
    b, a = _poly(np.asarray(z)), _poly(np.asarray(p))
    sos[3 - len(b):3] = b
    sos[6 - len(a):6] = a
    return sos


def _cplxreal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's ``_cplxreal``: one of each conjugate pair (positive imaginary part, sorted),
    and the real values."""
    if z.size == 0:
        return z, z
    tol = 100 * np.finfo((1.0 * z).dtype).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real = abs(z.imag) <= tol * abs(z)
    zr = z[real].real
    if len(zr) == len(z):
        return np.array([]), zr
    z = z[~real]
    zp, zn = z[z.imag > 0], z[z.imag < 0]
    if len(zp) != len(zn):  # pragma: no cover - Butterworth roots come in pairs
        raise ValueError("complex root without its conjugate")
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    for start, stop in zip(np.nonzero(diffs > 0)[0], np.nonzero(diffs < 0)[0] + 1):
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    return (zp + zn.conj()) / 2, zr


def _nearest(fro: np.ndarray, to: complex, which: str) -> int:
    """scipy's ``_nearest_real_complex_idx``."""
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(fro[order])
    if which == "complex":
        mask = ~mask
    return int(order[np.nonzero(mask)[0][0]])


def _zpk2sos(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """scipy's ``zpk2sos(z, p, k)`` for a digital filter, ``pairing="nearest"``."""
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p = np.concatenate((p, [0.0]))
        z = np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))

    def worst(q: np.ndarray) -> int:  # digital: the pole closest to the unit circle
        return int(np.argmin(np.abs(1 - np.abs(q))))

    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):  # the "worst" poles go last
        i = worst(p)
        p1 = p[i]
        p = np.delete(p, i)
        if np.isreal(p1) and np.isreal(p).sum() == 0:  # the last real pole
            j = _nearest(z, p1, "real")
            z1 = z[j]
            z = np.delete(z, j)
            sos[si] = _section([z1, 0], [p1, 0])
        elif (len(p) + 1 == len(z) and not np.isreal(p1) and np.isreal(p).sum() == 1
              and np.isreal(z).sum() == 1):  # pragma: no cover - not reached by Butterworth
            j = _nearest(z, p1, "complex")
            z1 = z[j]
            z = np.delete(z, j)
            sos[si] = _section([z1, z1.conj()], [p1, p1.conj()])
        else:
            if np.isreal(p1):
                real = np.flatnonzero(np.isreal(p))
                j = int(real[worst(p[real])])
                p2 = p[j]
                p = np.delete(p, j)
            else:
                p2 = p1.conj()
            if len(z) > 0:
                j = _nearest(z, p1, "any")
                z1 = z[j]
                z = np.delete(z, j)
                if not np.isreal(z1):  # pragma: no cover - Butterworth zeros are real
                    sos[si] = _section([z1, z1.conj()], [p1, p2])
                elif len(z) > 0:
                    j = _nearest(z, p1, "real")
                    z2 = z[j]
                    z = np.delete(z, j)
                    sos[si] = _section([z1, z2], [p1, p2])
                else:  # pragma: no cover - zeros and poles are padded to equal numbers
                    sos[si] = _section([z1], [p1, p2])
            else:  # pragma: no cover - as above
                sos[si] = _section([], [p1, p2])
    sos[0][:3] *= k
    return sos


@functools.lru_cache(maxsize=64)
def _butter_sos_cached(corners: int, wn: tuple[float, ...], btype: str) -> np.ndarray:
    n = corners
    p = -np.exp(1j * np.pi * np.arange(-n + 1, n, 2, dtype=np.float64) / (2 * n))  # buttap
    z = np.zeros(0, dtype=np.float64)
    k = 1.0
    warped = 2 * 2.0 * np.tan(np.pi * np.asarray(wn, dtype=np.float64) / 2.0)  # fs = 2
    degree = len(p) - len(z)
    if btype == "band":  # lp2bp_zpk
        bw = float(warped[1] - warped[0])
        wo = float(np.sqrt(warped[0] * warped[1]))
        z_lp = (z * bw / 2).astype(np.complex128)
        p_lp = (p * bw / 2).astype(np.complex128)
        z = np.concatenate((z_lp + np.sqrt(z_lp**2 - wo**2), z_lp - np.sqrt(z_lp**2 - wo**2)))
        p = np.concatenate((p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)))
        z = np.concatenate((z, np.zeros(degree)))
        k = k * bw**degree
    elif btype == "highpass":  # lp2hp_zpk
        wo = float(warped[0])
        k = k * np.real(np.prod(-z) / np.prod(-p))
        z = np.concatenate((wo / z, np.zeros(degree)))
        p = wo / p
    else:  # lowpass: lp2lp_zpk
        wo = float(warped[0])
        z = wo * z
        p = wo * p
        k = k * wo**degree
    degree = len(p) - len(z)  # bilinear_zpk, fs = 2
    fs2 = 4.0
    k = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    z = np.concatenate(((fs2 + z) / (fs2 - z), -np.ones(degree)))
    p = (fs2 + p) / (fs2 - p)
    sos = _zpk2sos(z, p, float(k))
    sos.flags.writeable = False  # the cached design: callers get copies
    return sos


def butter_sos(corners: int, wn: float | tuple[float, float], btype: str) -> np.ndarray:
    """Second-order sections of a digital Butterworth filter, as
    ``scipy.signal.iirfilter(corners, wn, btype=btype, ftype="butter", output="sos")``.

    ``wn``: corner(s) as a fraction of Nyquist (0 < wn < 1); a (low, high) pair for
    ``btype="band"``, one value for ``"highpass"``/``"lowpass"``. The design is cached per
    (corners, wn, btype); each call returns a fresh (writable: scipy's kernel wants that) copy.
    """
    btype = {"bandpass": "band", "high": "highpass", "low": "lowpass"}.get(btype, btype)
    if btype not in ("band", "highpass", "lowpass"):
        raise ValueError(f"btype: must be 'band', 'highpass' or 'lowpass', got {btype!r}")
    w = tuple(float(v) for v in np.atleast_1d(wn))
    if len(w) != (2 if btype == "band" else 1):
        raise ValueError(f"wn: {btype} needs {2 if btype == 'band' else 1} corner(s), got {wn!r}")
    if any(not 0 < v < 1 for v in w) or (len(w) == 2 and not w[0] < w[1]):
        raise ValueError(f"wn: corners must satisfy 0 < low < high < 1 (fraction of Nyquist), got {wn!r}")
    if int(corners) != corners or corners < 1:
        raise ValueError(f"corners: must be a positive integer, got {corners!r}")
    return _butter_sos_cached(int(corners), w, btype).copy()


def _apply(sos: np.ndarray, data: np.ndarray, zerophase: bool) -> np.ndarray:
    if zerophase:
        first = sosfilt(sos, data)[::-1]
        return sosfilt(sos, first)[::-1]
    return sosfilt(sos, data)


def bandpass(data: np.ndarray, freqmin: float, freqmax: float, df: float, corners: int = 4,
             zerophase: bool = False) -> np.ndarray:
    """:func:`obspy.signal.filter.bandpass` (Butterworth) of a 1-D array: corners and ``df``
    in Hz. As ObsPy, a high corner at or above Nyquist gives a high-pass at ``freqmin`` (with
    a logged warning; ObsPy warns) and a low corner above Nyquist is a ValueError."""
    fe = 0.5 * df
    low, high = freqmin / fe, freqmax / fe
    if high - 1.0 > -1e-6:
        log.warning("band-pass high corner %g Hz is at or above Nyquist (%g Hz): applying a "
                    "high-pass at %g Hz instead (as ObsPy)", freqmax, fe, freqmin)
        return highpass(data, freqmin, df, corners, zerophase)
    if low > 1:
        raise ValueError(f"freqmin: {freqmin:g} Hz is above Nyquist ({fe:g} Hz)")
    return _apply(butter_sos(corners, (low, high), "band"), data, zerophase)


def highpass(data: np.ndarray, freq: float, df: float, corners: int = 4,
             zerophase: bool = False) -> np.ndarray:
    """:func:`obspy.signal.filter.highpass` (Butterworth) of a 1-D array; ``freq``, ``df`` in Hz."""
    f = freq / (0.5 * df)
    if f > 1:
        raise ValueError(f"freq: {freq:g} Hz is above Nyquist ({0.5 * df:g} Hz)")
    return _apply(butter_sos(corners, f, "highpass"), data, zerophase)

