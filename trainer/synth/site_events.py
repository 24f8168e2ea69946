"""Event windows at drawn sites: ``microseis synth --sites train|other``.

The event-window benchmark of :mod:`.generate` with the site variety of :mod:`.sites`: the
events of a dataset are spread over ``ceil(n_events / events_per_site)`` sites drawn with
:func:`.sites.draw_site` from the split (``train`` or the held-out ``other``), event ``i`` at
site ``i mod n_sites``. Every event is made by the continuous generator's code
(:func:`.continuous.site_event`: the site's bands, kappa and Q; quakes of ML -0.5..3 at
5-100 km, from a scattered S train to a clean S pulse, detectable and unclipped at that
site; in-band SNR 6-30 dB against the site's noise; through the site's ObsPy ``Response``) and
laid on the site's own background noise
(:class:`.continuous.NoiseSource`: Peterson-model spectrum, instrument self-noise, digitizer
noise, tone, day/night cycle), at the site's sampling rate, with its DC offsets, rounded and
clipped to its recorder's range. ``stations.xml`` holds every site with its full response,
so a reader (the trainer, ``evaluate``, ``predict``) calibrates each event with its own
instrument and resamples it to the model's rate with the station's preprocessing.

Layout of a record (as in the single-site benchmark): ``pre_event_s`` (12-20 s) of noise,
the event (onset = ``trigger_time``), 3-8 s after it, the length clipped to ``record_s``
(30-80 s); a long event shortens the pre-event noise down to its minimum.

Randomness: site ``k`` from ``default_rng([seed, split code, k, 0xE5E7])``; event ``i``
from ``[seed, i, 0x5EED]`` (its noise from ``[seed, i, 0xB6]``), so events are independent of
the order and the process that generates them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import SynthConfig
from .continuous import SPLIT_CODES, STATION_PREFIX, NoiseSource, SiteModel, site_event
from .sites import Site, draw_site

__all__ = ["SITE_MODES", "dataset_sites", "make_site_event", "site_of"]

#: ``fixed``: the single-site benchmark of :mod:`.generate` (3 stations, 4.5 Hz geophone,
#: ``sampling_rate``); ``train`` / ``other``: sites drawn from that split of :mod:`.sites`.
SITE_MODES: tuple[str, ...] = ("fixed", "train", "other")
NETWORK = "XD"
#: background noise is synthesised in segments of at least this many seconds (a record fits)
NOISE_SEGMENT_S = 100.0

_MODELS: dict[tuple, tuple[Site, SiteModel]] = {}


def n_sites(cfg: SynthConfig) -> int:
    return max(1, math.ceil(int(cfg.n_events) / int(cfg.events_per_site)))


def _draw(cfg: SynthConfig, k: int) -> Site:
    rng = np.random.default_rng([int(cfg.seed), SPLIT_CODES[cfg.site_mode], int(k), 0xE5E7])
    return draw_site(rng, cfg.site_mode, network=NETWORK, station=f"{STATION_PREFIX[cfg.site_mode]}{k + 1:03d}")


def dataset_sites(cfg: SynthConfig) -> list[Site]:
    """Every site of the dataset (station codes ``T001``... for train, ``O001``... other)."""
    return [_draw(cfg, k) for k in range(n_sites(cfg))]


def site_of(cfg: SynthConfig, index: int) -> tuple[Site, SiteModel]:
    """Site of event ``index`` and its synthesis model (cached per process)."""
    k = int(index) % n_sites(cfg)
    key = (int(cfg.seed), cfg.site_mode, int(cfg.events_per_site), int(cfg.n_events), k)
    if key not in _MODELS:
        if len(_MODELS) > 64:
            _MODELS.clear()
        site = _draw(cfg, k)
        _MODELS[key] = (site, SiteModel(site, segment_s=max(NOISE_SEGMENT_S, cfg.record_s[1] + 25.0)))
    return _MODELS[key]


def make_site_event(cfg: SynthConfig, index: int, label: str):
    """Event ``index`` of class ``label`` at its site (pure function of cfg, index, label);
    returns a :class:`.generate.EventResult`."""
    from obspy import Stream, Trace, UTCDateTime

    from .generate import EventResult, _layout

    site, model = site_of(cfg, index)
    fs = model.fs
    rng = np.random.default_rng([int(cfg.seed), int(index), 0x5EED])
    start = UTCDateTime(cfg.start_time) + index * cfg.event_spacing_s + float(
        rng.uniform(0.0, 0.8 * cfg.event_spacing_s))
    start = UTCDateTime(round(start.timestamp * fs) / fs)  # on the sample grid
    ev = site_event(model, label, rng)
    n_pre, n_total = _layout(rng, cfg, int(ev["n_src"]), fs)
    noise = NoiseSource(model, [int(cfg.seed), int(index), 0xB6], start.timestamp)
    counts = noise.get(0, n_total)
    m = min(ev["counts"].shape[1], n_total - n_pre)
    counts[:, n_pre:n_pre + m] += ev["counts"][:, :m]
    counts += np.asarray(site.dc_counts, dtype=float)[:, None]
    fsc = model.full_scale
    clipped = bool(np.any((counts <= -fsc) | (counts >= fsc - 1)))
    data = np.clip(np.rint(counts), -fsc, fsc - 1).astype(np.int32)

    st = Stream()
    for c, code in enumerate(site.channel_codes()):
        st.append(Trace(data=np.ascontiguousarray(data[c]), header={
            "network": site.network, "station": site.station, "location": site.location,
            "channel": code, "sampling_rate": fs, "starttime": start}))
    onset = start + n_pre / fs
    row = ev["row"]
    magnitude = float(row["magnitude"]) if label == "earthquake" else None
    truth: dict[str, Any] = {
        "subtype": row.get("subtype"),
        "snr_db": row.get("snr_db"),
        "duration_s": row.get("duration_s"),
        "peak_freq_hz": row.get("peak_freq_hz"),
        "distance_km": row.get("distance_km"),
        "s_minus_p_s": row.get("sp_s"),
        "preamp_gain": site.preamp_gain,
        "sensitivity": float(f"{site.response().instrument_sensitivity.value:.6g}"),
        "record_s": round(n_total / fs, 3),
        "clipped": clipped or bool(row.get("clipped")),
    }
    if label == "earthquake":
        truth["s_time"] = onset + float(row["sp_s"])
    return EventResult(index=index, label=label, stream=st, station=site.net_sta,
                       trigger_time=onset, magnitude=magnitude, truth=truth)
