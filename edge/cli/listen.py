"""``microseis listen``: the receiving side. Subscribes to the stations' topics and prints
every message as it arrives, one line each (``shared/spec/mqtt.md``, interface version 1).

Topics (``{station}`` = ``--station``, or ``+`` for all stations)::

    {prefix}/{station}/availability         online / offline (Last Will) / stopped
    {prefix}/{station}/events               new (early alert) and end (classified event)
    {prefix}/{station}/health               health report (retained)
    {prefix}/{station}/model                active model and last update (retained)
    {prefix}/{station}/cmd/+/response       answers to commands

One line per message (UTC times; events show their trigger-on time, health its report
time, everything else the time it arrived; "(retained)" marks a broker's stored copy)::

    12:00:03.125  XX.S1  NEW      ev XX.S1-20260501T120003.125000Z  cft 7.1
    12:00:03.125  XX.S1  END      ev XX.S1-20260501T120003.125000Z  earthquake 0.97 (unc 0.05)
                                  ML 1.2  model M 1.1  dur 12.4 s  latency 85 ms   (one line)
    12:00:00.412  XX.S1  ONLINE   station connected
    12:00:10.000  XX.S1  HEALTH   up 1h02m  250.0 sps  gaps 0  crc 0  outbox 0  cpu 12%  rss 85 MB  model 1.0.0

Event messages are checked against the event JSON Schema (``microseis/event/1``, built in;
``--schema`` for another file) when ``jsonschema`` is installed, else for their required
fields; a bad message (not JSON, wrong types, missing fields) still prints, followed by a
warning on stderr that names the field. With ``--json`` every message is one JSON line
``{"topic", "payload", "retained", "received"[, "problems"]}`` and the last line is
``{"summary": {...}}``.

Exit status: 0 after ``--count`` messages, after ``--duration`` seconds or on Ctrl-C/SIGTERM;
1 when the broker cannot be reached or refuses the connection; 2 for bad options.
"""
from __future__ import annotations

import argparse
import json
import math
import queue
import signal
import ssl
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from edge.cli import CommandError

__all__ = ["register", "run", "parse_topic", "parse_payload", "format_message", "message_problems",
           "json_line", "subscriptions", "EVENT_SCHEMA"]

