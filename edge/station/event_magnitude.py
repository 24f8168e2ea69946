"""Physical local magnitude of one event on the station: P and S picks (AIC, below) ->
S-P -> hypocentral distance -> Wood-Anderson ML (Hutton & Boore 1987, :mod:`edge.signal.magnitude`).

**Picks** (:func:`pick_p_s`), on the three components band-passed 2-20 Hz (zero phase):

* P: the AIC onset (:func:`edge.signal.aic.aic_onset`) of Z from the start of the
  window to 0.5 s after the trigger-on (without one: to Z's largest amplitude);
* S: the AIC onset of the two horizontals together, from 0.05 s after P to a little after
  their largest amplitude within 30 s of P (``+ max(0.5 s, half of peak - P)``): a local
  event's S carries the largest horizontal motion, and the onset of that motion is the
  change of variance before it ("two-step" AIC: Zhang, Thurber & Rowe 2003). The AIC of the
  first and last 0.1 s of the window is not used.

Why not ObsPy's AR-AIC picker (used before): on the event windows of the continuous
benchmark's train split its S-P was 1.5-15x too long for quakes at 5-10 km (S-P 0.6-1.2 s)
and 5x too short for some at 93 km, so ML came out up to 1.1 too high; 47 % of the quakes
had an S-P within the 0.3-unit ML tolerance, with the AIC picks 97-100 %.

Returns a value or ``None`` with a ``reason`` -- the ``magnitude.ml`` / ``magnitude.reason``
fields of an ``end`` message -- never raises on data it cannot use.

**Distance bound** (``ml_method = "distance bound"``): when no S can be picked but the event's
trigger times are given, ML is computed at the largest distance the event allows. A local
event's S wave carries its largest horizontal amplitude and re-triggers (or keeps on) the
station's trigger, so with association it arrives before the event's last trigger-off:
``S - P <= trigger_off - P`` (P: the picked P, else trigger-on), capped at :data:`MAX_SP_S`.
That gives ``r <= r_max`` (:func:`~edge.signal.magnitude.hypocentral_distance_km`), and since
Hutton & Boore's ML grows with distance for a given amplitude (``1.11 log10 r + 0.00189 r``),
``ML(A, r_max)`` is an **upper bound** of the event's ML -- on the safe side for a warning.
The message says so: ``ml_method``, ``distance_max_km``, ``s_minus_p_max_s`` and the reason
the S-P distance was not available.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from obspy import Inventory, Stream, UTCDateTime

from edge.signal.aic import aic_onset
from edge.signal.iir import bandpass  # ObsPy's bandpass, bit for bit, without obspy.signal's init
from edge.signal.magnitude import VP_KM_S, VS_KM_S, hypocentral_distance_km, local_magnitude, station_magnitude

__all__ = ["MagnitudeResult", "pick_p_s", "event_ml", "load_ml_modules", "s_like_onset"]

#: band (Hz) the picks are made in (the high corner at most 0.45 x the sampling rate)
PICK_BAND = (2.0, 20.0)
#: S is searched from this long after P (s) ...
S_AFTER_P_S = 0.05
#: ... to the horizontals' largest amplitude within this long after P (s) ...
S_SEARCH_S = 30.0
#: ... plus max(this, half of peak - P) (s)
S_PAST_PEAK_S = 0.5
#: AIC values this close to either end of a pick window are not used (s)
AIC_EDGE_S = 0.1
#: an onset whose horizontal energy (per component, above the noise before it) exceeds the
#: vertical's by this factor in its first second is an S (a P is vertical-dominant)
S_ONSET_HZ_RATIO = 1.5
#: plausible S-P times (s): below, the picks are the same phase; above, not a local event
MIN_SP_S = 0.05
MAX_SP_S = 30.0


@dataclass
class MagnitudeResult:
    """``ml`` (None when it cannot be computed, then ``reason`` says why), the picks and the
    distance it rests on."""

    ml: float | None
    reason: str | None = None
    p_time: UTCDateTime | None = None
    s_time: UTCDateTime | None = None
    distance_km: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: "S-P" (distance from the picks) or "distance bound" (upper bound, see the module doc)
    method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ml": None if self.ml is None else round(self.ml, 2)}
        if self.reason:
            d["reason"] = self.reason
        if self.method is not None:
            d["ml_method"] = self.method
        d.update(self.details)
        if self.distance_km is not None:
            d["distance_km"] = round(self.distance_km, 3)
        if self.p_time is not None and self.s_time is not None:
            d["s_minus_p_s"] = round(float(self.s_time - self.p_time), 3)
        return d


def load_ml_modules(inventory: bool = False) -> None:
    """Import what ML with a StationXML needs (ObsPy's evalresp behind ``remove_response``
    pulls the package inits of obspy.signal and scipy.signal, ~110 MB and ~0.8 s here) now.
    The station calls it at start-up when a StationXML is configured, so the first event's
    ``end`` does not wait for these imports (they took its latency from ~25 ms to ~1 s on the
    development VM); a station with a flat sensitivity or none never loads them (the AIC
    picks, the Wood-Anderson simulation and the filters are numpy: edge.signal.aic,
    edge.signal.seismometer, edge.signal.iir)."""
    import obspy.signal.invsim  # noqa: F401
    import obspy.signal.trigger  # noqa: F401
    import scipy.signal  # noqa: F401

    if inventory:
        import edge.signal.dataset  # noqa: F401 -- sensitivity_for (StationXML)


def _components(st: Stream) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tr in st:
        c = tr.stats.channel[-1:].upper()
        c = {"1": "N", "2": "E"}.get(c, c)
        if c in "ZNE" and c not in out:
            out[c] = tr
    return out


def pick_p_s(st: Stream, trigger_on: UTCDateTime | None = None) -> tuple[UTCDateTime, UTCDateTime] | None:
    """P and S onsets on a 3-component stream (counts or velocity, at least 3 s), AIC picks
    (module docstring); ``trigger_on`` bounds the P search. None when no usable pair."""
    comps = _components(st)
    if not all(c in comps for c in "ZNE"):
        return None
    z, n, e = comps["Z"], comps["N"], comps["E"]
    fs = float(z.stats.sampling_rate)
    t0 = max(tr.stats.starttime for tr in (z, n, e))
    t1 = min(tr.stats.endtime for tr in (z, n, e))
    if t1 - t0 < 3.0 or any(float(tr.stats.sampling_rate) != fs for tr in (n, e)):
        return None
    m = int((t1 - t0) * fs)
    hi = min(PICK_BAND[1], 0.45 * fs)
    try:
        zf, nf, ef = (bandpass(_demeaned(tr.slice(t0, t1).data[:m]), PICK_BAND[0], hi, fs, corners=4,
                               zerophase=True) for tr in (z, n, e))
    except Exception:  # noqa: BLE001 -- degenerate data (NaN, too short for the filter)
        return None
    m = min(zf.size, nf.size, ef.size)
    if m < int(3.0 * fs):
        return None
    edge = max(1, int(AIC_EDGE_S * fs))
    # P: the onset on Z before the trigger (+0.5 s), else before Z's largest amplitude
    p_end = (int((trigger_on - t0) * fs) + int(0.5 * fs)) if trigger_on is not None else \
        int(np.argmax(np.abs(zf[:m]))) + edge
    p_end = min(m, max(p_end, 2 * edge + 3))
    ip = aic_onset([zf[:p_end]], edge)
    if ip is None:
        return None
    # S: the onset on the horizontals before their largest motion
    w = max(1, int(0.1 * fs))
    h = nf[:m] ** 2 + ef[:m] ** 2
    env = np.convolve(h, np.ones(w) / w, mode="same")
    lo, top = ip + max(1, int(2 * S_AFTER_P_S * fs)), min(m, ip + int(S_SEARCH_S * fs))
    if top - lo < 2:
        return None
    ipk = lo + int(np.argmax(env[lo:top]))
    a0 = ip + max(1, int(S_AFTER_P_S * fs))
    a1 = min(m, ipk + int(max(S_PAST_PEAK_S, 0.5 * (ipk - ip) / fs) * fs))
    js = aic_onset([nf[a0:a1], ef[a0:a1]], edge)
    if js is None:
        return None
    p, s = t0 + ip / fs, t0 + (a0 + js) / fs
    return (p, s) if s > p else None


def s_like_onset(st: Stream, t: UTCDateTime, window_s: float = 1.0, noise_s: float = 2.0) -> bool:
    """Whether the arrival starting at ``t`` looks like an S: in its first ``window_s`` the
    mean energy per horizontal component (2-20 Hz, less the mean energy of the ``noise_s``
    before ``t``) is at least :data:`S_ONSET_HZ_RATIO` x the vertical's. A P arrives steeply
    from below and moves the vertical most; an S moves the horizontals. False when it cannot
    tell (missing components, too little data)."""
    comps = _components(st)
    if not all(c in comps for c in "ZNE"):
        return False
    energy = {}
    for c in "ZNE":
        tr = comps[c]
        fs = float(tr.stats.sampling_rate)
        seg = tr.slice(t - noise_s - 1.0, t + window_s + 1.0)
        x = _demeaned(seg.data)
        if x.size < int((noise_s + window_s + 1.0) * fs):
            return False
        try:
            y = bandpass(x, PICK_BAND[0], min(PICK_BAND[1], 0.45 * fs), fs, corners=4, zerophase=True)
        except Exception:  # noqa: BLE001 -- degenerate data
            return False
        i = int(round((t - seg.stats.starttime) * fs))
        noise = float(np.mean(y[max(0, i - int(noise_s * fs)):i] ** 2)) if i > 0 else 0.0
        energy[c] = max(0.0, float(np.mean(y[i:i + int(window_s * fs)] ** 2)) - noise)
    return 0.5 * (energy["N"] + energy["E"]) >= S_ONSET_HZ_RATIO * energy["Z"] and energy["N"] + energy["E"] > 0


def _demeaned(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean() if x.size else x


def _ml_at(st: Stream, r: float, inventory: Inventory | None, sensitivity: float | None) -> float:
    """Wood-Anderson ML of the horizontals of ``st`` at hypocentral distance ``r`` (km)."""
    if inventory is not None:
        return station_magnitude(st, inventory, r)
    horiz = []
    for tr in st:
        if tr.stats.channel[-1:].upper() in "NE12":
            t = tr.copy()
            t.data = t.data.astype(np.float64) / float(sensitivity)
            horiz.append(t)
    return local_magnitude(horiz, None, r)


def event_ml(st: Stream, *, inventory: Inventory | None = None, sensitivity: float | None = None,
             vp_km_s: float = VP_KM_S, vs_km_s: float = VS_KM_S,
             trigger_on: UTCDateTime | None = None,
             trigger_off: UTCDateTime | None = None) -> MagnitudeResult:
    """ML of the event in ``st`` (raw counts, Z/N/E, a few seconds of pre-event data).

    The response comes from ``inventory`` (StationXML) or a flat ``sensitivity`` in counts
    per m/s; with neither, ``ml`` is None. With ``trigger_on``/``trigger_off`` (the event's
    first trigger-on and last trigger-off), an event without a usable S pick still gets an
    ML from the distance bound (module docstring), marked ``method = "distance bound"``.
    """
    if inventory is None and not sensitivity:
        return MagnitudeResult(None, "no station response configured ([magnitude] stationxml or sensitivity)")
    picks = pick_p_s(st, trigger_on)
    if picks is None:
        return _bounded(st, "no P/S pick pair (S-P needed for the distance)", None, trigger_on,
                        trigger_off, inventory, sensitivity, vp_km_s, vs_km_s)
    p, s = picks
    sp = float(s - p)
    if not MIN_SP_S <= sp <= MAX_SP_S:
        return _bounded(st, f"S-P {sp:.2f} s outside {MIN_SP_S}-{MAX_SP_S} s", p, trigger_on,
                        trigger_off, inventory, sensitivity, vp_km_s, vs_km_s, s)
    r = hypocentral_distance_km(sp, vp_km_s, vs_km_s)
    try:
        ml = _ml_at(st, r, inventory, sensitivity)
    except Exception as exc:  # noqa: BLE001 -- a bad response must not kill the event
        return MagnitudeResult(None, f"ML failed: {exc}", p, s, r)
    if not math.isfinite(ml):
        return MagnitudeResult(None, "zero amplitude on the horizontals", p, s, r)
    return MagnitudeResult(float(ml), None, p, s, r, method="S-P")


def _bounded(st: Stream, why: str, p: UTCDateTime | None, trigger_on: UTCDateTime | None,
             trigger_off: UTCDateTime | None, inventory: Inventory | None,
             sensitivity: float | None, vp_km_s: float, vs_km_s: float,
             s: UTCDateTime | None = None) -> MagnitudeResult:
    """ML at the largest distance the event allows (an upper bound), or None with ``why``."""
    if trigger_on is None or trigger_off is None:
        return MagnitudeResult(None, why, p, s)
    start = p if p is not None and trigger_on <= p < trigger_off else trigger_on
    sp_max = min(MAX_SP_S, max(MIN_SP_S, float(trigger_off - start)))
    r_max = hypocentral_distance_km(sp_max, vp_km_s, vs_km_s)
    if not any(tr.stats.channel[-1:].upper() in "NE12" for tr in st):
        return MagnitudeResult(None, f"{why}; no horizontal component for a bounded ML")
    try:
        ml = _ml_at(st, r_max, inventory, sensitivity)
    except Exception as exc:  # noqa: BLE001 -- a bad response must not kill the event
        return MagnitudeResult(None, f"{why}; ML failed: {exc}")
    if not math.isfinite(ml):
        return MagnitudeResult(None, f"{why}; zero amplitude on the horizontals")
    return MagnitudeResult(float(ml), f"{why}: ML at the largest distance the event allows "
                           f"(S-P <= {sp_max:.2f} s), an upper bound", method="distance bound",
                           details={"distance_max_km": round(r_max, 3),
                                    "s_minus_p_max_s": round(sp_max, 3)})
