"""``microseis bench``: latency and throughput on this device (docs/performance.md).

Measures the model (p50/p99 at batch 1 and at the MC batch, for every runtime and precision
the bundle carries that this machine can run), the streaming trigger's CPU cost per hour of
3-channel data, the frame decoder's MB/s, and the cold start of ``microseis run`` to READY=1
with its peak RSS; prints a table, or with ``--json`` one JSON object on the last line.
``--publish`` also publishes that JSON, retained, on ``{prefix}/{station}/bench`` with the
MQTT settings of ``--config`` (or ``--host``/``--port``/``--station``).
"""
from __future__ import annotations

import argparse
import json
import sys

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency and throughput on this device", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="BUNDLE", help="model bundle (.msb; default: the shipped bundle)")
    p.add_argument("--pubkey", action="append", metavar="KEY",
                   help="public key the bundle may be signed with (repeatable; default: the shipped keys)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (last line)")
    p.add_argument("--quick", action="store_true", help="a few seconds of each measurement (tests, smoke checks)")
    p.add_argument("--publish", action="store_true",
                   help="publish the JSON retained on {prefix}/{station}/bench (MQTT settings of --config)")
    p.add_argument("--config", metavar="FILE", help="station configuration for --publish ([station], [mqtt])")
    p.add_argument("--host", help="broker host for --publish (overrides --config)")
    p.add_argument("--port", type=int, help="broker port for --publish (overrides --config)")
    p.add_argument("--station", metavar="NET.STA", help="station id for --publish (overrides --config)")
    p.set_defaults(func=run)


def _mqtt_target(args: argparse.Namespace):
    """(MqttConfig, station id) for --publish; CommandError naming what is missing."""
    from edge.comms.mqtt_settings import MqttConfig

    if args.config:
        from edge.station.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        mqtt = MqttConfig.from_dict({k: v for k, v in cfg.mqtt.to_dict().items()
                                     if k not in ("enabled", "password_file")})
        station = cfg.station.id
    else:
        mqtt, station = MqttConfig(), None
    if args.host:
        mqtt.host = args.host
    if args.port is not None:
        mqtt.port = args.port
    station = args.station or station
    try:
        mqtt.validate()
    except ValueError as exc:
        raise CommandError(f"--publish: {exc}") from None
    if not station:
        raise CommandError("--publish needs the station id: --config FILE or --station NET.STA")
    return mqtt, station


def publish(result: dict, mqtt, station: str, timeout_s: float = 10.0) -> str:
    """Publish ``result`` as JSON, retained, QoS 1, on ``{prefix}/{station}/bench``; waits for
    the PUBACK. Returns the topic. Raises CommandError when the broker cannot be reached."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.comms.tls import apply_broker_auth, tls_context
    from edge.comms.topics import Topics

    try:
        topic = f"{Topics.of(mqtt.prefix, station).base}/bench"
        ctx = tls_context(mqtt)
    except ValueError as exc:
        raise CommandError(f"--publish: {exc}") from None
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"microseis-bench-{station}")
    apply_broker_auth(client, mqtt, ctx)
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=30)
    except (OSError, ValueError) as exc:
        raise CommandError(f"--publish: cannot connect to the MQTT broker at {mqtt.host}:{mqtt.port}: {exc}") from None
    client.loop_start()
    try:
        info = client.publish(topic, json.dumps(result), qos=1, retain=True)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise CommandError(f"--publish: no acknowledgement from {mqtt.host}:{mqtt.port} within {timeout_s:g} s")
    except (RuntimeError, ValueError) as exc:
        raise CommandError(f"--publish: {exc}") from None
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


def run(args: argparse.Namespace) -> int:
    from edge.bench.run import format_table, run_bench
    from edge.model.format import BundleError

    target = _mqtt_target(args) if args.publish else None  # bad settings fail before the work
    say = (lambda _m: None) if args.json else (lambda m: print(f"bench: {m} ...", file=sys.stderr, flush=True))
    try:
        result = run_bench(args.model, trusted_keys=args.pubkey, quick=args.quick, progress=say)
    except (BundleError, OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if target is not None:
        topic = publish(result, *target)
        if not args.json:
            print(f"bench: published on {topic} (retained)", file=sys.stderr)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
