"""Synthetic *sites*: the ways real stations differ, drawn at random, with a held-out split.

A :class:`Site` fixes everything about one station that stays put while it records:
sampling rate, sensor and recorder (:mod:`.instruments`, written as StationXML), background
noise spectrum, where its fractures ring and its rockfalls rumble, the path to the regional
earthquakes (Q, kappa), and how often each class of event happens there.
:func:`draw_site` draws one from ``numpy.random.Generator``; :mod:`.continuous` records it.

Splits. ``split="train"`` draws only from :data:`SPLITS` ``["train"]``, ``split="other"``
only from ``SPLITS["other"]``; the two never share a value of a *held-out* axis:

============================  ===============================  ==============================
held-out axis                 train                            other
============================  ===============================  ==============================
sampling rate (Hz)            100, 250, 500, 1000              200
instrument                    geophone-4.5, broadband, mems    geophone-10
noise slope beta above 10 Hz  0.25 - 1.0                       -0.3 - 0.1 or 1.25 - 1.6
============================  ===============================  ==============================

Every other parameter (:data:`SHARED`) has the same range in both splits: a model trained on
``train`` sites meets a rate, a sensor response and a noise spectrum on ``other`` sites
that it has never seen, and nothing else is new.

Background noise (ground velocity, per component). The acceleration power spectrum in dB
lies a fraction ``noise_position`` of the way from Peterson's (1993) new low noise model to
his new high noise model (both from ObsPy), at every period down to 0.1 s; that gives the
microseism peak and the 1-10 Hz level. Above 10 Hz the velocity amplitude spectrum
continues as ``(f / 10 Hz) ** -noise_slope`` (cultural and wind noise, which the Peterson
models do not cover). Horizontals are ``noise_hv`` x the vertical. Optional extras: a
narrow cultural tone (pump, ventilation) and a day/night cycle of the noise above 1 Hz.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from .instruments import INSTRUMENTS, Instrument, build_instrument_response, channel_codes_for

__all__ = [
    "RATES",
    "SHARED",
    "SPLITS",
    "Site",
    "SplitRanges",
    "draw_site",
    "ground_velocity_psd",
    "site_inventory",
]

#: All sampling rates the generator knows (Hz).
RATES: tuple[float, ...] = (100.0, 200.0, 250.0, 500.0, 1000.0)
#: Fraction of the sampling rate below which fracture and rockfall bands stay.
BAND_FRACTION = 0.4


@dataclass(frozen=True)
class SplitRanges:
    """Values of the held-out axes one split may use."""

    rates: tuple[float, ...]
    instruments: tuple[str, ...]
    #: union of closed intervals for the noise slope beta above 10 Hz
    noise_slope: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rates": list(self.rates), "instruments": list(self.instruments),
                "noise_slope": [list(r) for r in self.noise_slope]}


SPLITS: dict[str, SplitRanges] = {
    "train": SplitRanges(rates=(100.0, 250.0, 500.0, 1000.0),
                         instruments=("geophone-4.5", "broadband", "mems"),
                         noise_slope=((0.25, 1.0),)),
    "other": SplitRanges(rates=(200.0,), instruments=("geophone-10",),
                         noise_slope=((-0.3, 0.1), (1.25, 1.6))),
}

#: Ranges both splits draw from (uniform unless marked ``log``).
SHARED: dict[str, Any] = {
    "noise_position": (0.1, 0.55),  # between NLNM (0) and NHNM (1), in dB
    "noise_hv": (1.0, 1.5),
    "tone_probability": 0.3,
    "tone_hz": (8.0, 60.0),  # capped at 0.4 x rate
    "tone_rel": (0.3, 1.5),  # tone rms / noise rms in a 10 Hz band around it
    "diurnal": (0.0, 0.5),  # day/night amplitude swing of the noise above 1 Hz
    "fracture_hi_hz": (40.0, 160.0),  # upper fracture band edge, capped at 0.4 x rate
    "fracture_ratio": (1.5, 3.0),  # upper / lower fracture band edge
    "rockfall_lo_hz": (5.0, 15.0),
    "rockfall_hi_hz": (40.0, 80.0),  # capped at 0.4 x rate
    "kappa_s": (0.01, 0.04),
    "q0": (150.0, 400.0),
    "rate_per_hour": {"fracture": (2.0, 6.0), "rockfall": (1.5, 4.0),
                      "earthquake": (2.0, 5.0), "noise": (2.0, 6.0)},
    "dc_counts": (-500.0, 500.0),
    "target_noise_counts": 4.0,  # the smallest pre-amplifier gain giving >= this rms is used
}


@dataclass(frozen=True)
class Site:
    """One station's fixed properties. Frequencies in Hz, times in s, counts are raw."""

    network: str
    station: str
    split: str
    sampling_rate: float
    instrument: str
    preamp_gain: float
    latitude: float
    longitude: float
    elevation: float
    #: 0 = Peterson NLNM, 1 = NHNM (dB interpolation), periods >= 0.1 s
    noise_position: float
    #: velocity amplitude spectrum ~ f ** -noise_slope above 10 Hz
    noise_slope: float
    noise_hv: float
    #: (frequency Hz, rms relative to the noise in a 10 Hz band) or None
    tone: tuple[float, float] | None
    #: day/night swing of the noise above 1 Hz: factor 1 + diurnal * cos(2 pi (local h - 13)/24)
    diurnal: float
    fracture_band_hz: tuple[float, float]
    rockfall_band_hz: tuple[float, float]
    kappa_s: float
    q0: float
    #: nominal events per hour of each class
    rates_per_hour: dict[str, float] = field(default_factory=dict)
    dc_counts: tuple[int, int, int] = (0, 0, 0)
    location: str = "00"

    @property
    def inst(self) -> Instrument:
        return INSTRUMENTS[self.instrument]

    @property
    def net_sta(self) -> str:
        return f"{self.network}.{self.station}"

    def channel_codes(self) -> tuple[str, str, str]:
        return channel_codes_for(self.inst, self.sampling_rate)

    def response(self):
        """The ObsPy ``Response`` of every channel (cached, read-only)."""
        return build_instrument_response(self.instrument, float(self.preamp_gain), float(self.sampling_rate))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["channels"] = list(self.channel_codes())
        d["sensitivity"] = float(f"{self.response().instrument_sensitivity.value:.6g}")
        d["sensitivity_units"] = f"COUNTS/({self.inst.input_units})"
        d["instrument_description"] = self.inst.description
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Site:
        names = set(cls.__dataclass_fields__)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)


