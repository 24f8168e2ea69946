"""Payloads of the MQTT interface (docs/spec/mqtt.md) as msgspec Structs.

Each message has ``to_dict()`` (the JSON object, keys as the spec names them) and
``to_json()`` (compact UTF-8 text). The event messages (``new``, ``end``) declare the
contract's fields once, with their bounds and meaning; :func:`event_schema` generates the
event JSON Schema from them (``docs/spec/schemas/event.schema.json``, ``"$id":
"microseis/event/1"``; ``python -m edge.schema.docs --write`` rewrites the file).

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
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "SCHEMA", "iso_utc", "event_id", "EventNew", "EventEnd", "Magnitude", "ModelRef",
    "Health", "ModelState", "CommandResponse", "dumps", "event_schema",
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


#: an ISO 8601 UTC time with microseconds, as :func:`iso_utc` writes it
_ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
Unit = Annotated[float, Meta(ge=0, le=1)]
CftPeak = Annotated[float, Meta(ge=0, description="peak of the STA/LTA ratio (dimensionless)")]


class _Message(Struct):
    """Shared ``to_dict`` / ``to_json``: the fields, then ``extra`` merged in."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (keys as the spec names them)."""
        d = msgspec.to_builtins(self)
        for f in msgspec.structs.fields(self):  # nested messages merge their own extra
            v = getattr(self, f.name)
            if isinstance(v, _Message):
                d[f.encode_name] = v.to_dict()
        d.update(d.pop("extra", None) or {})
        return d

    def to_json(self) -> str:
        """The payload as compact JSON text (encode as UTF-8 to publish)."""
        return dumps(self.to_dict())


class _Event(_Message, tag_field="type", omit_defaults=True):
    """The keys every event message carries (type new or end).

    Unset optional keys are left out of the JSON object."""

    #: the interface version, the first key of every event message
    schema: ClassVar[str] = SCHEMA

    id: Annotated[str, Meta(min_length=8, description="stable event id (station and trigger-on time)")]
    station: Annotated[str, Meta(min_length=1, description="NET.STA")]
    trigger_on: Annotated[str, Meta(pattern=_ISO, description="ISO UTC time the trigger turned on")]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **super().to_dict()}


class EventNew(_Event, tag="new"):
    """``type: new``: the early alert, sent as soon as the trigger turns on.

    Attributes:
        id: stable event id (:func:`event_id`).
        station: ``NET.STA``.
        trigger_on: ISO UTC time the trigger turned on.
        cft_peak: peak of the STA/LTA characteristic function so far (dimensionless).
    """

    cft_peak: CftPeak

    @classmethod
    def create(cls, station: str, trigger_on: Any, cft_peak: float) -> EventNew:
        """Build from a time (UTCDateTime or POSIX seconds); the id follows from it."""
        return cls(event_id(station, trigger_on), station, iso_utc(trigger_on), float(cft_peak))


class Magnitude(_Message, omit_defaults=True):
    """Magnitude estimates of an event.

    Attributes:
        ml: physical local magnitude (Richter ML), or None with a ``reason``.
        model: the classifier's learned magnitude estimate, or None.
        reason: why a value is missing (e.g. ``"no response (stationxml)"``).
        distance_km: hypocentral distance used for ML (km), from S-P time, if known.
        extra: more details, merged into the JSON object (e.g. ``s_minus_p_s``).
    """

    ml: Annotated[float | None, Meta(description="local magnitude ML; null with a reason")]
    model: Annotated[float | None, Meta(description="the model's magnitude estimate, or null")]
    reason: Annotated[str | None, Meta(description="why a value is null")] = None
    distance_km: Annotated[float | None, Meta(description="hypocentral distance for ML (km)")] = None
    extra: dict[str, Any] = {}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Magnitude:
        known = ("ml", "model", "reason", "distance_km")
        return cls(d.get("ml"), d.get("model"), d.get("reason"), d.get("distance_km"),
                   {k: v for k, v in d.items() if k not in known})


class ModelRef(_Message):
    """The model that classified an event: name, version, sha256 (64 lowercase hex)."""

    name: str
    version: str
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the bundle (hex)")]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelRef:
        return cls(str(d["name"]), str(d["version"]), str(d["sha256"]))


