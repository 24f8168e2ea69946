"""Real-time factor of the whole station pipeline: ``microseis replay`` (trigger, association,
model with its MC batch, ML) in a fresh process over ``minutes`` of 3 x 250 Hz counts: noise
with a 12 Hz burst every 60 s (each one event, so the model runs), timed by replay itself
(hours of data per hour of replay, reading the file included, start-up excluded)."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["replay_rtf"]

RATE_HZ = 250.0


def _record(path: Path, minutes: float) -> int:
    """Write the test record; returns the number of bursts (events) in it."""
    from obspy import Stream, Trace, UTCDateTime

    rng = np.random.default_rng(1)
    n = int(minutes * 60 * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    onsets = np.arange(30.0, minutes * 60 - 20.0, 60.0)
    traces = []
    for k, ch in enumerate(("HHZ", "HHN", "HHE")):
        x = rng.normal(0.0, 200.0, n)
        for t0 in onsets:
            env = np.where(t >= t0, np.exp(-(t - t0) / 1.5), 0.0)
            x += 2e4 * env * np.sin(2 * np.pi * 12.0 * (t - t0) + k)
        traces.append(Trace(np.round(x).astype(np.int32),
                            header={"network": "XX", "station": "BENCH", "channel": ch,
                                    "sampling_rate": RATE_HZ, "starttime": UTCDateTime(2026, 1, 1)}))
    Stream(traces).write(str(path), format="MSEED")
    return len(onsets)


def replay_rtf(bundle: str | None = None, minutes: float = 10.0, timeout_s: float = 300.0) -> dict[str, Any]:
    """``{"realtime_factor", "data_hours", "wall_s", "alerts", "events"}`` of one replay, or
    ``{"realtime_factor": None, "error": ...}`` when the replay fails."""
    with tempfile.TemporaryDirectory(prefix="microseis-bench-") as tmp:
        rec = Path(tmp) / "replay.mseed"
        events = _record(rec, minutes)
        cmd = [sys.executable, "-m", "edge", "replay", str(rec), "--json", "--quiet"]
        if bundle:
            cmd += ["--model", bundle]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"realtime_factor": None, "error": f"replay took over {timeout_s:g} s"}
        if r.returncode != 0:
            lines = (r.stderr or r.stdout).strip().splitlines()
            return {"realtime_factor": None, "error": lines[-1] if lines else f"exit {r.returncode}"}
        out = json.loads(r.stdout.strip().splitlines()[-1])
        return {"realtime_factor": out.get("realtime_factor"), "data_hours": out.get("data_hours"),
                "wall_s": out.get("wall_s"), "alerts": out.get("alerts"), "events": events}
