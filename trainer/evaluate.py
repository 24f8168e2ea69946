"""Evaluate a model on a labeled dataset folder: ``metrics.json``, ``predictions.csv``, figures.

The model comes through a :class:`Scorer`, so the evaluation does not care whether it is a
training run (torch, :class:`TorchRunScorer`) or a signed model bundle with ONNX (or TFLite)
models. :func:`load_scorer` picks the scorer from the path:

* a directory holding ``model.pt`` (or the ``model.pt`` file itself) -> :class:`TorchRunScorer`;
* any other file -> a signed model bundle (:class:`trainer.bundle_scorer.BundleScorer`),
  verified and run by the station's own :class:`edge.model.inference.EventClassifier`; its MC
  passes are summarised by :func:`edge.model.predictions.predictions_from_samples`, as the torch
  scorer's are, so the uncertainty numbers mean the same for both.

Outputs in ``out_dir`` (see ``docs/evaluation.md``)::

    metrics.json      evaluation_metrics (docs/spec/cli.md) + model, data, skipped rows,
                      synthetic flags, uncertainty block, Grad-CAM note, list of figures
    predictions.csv   one row per event
    confusion.png  per_class.png  magnitude.png  uncertainty.png  curves.png  gradcam_<class>.png
"""
from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge.signal.dataset import DatasetError
from edge.signal.preprocess import WindowSpec
from trainer import plots as P
from trainer.bundle_scorer import BundleScorer
from trainer.data import dataset_description, load_dataset
from trainer.gradcam import gradcam, plot_gradcam
from trainer.metrics import evaluation_metrics
from trainer.plots import load_history, plot_curves
from trainer.predict_torch import Predictions, predict
from trainer.run import CURVES_FILE, HISTORY_FILE, MODEL_FILE, RunError, load_run
from trainer.scorer import EvaluationError, Scorer

log = logging.getLogger(__name__)

__all__ = ["EvaluationError", "Scorer", "TorchRunScorer", "load_scorer", "evaluate",
           "UNCERTAINTY_TARGET_RATIO", "METRICS_FILE", "PREDICTIONS_FILE"]

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
#: project target: misclassified events at least this many times as uncertain as correct ones
UNCERTAINTY_TARGET_RATIO = 2.0
#: at most this many skipped rows are listed one by one in metrics.json (all are counted)
MAX_LISTED_SKIPPED = 1000

UNCERTAINTY_DEFINITION = ("predictive entropy of the class probabilities averaged over the "
                          "MC-dropout passes, divided by log(number of classes): 0 = certain, "
                          "1 = uniform")


class TorchRunScorer:
    """A training run directory (:mod:`trainer.run`) scored with torch."""

    kind = "torch-run"

    def __init__(self, run_dir: str | Path, batch_size: int = 64) -> None:
        self.run_dir = Path(run_dir)
        try:
            self.model, self.info = load_run(self.run_dir)
        except RunError as exc:
            raise EvaluationError(str(exc)) from None
        try:
            self.window = WindowSpec.from_dict(self.info.get("window") or {})
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{self.run_dir}: bad window spec in run info: {exc}") from None
        classes = self.info.get("classes")
        if not classes:
            raise EvaluationError(f"{self.run_dir}: run info has no classes")
        self.classes = tuple(str(c) for c in classes)
        n_out = getattr(self.model.config, "n_classes", None)
        if n_out is not None and n_out != len(self.classes):
            raise EvaluationError(f"{self.run_dir}: model has {n_out} outputs but the run lists "
                                  f"{len(self.classes)} classes")
        self.source = str(self.run_dir)
        self.name = self.run_dir.resolve().name
        self.synthetic = bool(self.info.get("synthetic", False))
        best = self.info.get("best_epoch")
        self.best_epoch = int(best) if isinstance(best, (int, float)) else None
        self.batch_size = int(batch_size)
        self.has_magnitude = self.model.config.name != "spectrogram_cnn" and bool(
            getattr(self.model.config, "n_mag_bins", 0))

    def predict(self, x: np.ndarray, log_peak: np.ndarray, mc_passes: int = 20,
                seed: int = 0) -> Predictions:

        return predict(self.model, (x, log_peak), self.window.sampling_rate, mc_passes=mc_passes,
                       batch_size=self.batch_size, seed=seed)

    def gradcam(self, x: np.ndarray, log_peak: np.ndarray,
                target: np.ndarray | None = None) -> np.ndarray:

        return gradcam(self.model, x, log_peak, target)

    def history(self) -> list[dict] | None:
        return load_history(self.run_dir / HISTORY_FILE)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "path": str(self.run_dir.resolve()),
            "name": self.name,
            "architecture": self.model.config.name,
            "classes": list(self.classes),
            "window": self.window.to_dict(),
            "synthetic": self.synthetic,
            "created": self.info.get("created"),
            "software": self.info.get("software"),
            "data": (self.info.get("data") or {}).get("path"),
        }


