"""Scores of a model on labeled events: the ``metrics.json`` of ``docs/spec/cli.md``.

numpy only, so baselines, training and evaluation score the same way.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: a magnitude "hit" within ±0.3 allows for the binary representation of 0.3
_HIT_EPS = 1e-6


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; rows are true classes, columns predicted."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           classes: Sequence[str]) -> dict:
    """macro-F1, accuracy, per-class precision/recall/F1/support and the confusion matrix.

    A class with no true and no predicted events gets F1 = 0 and is left out of the macro
    average only when it has no support (so an empty class does not drag the average down).
    """
    n = len(classes)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n),
                   where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": {c: float(precision[i]) for i, c in enumerate(classes)},
        "recall": {c: float(recall[i]) for i, c in enumerate(classes)},
        "f1": {c: float(f1[i]) for i, c in enumerate(classes)},
        "support": {c: int(support[i]) for i, c in enumerate(classes)},
        "confusion": {"classes": list(classes), "matrix": cm.tolist()},
    }


def magnitude_metrics(m_true: np.ndarray, m_pred: np.ndarray) -> dict | None:
    """Hit rates within ±0.2 and ±0.3, MAE and bias over events with a known magnitude."""
    m_true = np.asarray(m_true, float)
    m_pred = np.asarray(m_pred, float)
    ok = np.isfinite(m_true) & np.isfinite(m_pred)
    if not ok.any():
        return None
    err = m_pred[ok] - m_true[ok]
    return {
        "n": int(ok.sum()),
        "hit_0_2": float(np.mean(np.abs(err) <= 0.2 + _HIT_EPS)),
        "hit_0_3": float(np.mean(np.abs(err) <= 0.3 + _HIT_EPS)),
        "mae": float(np.mean(np.abs(err))),
        "bias": float(np.mean(err)),
    }


def uncertainty_metrics(correct: np.ndarray, uncertainty: np.ndarray) -> dict | None:
    """Mean uncertainty of correct and misclassified events and their ratio."""
    correct = np.asarray(correct, bool)
    u = np.asarray(uncertainty, float)
    if u.size == 0:
        return None
    out = {"mean_correct": float(u[correct].mean()) if correct.any() else None,
           "mean_wrong": float(u[~correct].mean()) if (~correct).any() else None,
           "n_wrong": int((~correct).sum())}
    if out["mean_correct"] and out["mean_wrong"] is not None:
        out["ratio_wrong_to_correct"] = out["mean_wrong"] / out["mean_correct"]
    else:
        out["ratio_wrong_to_correct"] = None
    return out


def evaluation_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
                       m_true: np.ndarray | None = None, m_pred: np.ndarray | None = None,
                       uncertainty: np.ndarray | None = None) -> dict:
    """The whole ``metrics.json`` object.

    Magnitude is scored on events whose true class is ``earthquake`` (when that class
    exists) and whose magnitude is known.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    out = classification_metrics(y_true, y_pred, classes)
    if m_true is not None and m_pred is not None:
        m_true = np.asarray(m_true, float).copy()
        if "earthquake" in classes:
            m_true[y_true != list(classes).index("earthquake")] = np.nan
        mag = magnitude_metrics(m_true, m_pred)
        if mag is not None:
            out["magnitude"] = mag
    if uncertainty is not None:
        out["uncertainty"] = uncertainty_metrics(y_true == y_pred, uncertainty)
    return out


__all__ = ["metrics_table", "format_value", "confusion_matrix", "classification_metrics", "magnitude_metrics",
           "uncertainty_metrics", "evaluation_metrics"]


def format_value(v: float | None, digits: int = 3) -> str:
    """A metric for a table: ``digits`` decimals, ``-`` for None or NaN."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def metrics_table(m: dict) -> list[str]:
    """The per-class table (precision, recall, F1, events) and the magnitude line of
    :func:`evaluation_metrics` output, as printed by ``microseis train`` and ``evaluate``."""
    lines = [f"{'class':<12}{'precision':>10}{'recall':>8}{'F1':>7}{'n':>6}"]
    for c in m["f1"]:
        lines.append(f"{c:<12}{format_value(m['precision'].get(c)):>10}{format_value(m['recall'].get(c)):>8}"
                     f"{format_value(m['f1'].get(c)):>7}{m.get('support', {}).get(c, 0):>6}")
    mag = m.get("magnitude")
    if mag:
        lines.append(f"magnitude (n={mag['n']}): hit±0.2 {format_value(mag['hit_0_2'])}, "
                     f"hit±0.3 {format_value(mag['hit_0_3'])}, MAE {format_value(mag['mae'])}, bias {mag['bias']:+.3f}")
    else:
        lines.append("magnitude: not scored")
    return lines