#: Copy of ``shared/spec/schemas/event.schema.json`` (interface version 1): the station's
#: event messages (``new`` and ``end``). tests/test_listen.py checks that it equals the spec.
EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "microseis/event/1",
    "title": "Station event message",
    "type": "object",
    "required": ["schema", "type", "id", "station", "trigger_on"],
    "properties": {
        "schema": {"const": "microseis/event/1"},
        "type": {"enum": ["new", "end"]},
        "id": {"type": "string", "minLength": 8},
        "station": {"type": "string", "minLength": 1},
        "trigger_on": {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$"},
        "trigger_off": {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$"},
        "duration_s": {"type": "number", "minimum": 0},
        "cft_peak": {"type": "number", "minimum": 0},
        "class": {"type": "string", "minLength": 1},
        "probabilities": {
            "type": "object",
            "minProperties": 2,
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "uncertainty": {"type": "number", "minimum": 0, "maximum": 1},
        "magnitude": {
            "type": "object",
            "required": ["ml", "model"],
            "properties": {
                "ml": {"type": ["number", "null"]},
                "model": {"type": ["number", "null"]},
                "reason": {"type": "string"},
            },
        },
        "model": {
            "type": "object",
            "required": ["name", "version", "sha256"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "latency_ms": {"type": "number", "minimum": 0},
    },
    "if": {"properties": {"type": {"const": "end"}}},
    "then": {
        "required": ["trigger_off", "duration_s", "cft_peak", "class", "probabilities", "uncertainty",
                     "magnitude", "model", "latency_ms"],
    },
}

_REQUIRED = {"new": ["schema", "type", "id", "station", "trigger_on"]}
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


def _short(v: Any, n: int = 60) -> str:
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
    try:
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
        out.append(f"field '{name}': {_short(err.message, 160)}")
    return out


def _fallback_problems(obj: Mapping[str, Any]) -> list[str]:
    kind = obj.get("type")
    out = [f"field '{k}': missing (required)" for k in _REQUIRED.get(kind, _REQUIRED["new"]) if k not in obj]
    if kind not in ("new", "end"):
        out.append(f"field 'type': expected 'new' or 'end', got {_short(kind)}")
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
            f"availability: expected 'online', 'offline' or 'stopped', got {_short(text)}"]
    if kind == "other":
        return []
    if bad:
        return [bad]
    if not isinstance(obj, dict):
        return [f"payload is JSON but not an object: {_short(obj)}"]
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
    return format(v, fmt) if _is_num(v) else f"?{_short(v, 20)}"


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
    ev = f"ev {_short(obj.get('id', '?'), 80)}"
    if kind == "new":
        return "NEW", f"{ev}  cft {_num(obj.get('cft_peak'), '.1f')}"
    if kind != "end":
        return "EVENT", f"{ev}  type {_short(kind)}"
    cls = obj.get("class")
    probs = obj.get("probabilities")
    p = probs.get(cls) if isinstance(probs, dict) and isinstance(cls, str) else None
    parts = [ev, f"{_short(cls, 30) if cls is not None else '?'} {_num(p)} (unc {_num(obj.get('uncertainty'))})"]
    mag = obj.get("magnitude")
    if isinstance(mag, dict):
        reason = f" ({_short(mag['reason'], 50)})" if mag.get("reason") else ""
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
             f"model {_short(obj.get('model_version', '-'), 30)}"]
    last = obj.get("last_event_time")
    if last:
        parts.append(f"last event {_clock(last) or _short(last, 30)}")
    return "  ".join(parts)


def _model_details(obj: Mapping[str, Any]) -> str:
    sha = obj.get("sha256")
    parts = [f"{_short(obj.get('name', '?'), 40)} {_short(obj.get('version', '?'), 30)}",
             f"sha256 {sha[:12] if isinstance(sha, str) else _short(sha, 20)}"]
    classes = obj.get("classes")
    if isinstance(classes, list):
        parts.append("classes " + ",".join(_short(c, 20) for c in classes))
    upd = obj.get("last_update")
    if isinstance(upd, dict):
        msg = f"last update {_short(upd.get('status', '?'), 10)}"
        if upd.get("message"):
            msg += f": {_short(upd.get('message'), 80)}"
        parts.append(msg)
    return "  ".join(parts)


def _response_details(cmd: str | None, obj: Mapping[str, Any]) -> str:
    status = obj.get("status")
    out = f"cmd {cmd}  tx {_short(obj.get('transaction'), 40)}  {_short(status, 10)}"
    if status == "error" or obj.get("error"):
        out += f": {_short(obj.get('error'), 100)}"
    elif obj.get("data") is not None:
        out += f"  {_short(json.dumps(obj.get('data')), 100)}"
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
        return f"{_clock_of(received or time.time())}  ?  ?        {_short(topic)}: {_short(_text(payload))} ({exc})"


def _format(topic: str, payload: bytes | str, retained: bool, received: float | None) -> str:
    station, kind, cmd = parse_topic(topic)
    clock = _clock_of(received if received is not None else time.time())
    obj, bad = parse_payload(payload)
    if kind == "availability":
        text = _text(payload)
        tag, details = _AVAILABILITY.get(text, ("AVAIL", f"? {_short(text)}"))
    elif kind == "other":
        tag, details = "?", f"{topic}: {_short(_text(payload), 100)}"
    elif bad or not isinstance(obj, dict):
        tag = {"events": "EVENT", "health": "HEALTH", "model": "MODEL", "response": "RESP"}[kind]
        details = f"? {_short(_text(payload), 100)}"
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


# --------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="subscribe and print alerts as they arrive (the receiving side)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_broker_options(p, "listen")
    p.add_argument("--station", action="append", metavar="NET.STA", default=None,
                   help="station to follow, repeatable or comma-separated; 'all' (default) for every station")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=1, help="subscription QoS (1)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit 0 after N messages")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="exit 0 after S seconds")
    p.add_argument("--connect-timeout", type=float, default=5.0, metavar="S",
                   help="give up (exit 1) when the broker has not accepted within S seconds (5)")
    p.add_argument("--no-retained", action="store_true",
                   help="skip the broker's stored (retained) copies of availability, health and model")
    p.add_argument("--schema", metavar="FILE", default=None,
                   help="event JSON Schema to check against (default: the built-in microseis/event/1)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per message, {topic, payload, ...}; last line {\"summary\": ...}")
    p.set_defaults(func=run)