def _load_bundle(path: Path, trusted_keys: Sequence[str] | None = None, runtime: str = "onnx",
                 batch_size: int = 64) -> Scorer:
    """Scorer for a signed model bundle (verified against ``trusted_keys``, default the
    shipped keys), run by the station's own inference code."""
    return BundleScorer(path, trusted_keys=trusted_keys, runtime=runtime, batch_size=batch_size)


def load_scorer(path: str | Path, batch_size: int = 64, trusted_keys: Sequence[str] | None = None,
                runtime: str = "onnx") -> Scorer:
    """The :class:`Scorer` for a run directory (or its ``model.pt``) or a model bundle file."""
    p = Path(path)
    if p.is_dir():
        return TorchRunScorer(p, batch_size=batch_size)
    if p.is_file():
        if p.name == MODEL_FILE:
            return TorchRunScorer(p.parent, batch_size=batch_size)
        return _load_bundle(p, trusted_keys, runtime, batch_size)
    raise EvaluationError(f"{p}: no such run directory or model bundle")


# ------------------------------------------------------------------------------ evaluation
def _row_error_dict(e: Any) -> dict:
    return {"line": int(e.line), "path": str(e.path), "message": str(e.message), "text": str(e)}


def _uncertainty_block(base: dict | None, preds: Predictions, correct: np.ndarray) -> dict:
    out = dict(base or {})
    out["definition"] = UNCERTAINTY_DEFINITION
    out["mc_passes"] = int(preds.mc_passes)
    out["n_correct"] = int(correct.sum())
    ratio = out.get("ratio_wrong_to_correct")
    out["target_ratio"] = UNCERTAINTY_TARGET_RATIO
    out["meets_target"] = None if ratio is None else bool(ratio >= UNCERTAINTY_TARGET_RATIO)
    mi = preds.mutual_information
    out["mutual_information_correct"] = float(mi[correct].mean()) if correct.any() else None
    out["mutual_information_wrong"] = float(mi[~correct].mean()) if (~correct).any() else None
    out["mean"] = float(preds.uncertainty.mean()) if len(preds) else None
    return out


def _write_predictions(path: Path, arrays: Any, preds: Predictions, classes: Sequence[str]) -> None:
    def fmt(v: float, digits: int = 6) -> str:
        return "" if not math.isfinite(v) else f"{v:.{digits}g}"

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "line", "label", "predicted", *[f"p_{c}" for c in classes],
                    "confidence", "uncertainty", "mutual_information", "magnitude",
                    "predicted_magnitude", "correct"])
        conf = preds.confidence
        for i in range(len(arrays)):
            y = int(arrays.y[i])
            w.writerow([arrays.paths[i], arrays.lines[i], classes[y] if y >= 0 else "",
                        classes[int(preds.pred[i])], *[fmt(float(p)) for p in preds.probs[i]],
                        fmt(float(conf[i])), fmt(float(preds.uncertainty[i])),
                        fmt(float(preds.mutual_information[i])),
                        fmt(float(arrays.magnitude[i]), 4), fmt(float(preds.magnitude[i]), 4),
                        "" if y < 0 else int(y == int(preds.pred[i]))])


def select_gradcam_events(y: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                          n_classes: int, total: int) -> dict[int, list[int]]:
    """At most ``total`` events, spread as evenly as possible over the true classes present
    (earlier classes get the remainder); within a class, alternately the most confident correct
    one and the most confidently misclassified one."""
    present = [c for c in range(n_classes) if np.any(y == c)]
    if total <= 0 or not present:
        return {}
    base, extra = divmod(int(total), len(present))
    out: dict[int, list[int]] = {}
    for k, c in enumerate(present):
        per = base + (1 if k < extra else 0)
        if per == 0:
            continue
        idx = np.flatnonzero(y == c)
        order = idx[np.argsort(-confidence[idx], kind="stable")]
        good = [int(i) for i in order if pred[i] == c]
        bad = [int(i) for i in order if pred[i] != c]
        chosen: list[int] = []
        while len(chosen) < per and (good or bad):
            if good:
                chosen.append(good.pop(0))
            if bad and len(chosen) < per:
                chosen.append(bad.pop(0))
        out[c] = chosen
    return out


