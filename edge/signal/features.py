"""Hand-made features of a preprocessed window (numpy/scipy only; no obspy, no torch).

Inputs are a :class:`edge.signal.preprocess.Window` (anything with ``data`` (n_comp, n) and
``sampling_rate``), or a plain array plus ``sampling_rate`` in Hz. Amplitudes are in the
window's units (m/s, or counts when no sensitivity was known).

Spectra: ``X = rfft(x - mean(x))`` with no extra window (the preprocessed window is already
bandpassed; a Hann window would spread a pure tone over three bins), frequencies
``k * fs / n`` Hz; amplitude spectrum ``|X|``, energy spectrum ``P = |X|**2``. The DC bin is
left out of every spectral feature.

Bossea features (:data:`BOSSEA_FEATURES`, after the microseismic study at Bossea cave,
Khosro Anjom et al.), on one component (Z by default), threshold ``th = 0.05 * max|x|``:

* ``bracketed_duration_s`` = ``(i_last - i_first + 1) / fs``, first and last sample with
  ``|x| >= th``.
* ``uniform_duration_s`` = ``count(|x| >= th) / fs`` (<= bracketed duration).
* ``max_mean_ratio`` = ``max|x| / mean|x|`` (dimensionless).
* ``max_over_uniform_duration`` = ``max|x| / uniform_duration_s`` (units per second).
* ``kurtosis`` = excess kurtosis ``m4 / m2**2 - 3`` (biased moments; Gaussian -> 0).
* ``peak_frequency_hz`` = frequency of the largest ``|X|``.
* ``dominant_band_hz`` = lower edge ``5 * j`` of the 5-Hz band ``[5j, 5j + 5)`` Hz with the
  largest summed ``P``.
* ``bandwidth_80_hz`` = ``f90 - f10``: ``fq`` is the first frequency at which the cumulative
  ``P`` reaches the fraction ``q`` of the total (so the band holds the central 80 % of the
  spectral energy; 0 for a pure tone on a bin).

Attributes for self-supervised pre-training (:data:`ATTRIBUTES`), float32, finite for every
window with a non-zero Z (all divisions guarded):

* ``kurtosis``, ``skewness`` of Z (excess kurtosis, ``m3 / m2**1.5``; 0 when m2 is 0).
* ``envelope_peak_time_s``: time from the window start of the peak of the Z envelope
  ``|hilbert(x)|`` smoothed by a 0.05 s moving average, seconds.
* ``envelope_decay_per_s``: ``-slope`` of the least-squares line through
  ``ln(envelope)`` from the peak to where the envelope first falls below 10 % of its peak
  (or the window end), 1/s; positive for a decaying coda, 0 when fewer than 3 samples.
* ``sta_lta_max``: maximum of the classic STA/LTA of Z (STA 0.2 s, LTA 2.0 s: the LTA fits
  inside the 2 s before the trigger), same definition as ``obspy.signal.trigger.
  classic_sta_lta`` (outputs before a full LTA are 0; tiny LTA guarded).
* ``spectral_centroid_hz`` ``c = sum(f P) / sum(P)``; ``spectral_bandwidth_hz``
  ``sqrt(sum((f - c)**2 P) / sum(P))``.
* ``log10_hf_lf_energy_ratio``: ``log10((E(f > 50 Hz) + eps) / (E(f < 20 Hz) + eps))`` with
  ``eps = 1e-12 * sum(P) + tiny``.
* ``zero_crossing_rate_hz``: sign changes of Z per second.
* ``rms_n_over_z``, ``rms_e_over_z``: rms of N (E) over rms of Z; 0 when that component is
  absent or the window has no such row.
* ``log10_peak``: ``log10(max |data|)`` over all components (the scalar fed to the model
  next to the normalized waveform, see ``edge.signal.preprocess.normalize``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.signal import hilbert

if TYPE_CHECKING:  # only for the type hints; keeps this module free of obspy at runtime
    from edge.signal.preprocess import Window

__all__ = [
    "ATTRIBUTES",
    "BOSSEA_FEATURES",
    "attributes",
    "bossea_features",
    "classic_sta_lta",
]

BOSSEA_FEATURES: tuple[str, ...] = (
    "bracketed_duration_s",
    "uniform_duration_s",
    "max_mean_ratio",
    "max_over_uniform_duration",
    "kurtosis",
    "peak_frequency_hz",
    "dominant_band_hz",
    "bandwidth_80_hz",
)

ATTRIBUTES: tuple[str, ...] = (
    "kurtosis",
    "skewness",
    "envelope_peak_time_s",
    "envelope_decay_per_s",
    "sta_lta_max",
    "spectral_centroid_hz",
    "spectral_bandwidth_hz",
    "log10_hf_lf_energy_ratio",
    "zero_crossing_rate_hz",
    "rms_n_over_z",
    "rms_e_over_z",
    "log10_peak",
)

#: Fraction of the peak absolute amplitude that defines the Bossea durations.
DURATION_THRESHOLD = 0.05
#: Width of the bands of ``dominant_band_hz``, Hz.
BAND_WIDTH_HZ = 5.0
#: STA and LTA of ``sta_lta_max``, seconds.
STA_S, LTA_S = 0.2, 2.0
#: Moving average applied to the Hilbert envelope, seconds.
ENVELOPE_SMOOTH_S = 0.05
#: Envelope fraction of its peak that ends the decay fit.
DECAY_FLOOR = 0.1
#: Frequency limits of the high/low energy ratio, Hz.
HF_ABOVE_HZ, LF_BELOW_HZ = 50.0, 20.0

_TINY = np.finfo(np.float64).tiny
_COMPONENT_ROWS = {"Z": 0, "N": 1, "E": 2}


def _rows(
    window: Window | np.ndarray, sampling_rate: float | None
) -> tuple[np.ndarray, float, tuple[bool, ...]]:
    """``(data (n_comp, n) float64, sampling_rate Hz, present)`` from a Window or array."""
    if hasattr(window, "data") and hasattr(window, "sampling_rate"):
        w: Any = window
        data = np.asarray(w.data, dtype=np.float64)
        fs = float(w.sampling_rate if sampling_rate is None else sampling_rate)
        present = tuple(getattr(w, "present", (True,) * data.shape[0]))
    else:
        if sampling_rate is None:
            raise ValueError("sampling_rate (Hz) is required with a plain array")
        data = np.asarray(window, dtype=np.float64)
        fs = float(sampling_rate)
        present = (True,) * (1 if data.ndim == 1 else data.shape[0])
    if data.ndim == 1:
        data = data[np.newaxis, :]
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"expected (n_components, n >= 2) samples, got shape {data.shape}")
    if not fs > 0:
        raise ValueError(f"sampling_rate must be > 0 Hz, got {fs}")
    if not np.all(np.isfinite(data)):
        raise ValueError("data contain NaN or inf")
    return data, fs, present


def _row_index(component: int | str) -> int:
    return component if isinstance(component, int) else _COMPONENT_ROWS[component.upper()]


def _spectrum(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(f Hz, |X|, P = |X|**2)`` without the DC bin."""
    spec = np.fft.rfft(x - x.mean())
    f = np.fft.rfftfreq(x.size, d=1.0 / fs)
    amp = np.abs(spec)[1:]
    return f[1:], amp, amp * amp


