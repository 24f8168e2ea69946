"""Continuous records of synthetic sites (:mod:`.sites`): hours of raw 3-component counts with
fractures, rockfalls, local earthquakes and noise transients at random times, a catalogue of
them, and the StationXML to read them with. See ``docs/synthetic.md`` ("Sites and
continuous records").

Per site, in time order:

* **background** (:class:`NoiseSource`): Gaussian noise with the site's ground-velocity PSD
  (:func:`.sites.ground_velocity_psd`) times ``|H(f)|^2`` of its instrument, plus the sensor's
  self-noise and the digitizer's white noise, synthesised in the frequency domain in
  segments of 2^k samples (about 8 min) that cross-fade over 20 s with ``sin``/``cos``
  weights (constant variance, no seam); plus the site's cultural tone (a function of
  absolute time) and its day/night cycle (one factor per segment on the noise above 1 Hz);
* **events** (:class:`EventStream`): a renewal process: the next onset comes 2 s after the
  end of the previous event plus an exponential wait with mean ``1 / sum(rates)`` (the
  site's nominal rates per class and hour), the class drawn in proportion to its rate. So
  events never overlap and now and then two come seconds apart. Sources are those of
  the event benchmark (:mod:`.sources`, :mod:`.earthquake`, :mod:`.transients`) with the
  site's bands, kappa and Q; each goes through the site's response (the same ObsPy
  ``Response`` as the StationXML) on its own, and the counts are added to the background
  (the response is linear);
* the sum + a DC offset per channel, rounded and clipped to the recorder's range, int32,
  one MiniSEED file per channel and UTC hour.

SNR (fracture, rockfall, noise, 6-30 dB uniform): rms per component of the noise-free
ground velocity over its 5-95 % energy window (x sqrt(0.9): the energy in its band), over
the rms of the site's noise in the band holding 5-95 % of the event's spectral energy,
widened to at least an octave. Digitizer artefacts (spike, step) are scaled against the
counts rms in 1 Hz - 0.45 x rate, + the boosts of :mod:`.transients`.

Earthquakes: ML uniform in -0.5..3 and hypocentral distance with density ~ r in 5-100 km (30 %
log-uniform instead: seismicity clustered near the station, high SNR),
limited to where the event is detectable at the site (in-band SNR >= 6 dB) and does not
clip; the S path duration (0.005-0.05 s/km) and the coda decay (x 0.1-1) are drawn per event,
from a scattered wave train to a clean S pulse; the Brune waveform is scaled so that the
Hutton & Boore ML of its horizontals, as :mod:`edge.signal.magnitude` computes it from
Wood-Anderson amplitudes, is exactly the catalogue ML.

Randomness: the site from ``default_rng([seed, split, i, 0x517E])``, the event times from
``[seed, split, i, 0x9A1A]``, event ``k`` from ``[seed, split, i, k, 0x5EED]``, noise
segment ``k`` from ``[seed, split, i, k, 0x401]``: the same arguments give the same bytes.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import irfft, rfft, rfftfreq

from .earthquake import earthquake
from .generate import _energy_window, snr_db
from .sites import SPLITS, Site, draw_site, ground_velocity_psd
from .sources import Source, fracture, loguniform, rockfall
from .transients import SNR_BOOST_DB, noise_transient

__all__ = [
    "CATALOG_COLUMNS",
    "EVENT_RANGES",
    "EventStream",
    "NoiseSource",
    "SiteModel",
    "draw_sites",
    "generate_continuous",
    "hour_chunks",
    "make_quake",
    "record_site",
    "site_event",
]

HOUR_S = 3600.0
DEFAULT_START = "2025-01-01T00:00:00Z"
#: no event in the first WARMUP_S (a 10 s LTA settles); GUARD_S of quiet after every event
WARMUP_S = 30.0
GUARD_S = 2.0
SEGMENT_S = 400.0  # noise segments are 2^k >= this many seconds of samples
CROSSFADE_S = 20.0
#: seconds of zeros after an event through the response (the sensor rings down)
RESPONSE_PAD_S = {"geophone": 2.0, "accelerometer": 1.0, "broadband": 60.0}
SPLIT_CODES = {"train": 1, "other": 2}
STATION_PREFIX = {"train": "T", "other": "O"}
NETWORK = "XS"
CLASSES = ("fracture", "rockfall", "earthquake", "noise")

#: Event parameters, the same for every site and both splits.
EVENT_RANGES: dict[str, Any] = {
    "snr_db": (6.0, 30.0),
    "magnitude": (-0.5, 3.0),
    "distance_km": (5.0, 100.0),
    # share of quakes whose distance is log-uniform (seismicity clustered near the station: a
    # mine, an induced field) instead of density ~ r: quakes of high SNR, as the noise class's
    # glitches have, so that SNR alone never tells a quake from a glitch
    "quake_near_fraction": 0.3,
    "quake_snr_min_db": 6.0,
    "quake_max_len_s": 90.0,
    "vp_km_s": 6.0,
    "vs_km_s": 3.5,
    "stress_drop_mpa": (1.0, 10.0),
    # S path duration (s/km) and coda decay scale, log-uniform: from the scattered wave train of
    # Boore's 0.05 s/km down to the clean S pulse of a deep event on a quiet path (BW.UH3's
    # induced quakes: S-P 1.25 s, an S pulse of about 0.1 s, coda gone within 0.5 s)
    "quake_path_s_per_km": (0.005, 0.05),
    "quake_coda_scale": (0.1, 1.0),
    "fracture_decay_s": (0.02, 0.25),
    "rockfall_duration_s": (5.0, 60.0),
    "rockfall_impacts": (4, 25),
}
CLIP_FRACTION = 0.8  # an earthquake that would exceed this share of full scale is redrawn

CATALOG_COLUMNS = ("time", "label", "magnitude", "duration_s", "site", "subtype", "snr_db",
                   "distance_km", "sp_s", "band_hz", "n_impacts", "peak_freq_hz", "clipped")


# ------------------------------------------------------------------------------ the site
class SiteModel:
    """A site's response spectra and noise PSDs, precomputed for synthesis."""

    def __init__(self, site: Site, segment_s: float = SEGMENT_S):
        self.site = site
        self.fs = fs = float(site.sampling_rate)
        self.inst = site.inst
        self.response = site.response()
        self.full_scale = int(self.inst.full_scale_counts)
        self._spectra: dict[int, np.ndarray] = {}
        self.n_seg = 1 << int(math.ceil(math.log2(segment_s * fs)))
        self.overlap = int(round(CROSSFADE_S * fs))
        self.hop = self.n_seg - self.overlap
        f = rfftfreq(self.n_seg, 1.0 / fs)
        self.f = f
        h2 = np.abs(self.response_spectrum(self.n_seg)) ** 2
        p_ground = ground_velocity_psd(site, f)
        fpos = np.where(f > 0, f, 1.0)
        w_hi = np.where(f > 0, 1.0 / (1.0 + fpos ** -4), 0.0)  # smooth step at 1 Hz
        roll = 1.0 / (1.0 + (f / (0.42 * fs)) ** 16)  # digitizer anti-alias roll-off
        self.p_low = p_ground * (1.0 - w_hi) * h2 * roll  # counts^2/Hz
        self.p_high = p_ground * w_hi * h2 * roll
        p_self = np.where(f > 0, (self.inst.self_noise_acc / (2 * np.pi * fpos)) ** 2 * h2, 0.0)
        p_dig = np.full_like(f, self.inst.digitizer_noise_counts**2 * 2.0 / fs)
        self.p_white = p_self + p_dig
        self.hv2 = np.array([1.0, site.noise_hv**2, site.noise_hv**2])
        # velocity-domain noise, mean over components, for in-band SNR
        p_vel = p_ground * float(np.mean(self.hv2)) + np.where(h2 > 0, self.p_white / np.maximum(h2, 1e-300), 0.0)
        df = f[1] - f[0]
        self._cum_vel = np.concatenate([[0.0], np.cumsum((p_vel[:-1] + p_vel[1:]) * 0.5) * df])
        band = (f >= 1.0) & (f <= 0.45 * fs)
        p_counts = (self.p_low + self.p_high)[None, :] * self.hv2[:, None] + self.p_white[None, :]
        self.counts_rms_hf = float(math.sqrt(float(np.mean(np.sum(p_counts[:, band], axis=1))) * df))

    # -- response ---------------------------------------------------------------------
    def response_spectrum(self, nfft: int) -> np.ndarray:
        """Complex response (counts per m/s of ground velocity) on ``rfftfreq(nfft)``."""
        if nfft not in self._spectra:
            spec, _ = self.response.get_evalresp_response(t_samp=1.0 / self.fs, nfft=nfft, output="VEL")
            self._spectra[nfft] = np.asarray(spec, dtype=np.complex128)
        return self._spectra[nfft]

    def to_counts(self, velocity: np.ndarray) -> np.ndarray:
        """Counts (float, ``(3, n + pad)``) recorded for an event's ground velocity (m/s) that
        starts at rest; ``pad`` = the sensor's ring-down (:data:`RESPONSE_PAD_S`), tapered."""
        n = velocity.shape[-1]
        pad = int(round(RESPONSE_PAD_S[self.inst.kind] * self.fs))
        m = n + pad
        nfft = 1 << max(10, int(math.ceil(math.log2(m + pad))))
        y = irfft(rfft(velocity, n=nfft, axis=-1) * self.response_spectrum(nfft), n=nfft, axis=-1)[:, :m]
        nt = max(1, pad // 4)
        y[:, m - nt:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, nt + 1) / nt)
        return y

    # -- SNR --------------------------------------------------------------------------
    def band_snr_db(self, velocity: np.ndarray) -> tuple[float, tuple[float, float]]:
        """In-band SNR (dB) of an event's ground velocity ``(3, n)`` (m/s) at this site, and
        the band (Hz): see the module docstring."""
        e = np.sum(velocity**2, axis=0)
        a, b = _energy_window(e)
        sig = math.sqrt(0.9 * float(np.mean(e[a:b])) / velocity.shape[0])
        spec = np.sum(np.abs(rfft(velocity, axis=-1)) ** 2, axis=0)
        fr = rfftfreq(velocity.shape[-1], 1.0 / self.fs)
        c = np.cumsum(spec)
        if c[-1] <= 0:
            return -math.inf, (0.0, 0.0)
        c /= c[-1]
        f5 = float(fr[min(int(np.searchsorted(c, 0.05)), fr.size - 1)])
        f95 = float(fr[min(int(np.searchsorted(c, 0.95)), fr.size - 1)])
        if f95 < 2.0 * max(f5, 1e-3):
            fc = math.sqrt(max(f5, 0.5) * max(f95, 0.5))
            f5, f95 = fc / math.sqrt(2.0), fc * math.sqrt(2.0)
        f95 = min(f95, 0.5 * self.fs)
        noise = float(np.interp(f95, self.f, self._cum_vel) - np.interp(f5, self.f, self._cum_vel))
        return 20.0 * math.log10(max(sig, 1e-300) / math.sqrt(max(noise, 1e-300))), (f5, f95)

    def clipped(self, counts: np.ndarray, fraction: float = 1.0) -> bool:
        dc = max(abs(d) for d in self.site.dc_counts)
        return bool(np.max(np.abs(counts)) + dc >= fraction * (self.full_scale - 1))


