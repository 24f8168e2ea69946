"""Instrument correction of the model window: raw counts -> ground velocity (m/s) with the
channel's full response (StationXML), for every kind of sensor.

A flat sensitivity (counts per m/s at one frequency) is exact only where the response is
flat in velocity. It is not for a 4.5 Hz or 10 Hz geophone below its natural frequency (at
2 Hz a 10 Hz geophone gives 1/25 of its quoted gain) and not at all for an accelerometer,
whose counts are proportional to *acceleration*: a MEMS sensitivity converted to velocity at
1 Hz is wrong by a factor ``f / 1 Hz`` at every other frequency. :func:`remove_response`
divides the spectrum of the cut by the response to **velocity**
(``Response.get_evalresp_response(output="VEL")``, which turns an ``M/S**2`` sensor into
``counts per m/s = S * i omega``: the division integrates it), so the model's amplitude input
and the ML are in the same physical unit whatever the instrument.

Stabilisation (as ObsPy's ``Trace.remove_response``): a cosine pre-filter that is 0 below
``freqmin / 4``, rises to 1 at ``freqmin / 2`` and falls from ``0.45`` to ``0.49`` x the
input rate to 0 at Nyquist (anti-alias FIR stages of real recorders), and a water level of
:data:`WATER_LEVEL_DB` below the largest ``|H|``. The window's bandpass (``freqmin`` ..
``freqmax``) follows, so the pre-filter only keeps the division from amplifying what the
bandpass removes anyway. Only numpy and ObsPy: this runs on the station. numpy's FFT, not
``scipy.fft`` (whose import loads scipy.special: +22 MB resident on the station); the
transform lengths are ``scipy.fft.next_fast_len``'s (:func:`next_fast_len`), and numpy's and
scipy's pocketfft give the same values (tests/test_seismometer.py checks both).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.fft import irfft, rfft, rfftfreq

__all__ = ["WATER_LEVEL_DB", "next_fast_len", "remove_response"]

#: water level of the inversion, dB below the largest |H| (ObsPy's default)
WATER_LEVEL_DB = 60.0


def next_fast_len(target: int) -> int:
    """``scipy.fft.next_fast_len(target)``: the smallest ``n >= target`` whose prime factors
    are all 2, 3, 5, 7 or 11 (a fast length for pocketfft)."""
    if target < 1:
        raise ValueError(f"target: must be a positive integer, got {target}")
    n = int(target)
    while True:
        m = n
        for p in (2, 3, 5, 7, 11):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _cosine_prefilter(f: np.ndarray, f1: float, f2: float, f3: float, f4: float) -> np.ndarray:
    w = np.zeros_like(f)
    rise = (f >= f1) & (f < f2)
    w[rise] = 0.5 * (1.0 - np.cos(np.pi * (f[rise] - f1) / (f2 - f1)))
    w[(f >= f2) & (f <= f3)] = 1.0
    fall = (f > f3) & (f <= f4)
    w[fall] = 0.5 * (1.0 + np.cos(np.pi * (f[fall] - f3) / (f4 - f3)))
    return w


def remove_response(values: np.ndarray, sampling_rate: float, response, freqmin: float) -> np.ndarray:
    """Ground velocity (m/s) of a detrended, tapered cut ``values`` (counts) at
    ``sampling_rate`` Hz, through ``response`` (ObsPy ``Response`` of the channel, ground
    motion -> COUNTS; velocity, displacement or acceleration input).

    The cut is zero-padded to at least twice its length (no wrap-around). ``freqmin`` (Hz)
    is the window's bandpass lower corner and sets the low end of the pre-filter.

    Raises:
        ValueError: the response gives no usable values (all zero or not finite).
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    fs = float(sampling_rate)
    nfft = next_fast_len(2 * n)
    nfft += nfft % 2  # evalresp wants an even length
    h, _ = response.get_evalresp_response(t_samp=1.0 / fs, nfft=nfft, output="VEL")
    h = np.asarray(h, dtype=np.complex128)
    mag = np.abs(h)
    top = float(np.max(mag)) if mag.size else 0.0
    if not (top > 0 and math.isfinite(top)):
        raise ValueError("instrument response is zero or not finite")
    floor = top * 10.0 ** (-WATER_LEVEL_DB / 20.0)
    low = mag < floor
    h = h.copy()
    h[low] = floor * np.exp(1j * np.angle(h[low]))
    h[mag == 0] = floor
    f = rfftfreq(nfft, 1.0 / fs)
    nyq = 0.5 * fs
    pre = _cosine_prefilter(f, 0.25 * freqmin, 0.5 * freqmin, 0.45 * fs, min(0.49 * fs, nyq))
    y = irfft(rfft(x, n=nfft) * pre / h, n=nfft)[:n]
    return y
