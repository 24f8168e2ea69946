"""Payloads of the MQTT interface (docs/spec/mqtt.md) as dataclasses.

Each message has ``to_dict()`` (the JSON object, keys as the spec names them) and
``to_json()`` (compact UTF-8 text). Event messages validate against
``docs/spec/schemas/event.schema.json`` (``"schema": "microseis/event/1"``).

Times are ISO 8601 UTC strings with microseconds and a ``Z``: :func:`iso_utc`. Event ids are
stable: :func:`event_id` depends only on the station and the trigger-on time, so an event
re-sent after a reconnect, a restart or a replay carries the same id.

This module imports neither obspy nor paho: a :class:`obspy.UTCDateTime` is accepted by duck
typing.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "SCHEMA", "iso_utc", "event_id", "EventNew", "EventEnd", "Magnitude", "ModelRef",
    "Health", "ModelState", "CommandResponse", "dumps",
]

SCHEMA = "microseis/event/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _as_datetime(t: Any) -> datetime:
    """``t`` (UTCDateTime, POSIX seconds, aware/naive-UTC datetime or ISO string) -> aware
    UTC datetime rounded to the microsecond."""
    if isinstance(t, datetime):
        return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    if isinstance(t, str):
        return datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(timezone.utc)
    ns = getattr(t, "ns", None)  # obspy.UTCDateTime: exact integer nanoseconds
    if isinstance(ns, int):
        return _EPOCH + timedelta(microseconds=round(ns / 1000))
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
        return _EPOCH + timedelta(microseconds=round(float(t) * 1e6))
    raise TypeError(f"not a time: {t!r} (expected UTCDateTime, POSIX seconds, datetime or ISO string)")


def iso_utc(t: Any) -> str:
    """``t`` as ``2026-05-01T12:00:03.125000Z`` (UTC, microseconds).

    Args:
        t: :class:`obspy.UTCDateTime`, POSIX time in seconds (float), a datetime (naive =
            UTC) or an ISO 8601 string.
    """
    return _as_datetime(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_id(station: str, trigger_on: Any) -> str:
    """Stable event id from the station and the trigger-on time, e.g.
    ``XX.S1-20260501T120003.125000Z`` (same format as :func:`edge.station.pipeline.event_id`)."""
    if not station:
        raise ValueError("station must not be empty")
    return f"{station}-{_as_datetime(trigger_on).strftime('%Y%m%dT%H%M%S.%fZ')}"


def dumps(obj: Mapping[str, Any]) -> str:
    """Compact JSON text as sent on the wire (NaN/inf are not JSON: rejected)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """Drop optional keys whose value is None."""
    return {k: v for k, v in d.items() if v is not None}


