"""Orchestration: event plan, one event -> 3-component counts record, the whole dataset.

Every event ``i`` draws from its own ``numpy.random.default_rng([seed, i, 0x5EED])``, so events
are independent of each other and of the order (or process) that generates them: the same
config gives the same bytes with ``jobs=1`` or ``jobs=8``. The class of event ``i`` comes from
a shuffled plan drawn from ``default_rng([seed, 0x9A1A])``.

Record of event ``i``:

1. station ``S<k>`` (uniform), record start ``start_time + i * spacing + U(0, 0.8 spacing)``;
2. pre-event noise 12-20 s, then the source segment (onset = ``trigger_time``), then
   3-8 s; the record length is clipped to 30-80 s;
3. background noise (:mod:`.noise`), rms log-uniform 1e-9 - 1e-7 m/s;
4. source scaled to the drawn SNR (fracture, rockfall, noise) or to its magnitude
   (earthquake, see below);
5. ground velocity -> station response (:mod:`.response`) -> counts, + digitizer artefacts
   (noise class), + a DC offset of +-300 counts, rounded, clipped to 24 bits, int32.

Earthquakes: magnitude ``M`` (uniform or Gutenberg-Richter), hypocentral distance with
density ~ r; the Brune waveform is scaled by ``10**(M - ML)`` where ``ML`` is
:func:`edge.signal.magnitude.local_magnitude` of its horizontals *placed in the final record*, so
the label is exactly the ML of the noise-free ground motion. A draw whose SNR falls below the
minimum SNR (undetectable) or whose peak would exceed 80 % of the ADC range is redrawn
(distance and noise level), which gives the catalogue a realistic detection threshold.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import CLASSES, SynthConfig
from .earthquake import earthquake
from .noise import background_noise
from .response import (
    ADC_FULL_SCALE_COUNTS,
    StationSpec,
    apply_response,
    build_response,
    channel_codes,
    station_specs,
)
from .sources import Source, fracture, loguniform, rockfall
from .transients import SNR_BOOST_DB, noise_transient

__all__ = ["EventResult", "event_plan", "generate_dataset", "make_event", "snr_db"]

LEAD_IN_S = 5.0  # discarded noise before the record (response start-up, FFT wrap-around)
MAX_EQ_TRIES = 60


@dataclass
class EventResult:
    index: int
    label: str
    stream: Any  # obspy Stream of int32 counts
    station: str  # NET.STA
    trigger_time: Any  # UTCDateTime
    magnitude: float | None
    truth: dict[str, Any]


def event_plan(cfg: SynthConfig) -> list[str]:
    """Class label of every event index (deterministic shuffle of the class counts)."""
    counts = cfg.class_counts()
    labels = [c for c in CLASSES for _ in range(counts[c])]
    rng = np.random.default_rng([int(cfg.seed), 0x9A1A])
    order = rng.permutation(len(labels))
    return [labels[i] for i in order]


def _energy_window(e: np.ndarray) -> tuple[int, int]:
    c = np.cumsum(e)
    if c[-1] <= 0:
        return 0, e.size
    c /= c[-1]
    i5 = int(np.searchsorted(c, 0.05))
    i95 = int(np.searchsorted(c, 0.95))
    return i5, max(i95 + 1, i5 + 1)


def snr_db(signal: np.ndarray, noise_rms: float) -> float:
    """SNR (dB): rms per component of ``signal`` (3, n) over its 5-95 % energy window,
    relative to the per-component noise rms."""
    e = np.sum(signal**2, axis=0)
    a, b = _energy_window(e)
    rms = math.sqrt(float(np.mean(e[a:b])) / signal.shape[0])
    return 20.0 * math.log10(max(rms, 1e-300) / noise_rms)


_SPEC_CACHE: dict[tuple, tuple[list[StationSpec], dict[str, float]]] = {}


def _stations(cfg: SynthConfig) -> tuple[list[StationSpec], dict[str, float]]:
    key = (cfg.n_stations, cfg.network, float(cfg.sampling_rate))
    if key not in _SPEC_CACHE:
        specs = station_specs(cfg.n_stations, cfg.network)
        sens = {s.station: build_response(s.preamp_gain, cfg.sampling_rate).instrument_sensitivity.value
                for s in specs}
        _SPEC_CACHE[key] = (specs, sens)
    return _SPEC_CACHE[key]


def _draw_magnitude(rng: np.random.Generator, cfg: SynthConfig) -> float:
    lo, hi = cfg.magnitude_range
    if cfg.magnitude_b_value is None or hi == lo:
        m = rng.uniform(lo, hi)
    else:
        beta = cfg.magnitude_b_value * math.log(10.0)
        u = rng.random()
        m = lo - math.log(1.0 - u * (1.0 - math.exp(-beta * (hi - lo)))) / beta
    return round(float(m), 2)


def _layout(rng: np.random.Generator, cfg: SynthConfig, n_sig: int,
            fs: float | None = None) -> tuple[int, int]:
    """``(n_pre, n_total)`` samples of a record holding ``n_sig`` samples of signal at ``fs``
    (default ``cfg.sampling_rate``)."""
    fs = cfg.sampling_rate if fs is None else fs
    n_pre = int(round(rng.uniform(*cfg.pre_event_s) * fs))
    n_post = int(round(rng.uniform(3.0, 8.0) * fs))
    lo, hi = (int(round(x * fs)) for x in cfg.record_s)
    # A long signal shortens the pre-event noise (never below its minimum) before it is cut.
    n_pre = max(int(round(cfg.pre_event_s[0] * fs)), min(n_pre, hi - n_sig - int(fs)))
    return n_pre, int(np.clip(n_pre + n_sig + n_post, lo, hi))


def _place(sig: np.ndarray, n_pre: int, n_total: int) -> np.ndarray:
    out = np.zeros((sig.shape[0], n_total))
    m = min(sig.shape[-1], n_total - n_pre)
    out[:, n_pre:n_pre + m] = sig[:, :m]
    return out


def _earthquake(rng: np.random.Generator, cfg: SynthConfig,
                sens: float) -> tuple[Source, float, float, float, tuple[int, int], dict]:
    from edge.signal.magnitude import local_magnitude

    fs = cfg.sampling_rate
    mag = _draw_magnitude(rng, cfg)
    rmin, rmax = cfg.distance_km
    snr_min = cfg.snr_db[0]
    best = None
    for attempt in range(1, MAX_EQ_TRIES + 1):
        r = round(math.sqrt(rng.uniform(rmin**2, rmax**2)), 3)
        noise_rms = loguniform(rng, *cfg.noise_rms)
        n_pre_draw = rng.uniform(*cfg.pre_event_s)
        max_len = cfg.record_s[1] - n_pre_draw - 1.0
        src = earthquake(rng, fs, mag, r, vp_km_s=cfg.vp_km_s, vs_km_s=cfg.vs_km_s,
                         stress_drop_mpa=cfg.stress_drop_mpa, q0=cfg.q0, q_eta=cfg.q_eta,
                         kappa_s=cfg.kappa_s, max_len_s=max_len)
        n_pre = int(round(n_pre_draw * fs))
        n_post = int(round(rng.uniform(3.0, 8.0) * fs))
        lo, hi = (int(round(x * fs)) for x in cfg.record_s)
        n_total = int(np.clip(n_pre + src.n + n_post, lo, hi))
        placed = _place(src.velocity, n_pre, n_total)
        ml_brune = local_magnitude([placed[1], placed[2]], fs, r)
        scale = 10.0 ** (mag - ml_brune)
        src.velocity *= scale
        snr = snr_db(src.velocity, noise_rms)
        peak = float(np.max(np.abs(src.velocity))) * sens * 1.05
        ok = snr >= snr_min and peak < 0.8 * ADC_FULL_SCALE_COUNTS
        info = {"ml_brune": ml_brune, "attempts": attempt}
        best = (src, noise_rms, snr, mag, (n_pre, n_total), info)
        if ok:
            break
    return best


def make_event(cfg: SynthConfig, index: int, label: str) -> EventResult:
    """Generate event ``index`` of class ``label`` (pure function of cfg, index, label).
    With ``cfg.sites`` other than ``fixed`` the event is made at a drawn site
    (:func:`.site_events.make_site_event`)."""
    from obspy import Stream, Trace, UTCDateTime

    if cfg.site_mode != "fixed":
        from .site_events import make_site_event

        return make_site_event(cfg, index, label)

    fs = float(cfg.sampling_rate)
    rng = np.random.default_rng([int(cfg.seed), int(index), 0x5EED])
    specs, sens_map = _stations(cfg)
    spec = specs[int(rng.integers(len(specs)))]
    sens = float(sens_map[spec.station])
    start = UTCDateTime(cfg.start_time) + index * cfg.event_spacing_s + float(
        rng.uniform(0.0, 0.8 * cfg.event_spacing_s))
    start = UTCDateTime(round(start.timestamp * fs) / fs)  # on the sample grid
    magnitude = None
    truth: dict[str, Any] = {}
    if label == "earthquake":
        src, noise_rms, snr, magnitude, (n_pre, n_total), info = _earthquake(rng, cfg, sens)
        truth.update(info)
    else:
        noise_rms = loguniform(rng, *cfg.noise_rms)
        snr_target = float(rng.uniform(*cfg.snr_db))
        if label == "fracture":
            src = fracture(rng, fs, cfg.fracture_freq_hz, cfg.fracture_decay_s, cfg.season_shift_hz)
        elif label == "rockfall":
            src = rockfall(rng, fs, cfg.rockfall_duration_s, cfg.rockfall_band_hz)
        elif label == "noise":
            src = noise_transient(rng, fs)
            snr_target += SNR_BOOST_DB.get(src.subtype, 0.0)
        else:
            raise ValueError(f"unknown class {label!r}")
        unit = src.velocity if src.counts is None else src.velocity + src.counts
        scale = noise_rms * 10.0 ** (snr_target / 20.0) / (10.0 ** (snr_db(unit, 1.0) / 20.0))
        src.velocity = src.velocity * scale
        if src.counts is not None:
            src.counts = src.counts * scale * sens
        snr = snr_target
        n_pre, n_total = _layout(rng, cfg, src.n)

    lead = int(round(LEAD_IN_S * fs))
    bg, bg_info = background_noise(rng, lead + n_total, fs, noise_rms)
    vel = bg
    vel[:, lead:] += _place(src.velocity, n_pre, n_total)
    counts = apply_response(vel, spec.preamp_gain, fs)[:, lead:]
    if src.counts is not None:
        counts += _place(src.counts, n_pre, n_total)
    counts += rng.uniform(-300.0, 300.0, size=(3, 1))
    counts = np.clip(np.rint(counts), -ADC_FULL_SCALE_COUNTS, ADC_FULL_SCALE_COUNTS - 1).astype(np.int32)

    codes = channel_codes(fs)
    st = Stream()
    for c, code in enumerate(codes):
        st.append(Trace(data=np.ascontiguousarray(counts[c]), header={
            "network": spec.network, "station": spec.station, "location": spec.location,
            "channel": code, "sampling_rate": fs, "starttime": start,
        }))
    onset = start + n_pre / fs
    meta = dict(src.meta)
    truth.update({
        "subtype": src.subtype,
        "snr_db": round(snr, 2),
        "noise_rms_m_s": float(f"{noise_rms:.4g}"),
        "noise_beta": bg_info["beta"],
        "noise_tone_hz": bg_info["tone"]["freq_hz"] if bg_info["tone"] else None,
        "duration_s": meta.get("duration_s"),
        "peak_freq_hz": meta.get("peak_freq_hz"),
        "distance_km": meta.get("distance_km"),
        "s_minus_p_s": meta.get("s_minus_p_s"),
        "corner_hz": meta.get("corner_hz"),
        "stress_drop_mpa": meta.get("stress_drop_mpa"),
        "backazimuth_deg": meta.get("backazimuth_deg"),
        "preamp_gain": spec.preamp_gain,
        "sensitivity": float(f"{sens:.6g}"),
        "record_s": round(n_total / fs, 3),
        "clipped": bool(np.any(np.abs(counts) >= ADC_FULL_SCALE_COUNTS - 1)),
    })
    if label == "earthquake":
        truth["s_time"] = onset + meta["s_minus_p_s"]
    return EventResult(index=index, label=label, stream=st, station=spec.net_sta,
                       trigger_time=onset, magnitude=magnitude, truth=truth)


# ----------------------------------------------------------------------------------------
def _work(args: tuple[dict, int, str, str]) -> dict[str, Any]:
    cfg_d, index, label, out_dir = args
    from .dataset_writer import event_relpath, event_rows, write_event

    cfg = SynthConfig.from_dict(cfg_d)
    ev = make_event(cfg, index, label)
    rel = event_relpath(index, cfg.n_events)
    write_event(out_dir, rel, ev.stream)
    return event_rows(ev, rel)


def generate_dataset(
    cfg: SynthConfig,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    jobs: int = 1,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Write the dataset folder and return the summary (also stored in ``synth.json``).

    ``progress(done, total, elapsed_s)`` is called after every event.
    """
    from .dataset_writer import DatasetWriter

    cfg.validate()
    t0 = time.perf_counter()
    writer = DatasetWriter(out_dir)
    writer.prepare(force=force)
    sites = None
    if cfg.site_mode == "fixed":
        from .response import build_inventory

        specs, _ = _stations(cfg)
        writer.write_inventory(build_inventory(specs, cfg.sampling_rate, cfg.start_time))
    else:
        from .site_events import dataset_sites
        from .sites import site_inventory

        sites = dataset_sites(cfg)
        writer.write_inventory(site_inventory(sites, cfg.start_time))
    plan = event_plan(cfg)
    cfg_d = cfg.to_dict()
    tasks = [(cfg_d, i, lab, str(writer.root)) for i, lab in enumerate(plan)]
    results: list[dict[str, Any]] = []
    total = len(tasks)
    if jobs <= 1:
        it = map(_work, tasks)
        pool = None
    else:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs)
        it = pool.map(_work, tasks, chunksize=max(1, min(16, total // (4 * jobs) or 1)))
    try:
        for r in it:
            results.append(r)
            if progress:
                progress(len(results), total, time.perf_counter() - t0)
    finally:
        if pool is not None:
            pool.shutdown()
    summary = writer.finish(cfg, results, sites)
    summary["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return summary