class EventEnd(_Event, tag="end", rename={"event_class": "class"}):
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
        sub_triggers: the triggers associated into this one event (optional):
            ``{"count": n, "triggers": [{"trigger_on", "trigger_off", "bands": [[lo, hi]],
            "cft_peak"}, ...]}`` (the first 50 listed; ``count`` is exact; ``bands`` in Hz).
        extra: more keys merged into the JSON object (optional).
    """

    trigger_off: Annotated[str, Meta(pattern=_ISO, description="ISO UTC time the trigger turned off")]
    duration_s: Annotated[float, Meta(ge=0, description="trigger_off - trigger_on (s)")]
    cft_peak: CftPeak
    event_class: Annotated[str, Meta(min_length=1, description="the predicted class")]
    probabilities: Annotated[dict[str, Unit], Meta(min_length=2, description="class -> probability (sum 1)")]
    uncertainty: Annotated[float, Meta(ge=0, le=1, description="normalized predictive entropy")]
    magnitude: Magnitude
    model: ModelRef
    latency_ms: Annotated[float, Meta(ge=0, description="from the last sample of the window reaching the "
                                                        "station to publishing (ms)")]
    channels: Annotated[list[str] | None, Meta(description="channel codes used")] = None
    mutual_information: Annotated[float | None, Meta(description="epistemic part of the uncertainty, MC "
                                                                 "dropout (nats)")] = None
    snippet: Annotated[str | None, Meta(description="path of the archived waveform snippet")] = None
    sub_triggers: Annotated[dict[str, Any] | None, Meta(
        description="the triggers associated into this one event: {count, triggers: [{trigger_on, "
                    "trigger_off, bands, cft_peak}, ...]} (the first 50 listed; count is exact; bands in Hz)")] = None
    extra: dict[str, Any] = {}

    def __post_init__(self) -> None:
        if isinstance(self.magnitude, Mapping):
            self.magnitude = Magnitude.from_dict(self.magnitude)
        if isinstance(self.model, Mapping):
            self.model = ModelRef.from_dict(self.model)
        if len(self.probabilities) < 2:
            raise ValueError("probabilities: need one per class (at least 2)")
        if self.duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {self.duration_s}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EventEnd:
        """Parse a received ``end`` object (unknown keys go to ``extra``, those of
        ``magnitude`` to its ``extra``); types and bounds are checked (msgspec.ValidationError)."""
        fields = _with_extra(cls, {k: v for k, v in d.items() if k not in ("schema", "type")})
        if isinstance(fields.get("magnitude"), Mapping):
            fields["magnitude"] = _with_extra(Magnitude, fields["magnitude"])
        return msgspec.convert({**fields, "type": "end"}, cls)


def _with_extra(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` with the keys that are not fields of ``cls`` moved into ``extra``."""
    known = {f.encode_name for f in msgspec.structs.fields(cls)} - {"extra"}
    return {**{k: v for k, v in d.items() if k in known},
            "extra": {k: v for k, v in d.items() if k not in known}}


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
        warnings: standing problems of the station's setup (optional), e.g.
            ``"digitizer 50 Hz < model 250 Hz: the model cannot see above 25 Hz"``.
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
    warnings: list[str] | None = None
    extra: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not d.get("warnings"):  # only when there are any
            d.pop("warnings", None)
        return d


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
    extra: dict[str, Any] = {}


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


# --------------------------------------------------------------------------- the contract


def _wire(obj: dict[str, Any]) -> dict[str, Any]:
    """An object schema as the JSON object is sent, down through nested objects: optional
    keys (default None) are left out when unset, so they take no null; ``extra`` is merged
    into the object, not a key; a description is the first paragraph of the docstring."""
    out = dict(obj)
    if "description" in out:
        out["description"] = out["description"].split("\n\n")[0].replace("\n", " ")
    if "properties" not in obj:
        return out
    props = {}
    for key, prop in obj["properties"].items():
        if key == "extra":
            continue
        if key not in obj.get("required", ()) and prop.get("default", ...) is None:
            kinds = [s for s in prop["anyOf"] if s != {"type": "null"}]
            prop = {**{k: v for k, v in prop.items() if k not in ("anyOf", "default")},
                    **(kinds[0] if len(kinds) == 1 else {"anyOf": kinds})}
        props[key] = _wire(prop)
    out["properties"] = props
    return out


def event_schema() -> dict[str, Any]:
    """The JSON Schema of the event messages, generated from :class:`EventNew` and
    :class:`EventEnd`: the keys of both as properties, the keys every event carries required,
    and the further keys of an ``end`` required when ``type`` is ``"end"``. Unset optional
    keys are left out of a message, so their schema takes no null. Other keys are allowed
    (``extra``)."""
    from edge.schema.render import inline_schema  # the generators: only for this document

    new, end = (_wire(s) for s in inline_schema(EventNew, EventEnd))
    head = [f.encode_name for f in msgspec.structs.fields(_Event)]
    props: dict[str, Any] = {"schema": {"const": SCHEMA}, "type": {"enum": ["new", "end"]}}
    for part in (new, end):
        for key, prop in part["properties"].items():
            if key == "type":  # the tag: above, with both values
                continue
            if props.setdefault(key, prop) != prop:  # pragma: no cover - a declaration error
                raise TypeError(f"event key {key!r} is declared differently in new and end")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA,
        "title": "Station event message",
        "description": _Event.__doc__.split("\n")[0],
        "type": "object",
        "required": ["schema", "type", *head],
        "properties": props,
        "if": {"properties": {"type": {"const": "end"}}},
        "then": {"required": [k for k in end["required"] if k not in ("type", *head)]},
    }
