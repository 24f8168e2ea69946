"""Physical local magnitude of one event on the station: S-P picks (ObsPy's AR-AIC picker)
-> hypocentral distance -> Wood-Anderson ML (Hutton & Boore 1987, :mod:`edge.signal.magnitude`).

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

from edge.signal.magnitude import VP_KM_S, VS_KM_S, hypocentral_distance_km, local_magnitude, station_magnitude

__all__ = ["MagnitudeResult", "pick_p_s", "event_ml", "load_ml_modules"]

#: ar_pick (LTA_P, STA_P, LTA_S, STA_S) windows (s), tried in turn: ObsPy's documented
#: example values first; they find no S in an event window of a few seconds (the S search
#: needs ~20 s of data before P), so then windows scaled to the event window. On ObsPy's
#: RJOB recording cut to 2 s before P and 6 s after: the first gives P only, the second
#: P 30.57 s and S 31.165 s (the full 60 s with the first: 30.635 s and 31.165 s).
AR_PICK_WINDOWS = ((1.0, 0.1, 4.0, 1.0), (0.5, 0.05, 1.0, 0.2))
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
    """Import what ML needs (ObsPy's ``ar_pick`` and ``simulate_seismometer``, scipy's
    ``sosfiltfilt``: the package inits of obspy.signal and scipy.signal, ~110 MB and ~0.8 s
    here) now. The station calls it at start-up when a response is configured, so the first
    event's ``end`` does not wait for these imports (they took its latency from ~25 ms to
    ~1 s on the development VM); a station without a response never loads them."""
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


def pick_p_s(st: Stream) -> tuple[UTCDateTime, UTCDateTime] | None:
    """P and S onsets with :func:`obspy.signal.trigger.ar_pick` on a 3-component stream
    (counts or velocity), or None when the picker finds no usable pair."""
    from edge.signal.arpick import ar_pick  # ObsPy's ar_pick without obspy.signal (docs/performance.md)

    comps = _components(st)
    if not all(c in comps for c in "ZNE"):
        return None
    z, n, e = comps["Z"], comps["N"], comps["E"]
    fs = float(z.stats.sampling_rate)
    t0 = max(tr.stats.starttime for tr in (z, n, e))
    t1 = min(tr.stats.endtime for tr in (z, n, e))
    if t1 - t0 < 3.0:
        return None
    a, b, c = (np.ascontiguousarray(tr.slice(t0, t1).data[: int((t1 - t0) * fs)], dtype=np.float32)
               for tr in (z, n, e))
    m = min(len(a), len(b), len(c))
    f2 = min(20.0, 0.45 * fs)
    for lta_p, sta_p, lta_s, sta_s in AR_PICK_WINDOWS:
        try:
            p, s = ar_pick(a[:m], b[:m], c[:m], fs, 1.0, f2, lta_p, sta_p, lta_s, sta_s, 2, 8, 0.1, 0.2,
                           s_pick=True)
        except Exception:  # noqa: BLE001 -- the picker raises on degenerate data
            continue
        if math.isfinite(p) and math.isfinite(s) and 0 < p < s:
            return t0 + float(p), t0 + float(s)
    return None


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
    picks = pick_p_s(st)
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
