"""Class III: local earthquakes by the stochastic method (Boore 1983, 2003) with a Brune source.

For magnitude ``M`` at hypocentral distance ``r``:

* seismic moment ``log10 M0 = 1.5 M + 9.1`` (N m; Hanks & Kanamori 1979 with Mw taken = ML);
* Brune (1970) omega-square source, corner ``fc = 4.906e6 beta (dsigma / M0)**(1/3)``
  (beta km/s, dsigma bar, M0 dyne cm), stress drop 1-10 MPa log-uniform;
* S-wave Fourier velocity spectrum at the surface
  ``V(f) = C M0 2 pi f / (1 + (f/fc)^2) * exp(-pi f r / (Q(f) beta)) * exp(-pi kappa0 f) / r``,
  ``C = R F V / (4 pi rho beta^3)`` (R = 0.55, F = 2, V = 1/sqrt 2, rho = 2800 kg/m3,
  beta = 3.5 km/s), ``Q(f) = Q0 max(f, 1)**eta`` (Q0 150-400, eta 0.6), kappa0 0.01-0.04 s;
* P-wave spectrum of the same form with ``fc_P = 1.5 fc``, ``alpha = Vp`` in the attenuation
  term and a P/S level ratio 0.15-0.35 (~ (beta/alpha)^3 x radiation);
* each phase realised as Gaussian noise under a time envelope whose Fourier amplitude is
  normalised to unit mean square and multiplied by the target spectrum (random phase);
  P at ``r / Vp``, S at ``r / Vs`` (S-P = ``r (1/Vs - 1/Vp)``), S duration
  ``1/fc + b r`` (Boore 2003 path duration, b = 0.05 s/km; drawn per event where the
  caller gives a range), then a coda decaying as ``exp(-t / tau_c)`` with
  ``tau_c = c max(0.3 s, Td / 5)`` (c = 1, or drawn likewise), where ``Td`` is the signal
  duration of the duration-magnitude relation ``Md = -0.87 + 2 log10 Td + 0.0035 r``
  (Lee et al. 1972) solved for Td;
* polarisation: P along the ray (incidence 5-35 deg from vertical: low-velocity surface
  layers bend rays up), SV/SH mixed at a random angle, back-azimuth uniform; a scattered
  S coda (30-60 %) on the vertical.

The absolute amplitude here is the Brune prediction; the generator then rescales the event so
that :func:`edge.signal.magnitude.local_magnitude` of its horizontals equals ``M`` exactly (the ML
scale is the label's definition) and records the Brune/ML ratio in ``truth.csv``.
"""
from __future__ import annotations

import math

import numpy as np

from .sources import Source, loguniform, polarisation

__all__ = ["brune_corner_hz", "earthquake", "moment_nm"]

RHO = 2800.0  # kg/m^3
RAD_PATTERN = 0.55
FREE_SURFACE = 2.0
PARTITION = 1.0 / math.sqrt(2.0)


def moment_nm(mw: float) -> float:
    """Seismic moment (N m) of moment magnitude ``mw``."""
    return 10.0 ** (1.5 * mw + 9.1)


def brune_corner_hz(m0_nm: float, stress_drop_mpa: float, beta_km_s: float) -> float:
    """Brune (1970) corner frequency (Hz)."""
    m0_dyne_cm = m0_nm * 1e7
    dsigma_bar = stress_drop_mpa * 10.0
    return 4.906e6 * beta_km_s * (dsigma_bar / m0_dyne_cm) ** (1.0 / 3.0)


def _envelope(n: int, fs: float, onset: int, rise_s: float, plateau_s: float, tau_s: float) -> np.ndarray:
    t = (np.arange(n) - onset) / fs
    env = np.zeros(n)
    rise = t >= 0
    tr = np.clip(t / rise_s, 0.0, 1.0)
    env[rise] = 0.5 - 0.5 * np.cos(np.pi * tr[rise])
    after = t > rise_s + plateau_s
    env[after] *= np.exp(-(t[after] - rise_s - plateau_s) / tau_s)
    return env


def _realise(rng: np.random.Generator, n: int, fs: float, env: np.ndarray,
             spectrum: np.ndarray, nfft: int) -> np.ndarray:
    """Random-phase series: windowed Gaussian noise with its spectrum normalised to unit mean
    square, times ``spectrum`` (continuous Fourier amplitude, m/s*s per Hz bin of nfft)."""
    from scipy.fft import irfft, rfft

    x = rng.standard_normal(n) * env
    X = rfft(x, n=nfft)
    ms = float(np.mean(np.abs(X[1:]) ** 2)) or 1.0
    X *= spectrum * fs / math.sqrt(ms)
    return irfft(X, n=nfft)[:n]


def _causal(x: np.ndarray, onset: int, ramp: int) -> None:
    x[..., :max(0, onset)] = 0.0
    if ramp > 1:
        a = max(0, onset)
        b = min(x.shape[-1], a + ramp)
        x[..., a:b] *= np.linspace(0.0, 1.0, ramp)[: b - a]


