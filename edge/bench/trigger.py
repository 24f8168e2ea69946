"""CPU cost of the streaming trigger (:class:`edge.trigger.stream.StreamingTrigger`) on
3-channel data: ObsPy's bundled real example recording (BW.RJOB..EH?, 100 Hz, 30 s with a
local event) resampled to 250 Hz and tiled, fed in the decoder's chunk size.
``bench/trigger_cost.py`` (the comparison with ObsPy's one-shot trigger) builds on these."""
from __future__ import annotations

import time

import numpy as np
from obspy import UTCDateTime

from edge.trigger.stream import StreamingTrigger, TriggerConfig

__all__ = ["FS", "chunks", "make_data", "streaming", "trigger_cost_per_hour"]

FS = 250.0


def make_data(minutes: float) -> tuple[list[str], np.ndarray, UTCDateTime]:
    """(seed ids, int32 counts (3, n), start time): RJOB's example at 250 Hz, tiled."""
    from obspy import read
    from scipy.signal import resample_poly

    st = read()  # ObsPy's bundled example: BW.RJOB..EH{Z,N,E}, 100 Hz, 30 s
    st.sort(keys=["channel"], reverse=True)  # Z, N, E
    tiles = [resample_poly(tr.data.astype(np.float64), 5, 2) for tr in st]  # 100 -> 250 Hz
    n = int(minutes * 60 * FS)
    reps = int(np.ceil(n / tiles[0].size))
    data = np.stack([np.tile(t, reps)[:n] for t in tiles])
    return [tr.id for tr in st], np.round(data).astype(np.int32), st[0].stats.starttime


def chunks(ids: list[str], data: np.ndarray, start: UTCDateTime, size: int) -> list[tuple]:
    """``(seed_id, samples, starttime, rate)`` chunks of ``size`` samples, channels interleaved."""
    out = []
    for i in range(0, data.shape[1], size):
        t = start + i / FS
        for c, sid in enumerate(ids):
            out.append((sid, data[c, i:i + size], t, FS))
    return out


def streaming(items: list[tuple], cfg: TriggerConfig) -> tuple[float, list]:
    """Feed ``items`` to a fresh trigger, then flush: (seconds, what it returned)."""
    trg = StreamingTrigger(cfg)
    feed = trg.feed
    t0 = time.perf_counter()
    out = []
    for sid, x, t, fs in items:
        r = feed(sid, x, t, fs)
        if r:
            out += r
    out += trg.flush()
    return time.perf_counter() - t0, out


def trigger_cost_per_hour(minutes: float = 10.0, chunk: int = 25, repeat: int = 2) -> dict[str, float | int]:
    """CPU seconds the trigger needs per hour of 3-channel 250 Hz data (best of ``repeat``),
    from ``minutes`` of data fed ``chunk`` samples at a time: ``{"s_per_hour", "percent_of_one_core",
    "minutes", "chunk", "events"}``."""
    ids, data, start = make_data(minutes)
    items = chunks(ids, data, start, chunk)
    best, out = float("inf"), []
    for _ in range(max(1, repeat)):
        dt, out = streaming(items, TriggerConfig())
        best = min(best, dt)
    per_hour = best * 60.0 / minutes
    return {"s_per_hour": round(per_hour, 3), "percent_of_one_core": round(100 * per_hour / 3600.0, 4),
            "minutes": minutes, "chunk": chunk, "events": len(out)}
