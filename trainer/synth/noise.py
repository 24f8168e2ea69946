"""Background ground-velocity noise present on every record.

Per component: Gaussian noise shaped in the frequency domain to an amplitude spectrum
``f**-beta`` (power ``1/f**(2 beta)``, ``beta`` 0.25-0.75, i.e. "1/f-ish"), with a 4-pole
high-pass at 0.5 Hz (below, a 4.5 Hz geophone sees nothing useful) and a gentle roll-off
above 0.4 x the sampling rate. With probability 0.25 a narrow cultural tone (pump, generator,
ventilation: 8-60 Hz, slowly wandering) is added. Horizontals are 1.0-1.5 x the vertical.
The three components are scaled together so that their mean rms equals ``rms`` (m/s).
"""
from __future__ import annotations

import numpy as np

__all__ = ["background_noise"]


def background_noise(rng: np.random.Generator, n: int, sampling_rate: float, rms: float) -> tuple[np.ndarray, dict]:
    """``(3, n)`` ground velocity (m/s, rows Z, N, E) and a dict of the drawn parameters."""
    from scipy.fft import irfft, next_fast_len, rfft, rfftfreq

    nfft = next_fast_len(n, real=True)
    beta = float(rng.uniform(0.25, 0.75))
    hv = float(rng.uniform(1.0, 1.5))
    white = rng.standard_normal((3, nfft))
    f = rfftfreq(nfft, 1.0 / sampling_rate)
    fpos = np.maximum(f, f[1] if f.size > 1 else 1.0)
    shape = fpos ** (-beta)
    shape /= np.sqrt(1.0 + (0.5 / fpos) ** 8)  # 4-pole high-pass at 0.5 Hz
    shape /= np.sqrt(1.0 + (f / (0.4 * sampling_rate)) ** 8)  # roll-off near Nyquist
    shape[0] = 0.0
    x = irfft(rfft(white, axis=-1) * shape, n=nfft, axis=-1)[:, :n]
    x[1:] *= hv
    tone = None
    if rng.random() < 0.25:
        f0 = float(rng.uniform(8.0, 60.0))
        t = np.arange(n) / sampling_rate
        wander = 0.01 * f0 * np.sin(2 * np.pi * t / rng.uniform(20.0, 120.0) + rng.uniform(0, 2 * np.pi))
        phase = 2 * np.pi * np.cumsum(f0 + wander) / sampling_rate
        rel = float(rng.uniform(0.3, 1.5))
        base = np.sqrt(np.mean(x**2))
        for c in range(3):
            x[c] += rel * base * np.sqrt(2) * rng.uniform(0.3, 1.0) * np.sin(phase + rng.uniform(0, 2 * np.pi))
        tone = {"freq_hz": round(f0, 3), "rel_amplitude": round(rel, 3)}
    x *= rms / np.sqrt(np.mean(x**2))
    return x, {"beta": round(beta, 4), "hv": round(hv, 4), "tone": tone}