class _Message:
    """Shared ``to_json``."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_json(self) -> str:
        """The payload as compact JSON text (encode as UTF-8 to publish)."""
        return dumps(self.to_dict())


@dataclass
class EventNew(_Message):
    """``type: new``: the early alert, sent as soon as the trigger turns on.

    Attributes:
        id: stable event id (:func:`event_id`).
        station: ``NET.STA``.
        trigger_on: ISO UTC time the trigger turned on.
        cft_peak: peak of the STA/LTA characteristic function so far (dimensionless).
    """

    id: str
    station: str
    trigger_on: str
    cft_peak: float

    @classmethod
    def create(cls, station: str, trigger_on: Any, cft_peak: float) -> EventNew:
        """Build from a time (UTCDateTime or POSIX seconds); the id follows from it."""
        return cls(event_id(station, trigger_on), station, iso_utc(trigger_on), float(cft_peak))

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "type": "new", "id": self.id, "station": self.station,
                "trigger_on": self.trigger_on, "cft_peak": self.cft_peak}


@dataclass
class Magnitude:
    """Magnitude estimates of an event.

    Attributes:
        ml: physical local magnitude (Richter ML), or None with a ``reason``.
        model: the classifier's learned magnitude estimate, or None.
        reason: why a value is missing (e.g. ``"no response (stationxml)"``).
        distance_km: hypocentral distance used for ML (km), from S-P time, if known.
        extra: more details, merged into the JSON object (e.g. ``amplitude_mm``).
    """

    ml: float | None
    model: float | None
    reason: str | None = None
    distance_km: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ml": self.ml, "model": self.model}
        d.update(_clean({"reason": self.reason, "distance_km": self.distance_km}))
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Magnitude:
        known = ("ml", "model", "reason", "distance_km")
        return cls(d.get("ml"), d.get("model"), d.get("reason"), d.get("distance_km"),
                   {k: v for k, v in d.items() if k not in known})


@dataclass
class ModelRef:
    """The model that classified an event: name, version, sha256 (64 lowercase hex)."""

    name: str
    version: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelRef:
        return cls(str(d["name"]), str(d["version"]), str(d["sha256"]))


@dataclass
class EventEnd(_Message):
    """``type: end``: the classified event, once its window has closed (never lost: it goes
    through the durable outbox).

    Attributes:
        id, station, trigger_on, cft_peak: as in :class:`EventNew`.
        trigger_off: ISO UTC time the trigger turned off.
        duration_s: trigger_off - trigger_on (s).
        event_class: the predicted class (JSON key ``class``).
        probabilities: class -> probability, summing to 1.
        uncertainty: 0..1 (e.g. normalized predictive entropy).
        magnitude: :class:`Magnitude` (or a dict with ``ml``, ``model``, ``reason``).
        model: :class:`ModelRef` (or a dict with ``name``, ``version``, ``sha256``).
        latency_ms: from the last sample of the window reaching the station to publishing (ms).
        channels: channel codes used, e.g. ``["HHZ", "HHN", "HHE"]`` (optional).
        mutual_information: epistemic part of the uncertainty, MC dropout (nats, optional).
        snippet: path of the archived waveform snippet (optional).
        extra: more keys merged into the JSON object (optional).
    """

    id: str
    station: str
    trigger_on: str
    trigger_off: str
    duration_s: float
    cft_peak: float
    event_class: str
    probabilities: dict[str, float]
    uncertainty: float
    magnitude: Magnitude | dict[str, Any]
    model: ModelRef | dict[str, Any]
    latency_ms: float
    channels: list[str] | None = None
    mutual_information: float | None = None
    snippet: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.magnitude, Mapping):
            self.magnitude = Magnitude.from_dict(self.magnitude)
        if isinstance(self.model, Mapping):
            self.model = ModelRef.from_dict(self.model)
        if len(self.probabilities) < 2:
            raise ValueError("probabilities: need one per class (at least 2)")
        if self.duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {self.duration_s}")

    def to_dict(self) -> dict[str, Any]:
        assert isinstance(self.magnitude, Magnitude) and isinstance(self.model, ModelRef)
        d: dict[str, Any] = {
            "schema": SCHEMA, "type": "end", "id": self.id, "station": self.station,
            "trigger_on": self.trigger_on, "trigger_off": self.trigger_off,
            "duration_s": self.duration_s, "cft_peak": self.cft_peak, "class": self.event_class,
            "probabilities": dict(self.probabilities), "uncertainty": self.uncertainty,
            "magnitude": self.magnitude.to_dict(), "model": self.model.to_dict(),
            "latency_ms": self.latency_ms,
        }
        d.update(_clean({"channels": list(self.channels) if self.channels is not None else None,
                         "mutual_information": self.mutual_information, "snippet": self.snippet}))
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EventEnd:
        """Parse a received ``end`` object (unknown keys go to ``extra``)."""
        known = {"schema", "type", "id", "station", "trigger_on", "trigger_off", "duration_s",
                 "cft_peak", "class", "probabilities", "uncertainty", "magnitude", "model",
                 "latency_ms", "channels", "mutual_information", "snippet"}
        return cls(id=d["id"], station=d["station"], trigger_on=d["trigger_on"],
                   trigger_off=d["trigger_off"], duration_s=d["duration_s"], cft_peak=d["cft_peak"],
                   event_class=d["class"], probabilities=dict(d["probabilities"]),
                   uncertainty=d["uncertainty"], magnitude=d["magnitude"], model=d["model"],
                   latency_ms=d["latency_ms"], channels=d.get("channels"),
                   mutual_information=d.get("mutual_information"), snippet=d.get("snippet"),
                   extra={k: v for k, v in d.items() if k not in known})


@dataclass
class Health(_Message):
    """``…/health`` (retained), every ``health_interval`` seconds.

    Attributes:
        time: ISO UTC time of the report.
        station: ``NET.STA``.
        uptime_s: seconds since the daemon started (s).
        samples_per_s: measured sample rate over all channels (samples/s).
        gaps, crc_errors: counts since start.
        outbox_depth: messages waiting in the durable outbox.
        model_version: version of the active model.
        cpu_percent: CPU use of the process (% of one core).
        rss_mb: resident memory (MB).
        last_event_time: ISO UTC trigger-on time of the last event, or None.
        extra: more keys merged into the JSON object.
    """

    time: str
    station: str
    uptime_s: float
    samples_per_s: float
    gaps: int
    crc_errors: int
    outbox_depth: int
    model_version: str
    cpu_percent: float
    rss_mb: float
    last_event_time: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"time": self.time, "station": self.station, "uptime_s": self.uptime_s,
             "samples_per_s": self.samples_per_s, "gaps": self.gaps, "crc_errors": self.crc_errors,
             "outbox_depth": self.outbox_depth, "model_version": self.model_version,
             "cpu_percent": self.cpu_percent, "rss_mb": self.rss_mb,
             "last_event_time": self.last_event_time}
        d.update(self.extra)
        return d


@dataclass
class ModelState(_Message):
    """``…/model`` (retained): the active model and the result of the last update.

    Attributes:
        name, version, sha256: the active bundle.
        classes: class names in the model's output order.
        last_update: ``{"status": "ok"|"error", "message": …, "time": …}`` or None.
        extra: more keys merged into the JSON object (runtime, precision, …).
    """

    name: str
    version: str
    sha256: str
    classes: list[str]
    last_update: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "version": self.version, "sha256": self.sha256,
             "classes": list(self.classes), "last_update": self.last_update}
        d.update(self.extra)
        return d


@dataclass
class CommandResponse(_Message):
    """``…/cmd/{name}/response``: the answer to a command request.

    Attributes:
        transaction: the request's ``transaction`` id (None if it had none).
        status: ``"ok"`` or ``"error"``.
        data: result object (JSON-serializable) or None.
        error: one-line reason when ``status == "error"``.
    """

    transaction: Any
    status: str
    data: Any = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "error"):
            raise ValueError(f"status must be 'ok' or 'error', got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"transaction": self.transaction, "status": self.status, "data": self.data,
                "error": self.error}
