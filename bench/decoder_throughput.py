#!/usr/bin/env python3
"""Throughput of the digitizer-link decoder (``firmware_bridge.decoder.FrameDecoder``).

Builds realistic sample frames with the Python encoder (random counts within the range of
the encoding), then times ``FrameDecoder.feed`` + ``flush`` on one core, single thread, a
few times over, and reports the best and the median MB/s, samples/s (all channels),
frames/s and µs/frame. Besides the clean stream fed in ``--chunk``-byte reads it times the
same frames with 10 % random garbage bytes between them, and a smaller stream fed one byte
at a time (the worst case of a serial port read loop).

The last line printed is one JSON object (for CI logs and docs/performance.md)::

    python bench/decoder_throughput.py --frames 50000 --json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

# one thread for every numeric library, before numpy is imported
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from edge.bench.decoder import ENC_CODES, build_frames, decode_once  # noqa: E402
from edge.bench.machine import machine_info  # noqa: E402
from firmware_bridge.decoder import FrameDecoder  # noqa: E402
from firmware_bridge.encoder import max_samples_per_frame  # noqa: E402
from firmware_bridge.protocol import StreamConfig  # noqa: E402

TARGET_MB_PER_S = 10.0


def with_garbage(frames: list[bytes], fraction: float,
                 rng: np.random.Generator) -> tuple[bytes, int]:
    """The frames with random garbage between them, ``fraction`` of the frame bytes in all."""
    total = sum(map(len, frames))
    lengths = rng.multinomial(int(total * fraction), np.full(len(frames), 1 / len(frames)))
    noise = rng.integers(0, 256, size=int(lengths.sum()), dtype=np.uint8).tobytes()
    parts, at = [], 0
    for frame, n in zip(frames, lengths):
        parts.append(noise[at:at + n])
        parts.append(frame)
        at += n
    return b"".join(parts), len(noise)


def check(name: str, decoder: FrameDecoder, delivered: int, case: dict, nsamp: int) -> None:
    """A benchmark of a broken decode is worthless: check that everything was decoded."""
    st, frames = decoder.stats, case["frames"]
    if (delivered != frames or st.sample_frames != frames or st.samples != frames * nsamp
            or st.crc_errors or st.malformed_frames or st.lost_frames
            or st.skipped_bytes != case["garbage_bytes"] or st.bytes_in != case["bytes"]):
        raise SystemExit(f"{name}: decode check failed: delivered {delivered}, {st}")


def run_cases(cases: list[dict], nsamp: int, nch: int, repeat: int,
              config: StreamConfig) -> None:
    """Time every case ``repeat`` times, round robin (so that a burst of load on a shared
    machine does not fall on one case only); adds ``best`` and ``median`` to each."""
    for case in cases:
        stream, chunk = case.pop("stream"), case["chunk"]
        case["chunks"] = [stream[i:i + chunk] for i in range(0, len(stream), chunk)]
        case["bytes"] = len(stream)
        case["times"] = []
    for _ in range(repeat):
        for case in cases:
            dt, decoder, delivered = decode_once(case["chunks"], config)
            check(case["case"], decoder, delivered, case, nsamp)
            case["times"].append(dt)
            case["header_errors"] = decoder.stats.header_errors

    for case in cases:
        frames, size = case["frames"], case["bytes"]

        def rates(dt: float, size: int = size, frames: int = frames) -> dict:
            return {
                "mb_per_s": size / dt / 1e6,
                "msamples_per_s": frames * nsamp * nch / dt / 1e6,
                "frames_per_s": frames / dt,
                "us_per_frame": dt / frames * 1e6,
                "seconds": dt,
            }

        del case["chunks"]
        times = case.pop("times")
        case["repeat"] = repeat
        case["best"] = rates(min(times))
        case["median"] = rates(statistics.median(times))


def rounded(d: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50_000, help="sample frames (default 50000)")
    ap.add_argument("--nsamp", type=int, default=25, help="samples per channel per frame (25)")
    ap.add_argument("--nch", type=int, default=3, help="channels (3)")
    ap.add_argument("--enc", choices=sorted(ENC_CODES), default="int24", help="encoding (int24)")
    ap.add_argument("--rate", type=float, default=250.0, help="sample rate in Hz (250)")
    ap.add_argument("--chunk", type=int, default=4096, help="bytes per feed() call (4096)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each case (5)")
    ap.add_argument("--garbage", type=float, default=0.10,
                    help="garbage bytes between frames, fraction of frame bytes (0.10)")
    ap.add_argument("--byte-frames", type=int, default=None,
                    help="frames of the 1-byte-feeding case (default frames/25)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    ap.add_argument("--json", action="store_true",
                    help="also print every case as JSON (the last line is JSON in any case)")
    args = ap.parse_args(argv)

    enc = ENC_CODES[args.enc]
    if not 1 <= args.nch <= 8 or not 1 <= args.nsamp <= max_samples_per_frame(args.nch, enc):
        ap.error("--nch must be 1..8 and --nsamp must fit a 4096-byte payload")
    pinned = None
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        pinned = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {pinned})

    rng = np.random.default_rng(args.seed)
    config = StreamConfig()
    frames = build_frames(args.frames, args.nsamp, args.nch, enc, args.rate, rng)
    frame_bytes = len(frames[0])
    clean = b"".join(frames)
    noisy, garbage_bytes = with_garbage(frames, args.garbage, rng)
    byte_frames = max(1, args.byte_frames if args.byte_frames is not None else args.frames // 25)
    bytewise = b"".join(frames[:byte_frames])

    cases = [
        dict(case=f"clean, {args.chunk}-byte reads", stream=clean, chunk=args.chunk,
             frames=args.frames, garbage_bytes=0),
        dict(case=f"{args.garbage:.0%} garbage between frames, {args.chunk}-byte reads",
             stream=noisy, chunk=args.chunk, frames=args.frames, garbage_bytes=garbage_bytes),
        dict(case="clean, 1-byte reads", stream=bytewise, chunk=1, frames=byte_frames,
             garbage_bytes=0),
    ]
    run_cases(cases, args.nsamp, args.nch, args.repeat, config)

    machine = machine_info()
    print(f"FrameDecoder throughput: {args.nch} ch x {args.nsamp} samples {args.enc} "
          f"@ {args.rate:g} Hz, {frame_bytes} bytes/frame, best/median of {args.repeat}, "
          f"one thread{'' if pinned is None else f' pinned to CPU {pinned}'}")
    print(f"machine: {machine['cpu_model'] or machine['processor']} ({machine['uname']}), "
          f"Python {machine['python']}, numpy {machine['numpy']}")
    head = (f"{'case':<44} {'frames':>7} {'MB/s best':>10} {'MB/s med':>9} "
            f"{'Msamp/s':>8} {'frames/s':>9} {'us/frame':>9}")
    print(head)
    print("-" * len(head))
    for c in cases:
        b, m = c["best"], c["median"]
        print(f"{c['case']:<44} {c['frames']:>7} {b['mb_per_s']:>10.2f} {m['mb_per_s']:>9.2f} "
              f"{b['msamples_per_s']:>8.2f} {b['frames_per_s']:>9.0f} {b['us_per_frame']:>9.2f}")
    if args.json:
        for c in cases:
            print(json.dumps({**c, "best": rounded(c["best"]), "median": rounded(c["median"])}))

    main_case = cases[0]
    best, med = main_case["best"], main_case["median"]
    result = {
        "benchmark": "firmware_bridge.FrameDecoder throughput",
        "machine": machine,
        "params": {"frames": args.frames, "nsamp": args.nsamp, "nch": args.nch, "enc": args.enc,
                   "rate_hz": args.rate, "chunk": args.chunk, "repeat": args.repeat,
                   "seed": args.seed, "pinned_cpu": pinned},
        "frame_bytes": frame_bytes,
        # best of the runs; "median" holds the median run
        "mb_per_s": round(best["mb_per_s"], 3),
        "msamples_per_s": round(best["msamples_per_s"], 4),
        "frames_per_s": round(best["frames_per_s"], 1),
        "us_per_frame": round(best["us_per_frame"], 3),
        "median": rounded({k: v for k, v in med.items() if k != "seconds"}),
        "variants": {
            "garbage_10pct" if args.garbage == 0.10 else f"garbage_{args.garbage:g}": {
                "frames": cases[1]["frames"], "garbage_bytes": garbage_bytes,
                "best": rounded(cases[1]["best"]), "median": rounded(cases[1]["median"])},
            "one_byte_feed": {"frames": byte_frames, "best": rounded(cases[2]["best"]),
                              "median": rounded(cases[2]["median"])},
        },
        "target_mb_per_s": TARGET_MB_PER_S,
        # judged on the median run of the clean stream, not on the luckiest one
        "meets_target": med["mb_per_s"] >= TARGET_MB_PER_S,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
