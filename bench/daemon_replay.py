#!/usr/bin/env python3
"""The whole station daemon on a long replay: speed, latency and memory.

``--hours`` of 3 × 250 Hz int32 counts (coloured background noise, a synthetic event -- a
band-limited burst of a few seconds on all three components -- every ``--event-every``
seconds) are generated on the fly, chunk by chunk, and fed to :class:`edge.station.daemon.Daemon`
with everything a station runs: the streaming trigger, the ring buffers, the shipped int8
bundle with 20 MC-dropout passes per event, the MiniSEED archive on disk, the SQLite outbox and
MQTT to a real local broker (Mosquitto, else amqtt). The process is pinned to one CPU.

Figures (a table, then one JSON line):

* ``x_real_time`` -- hours of data per hour of wall time (target >= 1000 for 24 h);
* ``new_ms`` -- trigger-on -> ``new`` published: from the arrival of the chunk that turned the
  trigger on to the return of the publish call (target p99 <= 20 ms);
* ``end_ack_ms`` -- window close -> ``end`` acknowledged: from the arrival of the chunk that
  completed the event window, through preprocessing, classification, ML and the outbox commit,
  to the broker's PUBACK (target p99 <= 50 ms);
* ``rss_peak_mb`` -- peak resident memory of the process (target <= 120 MB: half of a 512 MB board with the OS).

    python bench/daemon_replay.py --hours 24            # the target run (about 1-2 min)
    python bench/daemon_replay.py --hours 1 --chunk-s 0.1   # serial-frame sized chunks
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obspy import UTCDateTime  # noqa: E402

from edge.demo.broker import Broker  # noqa: E402
from edge.station.config import StationConfig  # noqa: E402
from edge.station.daemon import Daemon  # noqa: E402
from edge.station.input import Chunk, LinkNote  # noqa: E402

STATION = "XX.BEN"
FS = 250.0
CHANNELS = ("HHZ", "HHN", "HHE")


def source(hours: float, chunk_s: float, event_every_s: float, seed: int = 0) -> Iterator[Chunk | LinkNote]:
    """Chunks of 3 channels, ``received`` stamped as they are handed over.

    One period of ``event_every_s`` seconds -- coloured noise with one burst in its middle --
    is made once and repeated, so that generating the data costs almost nothing next to the
    daemon (the noise repeats every period; the trigger state does not care)."""
    # not scipy.signal.lfilter: its import would add ~75 MB to the peak RSS measured here
    from edge.signal.iir import sosfilt

    rng = np.random.default_rng(seed)
    n = int(round(chunk_s * FS))
    period = int(round(event_every_s * FS))
    ar1 = np.array([[1.0, 0.0, 0.0, 1.0, -0.9, 0.0]])  # y[n] = x[n] + 0.9 y[n-1]
    noise = np.stack([sosfilt(ar1, row) for row in rng.normal(0.0, 40.0, (3, period))])
    tt = np.arange(int(5 * FS)) / FS  # 5 s, 15 Hz carrier, ~100x the noise amplitude
    burst = 4000.0 * np.sin(2 * np.pi * 15 * tt) * np.exp(-tt / 1.0) * (1 - np.exp(-tt / 0.05))
    mid = period // 2
    noise[:, mid:mid + burst.size] += burst * np.array([[1.0], [0.7], [0.6]])
    block = np.round(noise).astype(np.int32)
    total = int(round(hours * 3600 * FS))
    t0 = UTCDateTime("2026-06-01T00:00:00")
    ids = [f"{STATION}..{c}" for c in CHANNELS]
    for start in range(0, total, n):
        m = min(n, total - start)
        k = start % period
        if k + m <= period:
            part = block[:, k:k + m]
        else:
            part = np.concatenate([block[:, k:], block[:, :k + m - period]], axis=1)
        st = t0 + start / FS
        now = time.time()
        for c in range(3):
            yield Chunk(ids[c], np.ascontiguousarray(part[c]), st, FS, now)
    yield LinkNote("end", "benchmark replay finished")


def _private_mb() -> float | None:
    """Private_Clean + Private_Dirty of this process (MB): the memory no other process shares
    (library code pages are shared), from /proc/self/smaps_rollup."""
    try:
        kb = 0
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                kb += int(line.split()[1])
        return round(kb / 1024.0, 1)
    except OSError:
        return None


def _q(xs: list[float], p: float) -> float | None:
    return float(np.percentile(xs, p)) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--chunk-s", type=float, default=1.0,
                    help="chunk length (s): 1.0 as a file replay, 0.1 as serial frames")
    ap.add_argument("--event-every", type=float, default=600.0, help="seconds between synthetic events (600)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    ap.add_argument("--no-magnitude", action="store_true",
                    help="no [magnitude] sensitivity: no ML (picks and Wood-Anderson; they no longer "
                         "load obspy.signal or scipy.signal: docs/performance.md)")
    args = ap.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    broker = Broker().start()
    tmp = tempfile.TemporaryDirectory(prefix="microseis-bench-")
    try:
        cfg = StationConfig.from_dict({
            "station": {"id": STATION, "channels": list(CHANNELS), "sampling_rate": FS},
            **({} if args.no_magnitude else {"magnitude": {"sensitivity": 1.0e9}}),
            "mqtt": {"host": broker.host, "port": broker.port},
            "archive": {"retention_days": 0, "max_disk_fraction": 1.0},
            "health": {"interval_s": 30.0},
            "state": {"dir": tmp.name},
        }, source="<bench>")
        ends: list[dict[str, Any]] = []
        d = Daemon(cfg, source=source(args.hours, args.chunk_s, args.event_every), on_end=ends.append,
                   install_signals=False)
        rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        cpu0, t0 = time.process_time(), time.perf_counter()
        d.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        acks = d.link.ack_latencies_ms if d.link is not None else []
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        new_ms = [m["new_latency_ms"] for m in ends if m.get("new_latency_ms") is not None]
        close_ms = [m["latency_ms"] for m in ends]
        n_ack = min(len(acks), len(close_ms))
        end_ack = [close_ms[i] + acks[i] for i in range(n_ack)]
        expected = int(args.hours * 3600 // args.event_every)
        res = {
            "benchmark": "daemon_replay", "hours": args.hours, "chunk_s": args.chunk_s,
            "events_expected": expected, "events": len(ends),
            "classes": {c: sum(m["class"] == c for m in ends) for c in sorted({m["class"] for m in ends})},
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "x_real_time": round(args.hours * 3600 / wall, 1),
            "new_ms": {"p50": _q(new_ms, 50), "p99": _q(new_ms, 99), "max": max(new_ms, default=None)},
            "classify_ms": {"p50": _q(close_ms, 50), "p99": _q(close_ms, 99)},
            "ack_ms": {"p50": _q(acks, 50), "p99": _q(acks, 99)},
            "end_ack_ms": {"p50": _q(end_ack, 50), "p99": _q(end_ack, 99), "max": max(end_ack, default=None)},
            "rss_peak_mb": round(rss_peak, 1), "rss_after_setup_mb": round(rss_setup, 1),
            "private_mb": _private_mb(), "outbox_left": d.outbox_depth_at_exit,
            "broker": broker.kind,
            "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                        "pinned": not args.no_pin},
        }
        res["targets"] = {"x_real_time>=1000": res["x_real_time"] >= 1000,
                          "new_p99<=20ms": (res["new_ms"]["p99"] or 0) <= 20,
                          "end_ack_p99<=50ms": (res["end_ack_ms"]["p99"] or 0) <= 50,
                          "rss<=120MB": rss_peak <= 120}
        f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"daemon replay: {args.hours:g} h of 3 x 250 Hz, {args.chunk_s:g} s chunks, one event every "
              f"{args.event_every:g} s, broker {broker.kind}")
        print(f"{'figure':<34} {'value':>12}  target")
        print("-" * 60)
        print(f"{'x real time':<34} {res['x_real_time']:>12.1f}  >= 1000")
        print(f"{'wall / cpu (s)':<34} {wall:>6.1f}/{cpu:<5.1f}")
        print(f"{'events found / scripted':<34} {len(ends):>6}/{expected:<5}")
        def row(label: str, key: str, target: str = "") -> str:
            return f"{label:<34} {f(res[key]['p50']):>6}/{f(res[key]['p99']):<6} {target}".rstrip()

        print(row("trigger-on -> new p50/p99 (ms)", "new_ms", "p99 <= 20"))
        print(row("close -> end acked p50/p99 (ms)", "end_ack_ms", "p99 <= 50"))
        print(row("  of which classify p50/p99 (ms)", "classify_ms"))
        print(f"{'  of which outbox->PUBACK p50/p99':<34} {f(res['ack_ms']['p50']):>6}/{f(res['ack_ms']['p99']):<6}")
        print(f"{'peak RSS (MB)':<34} {rss_peak:>12.1f}  <= 120")
        print(f"{'  RSS after imports + model (MB)':<34} {rss_setup:>12.1f}")
        print(f"{'  private (not shared) at end (MB)':<34} {res['private_mb'] or 0:>12.1f}")
        print(json.dumps(res))
        return 0
    finally:
        broker.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
