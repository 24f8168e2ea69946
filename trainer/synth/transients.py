"""The ``noise`` class: non-event transients that still trip an STA/LTA trigger.

Subtypes (probability): ``spike`` 0.20, ``step`` 0.15, ``rain`` 0.20, ``footsteps`` 0.20,
``traffic`` 0.25.

* **spike** — 1-4 single-sample glitches within 2 s on 1-3 channels (bit errors, EMI):
  digitizer domain (counts), not filtered by the sensor; SNR +20 dB (only large glitches trip
  a trigger).
* **step** — electronic offset on 1-3 channels: either an offset that relaxes as
  ``exp(-t/tau)`` (tau 0.3-8 s, AC-coupled front end) or a boxcar offset lasting 0.3-5 s;
  counts domain, SNR +10 dB.
* **rain** — a shower of drops on the ground and the sensor housing: Poisson train (5-40 /s)
  of 3-15 ms damped sinusoids at 40-110 Hz, log-normal sizes (sigma 0.8), mainly vertical,
  for 5-40 s with 1-3 s rise and 1-5 s fall.
* **footsteps** — a person walking past: steps every 0.45-0.7 s (+-5 % jitter), heel/toe
  double impact, damped sinusoid 15-60 Hz (at most 0.4 x the sampling rate), Gaussian amplitude
  envelope (approach and leave), 5-25 s.
* **traffic** — a vehicle or machine passing: harmonic series (fundamental 5-25 Hz, 2-4
  harmonics, slow +-3 % Doppler/rpm sweep) plus band-limited rumble (5-40 Hz), Gaussian
  envelope, 10-40 s.

Ground-motion subtypes are in m/s (relative amplitude), digitizer subtypes in counts
(relative amplitude x sensitivity); the generator scales both to the drawn SNR.
"""
from __future__ import annotations

import numpy as np

from .sources import Source, damped_sine, loguniform

__all__ = ["NOISE_SUBTYPES", "SNR_BOOST_DB", "noise_transient"]

NOISE_SUBTYPES: dict[str, float] = {
    "spike": 0.20, "step": 0.15, "rain": 0.20, "footsteps": 0.20, "traffic": 0.25,
}
#: Extra SNR (dB) given to digitizer artefacts over the drawn SNR.
SNR_BOOST_DB: dict[str, float] = {"spike": 20.0, "step": 10.0}


def _channels(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(1, 4))
    return rng.choice(3, size=k, replace=False)


def _spike(rng: np.random.Generator, fs: float) -> Source:
    n = int(2.0 * fs) + 1
    c = np.zeros((3, n))
    k = int(rng.integers(1, 5))
    idx = [0] + sorted(int(i) for i in rng.integers(1, n, size=k - 1))
    chans = _channels(rng)
    for j, i in enumerate(idx):
        amp = 1.0 if j == 0 else float(rng.uniform(0.3, 1.0))
        for ch in chans:
            c[ch, i] += amp * (1.0 if rng.random() < 0.5 else -1.0)
    return Source(np.zeros((3, n)), counts=c, subtype="spike",
                  meta={"spikes": k, "channels": int(chans.size), "duration_s": idx[-1] / fs})


def _step(rng: np.random.Generator, fs: float) -> Source:
    chans = _channels(rng)
    if rng.random() < 0.6:
        tau = loguniform(rng, 0.3, 8.0)
        dur = min(5.0 * tau, 40.0)
        n = int(dur * fs)
        shape = np.exp(-np.arange(n) / (tau * fs))
        kind = "relaxing"
    else:
        dur = float(rng.uniform(0.3, 5.0))
        n = int(dur * fs)
        shape = np.ones(n)
        kind = "boxcar"
        tau = 0.0
    c = np.zeros((3, n))
    for ch in chans:
        c[ch] = shape * rng.uniform(0.5, 1.0) * (1.0 if rng.random() < 0.5 else -1.0)
    return Source(np.zeros((3, n)), counts=c, subtype="step",
                  meta={"kind": kind, "tau_s": round(tau, 3), "channels": int(chans.size), "duration_s": dur})


