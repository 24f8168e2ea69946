"""``microseis baselines``: classic feature baselines (Bossea PCA + k-means, random forest,
gradient boosting) and a magnitude regression, trained on one dataset folder and scored on
another. See docs/baselines.md. Light module: numpy/sklearn/obspy load only when it runs.

Writes into ``--out``:

* ``baselines.json`` — datasets (description, class counts, skipped rows), settings and
  ``results`` = :func:`trainer.baselines.run_baselines` (``metrics.json`` objects per method
  plus ``magnitude``);
* ``baselines.txt`` — the table printed on stdout;
* ``baselines.png`` — per-class F1 (and macro-F1) per method, grouped bars;
* ``pca.png`` — first two principal components of the transformed features, training and
  test events, coloured by true class.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli import CommandError

HELP = "classic feature baselines (PCA+k-means, random forest, gradient boosting, ML regression)"

JSON_FILE = "baselines.json"
TABLE_FILE = "baselines.txt"
BARS_FILE = "baselines.png"
PCA_FILE = "pca.png"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "baselines", help=HELP,
        description=HELP + ", on Bossea's eight features. Trains on --train, scores on --test "
        "with the metrics of `microseis evaluate`.",
    )
    p.add_argument("--train", required=True, metavar="DIR", help="labeled training dataset folder")
    p.add_argument("--test", required=True, metavar="DIR", help="labeled test dataset folder")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created; baselines.json/.txt/.png and pca.png are overwritten)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    p.add_argument("--no-cache", action="store_true", help="recompute the features (no .npz cache)")
    p.add_argument("--json", action="store_true",
                   help="print baselines.json as one JSON object (last stdout line) instead of the table")
    p.set_defaults(func=run)
    return p


def _check_folder(kind: str, folder: str) -> Path:
    path = Path(folder)
    if not path.exists():
        raise CommandError(f"--{kind} {folder}: no such folder")
    if not path.is_dir():
        raise CommandError(f"--{kind} {folder}: not a folder")
    if not (path / "labels.csv").is_file():
        raise CommandError(f"--{kind} {folder}: no labels.csv in the folder (see docs/spec/dataset.md)")
    return path


def _load(kind: str, folder: Path, use_cache: bool):
    from edge.signal.dataset import DatasetError
    from trainer.data import load_dataset

    try:
        arrays, errors = load_dataset(folder, use_cache=use_cache, progress=sys.stderr.isatty())
    except DatasetError as exc:
        raise CommandError(f"--{kind} {folder}: {exc}") from None
    except OSError as exc:
        raise CommandError(f"--{kind} {folder}: cannot read: {exc}") from None
    if errors:
        print(f"baselines: {kind}: skipped {len(errors)} row(s), first: {errors[0]}", file=sys.stderr)
    if int((arrays.y >= 0).sum()) == 0:
        raise CommandError(f"--{kind} {folder}: no usable labelled events "
                           f"({len(errors)} row(s) skipped)")
    return arrays, errors


def format_table(results: dict, classes) -> str:
    """Method, accuracy, macro-F1 and per-class F1; then the magnitude hit rates."""
    from trainer.baselines import CLASSIFIERS

    cls = list(classes)
    width = max(len(m) for m in CLASSIFIERS) + 2
    head = f"{'method':<{width}}{'accuracy':>9}{'macro-F1':>10}" + "".join(f"{c[:10]:>11}" for c in cls)
    lines = ["classification (test set; F1 per class)", head, "-" * len(head)]
    for name, m in results.items():
        if name == "magnitude":
            continue
        lines.append(f"{name:<{width}}{m['accuracy']:>9.3f}{m['macro_f1']:>10.3f}"
                     + "".join(f"{m['f1'][c]:>11.3f}" for c in cls))
    mag = results.get("magnitude")
    if mag:
        lines += ["", f"magnitude of earthquakes (train {mag.get('n_train', 0)}, "
                      f"test {mag.get('n_test', 0)}; inputs: {mag['inputs']})"]
        if mag.get("skipped"):
            lines.append(f"  skipped: {mag['skipped']}")
        else:
            lines.append(f"{'method':<{width}}{'±0.2':>9}{'±0.3':>10}{'MAE':>11}{'bias':>11}")
            for name in ("linear", "gradient_boosting"):
                r = mag.get(name)
                if r:
                    lines.append(f"{name:<{width}}{r['hit_0_2']:>9.3f}{r['hit_0_3']:>10.3f}"
                                 f"{r['mae']:>11.3f}{r['bias']:>+11.3f}")
    return "\n".join(lines)


def plot_f1(results: dict, classes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = [m for m in results if m != "magnitude"]
    groups = list(classes) + ["macro-F1"]
    fig, ax = plt.subplots(figsize=(1.9 * len(groups) + 2, 4.2))
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(groups))
    for i, m in enumerate(methods):
        vals = [results[m]["f1"][c] for c in classes] + [results[m]["macro_f1"]]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, vals, width, label=m)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (test)")
    ax.set_title("Feature baselines: F1 per class")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(methods), 3), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pca(train, test, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainer.baselines import pca_projection

    z_tr, z_te, ratio = pca_projection(train, test)
    panels = [("train", train, z_tr)] + ([("test", test, z_te)] if z_te is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (name, a, z) in zip(axes[0], panels):
        for k, c in enumerate(a.classes):
            sel = a.y == k
            if z.shape[1] > 1:
                ax.scatter(z[sel, 0], z[sel, 1], s=8, alpha=0.6, label=f"{c} ({int(sel.sum())})")
            else:
                ax.scatter(z[sel, 0], 0 * z[sel, 0], s=8, alpha=0.6, label=f"{c} ({int(sel.sum())})")
        ax.set_title(f"{name} events")
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
        if len(ratio) > 1:
            ax.set_ylabel(f"PC2 ({ratio[1]:.0%})")
        ax.legend(fontsize=8, markerscale=2)
        ax.grid(alpha=0.3)
    fig.suptitle("Bossea features (log + standardised with training statistics), PCA of training set")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    train_dir = _check_folder("train", args.train)
    test_dir = _check_folder("test", args.test)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {args.out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out {args.out}: cannot create: {exc}") from None

    from edge.signal.features import BOSSEA_FEATURES
    from trainer.baselines import LOG_FEATURES, PCA_VARIANCE, run_baselines
    from trainer.data import dataset_description

    train, train_errors = _load("train", train_dir, not args.no_cache)
    test, test_errors = _load("test", test_dir, not args.no_cache)
    try:
        results = run_baselines(train, test, seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    def describe(folder, a, errors):
        d = dataset_description(folder)
        d.pop("generator", None)
        return {**d, "n_events": int((a.y >= 0).sum()), "class_counts": a.class_counts(),
                "units": a.units, "skipped_rows": [str(e) for e in errors]}

    report = {
        "train": describe(train_dir, train, train_errors),
        "test": describe(test_dir, test, test_errors),
        "synthetic": bool(dataset_description(train_dir)["synthetic"]
                          or dataset_description(test_dir)["synthetic"]),
        "seed": args.seed,
        "classes": list(train.classes),
        "features": list(BOSSEA_FEATURES),
        "feature_transform": {"log10": list(LOG_FEATURES), "kurtosis": "log10(kurtosis + 3)",
                              "standardise": "mean/std of the training events"},
        "pca_variance": PCA_VARIANCE,
        "results": results,
    }
    try:
        (out / JSON_FILE).write_text(json.dumps(report, indent=2) + "\n")
        table = format_table(results, train.classes)
        (out / TABLE_FILE).write_text(table + "\n")
        plot_f1(results, train.classes, out / BARS_FILE)
        plot_pca(train.subset(train.y >= 0), test.subset(test.y >= 0), out / PCA_FILE)
    except OSError as exc:
        raise CommandError(f"--out {args.out}: cannot write: {exc}") from None
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    else:
        print(table)
        print(f"\nwrote {out / JSON_FILE}, {out / TABLE_FILE}, {out / BARS_FILE}, {out / PCA_FILE}")
    return 0