def _safe_name(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)


def evaluate(model_source: str | Path | Scorer, data_dir: str | Path, out_dir: str | Path,
             mc_passes: int = 20, gradcam_events: int = 8, *, seed: int = 0, batch_size: int = 64,
             cache_dir: str | Path | None = None, use_cache: bool = True,
             progress: bool = False, trusted_keys: Sequence[str] | None = None,
             runtime: str = "onnx") -> dict:
    """Score ``model_source`` on the labeled folder ``data_dir``; write everything to ``out_dir``.

    Returns the ``metrics.json`` object. Rows that cannot be used (unknown labels, no label,
    unreadable files, ...) are listed with their ``labels.csv`` line and skipped. Raises
    :class:`EvaluationError` for a missing/unreadable model or data folder or when no row is
    usable.
    """
    t0 = time.perf_counter()
    scorer = (model_source if isinstance(model_source, Scorer)
              else load_scorer(model_source, batch_size, trusted_keys, runtime))
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EvaluationError(f"{data_dir}: no such data directory")
    try:
        arrays, errors = load_dataset(data_dir, scorer.window, scorer.classes, cache_dir=cache_dir,
                                      use_cache=use_cache, require_labels=True, progress=progress)
    except DatasetError as exc:
        raise EvaluationError(str(exc)) from None
    for e in errors:
        log.warning("skipped: %s", e)
    if len(arrays) == 0:
        first = f"; first: {errors[0]}" if errors else ""
        raise EvaluationError(f"{data_dir}: no usable rows ({len(errors)} skipped{first})")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"cannot create {out}: {exc}") from None

    classes = tuple(scorer.classes)
    preds = scorer.predict(arrays.x, arrays.log_peak, mc_passes=mc_passes, seed=seed)
    correct = preds.pred == arrays.y
    counts_only = scorer.has_magnitude and arrays.units != "m/s"
    if counts_only:  # the learned magnitude reads a peak in m/s: never a number from counts
        preds.magnitude = np.full(len(arrays), np.nan)
    metrics = evaluation_metrics(arrays.y, preds.pred, classes, arrays.magnitude, preds.magnitude,
                                 preds.uncertainty)
    metrics["uncertainty"] = _uncertainty_block(metrics.get("uncertainty"), preds, correct)
    notes: list[str] = []
    if not scorer.has_magnitude:
        notes.append("the model has no magnitude head: no magnitude scores")
    elif counts_only:
        notes.append("no stations.xml in the data (windows in counts): the learned magnitude needs "
                     "m/s, left empty and not scored")
    elif "magnitude" not in metrics:
        notes.append("no earthquake with a known magnitude in the data: no magnitude scores")

    data_desc = dataset_description(data_dir)
    skipped = [_row_error_dict(e) for e in errors]
    metrics["model"] = scorer.describe()
    metrics["data"] = {
        "path": str(data_dir.resolve()),
        "n_rows": len(arrays) + len(errors),
        "n_events": len(arrays),
        "n_skipped": len(errors),
        "skipped": skipped[:MAX_LISTED_SKIPPED],
        "class_counts": arrays.class_counts(),
        "units": arrays.units,
        "synthetic": bool(data_desc.get("synthetic", False)),
    }
    metrics["synthetic"] = {"model": scorer.synthetic, "data": metrics["data"]["synthetic"]}
    metrics["mc_passes"] = int(preds.mc_passes)
    metrics["seed"] = int(seed)

    _write_predictions(out / PREDICTIONS_FILE, arrays, preds, classes)
    plots: dict[str, str] = {}

    def attempt(name: str, fn, *args, **kw) -> None:
        try:
            p = fn(*args, **kw)
        except Exception as exc:  # a figure must never cost the metrics
            log.warning("figure %s failed: %s", name, exc)
            notes.append(f"figure {name} failed: {exc}")
            return
        if p is not None:
            plots[name] = Path(p).name


    attempt("confusion", P.plot_confusion, out / "confusion.png",
            np.asarray(metrics["confusion"]["matrix"]), classes,
            title=f"{scorer.name} on {data_dir.name} (macro-F1 {metrics['macro_f1']:.3f})")
    attempt("per_class", P.plot_per_class, out / "per_class.png", metrics, classes)
    if "magnitude" in metrics:
        eq = (arrays.y == classes.index("earthquake")) if "earthquake" in classes else np.ones(len(arrays), bool)
        attempt("magnitude", P.plot_magnitude, out / "magnitude.png",
                np.where(eq, arrays.magnitude, np.nan), preds.magnitude, metrics["magnitude"])
    attempt("uncertainty", P.plot_uncertainty, out / "uncertainty.png", preds.uncertainty, correct,
            metrics["uncertainty"], preds.mc_passes)
    history = None
    try:
        history = scorer.history()
    except Exception as exc:
        notes.append(f"training history unreadable: {exc}")
    if history:
        best_epoch = getattr(scorer, "best_epoch", None)
        attempt("curves", plot_curves, out / "curves.png", history, best_epoch,
                f"training curves of {scorer.name}")
    if "curves" not in plots and getattr(scorer, "run_dir", None) is not None:

        src = Path(scorer.run_dir) / CURVES_FILE
        if src.is_file():
            shutil.copyfile(src, out / CURVES_FILE)
            plots["curves"] = CURVES_FILE

    metrics["gradcam"] = _gradcam_figures(scorer, arrays, preds, classes, gradcam_events, out,
                                          plots, notes)
    metrics["plots"] = plots
    metrics["predictions"] = PREDICTIONS_FILE
    metrics["notes"] = notes
    metrics["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    metrics["elapsed_s"] = round(time.perf_counter() - t0, 3)
    metrics = _json_clean(metrics)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return metrics


def _json_clean(v: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists (strict JSON)."""
    if isinstance(v, dict):
        return {str(k): _json_clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _gradcam_figures(scorer: Scorer, arrays: Any, preds: Predictions, classes: Sequence[str],
                     total: int, out: Path, plots: dict, notes: list) -> dict:

    if total <= 0:
        return {"available": None, "reason": "not requested (--gradcam 0)", "events": []}
    chosen = select_gradcam_events(arrays.y, preds.pred, preds.confidence, len(classes), total)
    idx = [i for c in sorted(chosen) for i in chosen[c]]
    if not idx:
        return {"available": None, "reason": "no events", "events": []}
    try:
        cams = scorer.gradcam(arrays.x[idx], arrays.log_peak[idx])
    except ValueError as exc:  # GradCamUnsupported and friends
        notes.append(f"Grad-CAM skipped: {exc}")
        return {"available": False, "reason": str(exc), "events": []}
    except Exception as exc:
        log.warning("Grad-CAM failed: %s", exc)
        notes.append(f"Grad-CAM failed: {exc}")
        return {"available": False, "reason": f"failed: {exc}", "events": []}
    cam_of = {i: cams[k] for k, i in enumerate(idx)}
    events_out = []
    w = scorer.window
    for c in sorted(chosen):
        evs = []
        for i in chosen[c]:
            p = int(preds.pred[i])
            title = (f"{arrays.paths[i]} (line {arrays.lines[i]}): true {classes[c]}, predicted "
                     f"{classes[p]} (p={preds.probs[i, p]:.2f}, uncertainty "
                     f"{preds.uncertainty[i]:.2f})")
            evs.append({"x": arrays.x[i], "cam": cam_of[i], "title": title})
            peak_t = float(np.argmax(cam_of[i]) / w.sampling_rate - w.pre_s)
            events_out.append({"path": arrays.paths[i], "line": int(arrays.lines[i]),
                               "label": classes[c], "predicted": classes[p],
                               "cam_peak_s": round(peak_t, 3)})
        name = f"gradcam_{_safe_name(classes[c])}"
        try:
            plot_gradcam(out / f"{name}.png", evs, w.sampling_rate, w.pre_s, w.components,
                         suptitle=f"Grad-CAM of the predicted class — true class {classes[c]}")
            plots[name] = f"{name}.png"
        except Exception as exc:
            log.warning("figure %s failed: %s", name, exc)
            notes.append(f"figure {name} failed: {exc}")
    return {"available": True, "target": "predicted class",
            "method": "Grad-CAM on last_conv, linear upsampling, min-max normalised",
            "events": events_out}