def _moments(x: np.ndarray) -> tuple[float, float]:
    """``(excess kurtosis, skewness)`` from biased central moments; 0 for a flat signal."""
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if m2 <= _TINY:
        return 0.0, 0.0
    m3 = float(np.mean(d * d * d))
    m4 = float(np.mean((d * d) ** 2))
    return m4 / (m2 * m2) - 3.0, m3 / m2**1.5


def bossea_features(
    window: Window | np.ndarray,
    sampling_rate: float | None = None,
    *,
    component: int | str = "Z",
) -> np.ndarray:
    """The eight Bossea features (:data:`BOSSEA_FEATURES`) of one component.

    Args:
        window: a Window, a (n_comp, n) array or a 1-D trace.
        sampling_rate: Hz; required for arrays, overrides the Window's otherwise.
        component: row to use, ``"Z"``/``"N"``/``"E"`` or an index (a 1-D trace is row 0).

    Returns:
        float64 array (8,) in :data:`BOSSEA_FEATURES` order (units in the names).

    Raises:
        ValueError: the trace is all zeros (no peak to relate to).
    """
    data, fs, _ = _rows(window, sampling_rate)
    x = data[0] if data.shape[0] == 1 else data[_row_index(component)]
    a = np.abs(x)
    peak = float(a.max())
    if peak == 0.0:
        raise ValueError("trace is all zeros: Bossea features are undefined")
    above = np.flatnonzero(a >= DURATION_THRESHOLD * peak)
    bracketed = (above[-1] - above[0] + 1) / fs
    uniform = above.size / fs
    kurt, _ = _moments(x)
    f, amp, power = _spectrum(x, fs)
    peak_f = float(f[np.argmax(amp)])
    band = np.floor(f / BAND_WIDTH_HZ).astype(np.int64)
    band_energy = np.bincount(band, weights=power)
    dominant = float(np.argmax(band_energy) * BAND_WIDTH_HZ)
    cum = np.cumsum(power)
    total = cum[-1]
    if total > 0:
        f10 = f[np.searchsorted(cum, 0.1 * total)]
        f90 = f[min(np.searchsorted(cum, 0.9 * total), f.size - 1)]
        bw80 = float(f90 - f10)
    else:  # a constant trace: no spectrum (excluded DC)
        bw80 = 0.0
    return np.array(
        [bracketed, uniform, peak / float(a.mean()), peak / uniform, kurt, peak_f, dominant, bw80],
        dtype=np.float64,
    )


