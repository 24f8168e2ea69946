"""Log-power spectrogram images for the spectrogram-CNN baseline (Bossea cave study).

numpy/scipy only, so the trainer and the station compute the model input with the same code.
Input is the preprocessed window of :mod:`edge.signal.preprocess` (3 x 3000 samples at 250 Hz,
already divided by its peak). Per component:

1. ``scipy.signal.spectrogram`` with a Hann window of ``nperseg`` samples (128 = 0.512 s),
   ``noverlap`` (64) samples overlap, ``detrend="constant"``, one-sided PSD
   (``scaling="density"``);
2. keep the frequencies ``<= fmax`` (default 125 Hz, i.e. everything up to Nyquist);
3. ``log10(psd + eps)``.

Normalisation is per example, *jointly over the three components* (so the relative level of
Z, N and E survives): subtract the maximum, clip to the ``dynamic_range`` decades below it,
and map ``[-dynamic_range, 0]`` linearly onto ``[0, 1]``. A silent (all-zero) component
therefore becomes all zeros (and so does an all-zero example). Output is float32
``(3, F, T)``; with the defaults and 3000 samples ``F = 65`` (0, 1.95, ..., 125 Hz) and
``T = 45`` (segment centres at 0.256 s, then every 0.256 s). Deterministic: no randomness, no
state.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import spectrogram as _scipy_spectrogram

__all__ = [
    "DEFAULT_NPERSEG",
    "DEFAULT_NOVERLAP",
    "DEFAULT_FMAX",
    "DEFAULT_DYNAMIC_RANGE",
    "spectrogram",
    "spectrogram_shape",
]

DEFAULT_NPERSEG = 128
DEFAULT_NOVERLAP = 64
DEFAULT_FMAX = 125.0
#: Decades of power kept below the per-example maximum (8 decades = 80 dB).
DEFAULT_DYNAMIC_RANGE = 8.0
_EPS = 1e-20


def _check(nperseg: int, noverlap: int, sampling_rate: float) -> None:
    if not sampling_rate > 0:
        raise ValueError(f"sampling_rate must be > 0, got {sampling_rate}")
    if nperseg < 2 or not 0 <= noverlap < nperseg:
        raise ValueError(f"need nperseg >= 2 and 0 <= noverlap < nperseg, got {nperseg}, {noverlap}")


def spectrogram_shape(
    n_samples: int,
    sampling_rate: float = 250.0,
    nperseg: int = DEFAULT_NPERSEG,
    noverlap: int = DEFAULT_NOVERLAP,
    fmax: float = DEFAULT_FMAX,
) -> tuple[int, int]:
    """``(F, T)`` of :func:`spectrogram` for a window of ``n_samples`` (no data needed)."""
    _check(nperseg, noverlap, sampling_rate)
    if n_samples < nperseg:
        raise ValueError(f"window of {n_samples} samples is shorter than nperseg={nperseg}")
    freqs = np.fft.rfftfreq(nperseg, d=1.0 / sampling_rate)
    n_freq = int(np.count_nonzero(freqs <= fmax + 1e-9))
    step = nperseg - noverlap
    n_time = (n_samples - noverlap) // step
    return n_freq, n_time


def spectrogram(
    x: np.ndarray,
    sampling_rate: float = 250.0,
    nperseg: int = DEFAULT_NPERSEG,
    noverlap: int = DEFAULT_NOVERLAP,
    fmax: float = DEFAULT_FMAX,
    dynamic_range: float = DEFAULT_DYNAMIC_RANGE,
) -> np.ndarray:
    """Normalised log-power spectrogram.

    Args:
        x: waveform, shape ``(C, n)`` (C = 3 for Z, N, E), or ``(batch, C, n)`` -- the
            normalisation is then done per example.
        sampling_rate: Hz.
        nperseg, noverlap: segment length and overlap in samples.
        fmax: highest frequency kept, Hz.
        dynamic_range: decades kept below the example's maximum.

    Returns:
        float32 array ``(C, F, T)`` (or ``(batch, C, F, T)``) with values in ``[0, 1]``.
    """
    _check(nperseg, noverlap, sampling_rate)
    if not dynamic_range > 0:
        raise ValueError(f"dynamic_range must be > 0, got {dynamic_range}")
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected (C, n) or (batch, C, n), got shape {a.shape}")
    if a.shape[-1] < nperseg:
        raise ValueError(f"window of {a.shape[-1]} samples is shorter than nperseg={nperseg}")
    if not np.isfinite(a).all():
        raise ValueError("waveform contains NaN/inf")
    freqs, _, psd = _scipy_spectrogram(
        a,
        fs=sampling_rate,
        window="hann",
        nperseg=nperseg,
        noverlap=noverlap,
        detrend="constant",
        scaling="density",
        mode="psd",
        axis=-1,
    )
    psd = psd[..., freqs <= fmax + 1e-9, :]  # (..., C, F, T)
    logp = np.log10(psd + _EPS)
    peak = logp.max(axis=(-3, -2, -1), keepdims=True)
    out = (np.clip(logp - peak, -dynamic_range, 0.0) + dynamic_range) / dynamic_range
    # An example with no power at all (all zeros) is all zeros, not all ones.
    out = np.where(peak > np.log10(_EPS) + 1e-6, out, 0.0)
    return out.astype(np.float32)
