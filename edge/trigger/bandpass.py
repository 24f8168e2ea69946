"""The Butterworth band-pass of :func:`obspy.signal.filter.bandpass`, applied causally chunk
by chunk with the filter state carried, so the filtered samples equal the whole-trace ones.

:data:`sosfilt_kernel` runs second-order sections in place on a ``(1, n)`` float64 array with
a ``(1, sections, 2)`` state. It is scipy's compiled in-place kernel behind
:func:`scipy.signal.sosfilt`, loaded by :mod:`edge.signal.iir` without importing
``scipy.signal`` (whose package init costs ~75 MB): the same arithmetic without the argument
checks of the public function, which cost ~75 us per call and would dominate the station's
25-sample chunks (bench/trigger_cost.py: 7.6 us per feed() with the kernel, 82.7 us with the
public function). Where scipy no longer has it, :func:`sosfilt_inplace` (the public function,
identical results; tests/test_stream_trigger.py checks both) takes its place. The design is
:func:`edge.signal.iir.butter_sos` (scipy's ``iirfilter`` in numpy, cached).
"""
from __future__ import annotations

import logging

import numpy as np

from edge.signal.iir import PRIVATE_KERNEL, butter_sos, sosfilt_inplace, sosfilt_kernel

__all__ = ["bandpass_sos", "sosfilt_inplace", "sosfilt_kernel", "PRIVATE_KERNEL"]

log = logging.getLogger(__name__)


def bandpass_sos(freqmin: float, freqmax: float, sampling_rate: float, corners: int = 4) -> np.ndarray:
    """Second-order sections of ObsPy's Butterworth band-pass
    (:func:`obspy.signal.filter.bandpass`): corners in Hz, ``sampling_rate`` in Hz. As
    ObsPy, a high corner at or above Nyquist gives a high-pass at ``freqmin`` (with a logged
    warning) and a low corner above Nyquist is a ValueError."""
    fe = 0.5 * sampling_rate
    low, high = freqmin / fe, freqmax / fe
    if high - 1.0 > -1e-6:
        log.warning("band-pass high corner %g Hz is at or above Nyquist (%g Hz) of a %g Hz "
                    "channel: applying a high-pass at %g Hz instead (as ObsPy)",
                    freqmax, fe, sampling_rate, freqmin)
        if low > 1:
            raise ValueError(f"freqmin: {freqmin:g} Hz is above Nyquist ({fe:g} Hz)")
        return butter_sos(corners, low, "highpass")
    if low > 1:
        raise ValueError(f"freqmin: {freqmin:g} Hz is above Nyquist ({fe:g} Hz)")
    return butter_sos(corners, (low, high), "band")
