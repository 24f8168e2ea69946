"""Model latency on this device: every model file of a verified bundle that this machine can
run (ONNX int8 / fp32 with onnxruntime; TFLite with LiteRT when it is importable), at batch 1
and at the MC batch (the bundle's MC-dropout passes of one window in one call, what the
station runs per event), one intra-op thread as on a station."""
from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["percentile", "model_latency", "bench_inputs"]


def percentile(xs: list[float], p: float) -> float:
    """Nearest-rank percentile ``p`` (0..1) of ``xs``."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]


def bench_inputs(manifest, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every graph input of ``manifest`` with batch ``batch`` (waveform:
    unit-variance normal, like a normalized window; noise: uniform 0..1, like the MC masks)."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in manifest.inputs:
        shape = tuple(batch if isinstance(d, str) else int(d) for d in t.shape)
        if t.kind == "noise":
            out[t.name] = rng.random(shape, dtype=np.float32)
        else:
            out[t.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _runner(body: bytes, fmt: str, threads: int):
    if fmt == "onnx":
        from edge.model.inference import OnnxRunner

        return OnnxRunner(body, threads=threads)
    from edge.model.tflite import TfliteRunner  # LiteRT is optional on a station

    return TfliteRunner(body, threads=threads)


def _litert_importable() -> bool:
    from edge.model.tflite import load_interpreter_class

    try:
        load_interpreter_class()
    except Exception:  # noqa: BLE001 -- not installed (ImportError) or broken
        return False
    return True


def _time(runner, inputs: Mapping[str, np.ndarray], runs: int, budget_s: float) -> list[float]:
    """Milliseconds per call: 2 warm-up calls, then ``runs`` calls or until ``budget_s``."""
    for _ in range(2):
        runner.run(inputs)
    times: list[float] = []
    t_end = time.perf_counter() + budget_s
    while len(times) < runs and (len(times) < 5 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        runner.run(inputs)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def model_latency(bundle, runs: int = 200, budget_s: float = 2.0, threads: int = 1) -> list[dict[str, Any]]:
    """One row per model file of ``bundle`` (a :class:`~edge.model.verify.VerifiedBundle`):
    ``{"file", "runtime", "precision", "default", "batch1_p50_ms", "batch1_p99_ms",
    "mc_batch", "mc_p50_ms", "mc_p99_ms", "runs"}``; a file this machine cannot run gets
    ``"skipped"`` with the reason instead of figures. ``runs`` calls (at most ``budget_s``
    seconds, at least 5) per batch size."""
    m = bundle.manifest
    mc = max(1, int(m.mc_dropout.get("passes", 1) or 1))
    litert = None
    rows = []
    for f in m.models:
        row: dict[str, Any] = {"file": f.file, "runtime": "onnxruntime" if f.format == "onnx" else "litert",
                               "precision": f.precision, "default": f.default, "mc_batch": mc}
        if f.format == "tflite":
            litert = _litert_importable() if litert is None else litert
            if not litert:
                rows.append({**row, "skipped": "LiteRT (ai-edge-litert / tflite-runtime) not importable"})
                continue
        try:
            runner = _runner(bundle.file(f.file), f.format, threads)
            one = _time(runner, bench_inputs(m, 1), runs, budget_s)
            fixed = getattr(runner, "batch", None)  # a TFLite graph with a fixed batch
            many = _time(runner, bench_inputs(m, fixed or mc), runs, budget_s)
        except Exception as exc:  # noqa: BLE001 -- one file that cannot run is a row, not a crash
            rows.append({**row, "skipped": f"{type(exc).__name__}: {exc}"})
            continue
        row.update(batch1_p50_ms=round(percentile(one, 0.5), 3), batch1_p99_ms=round(percentile(one, 0.99), 3),
                   mc_p50_ms=round(percentile(many, 0.5), 3), mc_p99_ms=round(percentile(many, 0.99), 3),
                   runs=min(len(one), len(many)))
        rows.append(row)
    return rows


def threads_note() -> str:
    """How many CPUs this process may use (the figures are for one intra-op thread)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return f"1 intra-op thread; {n} CPU(s) usable by this process"