def add_broker_options(p: argparse.ArgumentParser, command: str) -> None:
    """The broker options every MQTT client command takes (``--host`` ... ``--client-id``);
    :func:`broker_config` turns them into an :class:`~edge.comms.mqtt_link.MqttConfig`."""
    p.add_argument("--host", default="localhost", help="broker host (localhost)")
    p.add_argument("--port", type=int, default=None, help="broker port (1883; 8883 with TLS)")
    p.add_argument("--prefix", default="microseis", help="topic prefix (microseis)")
    p.add_argument("--username", default=None, help="broker user name (default: anonymous)")
    p.add_argument("--password-file", metavar="FILE", default=None,
                   help="file holding the broker password (first line)")
    p.add_argument("--tls-ca", metavar="PEM", default=None,
                   help="CA certificate that verifies the broker (turns TLS on)")
    p.add_argument("--tls-cert", metavar="PEM", default=None, help="client certificate (mutual TLS)")
    p.add_argument("--tls-key", metavar="PEM", default=None, help="client private key (mutual TLS)")
    p.add_argument("--tls-insecure", action="store_true", help="skip the broker host-name check (testing only)")
    p.add_argument("--client-id", default=None, help=f"MQTT client id (default: microseis-{command}-<random>)")


def _stations(values: list[str] | None) -> list[str]:
    items = [s.strip() for v in (values or ["all"]) for s in v.split(",") if s.strip()]
    if not items:
        raise CommandError("--station: give NET.STA or 'all'")
    if any(s.lower() == "all" for s in items):
        return ["+"]
    for s in items:
        if any(c in s for c in "/+#\0") or any(c.isspace() for c in s):
            raise CommandError(f"--station: must be NET.STA (no '/', '+', '#' or spaces) or 'all', got {s!r}")
    return list(dict.fromkeys(items))


def subscriptions(prefix: str, stations: list[str]) -> list[str]:
    """The topic filters ``listen`` subscribes to (``stations``: ids, or ``["+"]`` for all)."""
    return [f"{prefix}/{s}/{leaf}" for s in stations
            for leaf in ("availability", "events", "health", "model", "cmd/+/response")]


def broker_config(args: argparse.Namespace):
    """The :func:`add_broker_options` values as a checked MqttConfig (CommandError names the option)."""
    from edge.comms.mqtt_link import MqttConfig

    password = None
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as exc:
            raise CommandError(f"--password-file: cannot read {args.password_file}: {exc.strerror}") from None
        if not args.username:
            raise CommandError("--password-file needs --username (MQTT sends a password only with a user name)")
    tls = bool(args.tls_ca or args.tls_cert or args.tls_key)
    port = args.port if args.port is not None else (8883 if tls else 1883)
    kw = dict(host=args.host, port=port, prefix=args.prefix, client_id=args.client_id,
              username=args.username, password=password, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
              tls_key=args.tls_key, tls_insecure=args.tls_insecure)
    try:
        cfg = MqttConfig(**kw)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise CommandError(f"--{key.replace('_', '-')}: {problem}") from None
    ssl_context(cfg)  # a missing or unreadable TLS file is an option error, before connecting
    return cfg


def ssl_context(cfg: Any) -> ssl.SSLContext | None:
    """:func:`edge.comms.mqtt_link.tls_context`, its errors as one-line option errors."""
    from edge.comms.mqtt_link import tls_context

    try:
        return tls_context(cfg)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise CommandError(f"--{key.replace('_', '-')}: {problem}") from None


def _load_schema(path: str | None) -> dict[str, Any]:
    if not path:
        return EVENT_SCHEMA
    try:
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
    except (OSError, ValueError) as exc:
        raise CommandError(f"--schema: cannot read {path}: {exc}") from None
    if not isinstance(schema, dict):
        raise CommandError(f"--schema: {path} is not a JSON Schema object")
    try:
        import jsonschema

        jsonschema.validators.validator_for(schema).check_schema(schema)
    except ImportError:
        pass
    except Exception as exc:
        raise CommandError(f"--schema: {path} is not a valid JSON Schema: {_short(str(exc), 120)}") from None
    return schema