def earthquake(rng: np.random.Generator, fs: float, magnitude: float, r_km: float,
               *, vp_km_s: float = 6.0, vs_km_s: float = 3.5,
               stress_drop_mpa: tuple[float, float] = (1.0, 10.0),
               q0: tuple[float, float] = (150.0, 400.0), q_eta: float = 0.6,
               kappa_s: tuple[float, float] = (0.01, 0.04),
               max_len_s: float = 60.0,
               path_s_per_km: tuple[float, float] | None = None,
               coda_scale: tuple[float, float] | None = None) -> Source:
    """Brune-spectrum local earthquake, ground velocity in m/s; P onset at sample 0.

    ``path_s_per_km`` (s/km, log-uniform; unset = 0.05) is the path term of the S duration and
    ``coda_scale`` (log-uniform; unset = 1) multiplies the coda decay time: small values give
    the short, pulse-like S of a deep or near event on a quiet path with little scattering
    (e.g. induced quakes under a sedimentary basin). Unset, nothing is drawn."""
    from scipy.fft import next_fast_len, rfftfreq

    m0 = moment_nm(magnitude)
    dsig = loguniform(rng, *stress_drop_mpa)
    fc = brune_corner_hz(m0, dsig, vs_km_s)
    Q0 = float(rng.uniform(*q0))
    kappa = float(rng.uniform(*kappa_s))
    ps_ratio = float(rng.uniform(0.15, 0.35))
    incidence = float(rng.uniform(5.0, 35.0))
    baz = float(rng.uniform(0.0, 360.0))
    sv_sh = float(rng.uniform(0.0, 2 * np.pi))
    coda_z = float(rng.uniform(0.3, 0.6))
    path_k = loguniform(rng, *path_s_per_km) if path_s_per_km else 0.05
    coda_k = loguniform(rng, *coda_scale) if coda_scale else 1.0

    sp = r_km * (1.0 / vs_km_s - 1.0 / vp_km_s)
    ts_dur = 1.0 / fc + path_k * r_km
    tp_dur = 0.5 * (1.0 / (1.5 * fc) + path_k * r_km)
    td = 10.0 ** ((magnitude + 0.87 - 0.0035 * r_km) / 2.0)
    tau_c = max(0.3 * coda_k, td / 5.0 * coda_k)
    length = min(max_len_s, sp + ts_dur + 4.6 * tau_c + 1.0)
    n = int(round(length * fs))
    i_s = int(round(sp * fs))
    nfft = next_fast_len(n + int(2 * fs), real=True)
    f = rfftfreq(nfft, 1.0 / fs)
    fq = np.maximum(f, 1.0)
    Q = Q0 * fq**q_eta
    r_m = r_km * 1000.0
    beta = vs_km_s * 1000.0
    C = RAD_PATTERN * FREE_SURFACE * PARTITION / (4 * math.pi * RHO * beta**3)
    site = np.exp(-math.pi * kappa * f)
    spec_s = C * m0 * 2 * np.pi * f / (1 + (f / fc) ** 2) * np.exp(-np.pi * f * r_km / (Q * vs_km_s)) * site / r_m
    spec_p = (ps_ratio * C * m0 * 2 * np.pi * f / (1 + (f / (1.5 * fc)) ** 2)
              * np.exp(-np.pi * f * r_km / (Q * vp_km_s)) * site / r_m)
    spec_s[0] = spec_p[0] = 0.0
    # Time-domain envelopes; the spectra are total energy of each phase including its coda.
    env_p = _envelope(n, fs, 0, 0.03, tp_dur, min(tau_c, max(0.3, 0.6 * sp + 0.3)))
    env_s = _envelope(n, fs, i_s, 0.08, ts_dur, tau_c)
    env_c = _envelope(n, fs, i_s, 0.4, ts_dur, tau_c)
    P = _realise(rng, n, fs, env_p, spec_p, nfft)
    S1 = _realise(rng, n, fs, env_s, spec_s, nfft)
    S2 = _realise(rng, n, fs, env_s, spec_s, nfft)
    Cz = _realise(rng, n, fs, env_c, spec_s, nfft)
    ramp = max(2, int(0.01 * fs))
    _causal(P, 0, ramp)
    for x in (S1, S2, Cz):
        _causal(x, i_s, ramp)
    pol_p = polarisation(rng, incidence, baz)
    pol_s = polarisation(rng, incidence * 0.6, baz)
    v = (pol_p["P"][:, None] * P
         + np.cos(sv_sh) * pol_s["SV"][:, None] * S1
         + np.sin(sv_sh) * pol_s["SH"][:, None] * S2)
    v[0] += coda_z * Cz
    return Source(v, absolute=True, subtype="earthquake", meta={
        "magnitude": magnitude, "distance_km": r_km, "s_minus_p_s": sp, "m0_nm": m0,
        "stress_drop_mpa": dsig, "corner_hz": fc, "q0": Q0, "kappa_s": kappa,
        "ps_ratio": ps_ratio, "incidence_deg": incidence, "backazimuth_deg": baz,
        "s_duration_s": ts_dur, "coda_tau_s": tau_c, "duration_s": length,
        "path_s_per_km": path_k, "coda_scale": coda_k,
    })
