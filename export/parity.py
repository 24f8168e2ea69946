"""The parity report: every exported format against the fp32 ONNX graph (and torch) on one
labeled dataset -- top-class agreement, macro-F1, magnitude hit rates, single-thread latency
and file sizes. ``microseis export`` prints it and stores it in the bundle manifest.

Every format is run through the station's own :class:`edge.model.inference.EventClassifier`
code path with the same MC-dropout noise draws (same seed), so the differences are the
format's alone.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.model.predictions import Predictions

__all__ = ["interleaved_latency_ms", "FormatResult", "score", "latency_ms", "parity_report", "format_table"]


@dataclass
class FormatResult:
    """One format's predictions and figures."""

    name: str            # "onnx-fp32", "onnx-int8", "tflite-int8", ...
    file: str
    size_bytes: int
    preds: Predictions
    latency: dict[str, float]


def score(preds: Predictions, y: np.ndarray, magnitude: np.ndarray, classes) -> dict[str, Any]:
    """macro-F1, accuracy and magnitude hit rates (trainer.metrics) of ``preds``."""
    from trainer.metrics import evaluation_metrics

    m = evaluation_metrics(y, preds.pred, classes, magnitude, preds.magnitude)
    mag = m.get("magnitude") or {}
    return {"macro_f1": m["macro_f1"], "accuracy": m.get("accuracy"),
            "f1": m.get("f1"), "hit_0_2": mag.get("hit_0_2"), "hit_0_3": mag.get("hit_0_3"),
            "mag_mae": mag.get("mae"), "n_magnitude": mag.get("n")}


def latency_ms(run_once: Callable[[], Any], repeats: int = 300, warmup: int = 30) -> dict[str, float]:
    """p50/p99/mean wall time (ms) of ``run_once`` (one forward pass, batch 1)."""
    return interleaved_latency_ms({"_": run_once}, repeats, warmup)["_"]


def interleaved_latency_ms(runs: Mapping[str, Callable[[], Any]], repeats: int = 300,
                           warmup: int = 30, rounds: int = 10) -> dict[str, dict[str, float]]:
    """p50/p99/mean wall time (ms) of each ``run_once`` in ``runs``, timed in ``rounds``
    round-robin slices of ``repeats / rounds`` calls, so that load on a shared machine
    falls on every format alike and their ratios stay meaningful."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    rounds = max(1, min(int(rounds), int(repeats)))
    per = [repeats // rounds + (1 if r < repeats % rounds else 0) for r in range(rounds)]
    times: dict[str, list[float]] = {k: [] for k in runs}
    for n in per:
        for name, fn in runs.items():
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        t = np.asarray(ts) * 1e3
        out[name] = {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)),
                     "mean": float(t.mean()), "repeats": int(repeats)}
    return out


def _agreement(a: Predictions, b: Predictions) -> float:
    return float(np.mean(a.pred == b.pred)) if len(a) else float("nan")


def parity_report(results: Mapping[str, FormatResult], reference: str, y: np.ndarray,
                  magnitude: np.ndarray, classes, dataset: str, torch_ref: Predictions | None = None,
                  mc_passes: int = 1) -> dict[str, Any]:
    """The report stored in the manifest's ``parity`` field.

    ``reference`` names the fp32 result the others are compared with; ``torch_ref`` (the
    torch model's own predictions with the same noise) adds the fp32 export's own error.
    """
    ref = results[reference]
    ref_score = score(ref.preds, y, magnitude, classes)
    formats: dict[str, Any] = {}
    for name, r in results.items():
        s = score(r.preds, y, magnitude, classes)
        entry = {
            "file": r.file, "size_bytes": r.size_bytes, **s,
            "top_class_agreement": _agreement(r.preds, ref.preds),
            "class_probs_max_abs_diff": float(np.max(np.abs(r.preds.probs - ref.preds.probs))) if len(y) else 0.0,
            "macro_f1_drop_points": 100.0 * (ref_score["macro_f1"] - s["macro_f1"]),
            "hit_0_3_drop_points": (100.0 * (ref_score["hit_0_3"] - s["hit_0_3"])
                                    if s["hit_0_3"] is not None and ref_score["hit_0_3"] is not None else None),
            "latency_ms": r.latency,
            "latency_vs_reference": r.latency["p50"] / ref.latency["p50"],
        }
        formats[name] = entry
    report: dict[str, Any] = {
        "dataset": dataset, "events": int(len(y)), "reference": reference, "mc_passes": int(mc_passes),
        "latency": "one forward pass (batch 1, 3 x n samples), one thread, after warm-up; "
                   "the station runs mc_passes of them per event",
        "formats": formats,
    }
    if torch_ref is not None:
        report["torch_vs_reference"] = {
            "top_class_agreement": _agreement(torch_ref, ref.preds),
            "class_probs_max_abs_diff": float(np.max(np.abs(torch_ref.probs - ref.preds.probs))) if len(y) else 0.0,
        }
    return report


def format_table(report: Mapping[str, Any]) -> str:
    """The parity report as a readable table."""
    head = (f"{'format':<13}{'size kB':>9}{'agree':>8}{'macro-F1':>10}{'ΔF1 pt':>8}"
            f"{'M±0.3':>8}{'ΔM pt':>7}{'p50 ms':>8}{'p99 ms':>8}{'×ref':>6}")
    lines = [f"parity on {report['dataset']} ({report['events']} events, "
             f"{report['mc_passes']} MC passes), reference {report['reference']}", head, "-" * len(head)]
    for name, f in report["formats"].items():
        h3 = f.get("hit_0_3")
        d3 = f.get("hit_0_3_drop_points")
        lines.append(
            f"{name:<13}{f['size_bytes'] / 1000:>9.1f}{f['top_class_agreement']:>8.3f}"
            f"{f['macro_f1']:>10.3f}{f['macro_f1_drop_points']:>8.2f}"
            f"{(f'{h3:.3f}' if h3 is not None else '-'):>8}{(f'{d3:.1f}' if d3 is not None else '-'):>7}"
            f"{f['latency_ms']['p50']:>8.3f}{f['latency_ms']['p99']:>8.3f}{f['latency_vs_reference']:>6.2f}")
    tv = report.get("torch_vs_reference")
    if tv:
        lines.append(f"torch vs {report['reference']}: agreement {tv['top_class_agreement']:.3f}, "
                     f"max |Δp| {tv['class_probs_max_abs_diff']:.2e}")
    return "\n".join(lines)