def classic_sta_lta(x: np.ndarray, nsta: int, nlta: int) -> np.ndarray:
    """Classic STA/LTA of ``x**2`` (numpy re-statement of ObsPy's ``classic_sta_lta``).

    ``sta[i]`` / ``lta[i]`` are the means of the last ``nsta`` / ``nlta`` squared samples up
    to ``i``; outputs before index ``nlta - 1`` are 0 and a zero LTA is replaced by the
    smallest float, as in ObsPy.
    """
    a = np.asarray(x, dtype=np.float64)
    sta = np.cumsum(a * a)
    lta = sta.copy()
    sta[nsta:] = sta[nsta:] - sta[:-nsta]
    sta /= nsta
    lta[nlta:] = lta[nlta:] - lta[:-nlta]
    lta /= nlta
    sta[: nlta - 1] = 0.0
    lta[lta < _TINY] = _TINY
    return sta / lta


def _envelope_features(x: np.ndarray, fs: float) -> tuple[float, float]:
    """``(peak time s, decay rate 1/s)`` of the smoothed Hilbert envelope."""
    env = np.abs(hilbert(x))
    k = max(1, int(round(ENVELOPE_SMOOTH_S * fs)))
    if k > 1:
        env = np.convolve(env, np.ones(k) / k, mode="same")
    i_peak = int(np.argmax(env))
    peak = env[i_peak]
    if peak <= 0:
        return 0.0, 0.0
    below = np.flatnonzero(env[i_peak:] < DECAY_FLOOR * peak)
    stop = i_peak + (int(below[0]) if below.size else env.size - i_peak)
    seg = env[i_peak:stop]
    if seg.size < 3:
        return i_peak / fs, 0.0
    t = np.arange(seg.size, dtype=np.float64) / fs
    y = np.log(np.maximum(seg, peak * 1e-12))
    tc = t - t.mean()
    slope = float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))
    return i_peak / fs, -slope


def attributes(window: Window | np.ndarray, sampling_rate: float | None = None) -> np.ndarray:
    """Seismic attributes (:data:`ATTRIBUTES`) for self-supervised pre-training.

    Args:
        window: a Window or a (n_comp, n) array with rows Z, N, E (a 1-D array is Z only).
        sampling_rate: Hz; required for arrays.

    Returns:
        float32 array ``(len(ATTRIBUTES),)``, all finite.
    """
    data, fs, present = _rows(window, sampling_rate)
    z = data[0]
    kurt, skew = _moments(z)
    t_peak, decay = _envelope_features(z, fs)
    nsta, nlta = max(1, int(round(STA_S * fs))), max(2, int(round(LTA_S * fs)))
    stalta = float(classic_sta_lta(z, nsta, nlta).max()) if z.size >= nlta else 0.0
    f, _, power = _spectrum(z, fs)
    total = float(power.sum())
    if total > 0:
        centroid = float(np.dot(f, power) / total)
        bandwidth = float(np.sqrt(np.dot((f - centroid) ** 2, power) / total))
    else:
        centroid = bandwidth = 0.0
    eps = 1e-12 * total + _TINY
    hf_lf = np.log10((power[f > HF_ABOVE_HZ].sum() + eps) / (power[f < LF_BELOW_HZ].sum() + eps))
    signs = np.signbit(z)
    zcr = float(np.count_nonzero(signs[1:] != signs[:-1])) * fs / z.size
    rms = np.sqrt(np.mean(data * data, axis=1))
    rms_z = float(rms[0])
    ratios = []
    for row in (1, 2):
        ok = row < data.shape[0] and (row >= len(present) or present[row]) and rms_z > 0
        ratios.append(float(rms[row]) / rms_z if ok else 0.0)
    peak = float(np.abs(data).max())
    log_peak = float(np.log10(max(peak, _TINY)))
    out = np.array(
        [kurt, skew, t_peak, decay, stalta, centroid, bandwidth, hf_lf, zcr, *ratios, log_peak],
        dtype=np.float64,
    )
    out[~np.isfinite(out)] = 0.0  # defensive: guarded above, never expected
    return out.astype(np.float32)
