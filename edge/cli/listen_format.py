"""What ``microseis listen`` shows: a station's MQTT messages parsed (topic, payload), checked
(event messages against the event JSON Schema, ``microseis/event/1``) and formatted as one
line each or as one JSON line (the line format: :mod:`edge.cli.listen`)."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from edge.comms.messages import event_schema

__all__ = ["parse_topic", "parse_payload", "format_message", "message_problems", "json_line",
           "short", "EVENT_SCHEMA"]

#: The JSON Schema of the station's event messages (``new`` and ``end``, interface version 1),
#: generated from :mod:`edge.comms.messages`: the text of docs/spec/schemas/event.schema.json
#: (tests/test_listen.py checks that they are equal).
EVENT_SCHEMA: dict[str, Any] = event_schema()

_REQUIRED = {"new": EVENT_SCHEMA["required"]}
_REQUIRED["end"] = _REQUIRED["new"] + EVENT_SCHEMA["then"]["required"]
_AVAILABILITY = {"online": ("ONLINE", "station connected"),
                 "offline": ("OFFLINE", "station lost (its Last Will: gone without a clean stop)"),
                 "stopped": ("STOPPED", "station shut down cleanly")}
_NOT_JSON = object()
TAG_WIDTH = 8


# --------------------------------------------------------------------------- parsing


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """``(station, kind, command)`` of a station topic, read from its end (the prefix may have
    several levels): kind is ``availability``, ``events``, ``health``, ``model``, ``response``
    (``…/cmd/{command}/response``) or ``other`` (station ``?``)."""
    parts = topic.split("/")
    if len(parts) >= 5 and parts[-1] == "response" and parts[-3] == "cmd":
        return parts[-4], "response", parts[-2]
    if len(parts) >= 3 and parts[-1] in ("availability", "events", "health", "model"):
        return parts[-2], parts[-1], None
    return "?", "other", None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_payload(payload: bytes | str) -> tuple[Any, str | None]:
    """``(value, problem)``: the JSON value of ``payload`` (NaN/Infinity are not JSON), or
    :data:`_NOT_JSON` and why not."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            return _NOT_JSON, f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})"
    else:
        text = payload
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except ValueError as exc:
        return _NOT_JSON, f"payload is not JSON ({exc})"


def _text(payload: bytes | str) -> str:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload).decode("utf-8", errors="replace")
    return payload


def short(v: Any, n: int = 60) -> str:
    """``v`` as text for a message, cut to ``n`` characters."""
    s = v if isinstance(v, str) else repr(v)
    s = s.replace("\n", "\\n").replace("\r", "\\r")
    return s if len(s) <= n else s[: n - 1] + "…"


# --------------------------------------------------------------------------- validation


