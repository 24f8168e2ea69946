"""Before/after scores of ``microseis adapt`` on the held-out part: predictions, the report
(``adapt.json``), the table and the plots written beside the bundle.

"Before" is the starting model: a starting bundle runs through the station's own
:class:`edge.model.inference.EventClassifier` (its int8 graph, via
:class:`trainer.bundle_scorer.BundleScorer`); a starting training run runs with torch
(:class:`trainer.evaluate.TorchRunScorer`), since it has no int8 graph. "After" is always the
new bundle through the station's classifier. Both use the same MC-dropout passes and seed.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.model.predictions import Predictions
from trainer.bundle_scorer import BundleScorer
from trainer.data import EventArrays
from trainer.evaluate import TorchRunScorer
from trainer.metrics import evaluation_metrics

__all__ = ["before_after", "scores", "write_report", "report_table", "REPORT_FILE"]

REPORT_FILE = "adapt.json"


def before_after(start: Any, held: EventArrays, mc_passes: int, seed: int,
                 trusted: Mapping[str, Any]) -> Predictions:
    """Predictions of ``start`` (:class:`trainer.adapt.Start`) on the held-out events.
    Raises :class:`trainer.scorer.EvaluationError` when a bundle does not verify."""
    if start.bundle is not None:
        scorer = BundleScorer(start.bundle, trusted_keys=list(trusted.values()))
    else:
        scorer = TorchRunScorer(start.weights)
    return scorer.predict(held.x, held.log_peak, mc_passes=mc_passes, seed=seed)


def scores(preds: Predictions, held: EventArrays, classes: Sequence[str]) -> dict:
    """``evaluation_metrics`` of ``preds`` on ``held`` over ``classes`` (a starting model
    without the new classes simply never predicts them)."""
    return evaluation_metrics(held.y, preds.pred, classes, held.magnitude, preds.magnitude,
                              preds.uncertainty)


def _brief(m: dict, source: str) -> dict:
    mag = m.get("magnitude")
    return {"model": source, "macro_f1": m["macro_f1"], "accuracy": m["accuracy"], "f1": m["f1"],
            "support": m["support"],
            "magnitude": ({k: mag[k] for k in ("n", "hit_0_2", "hit_0_3", "mae")} if mag else None),
            "confusion": m.get("confusion")}


def report_table(rep: dict) -> str:
    """The before/after table ``microseis adapt`` prints."""
    b, a = rep["before"], rep["after"]
    ho = rep["held_out"]
    lines = [f"held-out part: {ho['events']} events ("
             + ", ".join(f"{c} {k}" for c, k in ho["counts"].items() if k) + ")",
             f"{'':<22}{'before':>8}{'after':>8}",
             f"{'macro-F1':<22}{b['macro_f1']:>8.3f}{a['macro_f1']:>8.3f}",
             f"{'accuracy':<22}{b['accuracy']:>8.3f}{a['accuracy']:>8.3f}"]
    for c in rep["classes"]:
        if ho["counts"].get(c):
            lines.append(f"{'F1 ' + c:<22}{b['f1'][c]:>8.3f}{a['f1'][c]:>8.3f}")
    if b["magnitude"] or a["magnitude"]:
        def hit(x):
            return f"{x['magnitude']['hit_0_3']:>8.3f}" if x["magnitude"] else f"{'-':>8}"
        n = (a["magnitude"] or b["magnitude"])["n"]
        lines.append(f"{f'magnitude ±0.3 (n={n})':<22}{hit(b)}{hit(a)}")
    lines.append(f"before: {b['model']}; after: {a['model']}")
    lines.append(f"wrote {rep['bundle']} ({rep['size'] / 1e6:.3f} MB, {rep['name']} {rep['version']}), "
                 f"float weights {rep['weights']}, report {rep['report']} in {rep['seconds']:.0f} s")
    return "\n".join(lines)


def write_report(report_dir: Path, *, held: EventArrays, classes: Sequence[str],
                 new_classes: Sequence[str], start: Any, before: Predictions, after: Predictions,
                 bundle: Path, built: dict, weights: Path, adapted_on: dict, train_events: int,
                 best_epoch: int, epochs_run: int, train_seconds: float, seconds: float) -> dict:
    """Write ``adapt.json`` and the plots into ``report_dir``; return the report dict."""
    from trainer.plots import plot_confusion, plot_per_class

    classes = list(classes)
    mb, ma = scores(before, held, classes), scores(after, held, classes)
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    for tag, m in (("before", mb), ("after", ma)):
        try:
            plot_confusion(report_dir / f"confusion_{tag}.png", np.asarray(m["confusion"]["matrix"]), classes,
                           title=f"held-out part, {tag} adaptation")
            plot_per_class(report_dir / f"per_class_{tag}.png", m, classes)
            plots += [f"confusion_{tag}.png", f"per_class_{tag}.png"]
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the bundle
            print(f"warning: {tag} plots not written: {exc}")
    par = built.get("parity") or {}
    int8 = (par.get("formats") or {}).get("onnx-int8") or {}
    manifest = built["manifest"]
    rep = {
        "bundle": str(bundle), "size": built["size"], "name": manifest["name"],
        "version": manifest["version"], "classes": classes, "new_classes": list(new_classes),
        "adapted_from": start.adapted_from, "adapted_on": adapted_on,
        "held_out": {"events": len(held), "counts": held.class_counts()},
        "train": {"events": train_events, "best_epoch": best_epoch, "epochs_run": epochs_run,
                  "seconds": round(train_seconds, 2)},
        "before": _brief(mb, f"{start.kind} {start.adapted_from['name']} "
                             + ("(int8, station inference)" if start.bundle is not None
                                else "(float, torch)")),
        "after": _brief(ma, f"{bundle.name} (int8, station inference)"),
        "parity": {"int8_top_class_agreement": int8.get("top_class_agreement"),
                   "int8_macro_f1_drop_points": int8.get("macro_f1_drop_points")},
        "weights": str(weights), "report": str(report_dir), "plots": plots,
        "seconds": round(seconds, 2),
    }
    (report_dir / REPORT_FILE).write_text(json.dumps(rep, indent=2, allow_nan=False, default=_plain) + "\n")
    return rep


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")
