"""The replay scorecard: a station's alerts on continuous data scored against a catalogue.

``microseis replay --catalog CSV`` runs the station over continuous waveform files and scores
its ``end`` messages (the alerts) with this module. The definitions are in ``docs/replay.md``
("The scorecard"); in short:

* every catalogue event has a **window** ``[time - tol_s, time + duration + tol_s]`` (s), the
  duration from its ``duration_s`` column or a per-class default (:class:`MatchRule`);
* an alert ``[trigger_on, trigger_off]`` that overlaps windows is assigned to **one** event:
  the non-noise event whose onset is nearest its trigger-on time (noise transients only when
  it overlaps no other event). Events overlapped by an alert assigned elsewhere and with no
  alert of their own are **merged** (missed);
* an event with >= 2 alerts is **split**; an alert overlapping no window is **unmatched** (a
  false alert); an alert on a labelled noise transient is counted apart, not as false.

Times are POSIX seconds (float, UTC) inside; the catalogue and the alerts give ISO 8601 UTC.
Only numpy and the standard library (plus the edge label and magnitude constants): this
module runs on the station side.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.signal.labels import CLASSES
from edge.signal.magnitude import s_minus_p_s
from edge.station.catalog import (  # the readers, re-exported: one scorecard API
    Alert,
    AlertError,
    CatalogError,
    CatalogEvent,
    ScorecardError,
    alerts_from_dicts,
    parse_time,
    read_alerts,
    read_catalog,
    site_matches,
)

__all__ = [
    "NOISE", "DEFAULT_TOL_S", "DEFAULT_DURATION_S", "QUAKE_SP_DEFAULT_S", "QUAKE_CODA_S",
    "ScorecardError", "CatalogError", "AlertError", "parse_time",
    "CatalogEvent", "read_catalog", "Alert", "read_alerts", "alerts_from_dicts", "MatchRule",
    "EventMatch", "MatchResult", "match", "SiteScore", "Scorecard", "score", "site_matches",
]

#: The class of labelled noise transients (scored apart, never a detection target).
NOISE = "noise"
#: Tolerance (s) added before the onset and after the end of every catalogue event's window.
DEFAULT_TOL_S = 2.0
#: Default event duration (s) after the onset when the catalogue has no ``duration_s``.
DEFAULT_DURATION_S: dict[str, float] = {"fracture": 2.0, "rockfall": 30.0, "noise": 5.0}
#: Earthquakes: duration = S-P time + coda. S-P from ``distance_km`` (straight rays,
#: edge.signal.magnitude.s_minus_p_s) or this default (s, about 42 km) when it is not given.
QUAKE_SP_DEFAULT_S = 5.0
#: Coda after the S arrival that an earthquake window covers by default (s).
QUAKE_CODA_S = 20.0
#: Magnitude error counted as a hit (magnitude units), with the same float slack as trainer.
HIT_TOL = 0.3
_HIT_EPS = 1e-9

# ---------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class MatchRule:
    """How long a catalogue event lasts for matching (all in s).

    Attributes:
        tol_s: added before the onset and after the end of every window.
        duration_s: per-class duration after the onset, used when the row has no
            ``duration_s``; the earthquake duration is ``S-P + quake_coda_s`` instead.
        quake_sp_s: S-P time of an earthquake without ``distance_km``.
        quake_coda_s: coda after S covered by an earthquake window.
        default_s: duration of a class missing from ``duration_s``.
    """

    tol_s: float = DEFAULT_TOL_S
    duration_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DURATION_S))
    quake_sp_s: float = QUAKE_SP_DEFAULT_S
    quake_coda_s: float = QUAKE_CODA_S
    default_s: float = 10.0

    def __post_init__(self) -> None:
        for k, v in [("tol_s", self.tol_s), ("quake_sp_s", self.quake_sp_s),
                     ("quake_coda_s", self.quake_coda_s), ("default_s", self.default_s),
                     *self.duration_s.items()]:
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{k} must be a finite number >= 0 (s), got {v}")

    def event_duration(self, e: CatalogEvent) -> float:
        """Duration (s) of ``e`` after its onset."""
        if e.duration_s is not None:
            return e.duration_s
        if e.label == "earthquake":
            sp = s_minus_p_s(e.distance_km) if e.distance_km is not None else self.quake_sp_s
            return sp + self.quake_coda_s
        return float(self.duration_s.get(e.label, self.default_s))

    def window(self, e: CatalogEvent) -> tuple[float, float]:
        """``(start, end)`` POSIX seconds of the matching window of ``e``."""
        return e.time - self.tol_s, e.time + self.event_duration(e) + self.tol_s


@dataclass
class EventMatch:
    """A catalogue event and the alerts assigned to it (sorted by trigger_on)."""

    event: CatalogEvent
    alerts: list[Alert] = field(default_factory=list)
    #: Alerts assigned to another event that overlap this one's window.
    overlapped_by: list[Alert] = field(default_factory=list)

    @property
    def detected(self) -> bool:
        return bool(self.alerts)

    @property
    def split(self) -> bool:
        return len(self.alerts) >= 2

    @property
    def merged(self) -> bool:
        """No alert of its own, but inside an alert assigned to another event."""
        return not self.alerts and bool(self.overlapped_by)

    @property
    def first(self) -> Alert | None:
        return self.alerts[0] if self.alerts else None


@dataclass
class MatchResult:
    """Events with their alerts, unmatched alerts and alerts on noise transients."""

    events: list[EventMatch]
    unmatched: list[Alert]
    on_noise: list[Alert]
    n_alerts: int


def match(events: Sequence[CatalogEvent], alerts: Sequence[Alert],
          rule: MatchRule | None = None) -> MatchResult:
    """Match one site's alerts to its catalogue events (the rule in the module docstring)."""
    rule = rule or MatchRule()
    ems = [EventMatch(e) for e in sorted(events, key=lambda e: e.time)]
    win = np.array([rule.window(m.event) for m in ems], dtype=float).reshape(-1, 2)
    onset = np.array([m.event.time for m in ems], dtype=float)
    is_noise = np.array([m.event.label == NOISE for m in ems], dtype=bool)
    unmatched: list[Alert] = []
    on_noise: list[Alert] = []
    for a in sorted(alerts, key=lambda a: (a.trigger_on, a.id)):
        hit = (a.trigger_on <= win[:, 1]) & (a.trigger_off >= win[:, 0])
        if not hit.any():
            unmatched.append(a)
            continue
        cand = hit & ~is_noise if (hit & ~is_noise).any() else hit
        idx = np.flatnonzero(cand)
        best = int(idx[np.argmin(np.abs(onset[idx] - a.trigger_on))])  # ties -> the earlier
        ems[best].alerts.append(a)
        if is_noise[best]:
            on_noise.append(a)
        for j in np.flatnonzero(hit):
            if j != best:
                ems[j].overlapped_by.append(a)
    return MatchResult(ems, unmatched, on_noise, len(alerts))