def _field_name(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _schema_problems(obj: Any, schema: Mapping[str, Any]) -> list[str] | None:
    """Problems found by jsonschema, or None when jsonschema is not installed."""
    try:  # deferred: jsonschema is optional (without it the required fields are checked)
        import jsonschema
    except ImportError:
        return None
    cls = jsonschema.validators.validator_for(schema)
    out = []
    errors = sorted(cls(schema).iter_errors(obj), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    for err in errors:
        path = list(err.absolute_path)
        if err.validator == "required" and isinstance(err.instance, Mapping):
            for key in err.validator_value:
                if key not in err.instance:
                    out.append(f"field '{_field_name(path + [key])}': missing (required)")
            continue
        name = _field_name(path) or "(message)"
        out.append(f"field '{name}': {short(err.message, 160)}")
    return out


def _fallback_problems(obj: Mapping[str, Any]) -> list[str]:
    kind = obj.get("type")
    out = [f"field '{k}': missing (required)" for k in _REQUIRED.get(kind, _REQUIRED["new"]) if k not in obj]
    if kind not in ("new", "end"):
        out.append(f"field 'type': expected 'new' or 'end', got {short(kind)}")
    return out


def message_problems(topic: str, payload: bytes | str,
                     schema: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with one message (empty when nothing is). Event messages are checked
    against ``schema`` (default :data:`EVENT_SCHEMA`) with jsonschema when it is installed,
    else for their required fields; ``end`` messages also for probabilities that sum to 1
    and a class among them."""
    _station, kind, _cmd = parse_topic(topic)
    obj, bad = parse_payload(payload)
    if kind == "availability":
        text = _text(payload)
        return [] if text in _AVAILABILITY else [
            f"availability: expected 'online', 'offline' or 'stopped', got {short(text)}"]
    if kind == "other":
        return []
    if bad:
        return [bad]
    if not isinstance(obj, dict):
        return [f"payload is JSON but not an object: {short(obj)}"]
    if kind != "events":
        return []
    found = _schema_problems(obj, schema or EVENT_SCHEMA)
    problems = found if found is not None else _fallback_problems(obj)
    probs = obj.get("probabilities")
    if obj.get("type") == "end" and isinstance(probs, dict) and probs:
        vals = [v for v in probs.values() if _is_num(v)]
        if len(vals) == len(probs) and abs(sum(vals) - 1.0) > 0.01:
            problems.append(f"field 'probabilities': sum to {sum(vals):.3f}, not 1")
        cls = obj.get("class")
        if isinstance(cls, str) and cls and cls not in probs:
            problems.append(f"field 'class': {cls!r} is not one of the probabilities' classes")
    return problems


# --------------------------------------------------------------------------- formatting


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(v: Any, fmt: str = ".2f", none: str = "-") -> str:
    if v is None:
        return none
    return format(v, fmt) if _is_num(v) else f"?{short(v, 20)}"


def _clock(t: Any) -> str | None:
    """``HH:MM:SS.mmm`` (UTC) of an ISO time string, or None."""
    if not isinstance(t, str):
        return None
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def _clock_of(posix: float) -> str:
    dt = datetime.fromtimestamp(posix, tz=timezone.utc)
    return dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def _uptime(v: Any) -> str:
    if not _is_num(v):
        return _num(v)
    s = int(v)
    if s < 60:
        return f"{v:.0f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _event_details(obj: Mapping[str, Any]) -> tuple[str, str]:
    kind = obj.get("type")
    ev = f"ev {short(obj.get('id', '?'), 80)}"
    if kind == "new":
        return "NEW", f"{ev}  cft {_num(obj.get('cft_peak'), '.1f')}"
    if kind != "end":
        return "EVENT", f"{ev}  type {short(kind)}"
    cls = obj.get("class")
    probs = obj.get("probabilities")
    p = probs.get(cls) if isinstance(probs, dict) and isinstance(cls, str) else None
    parts = [ev, f"{short(cls, 30) if cls is not None else '?'} {_num(p)} (unc {_num(obj.get('uncertainty'))})"]
    mag = obj.get("magnitude")
    if isinstance(mag, dict):
        reason = f" ({short(mag['reason'], 50)})" if mag.get("reason") else ""
        ml, model = mag.get("ml"), mag.get("model")
        parts.append(f"ML {_num(ml, '.1f')}" + (reason if ml is None else ""))
        parts.append(f"model M {_num(model, '.1f')}" + (reason if model is None and ml is not None else ""))
    else:
        parts.append(f"magnitude {_num(mag)}")
    parts.append(f"dur {_num(obj.get('duration_s'), '.1f')} s")
    parts.append(f"latency {_num(obj.get('latency_ms'), '.0f')} ms")
    return "END", "  ".join(parts)


def _health_details(obj: Mapping[str, Any]) -> str:
    parts = [f"up {_uptime(obj.get('uptime_s'))}",
             f"{_num(obj.get('samples_per_s'), '.1f')} sps",
             f"gaps {_num(obj.get('gaps'), 'd' if isinstance(obj.get('gaps'), int) else '.0f')}",
             f"crc {_num(obj.get('crc_errors'), 'd' if isinstance(obj.get('crc_errors'), int) else '.0f')}",
             f"outbox {_num(obj.get('outbox_depth'), 'd' if isinstance(obj.get('outbox_depth'), int) else '.0f')}",
             f"cpu {_num(obj.get('cpu_percent'), '.0f')}%",
             f"rss {_num(obj.get('rss_mb'), '.0f')} MB",
             f"model {short(obj.get('model_version', '-'), 30)}"]
    last = obj.get("last_event_time")
    if last:
        parts.append(f"last event {_clock(last) or short(last, 30)}")
    return "  ".join(parts)


def _model_details(obj: Mapping[str, Any]) -> str:
    sha = obj.get("sha256")
    parts = [f"{short(obj.get('name', '?'), 40)} {short(obj.get('version', '?'), 30)}",
             f"sha256 {sha[:12] if isinstance(sha, str) else short(sha, 20)}"]
    classes = obj.get("classes")
    if isinstance(classes, list):
        parts.append("classes " + ",".join(short(c, 20) for c in classes))
    upd = obj.get("last_update")
    if isinstance(upd, dict):
        msg = f"last update {short(upd.get('status', '?'), 10)}"
        if upd.get("message"):
            msg += f": {short(upd.get('message'), 80)}"
        parts.append(msg)
    return "  ".join(parts)


def _response_details(cmd: str | None, obj: Mapping[str, Any]) -> str:
    status = obj.get("status")
    out = f"cmd {cmd}  tx {short(obj.get('transaction'), 40)}  {short(status, 10)}"
    if status == "error" or obj.get("error"):
        out += f": {short(obj.get('error'), 100)}"
    elif obj.get("data") is not None:
        out += f"  {short(json.dumps(obj.get('data')), 100)}"
    return out


def format_message(topic: str, payload: bytes | str, *, retained: bool = False,
                   received: float | None = None) -> str:
    """One readable line for one message: ``CLOCK  STATION  TAG  details``. Never raises:
    a payload it cannot read prints as ``?`` with (part of) its text.

    Args:
        topic: the MQTT topic (``{prefix}/{station}/...``).
        payload: the message bytes (or text).
        retained: the broker's stored copy (marked ``(retained)``).
        received: POSIX time of arrival (default now): the clock of messages without a time.
    """
    try:
        return _format(topic, payload, retained, received)
    except Exception as exc:  # pragma: no cover - the formatter must never take listen down
        return f"{_clock_of(received or time.time())}  ?  ?        {short(topic)}: {short(_text(payload))} ({exc})"


def _format(topic: str, payload: bytes | str, retained: bool, received: float | None) -> str:
    station, kind, cmd = parse_topic(topic)
    clock = _clock_of(received if received is not None else time.time())
    obj, bad = parse_payload(payload)
    if kind == "availability":
        text = _text(payload)
        tag, details = _AVAILABILITY.get(text, ("AVAIL", f"? {short(text)}"))
    elif kind == "other":
        tag, details = "?", f"{topic}: {short(_text(payload), 100)}"
    elif bad or not isinstance(obj, dict):
        tag = {"events": "EVENT", "health": "HEALTH", "model": "MODEL", "response": "RESP"}[kind]
        details = f"? {short(_text(payload), 100)}"
    elif kind == "events":
        tag, details = _event_details(obj)
        clock = _clock(obj.get("trigger_on")) or clock
        if isinstance(obj.get("station"), str) and obj["station"] and station == "?":
            station = obj["station"]
    elif kind == "health":
        tag, details = "HEALTH", _health_details(obj)
        clock = _clock(obj.get("time")) or clock
    elif kind == "model":
        tag, details = "MODEL", _model_details(obj)
    else:
        tag, details = "RESP", _response_details(cmd, obj)
    line = f"{clock}  {station}  {tag:<{TAG_WIDTH}} {details}"
    return line + "  (retained)" if retained else line


def json_line(topic: str, payload: bytes | str, *, retained: bool = False, received: float | None = None,
              problems: list[str] | None = None) -> str:
    """The ``--json`` line of one message: ``{"topic", "payload", "retained", "received"}``
    (``payload`` is the JSON value, or the text when it is not JSON) plus ``problems``
    when there are any."""
    obj, _bad = parse_payload(payload)
    when = datetime.fromtimestamp(received if received is not None else time.time(), tz=timezone.utc)
    d: dict[str, Any] = {"topic": topic, "payload": _text(payload) if obj is _NOT_JSON else obj,
                         "retained": bool(retained), "received": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if problems:
        d["problems"] = list(problems)
    return json.dumps(d, ensure_ascii=False)

