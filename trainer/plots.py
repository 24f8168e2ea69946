"""Evaluation figures (matplotlib, Agg backend): confusion matrix, per-class scores, magnitude
scatter, uncertainty histograms and training curves. Each function writes one PNG and returns
its path; none needs a display.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_confusion", "plot_per_class", "plot_magnitude", "plot_uncertainty",
           "plot_history", "plot_curves", "load_history"]

log = logging.getLogger(__name__)

_DPI = 100


def _plt():
    # deferred: matplotlib is heavy, and the Agg backend must be chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(path: str | Path, matrix: np.ndarray, classes: Sequence[str],
                   title: str = "confusion matrix") -> Path:
    """Counts and row-normalised (recall) matrices side by side; rows true, columns predicted."""
    plt = _plt()
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(classes)
    size = max(4.0, 0.9 * k + 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, data, sub, fmt in ((axes[0], cm, "counts", "{:.0f}"),
                               (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        vmax = data.max() if data.size and data.max() > 0 else 1.0
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=vmax)
        for i in range(k):
            for j in range(k):
                v = data[i, j]
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=10,
                        color="white" if v > 0.55 * vmax else "black")
        ax.set_xticks(range(k), classes, rotation=30, ha="right")
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(sub)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return Path(path)


def plot_per_class(path: str | Path, metrics: Mapping[str, Any], classes: Sequence[str]) -> Path:
    """Grouped bars of precision, recall and F1 per class, with the macro-F1 as a line."""
    plt = _plt()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * k + 2), 4.2))
    width = 0.26
    xs = np.arange(k)
    for i, (key, color) in enumerate((("precision", "#4c72b0"), ("recall", "#dd8452"),
                                      ("f1", "#55a868"))):
        vals = [float(metrics.get(key, {}).get(c, 0.0)) for c in classes]
        bars = ax.bar(xs + (i - 1) * width, vals, width, label=key, color=color)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center",
                    va="bottom", fontsize=7)
    macro = metrics.get("macro_f1")
    if macro is not None:
        ax.axhline(macro, color="0.3", ls="--", lw=1, label=f"macro-F1 {macro:.3f}")
    support = metrics.get("support", {})
    ax.set_xticks(xs, [f"{c}\n(n={support.get(c, '?')})" for c in classes])
    ax.set_ylim(0, 1.25)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.set_title("per-class precision / recall / F1")
    ax.legend(loc="upper center", fontsize=8, ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return Path(path)


def plot_magnitude(path: str | Path, m_true: np.ndarray, m_pred: np.ndarray,
                   stats: Mapping[str, Any] | None = None) -> Path:
    """Predicted vs true magnitude with the 1:1 line and ±0.2 / ±0.3 bands; hit rates in the
    title. Only finite pairs are drawn."""
    plt = _plt()
    t = np.asarray(m_true, float)
    p = np.asarray(m_pred, float)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    lo = math.floor(min(0.0, *(t.tolist() or [0.0]), *(p.tolist() or [0.0])) * 2) / 2 - 0.1
    hi = math.ceil(max(3.0, *(t.tolist() or [3.0]), *(p.tolist() or [3.0])) * 2) / 2 + 0.1
    fig, ax = plt.subplots(figsize=(5.6, 5.4))
    line = np.array([lo, hi])
    ax.plot(line, line, color="k", lw=1, label="1:1")
    ax.fill_between(line, line - 0.3, line + 0.3, color="#dd8452", alpha=0.15, lw=0)
    for d, ls, lab in ((0.2, "--", "±0.2"), (0.3, ":", "±0.3")):
        ax.plot(line, line + d, color="#c44e52", ls=ls, lw=1, label=lab)
        ax.plot(line, line - d, color="#c44e52", ls=ls, lw=1)
    if t.size:
        hit = np.abs(p - t) <= 0.3 + 1e-6
        ax.scatter(t[hit], p[hit], s=14, color="#4c72b0", alpha=0.75, label="within ±0.3")
        ax.scatter(t[~hit], p[~hit], s=14, color="#c44e52", marker="x", alpha=0.85,
                   label="outside ±0.3")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("true ML")
    ax.set_ylabel("predicted ML (centre of the most probable bin)")
    if stats:
        ax.set_title(f"earthquakes, n={stats.get('n', t.size)}: hit±0.2 {stats['hit_0_2']:.2f}, "
                     f"hit±0.3 {stats['hit_0_3']:.2f}\nMAE {stats['mae']:.2f}, "
                     f"bias {stats.get('bias', float('nan')):+.2f}", fontsize=10)
    else:
        ax.set_title(f"earthquakes, n={t.size}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return Path(path)


def plot_uncertainty(path: str | Path, uncertainty: np.ndarray, correct: np.ndarray,
                     stats: Mapping[str, Any] | None = None, mc_passes: int | None = None) -> Path:
    """Histograms of the normalised predictive entropy for correct and misclassified events."""
    plt = _plt()
    u = np.asarray(uncertainty, float)
    c = np.asarray(correct, bool)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bins = np.linspace(0, 1, 26)
    for sel, lab, color in ((c, "correct", "#55a868"), (~c, "misclassified", "#c44e52")):
        if sel.any():
            ax.hist(u[sel], bins=bins, density=True, alpha=0.45, color=color, edgecolor=color,
                    linewidth=1.2, label=f"{lab} (n={int(sel.sum())}, mean {u[sel].mean():.3f})")
            ax.axvline(u[sel].mean(), color=color, lw=1.5, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("uncertainty = entropy of mean class probabilities / log(C)")
    ax.set_ylabel("density")
    ratio = (stats or {}).get("ratio_wrong_to_correct")
    title = "uncertainty: correct vs misclassified"
    if mc_passes:
        title += f" ({mc_passes} MC-dropout passes)"
    if ratio is not None:
        title += f"\nratio wrong/correct {ratio:.2f} (target ≥ 2)"
    elif not (~c).any():
        title += "\nno misclassified events"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return Path(path)


def load_history(path: str | Path) -> list[dict[str, Any]] | None:
    """Epoch records of a run's ``history.json`` (a list of objects, or an object holding such a
    list under ``epochs``/``history``); None when missing or unreadable."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict):
        for key in ("epochs", "history", "records"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        return None
    recs = [r for r in data if isinstance(r, dict)]
    return recs or None


def _numeric_series(history: Sequence[Mapping[str, Any]], prefix: str = "") -> dict[str, list[float]]:
    keys: list[str] = []
    for rec in history:
        for k, v in rec.items():
            if isinstance(v, Mapping):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    out: dict[str, list[float]] = {}
    for k in keys:
        out[prefix + k] = [float(r[k]) if isinstance(r.get(k), (int, float)) else np.nan for r in history]
    # one level of nesting (e.g. {"val": {"macro_f1": ...}})
    nested = sorted({k for r in history for k, v in r.items() if isinstance(v, Mapping)})
    for k in nested:
        sub = [r.get(k) if isinstance(r.get(k), Mapping) else {} for r in history]
        out.update(_numeric_series(sub, prefix=f"{prefix}{k}."))
    return out


def plot_history(path: str | Path, history: Sequence[Mapping[str, Any]], title: str = "training curves",
                 best_epoch: int | None = None) -> Path | None:
    """Re-plot a run's epoch history: losses, scores (F1 / accuracy / hit rates) and the
    learning rate, each in its own panel, against the epoch. Records with a ``stage`` field
    (e.g. ``pretrain`` / ``train``) are drawn as separate curves per stage. Returns None when
    there is nothing numeric to plot."""
    stages: list[str | None] = []
    for rec in history:
        st = rec.get("stage")
        st = None if st is None else str(st)
        if st not in stages:
            stages.append(st)
    groups: dict[str, dict[str, tuple[list[float], list[float]]]] = {
        "loss": {}, "score": {}, "learning rate": {}}
    for st in stages:
        recs = [r for r in history if (None if r.get("stage") is None else str(r.get("stage"))) == st]
        series = _numeric_series(recs)
        epoch = series.pop("epoch", None) or list(range(1, len(recs) + 1))
        prefix = f"{st}: " if st is not None and len(stages) > 1 else ""
        for k, v in series.items():
            low = k.lower()
            if "loss" in low:
                g = "loss"
            elif low in ("lr", "lr_backbone") or low.endswith(".lr") or "learning_rate" in low:
                g = "learning rate"
            elif any(s in low for s in ("f1", "acc", "hit", "recall", "precision", "mae", "ratio")):
                g = "score"
            else:
                continue
            if any(np.isfinite(x) for x in v):
                groups[g][prefix + k] = (epoch[:len(v)], v)
    panels = [(name, g) for name, g in groups.items() if g]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
    for ax, (name, g) in zip(axes[0], panels):
        for k, (ep, v) in g.items():
            ax.plot(ep, v, marker="o", ms=2.5, lw=1.2, label=k)
        if best_epoch is not None and name != "learning rate":
            ax.axvline(best_epoch, color="k", lw=0.8, ls="--", label=f"kept (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        if name == "learning rate":
            vals = [x for _, v in g.values() for x in v if np.isfinite(x)]
            if vals and min(vals) > 0:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return Path(path)


def plot_curves(path: str | Path, history: Sequence[Mapping[str, Any]], best_epoch: int | None = None,
                title: str = "training curves") -> Path | None:
    """``curves.png`` of a run, for ``microseis train`` and ``evaluate`` alike: the training
    figure (stage-1 MSE, losses, validation scores with the kept epoch, learning rate) when the
    history holds stage-2 (``"train"``) records, else :func:`plot_history`. Returns the path,
    or None when there is nothing to plot."""
    if any(r.get("stage") == "train" for r in history):
        try:
            _plot_training_figure(history, path, best_epoch, title=title)
            if Path(path).is_file():
                return Path(path)
        except Exception as exc:  # noqa: BLE001 - an unusual history: the generic figure
            log.info("training figure could not draw the history (%s); generic plot", exc)
    return plot_history(path, history, title=title, best_epoch=best_epoch)


def _plot_training_figure(history: Sequence[dict], path: str | Path, best_epoch: int | None = None,
                          title: str | None = None) -> None:
    """Write the curves of ``history`` (``history.json`` entries) to ``path`` (PNG).

    Panels: stage 1 attribute MSE (only with pre-training), stage 2 losses (train and
    validation, class and magnitude), validation macro-F1 and magnitude hit rates with the
    kept epoch marked, and the learning rate.
    """
    # deferred: matplotlib is heavy and only needed when a figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pre = [h for h in history if h.get("stage") == "pretrain"]
    main = [h for h in history if h.get("stage") == "train"]
    n_panels = 3 + bool(pre)
    fig = Figure(figsize=(4.2 * n_panels, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels)
    i = 0

    def series(rows, key):
        pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        return ([p[0] for p in pts], [p[1] for p in pts])

    if pre:
        ax = axes[i]
        i += 1
        ax.plot(*series(pre, "loss"), "o-", ms=3, label="train")
        ax.plot(*series(pre, "val_loss"), "s--", ms=3, label="validation")
        ax.set(title="stage 1: attribute regression", xlabel="epoch", ylabel="MSE (z-scores)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)

    ax = axes[i]
    i += 1
    ax.plot(*series(main, "loss"), "o-", ms=3, color="C0", label="train total")
    ax.plot(*series(main, "loss_class"), ":", color="C0", label="train class")
    ax.plot(*series(main, "val_loss"), "s-", ms=3, color="C1", label="val total")
    ax.plot(*series(main, "val_loss_class"), ":", color="C1", label="val class")
    if any(r.get("loss_mag") is not None for r in main):
        ax.plot(*series(main, "loss_mag"), "--", color="C0", label="train magnitude")
        ax.plot(*series(main, "val_loss_mag"), "--", color="C1", label="val magnitude")
    ax.set(title="training: loss", xlabel="epoch", ylabel="cross-entropy")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)

    ax = axes[i]
    i += 1
    ax.plot(*series(main, "val_macro_f1"), "o-", ms=3, label="val macro-F1")
    if any(r.get("val_hit_0_3") is not None for r in main):
        ax.plot(*series(main, "val_hit_0_3"), "s-", ms=3, label="val mag hit ±0.3")
        ax.plot(*series(main, "val_hit_0_2"), "^--", ms=3, label="val mag hit ±0.2")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="k", lw=0.8, ls="--", label=f"kept (epoch {best_epoch})")
    ax.set(title="validation", xlabel="epoch", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[i]
    if pre:
        ax.plot(*series(pre, "lr"), "-", label="stage 1")
    ax.plot(*series(main, "lr"), "-", label="stage 2" if pre else "heads")
    if any(r.get("lr_backbone") is not None for r in main):
        ax.plot(*series(main, "lr_backbone"), "--", label="backbone")
    ax.set(title="learning rate (last step of each epoch)", xlabel="epoch", yscale="log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(Path(path), dpi=110)