# ------------------------------------------------------------------------------- noise model
@lru_cache(maxsize=2)
def _peterson() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log10(f) ascending and the NLNM / NHNM acceleration PSD (dB re 1 (m/s^2)^2/Hz)."""
    from obspy.signal.spectral_estimation import get_nhnm, get_nlnm

    p_lo, db_lo = get_nlnm()
    p_hi, db_hi = get_nhnm()
    lf = np.log10(1.0 / np.asarray(p_lo, dtype=float))
    hi = np.interp(lf, np.log10(1.0 / np.asarray(p_hi, dtype=float))[::-1], np.asarray(db_hi, float)[::-1])
    order = np.argsort(lf)
    return lf[order], np.asarray(db_lo, float)[order], hi[order]


def ground_velocity_psd(site: Site, f: np.ndarray) -> np.ndarray:
    """One-sided PSD of the vertical ground velocity ((m/s)^2/Hz) at frequencies ``f`` (Hz),
    without the tone and the day/night cycle. ``f <= 0`` gives 0."""
    lf, lo, hi = _peterson()
    f = np.asarray(f, dtype=float)
    out = np.zeros_like(f)
    pos = f > 0
    fp = np.minimum(f[pos], 10.0)
    x = np.log10(fp)
    db = np.interp(x, lf, lo) + site.noise_position * (np.interp(x, lf, hi) - np.interp(x, lf, lo))
    asd_v = 10.0 ** (db / 20.0) / (2.0 * math.pi * fp)
    above = f[pos] > 10.0
    asd_v[above] *= (f[pos][above] / 10.0) ** (-site.noise_slope)
    out[pos] = asd_v**2
    return out


# ------------------------------------------------------------------------------- drawing
def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _union_uniform(rng: np.random.Generator, ranges: tuple[tuple[float, float], ...]) -> float:
    """Uniform over a union of disjoint intervals (an interval is picked by its width)."""
    w = np.array([b - a for a, b in ranges], dtype=float)
    k = int(rng.choice(len(ranges), p=w / w.sum()))
    return _uniform(rng, ranges[k])


def _choose_gain(inst: Instrument, rate: float, psd_fn) -> float:
    """Smallest pre-amplifier gain for which the background is >= target counts rms in
    1 Hz - 0.45 x rate (an operator setting the gain for the site); the largest otherwise."""
    gains = sorted(inst.preamp_gains)
    if len(gains) == 1:
        return gains[0]
    f = np.linspace(1.0, 0.45 * rate, 2000)
    df = f[1] - f[0]
    resp = build_instrument_response(inst.name, 1.0, rate)
    # |H| of velocity input at gain 1 from the poles/zeros (cheap, no evalresp grid needed)
    s = 2j * np.pi * f
    stage = resp.response_stages[0]
    h = np.ones_like(s) * stage.normalization_factor * stage.stage_gain
    for z in stage.zeros:
        h *= s - complex(z)
    for p in stage.poles:
        h /= s - complex(p)
    h *= float(np.prod([st.stage_gain for st in resp.response_stages[1:]]))
    rms1 = math.sqrt(float(np.sum(psd_fn(f) * np.abs(h) ** 2) * df))
    for g in gains:
        if rms1 * g >= SHARED["target_noise_counts"]:
            return g
    return gains[-1]


def draw_site(rng: np.random.Generator, split: str = "train", *, network: str = "XS",
              station: str = "S001") -> Site:
    """Draw one site of ``split`` (``"train"`` or ``"other"``); all randomness from ``rng``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use {' or '.join(SPLITS)}")
    sr = SPLITS[split]
    rate = float(sr.rates[int(rng.integers(len(sr.rates)))])
    inst = INSTRUMENTS[sr.instruments[int(rng.integers(len(sr.instruments)))]]
    slope = round(_union_uniform(rng, sr.noise_slope), 4)
    pos = round(_uniform(rng, SHARED["noise_position"]), 4)
    hv = round(_uniform(rng, SHARED["noise_hv"]), 4)
    tone = None
    if rng.random() < SHARED["tone_probability"]:
        lo, hi = SHARED["tone_hz"]
        tone = (round(float(rng.uniform(lo, min(hi, BAND_FRACTION * rate))), 3),
                round(_uniform(rng, SHARED["tone_rel"]), 3))
    diurnal = round(_uniform(rng, SHARED["diurnal"]), 3)
    f_hi = min(BAND_FRACTION * rate, _uniform(rng, SHARED["fracture_hi_hz"]))
    f_lo = max(5.0, f_hi / _uniform(rng, SHARED["fracture_ratio"]))
    r_lo = _uniform(rng, SHARED["rockfall_lo_hz"])
    r_hi = min(BAND_FRACTION * rate, _uniform(rng, SHARED["rockfall_hi_hz"]))
    rates = {c: round(_uniform(rng, r), 3) for c, r in SHARED["rate_per_hour"].items()}
    dc = tuple(int(round(_uniform(rng, SHARED["dc_counts"]))) for _ in range(3))
    site = Site(
        network=network, station=station, split=split, sampling_rate=rate, instrument=inst.name,
        preamp_gain=1.0,
        latitude=round(_uniform(rng, (36.0, 60.0)), 5), longitude=round(_uniform(rng, (-8.0, 25.0)), 5),
        elevation=round(_uniform(rng, (100.0, 2500.0)), 1),
        noise_position=pos, noise_slope=slope, noise_hv=hv, tone=tone, diurnal=diurnal,
        fracture_band_hz=(round(f_lo, 2), round(f_hi, 2)), rockfall_band_hz=(round(r_lo, 2), round(r_hi, 2)),
        kappa_s=round(_uniform(rng, SHARED["kappa_s"]), 4), q0=round(_uniform(rng, SHARED["q0"]), 1),
        rates_per_hour=rates, dc_counts=dc,  # type: ignore[arg-type]
    )
    gain = _choose_gain(inst, rate, lambda f: ground_velocity_psd(site, f))
    return replace(site, preamp_gain=gain)