def _warn(text: str) -> None:
    print(f"microseis listen: warning: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    if args.count is not None and args.count < 1:
        raise CommandError("--count must be >= 1")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise CommandError("--duration must be > 0 seconds")
    if not (math.isfinite(args.connect_timeout) and args.connect_timeout > 0):
        raise CommandError("--connect-timeout must be > 0 seconds")
    stations = _stations(args.station)
    cfg = broker_config(args)
    ctx = ssl_context(cfg)
    schema = _load_schema(args.schema)
    filters = subscriptions(cfg.prefix, stations)
    where = f"{cfg.host}:{cfg.port}"

    events: queue.Queue = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=cfg.client_id or f"microseis-listen-{uuid.uuid4().hex[:10]}",
                         clean_session=True, protocol=mqtt.MQTTv311)
    client.connect_timeout = args.connect_timeout
    client.reconnect_delay_set(0.5, 10)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if ctx is not None:
        client.tls_set_context(ctx)
        if cfg.tls_insecure:
            client.tls_insecure_set(True)

    def on_connect(c, userdata, flags, reason, properties):  # noqa: ANN001
        if not reason.is_failure:
            c.subscribe([(f, args.qos) for f in filters])
        events.put(("connect", reason))

    def on_subscribe(c, userdata, mid, reasons, properties):  # noqa: ANN001
        events.put(("subscribed", reasons))

    def on_disconnect(c, userdata, flags, reason, properties):  # noqa: ANN001
        events.put(("disconnect", reason))

    def on_message(c, userdata, msg):  # noqa: ANN001
        events.put(("message", (msg.topic, bytes(msg.payload), bool(msg.retain), time.time())))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = on_message

    started = time.monotonic()
    try:
        client.connect(cfg.host, cfg.port, keepalive=30)
    except ssl.SSLError as exc:
        return _fail(f"cannot connect to {where}: TLS: {exc.reason or exc}")
    except ConnectionRefusedError:
        return _fail(f"cannot connect to {where}: connection refused (is a broker running there?)")
    except (TimeoutError, OSError) as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError) or "timed out" in reason:
            reason = f"no answer within {args.connect_timeout:g} s"
        return _fail(f"cannot connect to {where}: {reason}")
    client.loop_start()

    stop = {"signal": False}

    def on_term(*_: object) -> None:
        stop["signal"] = True

    old_term = signal.signal(signal.SIGTERM, on_term)
    counts: dict[str, int] = {}
    n = invalid = 0
    connected = subscribed_once = False
    deadline_connect = time.monotonic() + args.connect_timeout
    listen_started: float | None = None
    status = 0
    try:
        while not stop["signal"]:
            now = time.monotonic()
            if not connected and listen_started is None and now >= deadline_connect:
                status = _fail(f"cannot connect to {where}: no CONNACK within {args.connect_timeout:g} s")
                break
            if listen_started is not None and args.duration is not None and now - listen_started >= args.duration:
                break
            try:
                kind, item = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "connect":
                if item.is_failure:
                    if listen_started is None:
                        status = _fail(f"cannot connect to {where}: broker refused the connection: {item}")
                        break
                    _warn(f"reconnect to {where} refused: {item}")
                    continue
                if listen_started is None:
                    listen_started = time.monotonic()
                connected = True
            elif kind == "subscribed":
                refused = [f for f, rc in zip(filters, item) if rc.is_failure]
                for f in refused:
                    _warn(f"broker refused the subscription {f}")
                if subscribed_once:
                    _warn(f"reconnected to {where} and subscribed again")
                else:
                    subscribed_once = True
                    print(f"listening on {where}: " + ", ".join(x for x in filters if x not in refused),
                          file=sys.stderr, flush=True)
            elif kind == "disconnect":
                if listen_started is None:
                    status = _fail(f"cannot connect to {where}: closed before the broker accepted "
                                   f"the connection ({item}; a TLS port without --tls-ca?)")
                    break
                if connected:
                    _warn(f"connection to {where} lost ({item}); reconnecting")
                connected = False
            else:
                topic, payload, retained, received = item
                if retained and args.no_retained:
                    continue
                problems = message_problems(topic, payload, schema)
                n += 1
                _station, tkind, _ = parse_topic(topic)
                obj, _ = parse_payload(payload)
                key = tkind
                if tkind == "events" and isinstance(obj, dict) and obj.get("type") in ("new", "end"):
                    key = obj["type"]
                counts[key] = counts.get(key, 0) + 1
                if args.json:
                    print(json_line(topic, payload, retained=retained, received=received, problems=problems),
                          flush=True)
                else:
                    print(format_message(topic, payload, retained=retained, received=received), flush=True)
                if problems:
                    invalid += 1
                    what = topic
                    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                        what += f" (ev {obj['id']})"
                    for prob in problems:
                        _warn(f"{what}: {prob}")
                if args.count is not None and n >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        try:
            client.disconnect()
        finally:
            client.loop_stop()
    if status:
        return status
    elapsed = time.monotonic() - (listen_started or started)
    summary = {"broker": where, "messages": n, "by_kind": counts, "invalid": invalid,
               "elapsed_s": round(elapsed, 3), "count_reached": args.count is not None and n >= args.count}
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        print(f"{n} message(s){f' ({kinds})' if kinds else ''}, {invalid} invalid, in {elapsed:.1f} s",
              file=sys.stderr, flush=True)
    return 0


def _fail(text: str) -> int:
    print(f"microseis listen: error: {text}", file=sys.stderr, flush=True)
    return 1
