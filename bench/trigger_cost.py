"""Cost of the streaming trigger (edge.trigger.stream) against ObsPy's one-shot trigger.

Both run on the same samples in the same process:

* **one-shot** (ObsPy on the whole trace, per channel):
  ``obspy.signal.filter.bandpass`` + ``obspy.signal.trigger.recursive_sta_lta`` +
  ``obspy.signal.trigger.trigger_onset``;
* **streaming**: :class:`edge.trigger.stream.StreamingTrigger` fed chunks of ``--chunk``
  samples (default 25 = 0.1 s at 250 Hz, what the station's decoder delivers), the 3
  channels interleaved, then ``flush()``; it also does the coincidence, warm-up and gap
  bookkeeping. The chunks (arrays and UTCDateTime start times) are made before the clock
  starts, as the decoder hands them over ready-made.

Data: ObsPy's real 3-component example recording (BW.RJOB, 100 Hz, 30 s with a local
event; ``obspy.read()``) resampled to 250 Hz and repeated to ``--minutes`` of data (one
event every 30 s). Default trigger settings (``TriggerConfig()``).

Prints a table (one row per chunk size) and, last, one JSON line::

    {"benchmark": "trigger_cost", "ratio": <streaming s / one-shot s at --chunk>, ...}

Times are the best of ``--repeat`` runs (s). ``python bench/trigger_cost.py [--minutes 60]
[--chunk 25] [--repeat 3] [--sweep 25,100,250,1000,5000,25000]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obspy.signal.filter import bandpass  # noqa: E402
from obspy.signal.trigger import recursive_sta_lta, trigger_onset  # noqa: E402

from edge.bench.trigger import FS, chunks, make_data, streaming  # noqa: E402,F401
from edge.trigger.stream import TriggerConfig  # noqa: E402

TARGET = 1.25


def oneshot(ids: list[str], data: np.ndarray, cfg: TriggerConfig) -> tuple[float, list]:
    nsta, nlta = int(cfg.sta_s * FS), int(cfg.lta_s * FS)
    t0 = time.perf_counter()
    picks = []
    for x in data:
        y = bandpass(x, cfg.freqmin, cfg.freqmax, FS, corners=cfg.corners)
        cft = recursive_sta_lta(y, nsta, nlta)
        picks.append(trigger_onset(cft, cfg.on, cfg.off))
    return time.perf_counter() - t0, picks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes of 3-channel data")
    ap.add_argument("--chunk", type=int, default=25, help="chunk size of the headline ratio (samples)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    ap.add_argument("--sweep", default="25,100,250,1000,5000,25000",
                    help="chunk sizes of the table (samples); --chunk is always included")
    args = ap.parse_args(argv)

    cfg = TriggerConfig()
    ids, data, start = make_data(args.minutes)
    duration_s = data.shape[1] / FS
    sizes = sorted({args.chunk, *(int(s) for s in args.sweep.split(",") if s)})

    t_one, picks = min((oneshot(ids, data, cfg) for _ in range(max(args.repeat, 5))),
                       key=lambda r: r[0])
    n_picks = sum(len(p) for p in picks)

    rows = []
    for size in sizes:
        items = chunks(ids, data, start, size)
        t_str, out = min((streaming(items, cfg) for _ in range(args.repeat)), key=lambda r: r[0])
        events = sum(1 for tr in out if tr.kind == "off")
        rows.append({"chunk": size, "chunk_s": size / FS, "feeds": len(items), "time_s": t_str,
                     "us_per_feed": t_str / len(items) * 1e6, "ratio": t_str / t_one,
                     "realtime_factor": duration_s / t_str, "events": events})

    print(f"trigger cost: {len(ids)} channels x {duration_s / 60:g} min at {FS:g} Hz "
          f"({data.size} samples), default TriggerConfig (sta {cfg.sta_s} s, lta {cfg.lta_s} s, "
          f"on {cfg.on}, off {cfg.off}, {cfg.freqmin}-{cfg.freqmax} Hz)")
    print(f"ObsPy one-shot (bandpass + recursive_sta_lta + trigger_onset): {t_one * 1e3:.1f} ms, "
          f"{n_picks} channel triggers")
    print()
    print(f"{'chunk':>7} {'chunk s':>8} {'feeds':>8} {'stream ms':>10} {'us/feed':>8} "
          f"{'ratio':>7} {'x real time':>12} {'events':>7}")
    for r in rows:
        print(f"{r['chunk']:>7} {r['chunk_s']:>8.3f} {r['feeds']:>8} {r['time_s'] * 1e3:>10.1f} "
              f"{r['us_per_feed']:>8.2f} {r['ratio']:>7.2f} {r['realtime_factor']:>12.0f} "
              f"{r['events']:>7}")
    head = next(r for r in rows if r["chunk"] == args.chunk)
    # per-feed overhead: slope of time against the number of feeds (two smallest chunk sizes)
    a, b = rows[0], rows[-1]
    overhead_us = (a["time_s"] - b["time_s"]) / max(a["feeds"] - b["feeds"], 1) * 1e6
    print()
    print(f"at {args.chunk}-sample chunks: ratio {head['ratio']:.2f} (target <= {TARGET}); the "
          f"streaming trigger needs {head['time_s'] / duration_s * 100:.3f} % of one core in "
          f"real time; fixed cost per feed() ~{overhead_us:.1f} us")
    print(json.dumps({
        "benchmark": "trigger_cost",
        "ratio": round(head["ratio"], 3),
        "target": TARGET,
        "met": head["ratio"] <= TARGET,
        "chunk_samples": args.chunk,
        "channels": len(ids),
        "sampling_rate": FS,
        "duration_s": duration_s,
        "oneshot_s": round(t_one, 5),
        "streaming_s": round(head["time_s"], 5),
        "us_per_feed": round(head["us_per_feed"], 3),
        "overhead_us_per_feed": round(overhead_us, 3),
        "realtime_factor": round(head["realtime_factor"], 1),
        "sweep": {str(r["chunk"]): round(r["ratio"], 3) for r in rows},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
