"""``curves.png`` of a training run: losses and validation scores per epoch (both stages)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_training_curves"]


def plot_training_curves(history: Sequence[dict], path: str | Path, best_epoch: int | None = None,
                         title: str | None = None) -> None:
    """Write the curves of ``history`` (``history.json`` entries) to ``path`` (PNG).

    Panels: stage 1 attribute MSE (only with pre-training), stage 2 losses (train and
    validation, class and magnitude), validation macro-F1 and magnitude hit rates with the
    kept epoch marked, and the learning rate.
    """
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
