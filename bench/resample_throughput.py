#!/usr/bin/env python3
"""Throughput of the streaming resampler (``edge.signal.resample.StreamResampler``).

Resamples ``--channels`` channels of ``--hours`` of random counts from each ``--rates`` input
rate to ``--to`` Hz on one core, as whole traces (:func:`resample_array`, the training and
``microseis predict`` path) and in chunks of ``--chunk-s`` seconds (the station path), and
reports the seconds taken and the speed as a multiple of real time (best of ``--repeats``).
Also checks that the chunked output is bit-identical to the whole-trace output.

The last line printed is one JSON object::

    python bench/resample_throughput.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from edge.signal.resample import StreamResampler, resample_array  # noqa: E402

TARGET_X_REAL_TIME = 2000.0


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[1000.0, 500.0, 200.0, 100.0, 50.0])
    ap.add_argument("--to", type=float, default=250.0, help="output rate, Hz (250)")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--chunk-s", type=float, default=1.0, help="station chunk length, s (1.0)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    results = []
    for fs in args.rates:
        n = round(args.hours * 3600 * fs)
        chans = [np.cumsum(rng.standard_normal(n)) for _ in range(args.channels)]
        whole_s, whole = _best(lambda fs=fs, chans=chans: [resample_array(x, fs, args.to) for x in chans],
                               args.repeats)
        step = max(1, round(args.chunk_s * fs))

        def chunked(fs: float = fs, chans: list = chans, n: int = n, step: int = step) -> list[np.ndarray]:
            out = []
            for x in chans:
                rs = StreamResampler(fs, args.to)
                parts = [rs.process(x[i : i + step]) for i in range(0, n, step)]
                parts.append(rs.flush())
                out.append(np.concatenate(parts))
            return out

        chunk_s, chunks = _best(chunked, args.repeats)
        same = all(a.tobytes() == b.tobytes() for a, b in zip(whole, chunks))
        duration = args.hours * 3600
        row = {"rate_in": fs, "rate_out": args.to, "channels": args.channels, "hours": args.hours,
               "whole_s": round(whole_s, 4), "whole_x_real_time": round(duration / whole_s),
               "chunk_s": args.chunk_s, "chunked_s": round(chunk_s, 4),
               "chunked_x_real_time": round(duration / chunk_s), "bit_identical": same}
        results.append(row)
        print(f"{fs:g} -> {args.to:g} Hz, {args.channels} x {args.hours:g} h: whole {whole_s:.3f} s "
              f"({row['whole_x_real_time']} x real time), {args.chunk_s:g} s chunks {chunk_s:.3f} s "
              f"({row['chunked_x_real_time']} x real time), bit-identical: {same}")
    ok = all(r["bit_identical"] and r["whole_x_real_time"] >= TARGET_X_REAL_TIME for r in results)
    summary = {"bench": "resample_throughput", "machine": platform.machine(), "python": platform.python_version(),
               "numpy": np.__version__, "target_x_real_time": TARGET_X_REAL_TIME, "ok": ok, "results": results}
    if args.json:
        print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
