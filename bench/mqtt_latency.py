#!/usr/bin/env python3
"""Delivery latency of ``end`` messages through :class:`edge.comms.mqtt_link.MqttLink` and the durable
SQLite outbox to a local broker (tests/broker.py: Mosquitto, else amqtt).

Latency of one message = from just before ``Outbox.put`` (commit + fsync of the row) to the
broker's PUBACK arriving on the paho thread (ms); the row's removal (a second fsync) follows.
Three load patterns, ``--n`` messages each, on a fresh outbox file:

* ``sequential``: one message at a time, the next once the previous is acknowledged (the
  station's real pattern: a few events an hour).
* ``paced``: one message every ``--interval-ms``, without waiting (a swarm of events).
* ``burst``: all ``--n`` at once (a backlog); the latency includes waiting behind the others.

The target (p99 <= 50 ms on a local broker) applies to ``sequential`` and ``paced``. The last
line printed is one JSON object::

    python bench/mqtt_latency.py --n 500
    python bench/mqtt_latency.py --outbox-dir /media/sd/bench   # time the station's SD card
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.comms.mqtt_link import MqttLink  # noqa: E402
from edge.comms.mqtt_settings import MqttConfig  # noqa: E402
from edge.comms.outbox import Outbox  # noqa: E402
from tests.broker import Broker, Subscriber  # noqa: E402

TARGET_P99_MS = 50.0
STATION = "XX.BEN"


def _end(i: int) -> dict[str, Any]:
    on = f"2026-05-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000000Z"
    return {
        "schema": "microseis/event/1", "type": "end", "id": f"{STATION}-bench-{i:08d}", "station": STATION,
        "trigger_on": on, "trigger_off": on, "duration_s": 4.2, "cft_peak": 6.1, "class": "rockfall",
        "probabilities": {"earthquake": 0.05, "rockfall": 0.85, "noise": 0.1}, "uncertainty": 0.31,
        "magnitude": {"ml": 0.4, "model": 0.6}, "latency_ms": 85.0,
        "model": {"name": "resnet18-cbam", "version": "1.0.0", "sha256": "ab" * 32},
    }


def _quantile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))]


def run_mode(mode: str, n: int, broker: Broker, outbox_dir: Path, interval_ms: float, start: int) -> dict[str, Any]:
    path = outbox_dir / f"bench-{mode}-{os.getpid()}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    outbox = Outbox(path)
    link = MqttLink(MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=0.1, reconnect_max_s=1.0),
                    STATION, outbox)
    link.connect()
    if not link.wait_connected(10):
        raise SystemExit(f"no connection to {broker.url}: {link.last_error}")
    for i in range(20):  # warm-up: SQLite pages, TCP, paho
        link.publish_event_end(_end(start - 100 + i))
        link.flush(5)
    link.ack_latencies_ms.clear()
    t0 = time.perf_counter()
    for i in range(n):
        link.publish_event_end(_end(start + i))
        if mode == "sequential":
            if not link.flush(10):
                raise SystemExit(f"message {i} not acknowledged within 10 s")
        elif mode == "paced":
            next_t = t0 + (i + 1) * interval_ms / 1000.0
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    ok = link.flush(60)
    wall = time.perf_counter() - t0
    lat = list(link.ack_latencies_ms)
    link.stop()
    outbox.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if not ok or len(lat) != n:
        raise SystemExit(f"{mode}: {len(lat)} of {n} acknowledged")
    return {"n": n, "p50_ms": round(_quantile(lat, 0.5), 2), "p99_ms": round(_quantile(lat, 0.99), 2),
            "max_ms": round(max(lat), 2), "mean_ms": round(sum(lat) / n, 2), "msgs_per_s": round(n / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="messages per mode (default 500)")
    ap.add_argument("--modes", default="sequential,paced,burst", help="comma-separated (default: all three)")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="paced mode: ms between messages (20)")
    ap.add_argument("--outbox-dir", type=Path, default=None, help="folder of the outbox file (default: a temp dir)")
    ap.add_argument("--broker", choices=("mosquitto", "amqtt"), default=None, help="default: mosquitto if found")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("sequential", "paced", "burst"):
            ap.error(f"unknown mode {m!r}")

    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp, Broker(kind=args.broker, workdir=tmp) as broker:
        outbox_dir = args.outbox_dir or Path(tmp)
        outbox_dir.mkdir(parents=True, exist_ok=True)
        # a consumer on the events topic, as in the field (the broker forwards every message)
        with Subscriber.of(broker, f"microseis/{STATION}/events"):
            results = {}
            for k, m in enumerate(modes):
                results[m] = run_mode(m, args.n, broker, outbox_dir, args.interval_ms, start=(k + 1) * 1_000_000)
        kind = broker.kind

    if not args.json:
        print(f"MQTT end-message latency, put -> PUBACK (ms); broker {kind} on 127.0.0.1; "
              f"outbox {outbox_dir if args.outbox_dir else 'temp dir'} (SQLite WAL, synchronous=FULL)")
        print(f"{'mode':<12}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}{'mean':>9}{'msg/s':>10}")
        for m, r in results.items():
            print(f"{m:<12}{r['n']:>6}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}"
                  f"{r['mean_ms']:>9.2f}{r['msgs_per_s']:>10.1f}")
        if "paced" in results:
            print(f"(paced: one message every {args.interval_ms:g} ms)")
    gated = [results[m]["p99_ms"] for m in ("sequential", "paced") if m in results]
    ok = all(p <= TARGET_P99_MS for p in gated)
    print(json.dumps({"benchmark": "mqtt_latency", "broker": kind, "n": args.n, "interval_ms": args.interval_ms,
                      "target_p99_ms": TARGET_P99_MS, "meets_target": ok, "modes": results,
                      "python": platform.python_version(), "machine": platform.machine()}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
