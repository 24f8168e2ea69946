"""Waveform models of the rock-mass classes: fracture (class I) and rockfall (class II).

Every model returns a :class:`Source`: a ``(3, L)`` ground-velocity segment (rows Z, N, E)
whose sample 0 is the true onset, with an arbitrary amplitude that the generator scales to
the drawn SNR. Earthquakes live in :mod:`.earthquake`, non-event transients in
:mod:`.transients`. All randomness comes from the ``rng`` passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Source",
    "damped_sine",
    "fracture",
    "loguniform",
    "polarisation",
    "rockfall",
]


@dataclass
class Source:
    """One event's signal, onset at sample 0.

    ``velocity``: ``(3, L)`` ground velocity (m/s, or relative units when ``absolute`` is
    False). ``counts``: optional ``(3, L)`` digitizer-domain artefact added after the
    response (spikes, steps), in the same relative units times the sensitivity.
    ``meta``: drawn parameters for ``truth.csv`` / debugging.
    """

    velocity: np.ndarray
    counts: np.ndarray | None = None
    absolute: bool = False
    subtype: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.velocity.shape[-1])


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    if lo == hi:
        return float(lo)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def damped_sine(n: int, fs: float, freq: float, tau: float, phase: float = 0.0) -> np.ndarray:
    """``exp(-t/tau) sin(2 pi f t + phase)`` starting at sample 0, with a quarter-period
    cosine ramp so the onset has no jump even for ``phase != 0``."""
    t = np.arange(n) / fs
    w = np.exp(-t / tau) * np.sin(2 * np.pi * freq * t + phase)
    nr = max(1, int(round(fs / (4 * freq))))
    if nr > 1 and nr < n:
        w[:nr] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(nr) / nr)
    return w


def polarisation(rng: np.random.Generator, incidence_deg: float, baz_deg: float) -> dict[str, np.ndarray]:
    """Unit vectors (Z, N, E) of the P, SV and SH directions for a ray arriving from
    back-azimuth ``baz_deg`` with incidence ``incidence_deg`` from vertical."""
    i = np.radians(incidence_deg)
    phi = np.radians(baz_deg + 180.0)  # direction of propagation (away from the source)
    r_hat = np.array([0.0, np.cos(phi), np.sin(phi)])
    t_hat = np.array([0.0, -np.sin(phi), np.cos(phi)])
    z_hat = np.array([1.0, 0.0, 0.0])
    p = np.cos(i) * z_hat + np.sin(i) * r_hat
    sv = -np.sin(i) * z_hat + np.cos(i) * r_hat
    return {"P": p, "SV": sv, "SH": t_hat}


def _taper_end(x: np.ndarray, fs: float, start_s: float, end_s: float) -> None:
    n = x.shape[-1]
    a, b = int(start_s * fs), min(n, int(end_s * fs))
    if b > a:
        x[..., a:b] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(b - a) / (b - a))
    x[..., b:] = 0.0


def fracture(rng: np.random.Generator, fs: float, freq_range: tuple[float, float],
             decay_range: tuple[float, float], season_shift_hz: float = 0.0) -> Source:
    """Class I: a fracture inside the rock mass, 10-250 m from the sensor.

    P then S (S-P = d (1/Vs - 1/Vp), Vp 4.0, Vs 2.3 km/s limestone: 2-50 ms), each 1-3
    sub-events (crack steps 0-30 ms apart) of damped sinusoids. The S phase carries most of
    the energy (1.5-3 x P) at the peak frequency ``fc`` (55-110 Hz + season shift, capped at
    0.45 x fs); P rings 0-30 % higher. e-folding decay 0.02-0.25 s (log-uniform); the
    signal is tapered to zero between 0.7 and 0.9 s, so it always lasts < 1 s.
    """
    cap = 0.45 * fs
    fc = float(np.clip(rng.uniform(*freq_range) + season_shift_hz, 2.0, cap))
    tau = loguniform(rng, *decay_range)
    d_m = float(rng.uniform(10.0, 250.0))
    vp, vs = 4000.0, 2300.0
    sp = d_m * (1.0 / vs - 1.0 / vp)
    n = int(round(1.0 * fs))
    out = np.zeros((3, n))
    pol = polarisation(rng, rng.uniform(0.0, 60.0), rng.uniform(0.0, 360.0))
    fp = float(min(cap, fc * rng.uniform(1.0, 1.3)))
    s_ratio = float(rng.uniform(1.5, 3.0))
    sh_mix = float(rng.uniform(0.0, 2 * np.pi))
    n_sub = int(rng.integers(1, 4))
    for k in range(n_sub):
        delay = 0.0 if k == 0 else float(rng.uniform(0.003, 0.03))
        amp = 1.0 if k == 0 else float(rng.uniform(0.2, 0.7))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        i0 = int(round(delay * fs))
        ip = i0
        iS = i0 + int(round(sp * fs))
        if ip < n:
            w = damped_sine(n - ip, fs, fp, tau * rng.uniform(0.6, 1.0), rng.uniform(0, 0.5))
            out[:, ip:] += sign * amp * pol["P"][:, None] * w
        if iS < n:
            ws1 = damped_sine(n - iS, fs, fc * rng.uniform(0.97, 1.03), tau, rng.uniform(0, 0.5))
            ws2 = damped_sine(n - iS, fs, fc * rng.uniform(0.97, 1.03), tau, rng.uniform(0, 0.5))
            s_vec = (np.cos(sh_mix) * pol["SV"][:, None] * ws1 + np.sin(sh_mix) * pol["SH"][:, None] * ws2)
            out[:, iS:] += sign * amp * s_ratio * s_vec
    _taper_end(out, fs, 0.7, 0.9)
    return Source(out, subtype="fracture", meta={
        "peak_freq_hz": round(fc, 3), "decay_s": round(tau, 5), "source_distance_m": round(d_m, 1),
        "s_minus_p_s": round(sp, 5), "subevents": n_sub, "duration_s": 0.9,
    })


def rockfall(rng: np.random.Generator, fs: float, duration_range: tuple[float, float],
             band_hz: tuple[float, float], n_impacts: int | None = None) -> Source:
    """Class II: a rockfall / block fall, emergent and long.

    Spindle-shaped envelope: sine-squared rise to the peak at 10-40 % of the duration ``D``
    (5-60 s, log-uniform), then a slow decay ``exp(-ln10 ((t - t_peak)/(D - t_peak))**1.5)``
    that reaches 10 % of the peak at ``D``, and a 2 s taper to zero.
    Impacts form an inhomogeneous Poisson process with rate ``lambda_max * env(t)``
    (``lambda_max`` 5-25 /s); each impact is a damped sinusoid of 10-60 Hz, 10-60 ms decay,
    random 3-D direction and log-normal size (sigma 0.6) times ``env**0.7``. A continuous
    rolling/sliding component (band-limited Gaussian noise x envelope, 30-100 % of the impact
    rms) is added, and the sum is band-passed to 10-60 Hz (4-pole Butterworth, zero phase,
    then zeroed before the onset).

    ``n_impacts`` (the site generator's block falls): exactly that many impacts instead of the
    Poisson train, their times drawn from the envelope as a probability density (the bounces
    of a few blocks); ``impact_rate_max`` is then None. The default (None) leaves the draws of
    the Poisson model unchanged.
    """
    from scipy.signal import butter, sosfiltfilt

    lo, hi = band_hz
    D = loguniform(rng, *duration_range)
    rise = D * float(rng.uniform(0.1, 0.4))
    total = D + 2.0
    n = int(round(total * fs))
    t = np.arange(n) / fs
    env = np.where(t < rise, np.sin(0.5 * np.pi * t / rise) ** 2,
                   np.exp(-np.log(10.0) * (np.clip(t - rise, 0.0, None) / (D - rise)) ** 1.5))
    tail = t > D
    env[tail] *= 0.5 + 0.5 * np.cos(np.pi * np.clip((t[tail] - D) / 2.0, 0, 1))
    if n_impacts is None:
        lam: float | None = float(rng.uniform(5.0, 25.0))
        n_cand = int(rng.poisson(lam * total))
        cand = np.sort(rng.uniform(0.0, total, n_cand))
        keep = rng.random(n_cand) < np.interp(cand, t, env)
        times = cand[keep]
    else:
        lam = None
        cdf = np.cumsum(env)
        times = np.sort(np.interp(rng.random(int(n_impacts)), cdf / cdf[-1], t))
    sig = np.zeros((3, n))
    wl = int(0.35 * fs)
    for ti in times:
        i0 = int(ti * fs)
        if i0 >= n:
            continue
        f = float(rng.uniform(lo, hi))
        tau = float(rng.uniform(0.01, 0.06))
        m = min(wl, n - i0)
        w = damped_sine(m, fs, f, tau, rng.uniform(0, 2 * np.pi))
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        a = np.interp(ti, t, env) ** 0.7 * float(rng.lognormal(0.0, 0.6))
        sig[:, i0:i0 + m] += a * v[:, None] * w
    imp_rms = float(np.sqrt(np.mean(sig**2))) or 1.0
    cont = rng.standard_normal((3, n)) * env
    cont_rel = float(rng.uniform(0.3, 1.0))
    sos = butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos")
    cont = sosfiltfilt(sos, cont, axis=-1)
    cont *= cont_rel * imp_rms / (float(np.sqrt(np.mean(cont**2))) or 1.0)
    sig = sosfiltfilt(sos, sig + cont, axis=-1)
    # The zero-phase filter can smear a little energy of the first impacts to the very start:
    # a 50 ms ramp keeps the segment's first sample (the onset) at zero.
    nr = int(0.05 * fs)
    sig[:, :nr] *= np.linspace(0.0, 1.0, nr)
    return Source(sig, subtype="rockfall", meta={
        "duration_s": round(D, 3), "rise_s": round(rise, 3), "impacts": int(times.size),
        "impact_rate_max": None if lam is None else round(lam, 3), "continuous_rel": round(cont_rel, 3),
    })