# ------------------------------------------------------------------------------ background
class NoiseSource:
    """The site's background in counts (float), a function of the absolute sample index."""

    def __init__(self, model: SiteModel, key: list[int], start_timestamp: float):
        self.m = model
        self.key = list(key)
        self.t0 = float(start_timestamp)
        self._cache: dict[int, np.ndarray] = {}
        site = model.site
        self.tone = None
        if site.tone is not None:
            rng = np.random.default_rng(self.key + [0x70E])
            f0, rel = site.tone
            p = float(ground_velocity_psd(site, np.array([f0]))[0])
            h = model.response.get_evalresp_response_for_frequencies([f0], output="VEL")[0]
            amp = rel * math.sqrt(p * 10.0) * math.sqrt(2.0) * abs(h)
            comp = np.array([1.0, site.noise_hv, site.noise_hv]) * rng.uniform(0.3, 1.0, 3)
            self.tone = {"f0": f0, "amp": amp * comp, "phase": rng.uniform(0, 2 * np.pi, 3) + np.angle(h),
                         "tw": float(rng.uniform(20.0, 120.0)), "phw": float(rng.uniform(0, 2 * np.pi))}

    def _diurnal(self, k: int) -> float:
        site = self.m.site
        t = self.t0 + (k * self.m.hop + self.m.n_seg / 2) / self.m.fs
        local_h = ((t / 3600.0) + site.longitude / 15.0) % 24.0
        return 1.0 + site.diurnal * math.cos(2 * math.pi * (local_h - 13.0) / 24.0)

    def segment(self, k: int) -> np.ndarray:
        if k in self._cache:
            return self._cache[k]
        m = self.m
        rng = np.random.default_rng(self.key + [k, 0x401])
        g = self._diurnal(k)
        p = m.hv2[:, None] * (m.p_low + g * g * m.p_high)[None, :] + m.p_white[None, :]
        amp = np.sqrt(p * m.fs * m.n_seg / 4.0)
        nf = m.f.size
        x = (rng.standard_normal((3, nf)) + 1j * rng.standard_normal((3, nf))) * amp
        x[:, 0] = 0.0
        x[:, -1] = x[:, -1].real * math.sqrt(2.0)  # n_seg is even: the Nyquist bin is real
        seg = irfft(x, n=m.n_seg, axis=-1)
        for old in [j for j in self._cache if j < k - 1]:
            del self._cache[old]
        self._cache[k] = seg
        return seg

    def get(self, i0: int, i1: int) -> np.ndarray:
        """Counts (float) of samples ``i0 .. i1 - 1`` (0 = the first sample of the record)."""
        m = self.m
        out = np.zeros((3, i1 - i0))
        ov = m.overlap
        ramp = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov)
        k_lo = max(0, (i0 - m.n_seg) // m.hop)
        for k in range(k_lo, (i1 - 1) // m.hop + 1):
            s = k * m.hop
            a, b = max(i0, s), min(i1, s + m.n_seg)
            if a >= b:
                continue
            w = np.ones(m.n_seg)
            if k > 0:
                w[:ov] = ramp
            w[m.n_seg - ov:] = ramp[::-1]
            out[:, a - i0:b - i0] += self.segment(k)[:, a - s:b - s] * w[a - s:b - s]
        if self.tone is not None:
            tn = self.tone
            t = np.arange(i0, i1) / m.fs
            ph = 2 * np.pi * tn["f0"] * t - 0.01 * tn["f0"] * tn["tw"] * np.cos(2 * np.pi * t / tn["tw"] + tn["phw"])
            for c in range(3):
                out[c] += tn["amp"][c] * np.sin(ph + tn["phase"][c])
        return out


# ------------------------------------------------------------------------------ events
@dataclass
class PlacedEvent:
    """An event's counts ``(3, m)`` starting at record sample ``i0``, and its catalogue row."""

    i0: int
    counts: np.ndarray
    row: dict[str, Any]


def _ml_scale(velocity: np.ndarray, fs: float, r_km: float, magnitude: float) -> float:
    """Factor that gives the event Hutton & Boore ML ``magnitude`` at ``r_km``.

    Inverts ``ML = log10 A + 1.110 log10(r/100) + 0.00189 (r - 100) + 3`` for the target
    Wood-Anderson amplitude ``log10 A = ML - ml_hutton_boore(1 mm, r)`` and matches the mean
    log amplitude of the two horizontals (what :func:`edge.signal.magnitude.local_magnitude`
    averages), measured on the noise-free velocity padded with zeros.
    """
    from edge.signal.magnitude import ml_hutton_boore, wood_anderson_peak_mm

    pad = np.zeros(max(int(2 * fs), int(0.08 * velocity.shape[-1])))
    logs = [math.log10(wood_anderson_peak_mm(np.concatenate([pad, velocity[c], pad]), fs)) for c in (1, 2)]
    return 10.0 ** (magnitude - ml_hutton_boore(1.0, r_km) - float(np.mean(logs)))


def _hb_decay_db(r_km: float, r0_km: float) -> float:
    """Amplitude change (dB) from ``r0`` to ``r`` at fixed ML (Hutton & Boore distance term)."""
    return -20.0 * (1.110 * math.log10(r_km / r0_km) + 0.00189 * (r_km - r0_km))


def make_quake(model: SiteModel, rng: np.random.Generator, magnitude: float, r_km: float) -> tuple[Source, float]:
    """A local earthquake of catalogue ML ``magnitude`` at hypocentral ``r_km`` for this site:
    ground velocity (m/s, P onset at sample 0) and its in-band SNR (dB)."""
    er = EVENT_RANGES
    site = model.site
    src = earthquake(rng, model.fs, magnitude, r_km, vp_km_s=er["vp_km_s"], vs_km_s=er["vs_km_s"],
                     stress_drop_mpa=er["stress_drop_mpa"], q0=(site.q0, site.q0),
                     kappa_s=(site.kappa_s, site.kappa_s), max_len_s=er["quake_max_len_s"],
                     path_s_per_km=er["quake_path_s_per_km"], coda_scale=er["quake_coda_scale"])
    src.velocity *= _ml_scale(src.velocity, model.fs, r_km, magnitude)
    snr, _ = model.band_snr_db(src.velocity)
    return src, snr


def _detect_distance(snr_at_r0: float, r0: float, target_db: float, rmin: float, rmax: float) -> float:
    """Largest distance in [rmin, rmax] where the SNR (H&B decay) still reaches ``target_db``;
    ``-inf`` when not even ``rmin`` does."""
    if snr_at_r0 + _hb_decay_db(rmin, r0) < target_db:
        return -math.inf
    if snr_at_r0 + _hb_decay_db(rmax, r0) >= target_db:
        return rmax
    lo, hi = rmin, rmax
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if snr_at_r0 + _hb_decay_db(mid, r0) >= target_db:
            lo = mid
        else:
            hi = mid
    return lo


class EventStream:
    """The site's events in time order (a generator of :class:`PlacedEvent`)."""

    def __init__(self, model: SiteModel, key: list[int], n_samples: int):
        self.m = model
        self.key = list(key)
        self.n_samples = n_samples

    def __iter__(self) -> Iterator[PlacedEvent]:
        site, fs = self.m.site, self.m.fs
        rates = np.array([max(0.0, site.rates_per_hour.get(c, 0.0)) for c in CLASSES])
        if rates.sum() <= 0:
            return
        plan = np.random.default_rng(self.key + [0x9A1A])
        mean_gap = HOUR_S / float(rates.sum())
        t_free = WARMUP_S - GUARD_S
        k = 0
        while True:
            t = t_free + GUARD_S + float(plan.exponential(mean_gap))
            label = CLASSES[int(plan.choice(len(CLASSES), p=rates / rates.sum()))]
            i0 = int(round(t * fs))
            if i0 >= self.n_samples:
                return
            ev = site_event(self.m, label, np.random.default_rng(self.key + [k, 0x5EED]))
            k += 1
            n_src = ev["n_src"]
            if i0 + n_src > self.n_samples:
                return
            t_free = (i0 + n_src) / fs
            yield PlacedEvent(i0, ev["counts"], ev["row"])


def site_event(m: SiteModel, label: str, rng: np.random.Generator) -> dict[str, Any]:
    """One event of class ``label`` at the site of ``m``: its counts (float ``(3, n_src +
    ring-down)``, onset at sample 0, no background), catalogue ``row`` and ``n_src`` (samples of
    the source itself). The continuous records and ``microseis synth --sites`` both use it."""
    site, fs, er = m.site, m.fs, EVENT_RANGES
    row: dict[str, Any] = {"label": label, "site": site.net_sta}
    extra_counts = None
    if label == "earthquake":
        src, snr, row_q = _site_quake(m, rng)
        row.update(row_q)
    else:
        if label == "fracture":
            src = fracture(rng, fs, site.fracture_band_hz, er["fracture_decay_s"])
            row.update(band_hz=_band(site.fracture_band_hz), peak_freq_hz=src.meta["peak_freq_hz"])
        elif label == "rockfall":
            lo, hi = er["rockfall_impacts"]
            src = rockfall(rng, fs, er["rockfall_duration_s"], site.rockfall_band_hz,
                           n_impacts=int(rng.integers(lo, hi + 1)))
            row.update(band_hz=_band(site.rockfall_band_hz), n_impacts=src.meta["impacts"])
        else:
            src = noise_transient(rng, fs)
        snr = float(rng.uniform(*er["snr_db"]))
        if src.counts is not None:  # digitizer artefact: scaled in counts
            snr += SNR_BOOST_DB.get(src.subtype, 0.0)
            k = m.counts_rms_hf * 10.0 ** (snr / 20.0) / 10.0 ** (snr_db(src.counts, 1.0) / 20.0)
            extra_counts = src.counts * k
            src.velocity = src.velocity * 0.0
        else:
            now, _ = m.band_snr_db(src.velocity)
            src.velocity = src.velocity * 10.0 ** ((snr - now) / 20.0)
    counts = m.to_counts(src.velocity)
    if extra_counts is not None:
        counts[:, :extra_counts.shape[1]] += extra_counts
    row.update(subtype=src.subtype, snr_db=round(snr, 2), duration_s=_round(src.meta.get("duration_s"), 3),
               clipped=m.clipped(counts))
    return {"counts": counts, "row": row, "n_src": src.n}


def _site_quake(m: SiteModel, rng: np.random.Generator) -> tuple[Source, float, dict[str, Any]]:
    er = EVENT_RANGES
    rmin, rmax = er["distance_km"]
    target = er["quake_snr_min_db"]
    r0 = 20.0
    m_lo, m_hi = er["magnitude"]
    best = None
    near = bool(rng.random() < er["quake_near_fraction"])
    for _ in range(12):
        mag = round(float(rng.uniform(m_lo, m_hi)), 2)
        _, snr0 = make_quake(m, rng, mag, r0)
        r_hi = _detect_distance(snr0, r0, target + 3.0, rmin, rmax)
        if not math.isfinite(r_hi):
            # Not detectable even at rmin: raise the lower magnitude bound to the site's
            # detection threshold there (amplitude ~ 10^ML: +20 dB per magnitude unit).
            need = (target + 3.0 - snr0 - _hb_decay_db(rmin, r0)) / 20.0
            m_lo = min(m_hi, max(m_lo, mag + need))
            continue
        for _ in range(4):
            r = round(loguniform(rng, rmin, r_hi) if near else math.sqrt(rng.uniform(rmin**2, r_hi**2)), 3)
            src, snr = make_quake(m, rng, mag, r)
            ok = snr >= target and not m.clipped(m.to_counts(src.velocity), CLIP_FRACTION)
            cand = (ok, snr, src, mag, r)
            if best is None or (cand[0], cand[1]) > (best[0], best[1]):
                best = cand
            if ok:
                break
        if best is not None and best[0]:
            break
    if best is None:  # not even the largest ML is detectable here: flagged by its SNR
        mag = round(float(m_hi), 2)
        src, snr = make_quake(m, rng, mag, rmin)
        best = (False, snr, src, mag, rmin)
    _, snr, src, mag, r = best
    return src, snr, {"magnitude": f"{mag:.2f}", "distance_km": r,
                      "sp_s": round(r * (1.0 / er["vs_km_s"] - 1.0 / er["vp_km_s"]), 4)}


def _band(b: tuple[float, float]) -> str:
    return f"{b[0]:g}-{b[1]:g}"


def _round(v: Any, nd: int) -> Any:
    return None if v is None else round(float(v), nd)


# ------------------------------------------------------------------------------ writing
def draw_sites(n_sites: int, split: str, seed: int) -> list[Site]:
    """The ``n_sites`` sites of a run (station codes ``T001``... for train, ``O001``... other)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use {' or '.join(SPLITS)}")
    return [draw_site(np.random.default_rng([int(seed), SPLIT_CODES[split], i, 0x517E]), split,
                      network=NETWORK, station=f"{STATION_PREFIX[split]}{i + 1:03d}")
            for i in range(n_sites)]


def hour_chunks(start: Any, n_samples: int, fs: float) -> list[tuple[int, int, Any]]:
    """``(i0, i1, t_start)`` of each UTC clock hour the record touches."""
    from obspy import UTCDateTime

    t0 = UTCDateTime(start)
    out = []
    i0 = 0
    while i0 < n_samples:
        t = t0 + i0 / fs
        nxt = UTCDateTime(t.year, t.month, t.day, t.hour) + HOUR_S
        i1 = min(n_samples, int(math.ceil(round((nxt - t0) * fs, 6))))
        out.append((i0, i1, t))
        i0 = i1
    return out


def hour_file(site: Site, channel: str, t: Any) -> str:
    """Relative path of the hour file of ``channel`` holding time ``t``."""
    return (f"{site.station}/{site.network}.{site.station}.{site.location}.{channel}."
            f"{t.year}.{t.julday:03d}.{t.hour:02d}.mseed")


def record_site(site: Site, index: int, seed: int, start: Any, hours: float, out_dir: str | os.PathLike,
                progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Write site ``index``'s hour files and StationXML under ``out_dir``; return its catalogue
    rows (sorted by time), file list and counts. ``progress(station, done_h, total_h)``."""
    from obspy import Stream, Trace, UTCDateTime

    from .dataset_writer import format_time
    from .sites import site_inventory

    out = Path(out_dir)
    (out / site.station).mkdir(parents=True, exist_ok=True)
    site_inventory([site], start).write(str(out / site.station / f"{site.net_sta}.xml"),
                                        format="STATIONXML", validate=True)
    t0 = UTCDateTime(start)
    fs = float(site.sampling_rate)
    n = int(round(hours * HOUR_S * fs))
    key = [int(seed), SPLIT_CODES[site.split], int(index)]
    model = SiteModel(site)
    noise = NoiseSource(model, key, t0.timestamp)
    events = iter(EventStream(model, key, n))
    codes = site.channel_codes()
    dc = np.array(site.dc_counts, dtype=float)[:, None]
    fsc = model.full_scale
    rows: list[dict[str, Any]] = []
    files: list[str] = []
    pending: list[PlacedEvent] = []
    nxt = next(events, None)
    clipped = 0
    chunks = hour_chunks(t0, n, fs)
    for j, (i0, i1, t) in enumerate(chunks):
        buf = noise.get(i0, i1)
        while nxt is not None and nxt.i0 < i1:
            pending.append(nxt)
            row = dict(nxt.row)
            row["time"] = format_time(t0 + nxt.i0 / fs)
            rows.append(row)
            nxt = next(events, None)
        for ev in pending:
            a, b = max(i0, ev.i0), min(i1, ev.i0 + ev.counts.shape[1])
            if a < b:
                buf[:, a - i0:b - i0] += ev.counts[:, a - ev.i0:b - ev.i0]
        pending = [ev for ev in pending if ev.i0 + ev.counts.shape[1] > i1]
        buf += dc
        np.rint(buf, out=buf)
        clipped += int(np.count_nonzero((buf <= -fsc) | (buf >= fsc - 1)))
        data = np.clip(buf, -fsc, fsc - 1).astype(np.int32)
        for c, code in enumerate(codes):
            rel = hour_file(site, code, t)
            tr = Trace(data=np.ascontiguousarray(data[c]), header={
                "network": site.network, "station": site.station, "location": site.location,
                "channel": code, "sampling_rate": fs, "starttime": t})
            Stream([tr]).write(str(out / rel), format="MSEED", encoding="STEIM2", reclen=4096)
            files.append(rel)
        if progress:
            progress(site.station, j + 1, len(chunks))
    return {"site": site, "rows": rows, "files": files, "clipped_samples": clipped,
            "end": format_time(t0 + n / fs)}


def generate_continuous(out_dir: str | os.PathLike, *, hours: float = 1.0, n_sites: int = 1,
                        split: str = "train", seed: int = 0, start: str = DEFAULT_START,
                        jobs: int = 1, force: bool = False,
                        progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Write a continuous benchmark folder; return the summary (``sites.json`` + timing)."""
    from .continuous_writer import finish, prepare

    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ValueError(f"hours must be > 0, got {hours!r}")
    if int(n_sites) != n_sites or n_sites < 1:
        raise ValueError(f"sites must be an integer >= 1, got {n_sites!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    t_begin = time.perf_counter()
    sites = draw_sites(int(n_sites), split, int(seed))
    root = prepare(out_dir, force=force)
    args = [(s, i, int(seed), start, float(hours), str(root)) for i, s in enumerate(sites)]
    if jobs <= 1 or len(sites) == 1:
        results = [record_site(*a, progress=progress) for a in args]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(jobs, len(sites))) as pool:
            futures = [pool.submit(record_site, *a) for a in args]
            results = []
            for fut, s in zip(futures, sites):
                results.append(fut.result())
                if progress:  # a worker's hours are reported when the site is done
                    n_files = len(results[-1]["files"]) // 3
                    progress(s.station, n_files, n_files)
    summary = finish(root, results, split=split, seed=int(seed), hours=float(hours), start=start)
    summary["elapsed_s"] = round(time.perf_counter() - t_begin, 3)
    return summary