def _rain(rng: np.random.Generator, fs: float) -> Source:
    dur = float(rng.uniform(5.0, 40.0))
    rise, fall = float(rng.uniform(1.0, 3.0)), float(rng.uniform(1.0, 5.0))
    n = int(dur * fs)
    t = np.arange(n) / fs
    env = np.clip(t / rise, 0, 1) * np.clip((dur - t) / fall, 0, 1)
    rate = float(rng.uniform(5.0, 40.0))
    cand = rng.uniform(0, dur, int(rng.poisson(rate * dur)))
    times = np.sort(cand[rng.random(cand.size) < np.interp(cand, t, env)])
    if times.size == 0 or times[0] > 0:
        times = np.concatenate([[0.0], times])  # the first drop is the onset
    hv = float(rng.uniform(0.2, 0.5))
    v = np.zeros((3, n))
    wl = int(0.08 * fs)
    for ti in times:
        i0 = int(ti * fs)
        m = min(wl, n - i0)
        if m <= 1:
            continue
        w = damped_sine(m, fs, rng.uniform(40.0, min(110.0, 0.44 * fs)), rng.uniform(0.003, 0.015),
                        rng.uniform(0, 2 * np.pi))
        a = float(rng.lognormal(0.0, 0.8))
        d = np.array([1.0, hv * rng.standard_normal(), hv * rng.standard_normal()])
        v[:, i0:i0 + m] += a * d[:, None] * w
    return Source(v, subtype="rain", meta={"drops": int(times.size), "rate_per_s": round(rate, 2),
                                           "duration_s": dur})


def _footsteps(rng: np.random.Generator, fs: float) -> Source:
    dur = float(rng.uniform(5.0, 25.0))
    period = float(rng.uniform(0.45, 0.7))
    n = int(dur * fs)
    f0 = float(rng.uniform(15.0, min(60.0, 0.4 * fs)))  # +10 % stays below 0.45 fs (no alias)
    tau = float(rng.uniform(0.02, 0.06))
    d = rng.standard_normal(3)
    d /= np.linalg.norm(d)
    centre, width = dur * rng.uniform(0.35, 0.65), dur * rng.uniform(0.2, 0.35)
    v = np.zeros((3, n))
    ti, steps = 0.0, 0
    wl = int(0.3 * fs)
    while ti < dur:
        a = np.exp(-0.5 * ((ti - centre) / width) ** 2)
        for dt, rel in ((0.0, 1.0), (rng.uniform(0.03, 0.08), rng.uniform(0.3, 0.7))):
            i0 = int((ti + dt) * fs)
            m = min(wl, n - i0)
            if m > 1:
                w = damped_sine(m, fs, f0 * rng.uniform(0.9, 1.1), tau, rng.uniform(0, 2 * np.pi))
                v[:, i0:i0 + m] += a * rel * rng.uniform(0.7, 1.3) * d[:, None] * w
        steps += 1
        ti += period * rng.uniform(0.95, 1.05)
    return Source(v, subtype="footsteps", meta={"steps": steps, "step_period_s": round(period, 3),
                                                "freq_hz": round(f0, 2), "duration_s": dur})


def _traffic(rng: np.random.Generator, fs: float) -> Source:
    from scipy.signal import butter, sosfiltfilt

    dur = float(rng.uniform(10.0, 40.0))
    n = int(dur * fs)
    t = np.arange(n) / fs
    centre, width = dur * rng.uniform(0.4, 0.6), dur * rng.uniform(0.12, 0.22)
    env = np.exp(-0.5 * ((t - centre) / width) ** 2)
    env -= env[0]
    env = np.clip(env, 0, None) / max(env.max(), 1e-12)
    f0 = float(rng.uniform(5.0, 25.0))
    sweep = 1.0 + 0.03 * np.tanh(-(t - centre) / width)  # Doppler: higher approaching
    phase = 2 * np.pi * np.cumsum(f0 * sweep) / fs
    nh = int(rng.integers(2, 5))
    v = np.zeros((3, n))
    for h in range(1, nh + 1):
        if h * f0 * 1.03 >= 0.45 * fs:
            break
        amp = float(rng.uniform(0.4, 1.0)) / h
        for c in range(3):
            v[c] += amp * rng.uniform(0.4, 1.0) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    sos = butter(4, [5.0, 40.0], btype="bandpass", fs=fs, output="sos")
    rumble = sosfiltfilt(sos, rng.standard_normal((3, n)), axis=-1)
    rumble *= float(rng.uniform(0.3, 0.8)) * np.sqrt(np.mean(v**2)) / np.sqrt(np.mean(rumble**2))
    v = (v + rumble) * env
    return Source(v, subtype="traffic", meta={"fundamental_hz": round(f0, 2), "harmonics": nh,
                                              "duration_s": dur})


_MAKERS = {"spike": _spike, "step": _step, "rain": _rain, "footsteps": _footsteps, "traffic": _traffic}


def noise_transient(rng: np.random.Generator, fs: float, subtype: str | None = None) -> Source:
    """One ``noise``-class transient; ``subtype`` None draws one with :data:`NOISE_SUBTYPES`."""
    if subtype is None:
        names = list(NOISE_SUBTYPES)
        p = np.array([NOISE_SUBTYPES[k] for k in names])
        subtype = names[int(rng.choice(len(names), p=p / p.sum()))]
    if subtype not in _MAKERS:
        raise ValueError(f"unknown noise subtype {subtype!r}")
    return _MAKERS[subtype](rng, fs)
