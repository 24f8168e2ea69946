"""``microseis demo``: the whole station on one machine, with nothing configured.

A virtual digitizer on a pseudo-terminal replays the shipped scenario (``edge/demo``: one
synthetic event of each class -- fracture, rockfall, earthquake, noise transient -- and ObsPy's
real RJOB local-earthquake recording) through the real serial path into the station daemon,
which runs the shipped signed bundle (int8 ONNX, MC-dropout) and publishes over MQTT to an
embedded broker (Mosquitto when installed, else amqtt) -- or to ``--broker HOST:PORT``. A
listener prints every message as it arrives (what ``microseis listen`` prints); at the end a
table compares each scripted event with what the station said.

The shipped model is trained on SYNTHETIC data: the demo shows the station working, not how
well it classifies your slope.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edge.cli import CommandError

PREFIX = "microseis"
STATION = "XX.DEMO"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="virtual digitizer + station + broker, alerts printed",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", type=float, default=10.0,
                   help="replay speed of the virtual digitizer (10 = ten times real time)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="stop after S seconds (wall clock); the summary covers the scripted events "
                        "played by then (default: the whole scenario)")
    p.add_argument("--broker", metavar="HOST:PORT",
                   help="publish to this broker instead of an embedded one")
    p.add_argument("--faults", default="",
                   help="virtual digitizer faults, e.g. 'drop=0.01,bitflip=0.01' (none)")
    p.add_argument("--state", metavar="DIR", help="state folder (outbox, archive; default: temporary)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (last line)")
    p.set_defaults(func=run)


def _broker_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--broker must be HOST:PORT, got {text!r}")
    return host, int(port)


class _Printer:
    """Subscribes to the station's topics and prints each message as it arrives."""

    def __init__(self, host: str, port: int, quiet: bool) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from edge.cli.listen_format import format_message

        self.format, self.quiet = format_message, quiet
        self.ends: list[dict[str, Any]] = []
        self.news: list[dict[str, Any]] = []
        self.availability: list[str] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"microseis-demo-listener-{time.time_ns()}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{PREFIX}/{STATION}/#", qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        if msg.topic.endswith("/events"):
            try:
                obj = json.loads(msg.payload)
            except ValueError:
                obj = {}
            (self.ends if obj.get("type") == "end" else self.news).append(obj)
        elif msg.topic.endswith("/availability"):
            self.availability.append(msg.payload.decode("utf-8", "replace"))
        if not self.quiet:
            print(self.format(msg.topic, msg.payload, retained=bool(msg.retain)), flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _config(state: Path, host: str, port: int, speed: float, faults: str):
    from edge.demo import scenario_path, stations_path
    from edge.station.config import StationConfig

    return StationConfig.from_dict({
        "station": {"id": STATION, "channels": ["HHZ", "HHN", "HHE"], "sampling_rate": 250.0},
        "source": {"kind": "simulate", "files": [str(scenario_path())], "speed": float(speed),
                   "faults": faults},
        "magnitude": {"stationxml": str(stations_path())},
        # the scenario's reference: two components at once (a lone horizontal in a rockfall's
        # coda does not open a second event)
        "trigger": {"coincidence_sum": 2.0},
        "mqtt": {"host": host, "port": port, "prefix": PREFIX, "reconnect_min_s": 0.2,
                 "reconnect_max_s": 2.0},
        "archive": {"retention_days": 0, "max_disk_fraction": 1.0},  # the scenario is from 2025
        "health": {"interval_s": 10.0},
        "state": {"dir": str(state)},
    }, source="<demo>")


def summary(expected: list[dict[str, Any]], ends: list[dict[str, Any]], tol_s: float = 3.0) -> list[dict[str, Any]]:
    """One row per scripted event (matched to the ``end`` whose trigger-on is nearest, within
    ``tol_s`` seconds), then one per ``end`` no scripted event explains."""
    from obspy import UTCDateTime

    rows, used = [], set()
    for ev in expected:
        t = UTCDateTime(ev.get("obspy_trigger") or ev["expected_trigger"])
        best = None
        for i, m in enumerate(ends):
            dt = abs(UTCDateTime(m["trigger_on"]) - t)
            if i not in used and dt <= tol_s and (best is None or dt < best[0]):
                best = (dt, i)
        source = "real RJOB" if "RJOB" in str(ev.get("source", "")) else "synthetic"
        row: dict[str, Any] = {"expected": ev["class"], "source": source,
                               "time": str(t)[11:23], "magnitude_true": ev.get("magnitude")}
        if best is None:
            row.update(found=False)
        else:
            used.add(best[1])
            m = ends[best[1]]
            mag = m.get("magnitude") or {}
            row.update(found=True, dt_s=round(best[0], 2), got=m["class"],
                       p=round(max(m["probabilities"].values()), 3), uncertainty=m["uncertainty"],
                       ml=mag.get("ml"), model=mag.get("model"), latency_ms=m.get("latency_ms"))
        rows.append(row)
    for i, m in enumerate(ends):
        if i not in used:
            rows.append({"expected": None, "source": "unscripted", "time": m["trigger_on"][11:23],
                         "found": True, "got": m["class"], "p": round(max(m["probabilities"].values()), 3),
                         "uncertainty": m["uncertainty"], "ml": (m.get("magnitude") or {}).get("ml"),
                         "model": (m.get("magnitude") or {}).get("model"), "latency_ms": m.get("latency_ms")})
    return rows


def alert_summary(ends: list[dict[str, Any]]) -> dict[str, Any]:
    """The keys ``docs/spec/cli.md`` promises in ``demo --json``: ``events`` (``id``, ``class``,
    ``latency_ms`` of every ``end``), ``by_class`` (ends per class) and the median and 99th
    percentile of the latency (ms; None without ends)."""
    events = [{"id": m.get("id"), "class": m.get("class"), "latency_ms": m.get("latency_ms")}
              for m in ends]
    by_class: dict[str, int] = {}
    for e in events:
        by_class[str(e["class"])] = by_class.get(str(e["class"]), 0) + 1
    lat = sorted(float(e["latency_ms"]) for e in events if isinstance(e["latency_ms"], (int, float)))
    return {"events": events, "by_class": by_class,
            "latency_ms_p50": _percentile(lat, 50), "latency_ms_p99": _percentile(lat, 99)}


def _percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of sorted ``values``, linearly interpolated (numpy's default)."""
    if not values:
        return None
    k = (len(values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (k - lo), 1)


def format_summary(rows: list[dict[str, Any]]) -> str:
    def num(v, f=".2f"):
        return "-" if v is None else format(v, f)

    head = (f"{'scripted':<11} {'source':<10} {'time':<12} {'station said':<12} {'p':>5} {'unc':>5} "
            f"{'ML':>5} {'M model':>7} {'M true':>6} {'latency ms':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        got = r.get("got", "MISSED") if r.get("found") else "MISSED"
        lines.append(f"{r['expected'] or '-':<11} {r['source'][:10]:<10} {r['time']:<12} {got:<12} "
                     f"{num(r.get('p')):>5} {num(r.get('uncertainty')):>5} {num(r.get('ml')):>5} "
                     f"{num(r.get('model')):>7} {num(r.get('magnitude_true')):>6} "
                     f"{num(r.get('latency_ms'), '.1f'):>10}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import logging

    from edge.demo import load_scenario
    from edge.station.daemon import Daemon, DaemonError

    if args.speed <= 0:
        raise CommandError(f"--speed must be > 0, got {args.speed}")
    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"--duration must be > 0 seconds, got {args.duration}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("edge", "firmware_bridge"):  # the printed messages say it all; warnings still show
        logging.getLogger(name).setLevel(logging.WARNING)
    _, meta = load_scenario()
    broker = None
    if args.broker:
        host, port = _broker_address(args.broker)
    else:
        from edge.demo.broker import Broker

        try:
            broker = Broker().start()
        except (OSError, RuntimeError) as exc:
            raise CommandError(f"cannot start an embedded MQTT broker: {exc} (pass --broker HOST:PORT)") from None
        host, port = broker.host, broker.port
    tmp = None if args.state else tempfile.TemporaryDirectory(prefix="microseis-demo-")
    state = Path(args.state or tmp.name)  # type: ignore[union-attr]
    printer = None
    try:
        try:
            printer = _Printer(host, port, quiet=args.json)
        except OSError as exc:
            raise CommandError(f"cannot connect to the MQTT broker at {host}:{port}: {exc}") from None
        printer.ready.wait(5)
        length = float(meta.get("duration_s") or 0.0)
        say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
        say(f"demo: {len(meta['events'])} scripted events in {length:.0f} s of data at {args.speed:g}x "
            f"(about {length / args.speed:.0f} s); broker {host}:{port}"
            f"{' (embedded ' + broker.kind + ')' if broker else ''}; station {STATION}")
        try:
            daemon = Daemon(_config(state, host, port, args.speed, args.faults))
        except (DaemonError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if daemon.classifier.info.synthetic:
            say(f"demo: model {daemon.classifier.info.name} {daemon.classifier.info.version} was trained "
                "on SYNTHETIC data: re-train or fine-tune it on your site's labeled events")
        timer = None
        if args.duration is not None:
            timer = threading.Timer(args.duration, daemon.stop)
            timer.daemon = True
            timer.start()
        t0 = time.monotonic()
        try:
            daemon.run()
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.monotonic() - t0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and "stopped" not in printer.availability:
            time.sleep(0.05)
        scripted = meta["events"]
        if args.duration is not None and daemon.stop_event.is_set():
            # stopped early: only the events whose data (and a few seconds after) was played
            played_s = wall * args.speed
            scripted = [ev for ev in scripted if float(ev.get("expected_trigger_s", 0.0)) + 5.0 <= played_s]
        rows = summary(scripted, printer.ends)
        found = sum(1 for r in rows if r["expected"] and r.get("found"))
        correct = sum(1 for r in rows if r["expected"] and r.get("got") == r["expected"])
        res = {**alert_summary(printer.ends),
               "scripted": len(scripted), "found": found, "correct_class": correct,
               "ends": len(printer.ends), "news": len(printer.news), "wall_s": round(wall, 1),
               "outbox_depth": daemon.outbox_depth_at_exit, "rows": rows}
        if args.json:
            print(json.dumps(res))
        else:
            print()
            print(format_summary(rows))
            print(f"\n{found}/{len(meta['events'])} scripted events detected, {correct} classified as "
                  f"scripted; latency p50 {res['latency_ms_p50']} ms, p99 {res['latency_ms_p99']} ms; "
                  f"{len(printer.ends)} end and {len(printer.news)} new messages in {wall:.1f} s; "
                  f"outbox left: {res['outbox_depth']}")
        return 0 if found == len(scripted) else 1
    finally:
        if printer is not None:
            printer.close()
        if broker is not None:
            broker.close()
        if tmp is not None:
            tmp.cleanup()