# ----------------------------------------------------------------------------- scoring

def _median(x: Sequence[float]) -> float | None:
    return float(np.median(x)) if len(x) else None


def _pct(x: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(x, float), q)) if len(x) else None


def _frac(a: int, b: int) -> float | None:
    return a / b if b else None


def _union_s(intervals: Iterable[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _mag_score(pairs: list[tuple[float, float | None]]) -> dict[str, Any]:
    """``pairs`` = (catalogue magnitude, station value or None) of matched earthquakes."""
    err = np.array([v - m for m, v in pairs if v is not None], dtype=float)
    return {
        "events": len(pairs), "n": int(err.size), "given": _frac(int(err.size), len(pairs)),
        "hit_0_3": float(np.mean(np.abs(err) <= HIT_TOL + _HIT_EPS)) if err.size else None,
        "median_abs_error": _median(np.abs(err)), "mae": float(np.mean(np.abs(err))) if err.size else None,
        "bias": float(np.mean(err)) if err.size else None,
    }


def _class_metrics(pairs: list[tuple[str, str]], classes: Sequence[str]) -> dict[str, Any]:
    labels = list(classes) + sorted({p for _, p in pairs} - set(classes))
    n = len(labels)
    cm = np.zeros((n, n), dtype=np.int64)
    for t, p in pairs:
        cm[labels.index(t), labels.index(p)] += 1
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    prec = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(n), where=(prec + rec) > 0)
    present = support > 0
    return {
        "n": len(pairs),
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "f1": {c: float(f1[i]) if support[i] or predicted[i] else None for i, c in enumerate(classes)},
        "precision": {c: float(prec[i]) if predicted[i] else None for i, c in enumerate(classes)},
        "support": {c: int(support[i]) for i, c in enumerate(classes)},
        "confusion": {"classes": labels, "matrix": cm.tolist()},
    }


@dataclass
class SiteScore:
    """The scorecard of one site (or of all sites pooled). ``metrics`` holds the JSON keys
    that ``docs/replay.md`` defines; ``result`` is the matching it came from."""

    site: str | None
    metrics: dict[str, Any]
    result: MatchResult | None = None

    def __getitem__(self, key: str) -> Any:
        return self.metrics[key]


def _site_score(site: str | None, res: MatchResult, record_hours: float, rule: MatchRule,
                classes: Sequence[str]) -> SiteScore:
    targets = [c for c in classes if c != NOISE]
    real = [m for m in res.events if m.event.label != NOISE]
    noise = [m for m in res.events if m.event.label == NOISE]
    per = {c: [m for m in real if m.event.label == c] for c in targets}
    detected = [m for m in real if m.detected]
    split = [m for m in detected if m.split]
    by_site: dict[str | None, list[tuple[float, float]]] = {}
    for m in noise:  # each site's transients cover that site's record only
        by_site.setdefault(m.event.site, []).append(rule.window(m.event))
    noise_h = sum(_union_s(w) for w in by_site.values()) / 3600.0
    free_h = record_hours - noise_h
    classified = detected + [m for m in noise if m.detected]
    cls = _class_metrics([(m.event.label, m.first.event_class) for m in classified], classes)
    quakes = [m for m in detected if m.event.label == "earthquake" and m.event.magnitude is not None]
    ml = _mag_score([(m.event.magnitude, m.first.ml) for m in quakes])
    mm = _mag_score([(m.event.magnitude, m.first.model_magnitude) for m in quakes])
    tta = [m.first.trigger_on - m.event.time for m in detected]
    lat = [a.latency_ms for m in res.events for a in m.alerts if a.latency_ms is not None]
    lat += [a.latency_ms for a in res.unmatched if a.latency_ms is not None]
    d: dict[str, Any] = {
        "events": {c: len(per[c]) for c in targets} | {NOISE: len(noise)},
        "detected": {c: sum(m.detected for m in per[c]) for c in targets} | {NOISE: sum(m.detected for m in noise)},
        "recall": {c: _frac(sum(m.detected for m in per[c]), len(per[c])) for c in targets},
        "recall_all": _frac(len(detected), len(real)),
        "noise_transients": {"n": len(noise), "detected": sum(m.detected for m in noise),
                             "detected_fraction": _frac(sum(m.detected for m in noise), len(noise))},
        "alerts": res.n_alerts,
        "false_alerts": len(res.unmatched),
        "alerts_on_noise": len(res.on_noise),
        "record_hours": record_hours,
        "noise_hours": noise_h,
        "false_alerts_per_hour": len(res.unmatched) / free_h if free_h > 0 else None,
        "split_events": len(split),
        "split_fraction": _frac(len(split), len(detected)),
        "split_extra_alerts": sum(len(m.alerts) - 1 for m in split),
        "split_by_class": {c: sum(m.split for m in per[c]) for c in targets},
        "merged_events": sum(m.merged for m in real),
        "macro_f1": cls["macro_f1"],
        "f1": cls["f1"],
        "precision": cls["precision"],
        "classified": cls["n"],
        "confusion": cls["confusion"],
        "ml_hit_0_3": ml["hit_0_3"], "ml_given": ml["given"],
        "ml_median_abs_error": ml["median_abs_error"], "ml_mae": ml["mae"], "ml_bias": ml["bias"],
        "ml_n": ml["n"], "quakes_with_magnitude": ml["events"],
        "model_mag_hit_0_3": mm["hit_0_3"], "model_mag_given": mm["given"],
        "model_mag_median_abs_error": mm["median_abs_error"], "model_mag_mae": mm["mae"],
        "model_mag_bias": mm["bias"], "model_mag_n": mm["n"],
        "time_to_alert_s_median": _median(tta), "time_to_alert_s_p95": _pct(tta, 95),
        "latency_ms_p50": _median(lat), "latency_ms_p99": _pct(lat, 99),
    }
    return SiteScore(site, d, res)


def _merge_results(results: Sequence[MatchResult]) -> MatchResult:
    return MatchResult([m for r in results for m in r.events], [a for r in results for a in r.unmatched],
                       [a for r in results for a in r.on_noise], sum(r.n_alerts for r in results))


@dataclass
class Scorecard:
    """Overall score (all sites pooled), per-site scores (when the catalogue names sites) and
    the matching parameters."""

    overall: SiteScore
    sites: dict[str, SiteScore]
    rule: MatchRule
    alerts_outside_sites: int = 0
    events_outside_sites: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.overall.metrics[key]

    def worst_site(self) -> dict[str, Any]:
        """Lowest recall per class / macro-F1 / ml_hit_0_3 and highest false-alert rate over
        the sites ("every site" targets); {} without sites."""
        if not self.sites:
            return {}
        ms = [s.metrics for s in self.sites.values()]

        def pick(vals: list, fn: Any) -> Any:
            vals = [v for v in vals if v is not None]
            return fn(vals) if vals else None
        return {
            "recall": {c: pick([m["recall"][c] for m in ms], min) for c in ms[0]["recall"]},
            "false_alerts_per_hour": pick([m["false_alerts_per_hour"] for m in ms], max),
            "macro_f1": pick([m["macro_f1"] for m in ms], min),
            "ml_hit_0_3": pick([m["ml_hit_0_3"] for m in ms], min),
            "split_fraction": pick([m["split_fraction"] for m in ms], max),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON object: the overall metrics at the top level, ``sites`` {site: metrics},
        ``worst_site``, ``matching`` (tolerance and durations)."""
        d = dict(self.overall.metrics)
        d["matching"] = {"tol_s": self.rule.tol_s, "duration_s": dict(self.rule.duration_s),
                         "quake_sp_s": self.rule.quake_sp_s, "quake_coda_s": self.rule.quake_coda_s}
        if self.sites:
            d["sites"] = {k: dict(s.metrics) for k, s in self.sites.items()}
            d["worst_site"] = self.worst_site()
            d["alerts_outside_sites"] = self.alerts_outside_sites
            d["events_outside_sites"] = self.events_outside_sites
        return d

    def format_table(self) -> str:
        """Readable text: one block per site (when there are several) and the overall one."""
        blocks = [_table(f"site {k}", s.metrics) for k, s in self.sites.items()] if len(self.sites) > 1 else []
        title = ("all sites" if len(self.sites) > 1
                 else f"site {next(iter(self.sites))}" if self.sites else "scorecard")
        blocks.append(_table(title, self.overall.metrics))
        if self.alerts_outside_sites or self.events_outside_sites:
            blocks.append(f"not scored: {self.alerts_outside_sites} alerts and "
                          f"{self.events_outside_sites} catalogue events of other sites")
        return "\n\n".join(blocks)


def _f(v: Any, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _table(title: str, m: Mapping[str, Any]) -> str:
    lines = [
        (f"{title}: {sum(m['events'].values())} catalogue events, {m['alerts']} alerts, "
         f"{m['record_hours']:.2f} h of record"),
        f"{'class':<12}{'events':>7}{'detected':>9}{'recall':>8}{'split':>6}{'F1':>6}",
    ]
    for c, r in m["recall"].items():
        lines.append(f"{c:<12}{m['events'][c]:>7}{m['detected'][c]:>9}{_f(r):>8}"
                     f"{m['split_by_class'][c]:>6}{_f(m['f1'].get(c)):>6}")
    nt = m["noise_transients"]
    lines.append(f"{'noise':<12}{nt['n']:>7}{nt['detected']:>9}{_f(nt['detected_fraction']):>8}"
                 f"{'':>6}{_f(m['f1'].get(NOISE)):>6}  (labelled transients, not a target)")
    lines += [
        f"macro F1 {_f(m['macro_f1'])} on {m['classified']} matched events",
        (f"false alerts {m['false_alerts']} = {_f(m['false_alerts_per_hour'])} per hour (outside "
         f"{m['noise_hours']:.3f} h of noise transients); {m['alerts_on_noise']} alerts on noise transients"),
        (f"split events {m['split_events']} ({_f(m['split_fraction'])} of detected, "
         f"{m['split_extra_alerts']} extra alerts); merged events {m['merged_events']}"),
        (f"ML: given for {_f(m['ml_given'])} of {m['quakes_with_magnitude']} matched quakes with a "
         f"magnitude, within 0.3 {_f(m['ml_hit_0_3'])}, median |error| "
         f"{_f(m['ml_median_abs_error'])}, MAE {_f(m['ml_mae'])}"),
        (f"model magnitude: given {_f(m['model_mag_given'])}, within 0.3 "
         f"{_f(m['model_mag_hit_0_3'])}, median |error| {_f(m['model_mag_median_abs_error'])}, "
         f"MAE {_f(m['model_mag_mae'])}"),
        (f"time to first alert median {_f(m['time_to_alert_s_median'])} s, p95 "
         f"{_f(m['time_to_alert_s_p95'])} s; latency p50 {_f(m['latency_ms_p50'], '.1f')} ms, "
         f"p99 {_f(m['latency_ms_p99'], '.1f')} ms"),
    ]
    return "\n".join(lines)


def score(catalog: Sequence[CatalogEvent], alerts: Sequence[Alert],
          record_hours: float | Mapping[str, float], *, rule: MatchRule | None = None,
          classes: Sequence[str] = CLASSES) -> Scorecard:
    """Score ``alerts`` against ``catalog``.

    Args:
        catalog: from :func:`read_catalog`.
        alerts: from :func:`read_alerts` / :func:`alerts_from_dicts`.
        record_hours: hours of data replayed. A number when the catalogue names no site (or
            one site); otherwise a mapping ``{site or station: hours}``: its keys are the sites
            scored (matched to catalogue sites and alert stations by :func:`site_matches`);
            catalogue rows and alerts of other sites are counted as not scored.
        rule: matching windows (:class:`MatchRule` defaults).
        classes: the model's classes (``noise`` = noise transients).

    Raises:
        ValueError: hours <= 0 or not finite, or a number with a multi-site catalogue.
    """
    rule = rule or MatchRule()
    unknown = sorted({e.label for e in catalog} - set(classes))
    if unknown:
        raise ValueError(f"catalogue label {unknown[0]!r} is not one of the classes {list(classes)}")
    cat_sites = sorted({e.site for e in catalog if e.site is not None})
    if isinstance(record_hours, Mapping):
        hours = {str(k): float(v) for k, v in record_hours.items()}
    elif len(cat_sites) > 1:
        raise ValueError(f"the catalogue names {len(cat_sites)} sites: give the hours of record per site")
    else:
        hours = {cat_sites[0] if cat_sites else "": float(record_hours)}
    for k, v in hours.items():
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"record hours of {k or 'the record'} must be > 0, got {v}")
    if not hours:
        raise ValueError("record hours: no site given")
    if not cat_sites:
        if len(hours) > 1:
            raise ValueError("the catalogue names no site: give one number of hours")
        res = match(catalog, alerts, rule)
        return Scorecard(_site_score(None, res, next(iter(hours.values())), rule, classes), {}, rule)
    sites: dict[str, SiteScore] = {}
    used_alerts: set[int] = set()
    used_events: set[int] = set()
    for key, h in hours.items():
        names = [s for s in cat_sites if site_matches(s, key) or site_matches(key, s)]
        name = names[0] if names else key
        ev = [e for e in catalog if e.site is not None and (e.site == key or e.site in names)]
        al = [a for a in alerts if site_matches(key, a.station) or any(site_matches(n, a.station) for n in names)]
        used_events.update(id(e) for e in ev)
        used_alerts.update(id(a) for a in al)
        sites[name] = _site_score(name, match(ev, al, rule), h, rule, classes)
    overall = _site_score(None, _merge_results([s.result for s in sites.values()]),
                          sum(hours.values()), rule, classes)
    return Scorecard(overall, sites, rule, len(alerts) - len(used_alerts), len(catalog) - len(used_events))
