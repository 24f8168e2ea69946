"""Simulation of a seismometer given by poles and zeros (the Wood-Anderson of ML), as ObsPy's
:func:`obspy.signal.invsim.simulate_seismometer` with ``paz_remove=None`` (forward
simulation only) and its default ``pitsasim=True``, with numpy alone.

Why not ObsPy's: ``obspy.signal``'s package init imports matplotlib and ``obspy.signal.invsim``
imports all of ``scipy.signal`` (together ~110 MB resident on the station,
docs/performance.md). The operations here are ObsPy's and scipy's, in the same order
(``cosine_taper``, ``_npts2nfft``, ``paz_to_freq_resp`` = ``scipy.signal.zpk2tf`` +
``freqs``, numpy's real FFT, ``obspy.signal.detrend.simple``); tests/test_seismometer.py
compares the result with ObsPy's on real recordings.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["cosine_taper", "npts2nfft", "paz_to_freq_resp", "simulate_seismometer"]


def cosine_taper(npts: int, p: float = 0.1) -> np.ndarray:
    """ObsPy's ``cosine_taper(npts, p)`` (half-cosine flanks, ``p`` the tapered fraction of
    both ends together), without its frequency-domain and SAC options."""
    if p < 0 or p > 1:
        raise ValueError("p: decimal taper percentage must be between 0 and 1")
    frac = int(npts * p / 2.0) if p in (0.0, 1.0) else int(npts * p / 2.0 + 0.5)
    idx1, idx2, idx3, idx4 = 0, frac - 1, npts - frac, npts - 1
    if idx1 == idx2:
        idx2 += 1
    if idx3 == idx4:
        idx3 -= 1
    win = np.zeros(npts)
    win[idx1:idx2 + 1] = 0.5 * (1.0 - np.cos(np.pi * (np.arange(idx1, idx2 + 1) - float(idx1)) / (idx2 - idx1)))
    win[idx2 + 1:idx3] = 1.0
    win[idx3:idx4 + 1] = 0.5 * (1.0 + np.cos(np.pi * (float(idx3) - np.arange(idx3, idx4 + 1)) / (idx4 - idx3)))
    if idx1 == idx2:
        win[idx1] = 0.0
    if idx3 == idx4:
        win[idx3] = 0.0
    return win


def _largest_prime_factor(x: int) -> int:
    """Largest prime factor of ``x`` (ObsPy's ``factorize_int``'s last factor)."""
    largest, num = 1, x
    for check in range(2, int(math.sqrt(x)) + 1):
        while num % check == 0:
            largest = check
            num //= check
    return max(largest, num)


def npts2nfft(npts: int) -> int:
    """ObsPy's ``_npts2nfft(npts)``: at least twice ``npts`` (even), moved up by at most 20
    to a length whose prime factors are all below 500, else the next power of 2."""
    nfft = 2 * (npts + 1) if npts & 0x1 else 2 * npts
    if nfft > 5000 and _largest_prime_factor(nfft) >= 500:
        for i in range(1, 11):
            if _largest_prime_factor(nfft + 2 * i) < 500:
                return nfft + 2 * i
        return int(math.pow(2, math.ceil(math.log(nfft) / math.log(2))))
    return nfft


def _poly(roots: Sequence[complex]) -> np.ndarray:
    """scipy's ``_polyutils.poly``: polynomial coefficients of ``roots`` (real when the roots
    come in conjugate pairs)."""
    r = np.atleast_1d(np.asarray(roots))
    if r.shape[0] == 0:
        return np.asarray(1.0, dtype=np.real(r).dtype)
    a = np.ones((1,), dtype=r.dtype)
    one = np.ones_like(r[0])
    for zero in r:
        a = np.convolve(a, np.stack((one, -zero)), mode="full")
    if np.iscomplexobj(a):
        c = np.asarray(r, dtype=np.complex128)
        if np.all(np.sort(np.imag(c)) == np.sort(np.imag(np.conj(c)))):
            a = np.real(a).copy()
    return a


def _polyval(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """scipy's ``_polyutils.polyval`` (Horner, from a zero array of ``x``'s type)."""
    y = np.zeros_like(x)
    for c in np.atleast_1d(p):
        y = y * x + c
    return y


def paz_to_freq_resp(poles: Sequence[complex], zeros: Sequence[complex], scale_fac: float,
                     t_samp: float, nfft: int) -> np.ndarray:
    """ObsPy's ``paz_to_freq_resp``: the response at the ``nfft // 2 + 1`` frequencies of a
    real FFT of ``nfft`` points at sampling interval ``t_samp`` (s)."""
    z, p = np.asarray(zeros), np.asarray(poles)
    k = np.atleast_1d(np.asarray(scale_fac, dtype=np.result_type(np.real(z), np.real(p), scale_fac)))
    if np.issubdtype(k.dtype, np.integer):
        k = k.astype(np.float64)
    b = np.multiply(k, _poly(z))  # scipy.signal.zpk2tf
    a = np.atleast_1d(_poly(p))
    f = np.linspace(0, 1 / (t_samp * 2.0), nfft // 2 + 1)
    s = 1j * np.atleast_1d(f * 2 * np.pi)  # scipy.signal.freqs
    return _polyval(b, s) / _polyval(a, s)


def simulate_seismometer(data: np.ndarray, samp_rate: float, paz_simulate: Mapping[str, Any],
                         simulate_sensitivity: bool = True, zero_mean: bool = True,
                         taper: bool = True, taper_fraction: float = 0.05) -> np.ndarray:
    """``obspy.signal.invsim.simulate_seismometer(data, samp_rate, paz_remove=None,
    paz_simulate=paz_simulate, ...)``: ``data`` (1-D) through the instrument with poles,
    zeros and ``gain`` (A0) of ``paz_simulate``, times its ``sensitivity`` when
    ``simulate_sensitivity``; ``samp_rate`` in Hz. A new float64 array of ``len(data)``."""
    for key in ("poles", "zeros", "gain"):
        if key not in paz_simulate:
            raise KeyError(f"Missing key: {key}")
    delta = 1.0 / samp_rate
    ndat = len(data)
    x = np.asarray(data).astype(np.float64)
    if zero_mean:
        x -= x.mean()
    if taper:
        x *= cosine_taper(ndat, taper_fraction)
    nfft = npts2nfft(ndat)
    spec = np.fft.rfft(x, n=nfft)
    spec *= paz_to_freq_resp(paz_simulate["poles"], paz_simulate["zeros"], paz_simulate["gain"], delta, nfft)
    spec[-1] = abs(spec[-1]) + 0.0j
    y = np.fft.irfft(spec)[0:ndat]
    x1, x2 = y[0], y[-1]  # pitsasim: obspy.signal.detrend.simple
    y -= x1 + np.arange(ndat) * (x2 - x1) / float(ndat - 1)
    if simulate_sensitivity:
        y *= paz_simulate["sensitivity"]
    return y
