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
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli import CommandError
from edge.cli.listen_format import (
    EVENT_SCHEMA,
    format_message,
    json_line,
    message_problems,
    parse_payload,
    parse_topic,
    short,
)
from edge.comms.mqtt_settings import MqttConfig
from edge.comms.tls import apply_broker_auth, tls_context
from edge.schema import ConfigError

__all__ = ["register", "run", "subscriptions"]



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
        cfg = MqttConfig.from_dict(kw)
    except ConfigError as exc:  # each problem under the option of its key
        raise CommandError("; ".join(f"--{str(p.path[0]).replace('_', '-')}: {p.text}" if p.path else p.text
                                     for p in exc.problems)) from None
    ssl_context(cfg)  # a missing or unreadable TLS file is an option error, before connecting
    return cfg


def ssl_context(cfg: Any) -> ssl.SSLContext | None:
    """:func:`edge.comms.tls.tls_context`, its errors as one-line option errors."""
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
    try:  # deferred: jsonschema is optional
        import jsonschema

        jsonschema.validators.validator_for(schema).check_schema(schema)
    except ImportError:
        pass
    except Exception as exc:
        raise CommandError(f"--schema: {path} is not a valid JSON Schema: {short(str(exc), 120)}") from None
    return schema


def _warn(text: str) -> None:
    print(f"microseis listen: warning: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
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
    client.reconnect_delay_set(0.5, 10)
    client.connect_timeout = args.connect_timeout
    apply_broker_auth(client, cfg, ctx)

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
