"""The catalogue and the alerts that :mod:`edge.station.scorecard` scores: strict readers of
the catalogue CSV (``time,label[,magnitude,duration_s,distance_km,site]``; a bad row names its
file and line) and of the station's ``end`` messages, with ISO time parsing.

Times are POSIX seconds (float, UTC). Standard library only (plus the edge class list).
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.signal.labels import CLASSES

__all__ = ["ScorecardError", "CatalogError", "AlertError", "parse_time", "site_matches",
           "CatalogEvent", "read_catalog", "Alert", "read_alerts", "alerts_from_dicts"]

#: Bounds on catalogue values (a row outside them is a typo, not an event).
_MAG_RANGE = (-3.0, 10.0)
_MAX_DURATION_S = 86400.0
_MAX_DISTANCE_KM = 20000.0
_MAX_ALERT_S = 86400.0
_MAX_LINE = 100_000

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                  r"(Z|[+-]\d\d:?\d\d)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ScorecardError(ValueError):
    """Bad scorecard input; the message is one line naming the file, line and field."""


class CatalogError(ScorecardError):
    """A catalogue CSV that cannot be used (``replay`` turns it into exit 2)."""


class AlertError(ScorecardError):
    """An alert (``end`` message) that cannot be scored."""


def parse_time(text: str) -> float:
    """ISO 8601 UTC time -> POSIX seconds.

    Accepts ``2026-05-01T12:00:03.125Z``, a space instead of ``T``, 0-9 fraction digits and an
    offset (``Z``, ``+01:00``, ``+0100``); no offset means UTC. ``ValueError`` otherwise.
    """
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not an ISO time")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        base = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO time") from None
    t = (base - _EPOCH).total_seconds() + (int(frac) / 10 ** len(frac) if frac else 0.0)
    if tz and tz != "Z":
        hh, mm = int(tz[1:3]), int(tz[-2:])
        if hh > 23 or mm > 59:
            raise ValueError(f"{text!r} is not an ISO time")
        t -= (1 if tz[0] == "+" else -1) * (hh * 3600 + mm * 60)
    return t


def site_matches(site: str, station: str) -> bool:
    """A catalogue site names a station when it equals it (``XX.S1``) or, without a dot, its
    station code (``S1`` names ``XX.S1``)."""
    if site == station:
        return True
    parts = station.split(".")
    return "." not in site and len(parts) > 1 and parts[1] == site


# --------------------------------------------------------------------------- catalogue

@dataclass(frozen=True)
class CatalogEvent:
    """One catalogue row.

    Attributes:
        time: onset, POSIX seconds (UTC).
        label: class name (``noise`` = a labelled noise transient).
        magnitude: catalogue magnitude, or None.
        duration_s: event duration after the onset (s), or None (class default).
        distance_km: hypocentral distance (km), or None; sets an earthquake's S-P time.
        site: site or station the row belongs to, or None when the catalogue has no such column.
        line: line number in the CSV (1 = header).
    """

    time: float
    label: str
    magnitude: float | None = None
    duration_s: float | None = None
    distance_km: float | None = None
    site: str | None = None
    line: int = 0


def _opt_float(text: str, what: str, lo: float, hi: float, lo_open: bool = False) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise ValueError(f"{what}: {text!r} is out of range ({bound} and <= {hi:g})")
    return v


def read_catalog(path: str | Path, classes: Sequence[str] = CLASSES) -> list[CatalogEvent]:
    """Read a catalogue CSV: header with ``time`` and ``label`` (required), optional
    ``magnitude``, ``duration_s`` (s), ``distance_km`` (km), ``site`` or ``station``; other
    columns are ignored. Blank lines and lines starting with ``#`` are skipped.

    Returns the events sorted by time (the file need not be sorted).

    Raises:
        CatalogError: one line ``NAME line N: FIELD: reason`` for the first bad row (unknown
            label, bad time or number, wrong field count, empty site when the column is set,
            a duplicate of an earlier row, a missing required column).
    """
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read the catalogue ({exc})") from None
    rows = [(i, r) for i, r in enumerate(csv.reader(text.splitlines()), start=1)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise CatalogError(f"{name}: empty catalogue (need a header with time,label)")
    hline, header = rows[0]
    cols = [c.strip().lower() for c in header]
    for c in ("time", "label"):
        if c not in cols:
            raise CatalogError(f"{name} line {hline}: header: no {c!r} column "
                               f"(got {','.join(cols)}; need time,label[,magnitude])")
    dup = sorted({c for c in cols if c and cols.count(c) > 1})
    if dup:
        raise CatalogError(f"{name} line {hline}: header: column {dup[0]!r} appears twice")
    if "site" in cols and "station" in cols:
        raise CatalogError(f"{name} line {hline}: header: give one of 'site' and 'station', not both")
    idx = {c: cols.index(c) for c in cols}
    site_col = idx.get("site", idx.get("station"))
    site_name = "site" if "site" in idx else "station"
    out: list[CatalogEvent] = []
    seen: dict[tuple, int] = {}
    for line, row in rows[1:]:
        def bad(msg: str, line: int = line) -> CatalogError:
            return CatalogError(f"{name} line {line}: {msg}")
        if line > _MAX_LINE:
            raise bad(f"more than {_MAX_LINE} lines")
        if len(row) != len(cols):
            raise bad(f"{len(row)} fields, the header has {len(cols)}")
        try:
            t = parse_time(row[idx["time"]])
        except ValueError as exc:
            raise bad(f"time: {exc}") from None
        label = row[idx["label"]].strip()
        if label not in classes:
            raise bad(f"label: {label!r} is not a class ({', '.join(classes)})")
        try:
            mag = _opt_float(row[idx["magnitude"]], "magnitude", *_MAG_RANGE) if "magnitude" in idx else None
            dur = (_opt_float(row[idx["duration_s"]], "duration_s", 0.0, _MAX_DURATION_S, lo_open=False)
                   if "duration_s" in idx else None)
            dist = (_opt_float(row[idx["distance_km"]], "distance_km", 0.0, _MAX_DISTANCE_KM)
                    if "distance_km" in idx else None)
        except ValueError as exc:
            raise bad(str(exc)) from None
        site = None
        if site_col is not None:
            site = row[site_col].strip()
            if not site:
                raise bad(f"{site_name}: empty (the column is set, every row needs one)")
        key = (round(t, 6), label, site)
        if key in seen:
            raise bad(f"duplicate of line {seen[key]} (same time, label and {site_name})")
        seen[key] = line
        out.append(CatalogEvent(t, label, mag, dur, dist, site, line))
    out.sort(key=lambda e: (e.time, e.line))
    return out


# ------------------------------------------------------------------------------ alerts

@dataclass(frozen=True)
class Alert:
    """One station alert (an ``end`` message), times in POSIX seconds.

    Attributes:
        id, station: as in the message.
        trigger_on, trigger_off: trigger times (s).
        event_class: predicted class (``class``).
        ml: local magnitude ``magnitude.ml`` or None.
        model_magnitude: the model's magnitude ``magnitude.model`` or None.
        latency_ms: ``latency_ms`` or None.
    """

    id: str
    station: str
    trigger_on: float
    trigger_off: float
    event_class: str
    ml: float | None = None
    model_magnitude: float | None = None
    latency_ms: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        """From an ``end`` message object; ``ValueError`` naming the field when it is bad."""
        if not isinstance(d, Mapping):
            raise ValueError("not a JSON object")

        def text(k: str) -> str:
            v = d.get(k)
            if not isinstance(v, str) or not v:
                raise ValueError(f"{k}: missing or not a string")
            return v

        def num(v: Any, k: str) -> float | None:
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{k}: {v!r} is not a number")
            return float(v)

        def when(k: str) -> float:
            try:
                return parse_time(text(k))
            except ValueError as exc:
                raise ValueError(str(exc) if str(exc).startswith(k) else f"{k}: {exc}") from None

        on, off = when("trigger_on"), when("trigger_off")
        if not 0 <= off - on <= _MAX_ALERT_S:
            raise ValueError(f"trigger_off: {d['trigger_off']} is before trigger_on or over a day after it")
        mag = d.get("magnitude") or {}
        if not isinstance(mag, Mapping):
            raise ValueError("magnitude: not an object")
        lat = num(d.get("latency_ms"), "latency_ms")
        return cls(text("id"), text("station"), on, off, text("class"),
                   num(mag.get("ml"), "magnitude.ml"), num(mag.get("model"), "magnitude.model"), lat)


def alerts_from_dicts(messages: Iterable[Mapping[str, Any]]) -> list[Alert]:
    """Alerts from ``end`` message objects (``new`` messages are skipped)."""
    out = []
    for i, d in enumerate(messages):
        if isinstance(d, Mapping) and d.get("type") == "new":
            continue
        try:
            out.append(Alert.from_dict(d))
        except ValueError as exc:
            ident = d.get("id") if isinstance(d, Mapping) else None
            raise AlertError(f"alert {ident or '#' + str(i)}: {exc}") from None
    return out


def read_alerts(path: str | Path) -> list[Alert]:
    """Alerts from a JSONL file of ``end`` messages (one object per line, as ``replay --out``
    writes); ``new`` messages and blank lines are skipped. ``AlertError`` names the line."""
    path = Path(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertError(f"{path}: cannot read the alerts ({exc})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if isinstance(d, Mapping) and d.get("type") == "new":
                continue
            out.append(Alert.from_dict(d))
        except ValueError as exc:
            raise AlertError(f"{path.name} line {n}: {exc}") from None
    return out