# ------------------------------------------------------------------------------- StationXML
def site_inventory(sites: list[Site], start_time: Any):
    """ObsPy ``Inventory`` of ``sites`` (channels Z/N/E with the full response); written with
    ``format="STATIONXML"``. ``created`` is fixed to ``start_time`` so the file is reproducible."""
    from obspy import UTCDateTime
    from obspy.core.inventory import Channel, Equipment, Inventory, Network, Station
    from obspy.core.inventory import Site as ObsSite

    t_start = UTCDateTime(start_time)
    t0 = t_start - 365 * 86400
    orient = {"Z": (0.0, -90.0), "N": (0.0, 0.0), "E": (90.0, 0.0)}
    nets: dict[str, Any] = {}
    for s in sites:
        inst = s.inst
        chans = []
        for code in s.channel_codes():
            az, dip = orient[code[-1]]
            logger = ("digital sensor output (synthetic)" if inst.digital else
                      f"24-bit digitizer, preamp gain {s.preamp_gain:g} (synthetic)")
            chans.append(Channel(
                code=code, location_code=s.location, latitude=s.latitude, longitude=s.longitude,
                elevation=s.elevation, depth=0.0, azimuth=az, dip=dip,
                sample_rate=float(s.sampling_rate), start_date=t0,
                sensor=Equipment(type=inst.kind, description=inst.description + " (synthetic)"),
                data_logger=Equipment(type="Digitizer", description=logger),
                response=s.response(),
            ))
        sta = Station(code=s.station, latitude=s.latitude, longitude=s.longitude,
                      elevation=s.elevation, start_date=t0, channels=chans, creation_date=t0,
                      site=ObsSite(name=f"Synthetic {s.split} site {s.station}"))
        nets.setdefault(s.network, Network(
            code=s.network, stations=[], start_date=t0,
            description="microseis-edge synthetic continuous sites")).stations.append(sta)
    return Inventory(networks=list(nets.values()), source="microseis-edge synth-continuous",
                     created=t_start)
