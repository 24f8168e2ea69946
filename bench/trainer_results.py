#!/usr/bin/env python3
"""The trainer benchmark: every experiment behind docs/results.md, by the project's own commands.

Generates the synthetic benchmark if missing (``microseis synth``), trains each model
(``microseis train``), scores it on the held-out test set generated with another seed
(``microseis evaluate``), runs the feature baselines (``microseis baselines``), and prints a
table and, as the last line, one JSON object with every figure.

    python bench/trainer_results.py                      # everything (about an hour on 2 cores)
    python bench/trainer_results.py --only default       # one experiment
    python bench/trainer_results.py --quick              # plumbing check: 2 epochs, small data
    python bench/trainer_results.py --seeds 0 1 2 3 4 --only n262_scratch n262_transfer
                                                         # few-label runs over seeds: mean +- sd

Runs are kept in ``--out`` (default ``runs/bench``): an experiment whose run and evaluation
exist is not trained again unless ``--force``. With ``--seeds`` each few-label experiment is
run once per seed (the seed draws the 262 labeled events, the validation split and the
initial weights) in ``OUT/seedS/NAME``; the transfer source is trained once (``OUT/source``)
and shared; the table gives mean +- sd over the seeds and ``--plot`` draws each seed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edge.signal.labels import CLASSES

#: name, events, seed, extra synth options
DATASETS = {
    "bench-train": (2000, 1, ["--sites", "fixed", "--balance", "bossea"]),
    "bench-test": (1000, 2, ["--sites", "fixed", "--balance", "bossea"]),
    "bench-mag": (2000, 3, ["--sites", "fixed", "--balance", "earthquake=1"]),
    "bench-source": (3000, 4, ["--sites", "fixed", "--balance", "equal", "--season-shift", "-15"]),
    # site variety (docs/synthetic.md "Event windows at drawn sites"): 120 and 60 training
    # sites; the other-site split (held-out rate, sensor, noise slopes) is only ever tested on
    "site-train": (3000, 11, ["--sites", "train", "--balance", "equal"]),
    "site-mag": (1500, 13, ["--sites", "train", "--balance", "earthquake=1"]),
    "site-mag2": (1500, 14, ["--sites", "train", "--balance", "earthquake=1"]),
    "other-test": (600, 7, ["--sites", "other", "--balance", "equal"]),
}
#: extra test sets an experiment is also evaluated on (zero-shot)
EXTRA_TESTS = {"default": ["other-test"]}

#: experiment -> (train options, what it reproduces); {data} is the data folder
EXPERIMENTS: dict[str, tuple[list[str], str]] = {
    "default": (["--data", "{data}/bench-train", "--data", "{data}/site-train", "--data", "{data}/site-mag",
                 "--data", "{data}/site-mag2", "--model", "resnet18_cbam", "--epochs", "30", "--patience", "8"],
                "1D ResNet18-CBAM, the shipped model: classes + magnitude, our site + 240 drawn sites"),
    "cnn1d": (["--data", "{data}/bench-train", "--data", "{data}/bench-mag", "--model", "cnn1d"],
              "compact 1D-CNN"),
    "spectrogram_cnn": (["--data", "{data}/bench-train", "--model", "spectrogram_cnn", "--balance", "smote"],
                        "Bossea's spectrogram CNN with SMOTE"),
    "n262_scratch": (["--data", "{data}/bench-train", "--max-labeled", "262"],
                     "262 labels, from scratch (weighted sampling)"),
    "n262_none": (["--data", "{data}/bench-train", "--max-labeled", "262", "--balance", "none"],
                  "262 labels, no balancing"),
    "n262_smote": (["--data", "{data}/bench-train", "--max-labeled", "262", "--balance", "smote"],
                   "262 labels, SMOTE"),
    "n262_twostage": (["--data", "{data}/bench-train", "--max-labeled", "262",
                       "--pretrain-data", "{data}/bench-train", "--pretrain-epochs", "10"],
                      "262 labels, attribute-guided two-stage (pre-trained on unlabeled windows)"),
    "n262_twostage_long": (["--data", "{data}/bench-train", "--max-labeled", "262",
                            "--pretrain-data", "{data}/bench-train", "--pretrain-data", "{data}/bench-source",
                            "--pretrain-epochs", "20"],
                           "262 labels, two-stage with a longer stage 1 on bench-train + bench-source windows"),
    "source": (["--data", "{data}/bench-source", "--epochs", "12"],
               "pre-training run for transfer (source domain)"),
    "n262_transfer": (["--data", "{data}/bench-train", "--max-labeled", "262", "--init", "{out}/source",
                       "--freeze-backbone-epochs", "3"],
                      "262 labels, transfer from the source-domain model"),
}
ORDER = ["default", "cnn1d", "spectrogram_cnn", "n262_scratch", "n262_none", "n262_smote",
         "n262_twostage", "n262_twostage_long", "source", "n262_transfer"]


def microseis(*args: str, log: Path | None = None) -> dict:
    """Run ``python -m edge ARGS --json``; return its last-line JSON (raise on failure)."""
    cmd = [sys.executable, "-m", "edge", *args, "--json"]
    print("$ microseis " + " ".join(args), file=sys.stderr, flush=True)
    if log:
        with open(log, "w") as err:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    else:
        out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        tail = (log.read_text() if log else out.stderr)[-2000:]
        raise RuntimeError(f"microseis {args[0]} failed ({out.returncode}):\n{tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def needed_datasets(wanted: list[str]) -> set[str]:
    """Datasets the wanted experiments read (the test set always)."""
    names = {"bench-test"}
    for exp in wanted:
        names.update(EXTRA_TESTS.get(exp, []))
    if "baselines" in wanted:
        names.add("bench-train")
    for exp in wanted:
        for opt in EXPERIMENTS.get(exp, ([], ""))[0]:
            if opt.startswith("{data}/"):
                names.add(opt.split("/", 1)[1])
    if "n262_transfer" in wanted:
        names.update(needed_datasets(["source"]))
    return names


def ensure_data(data: Path, quick: bool, names: set[str] | None = None) -> None:
    for name, (events, seed, extra) in DATASETS.items():
        if names is not None and name not in names:
            continue
        if (data / name / "labels.csv").is_file():
            continue
        n = max(events // 10, 40) if quick else events
        microseis("synth", "--out", str(data / name), "--events", str(n), "--seed", str(seed), *extra,
                  "--jobs", "2")


def run_experiment(name: str, data: Path, out: Path, args: argparse.Namespace, seed: int | None = None) -> dict:
    """Train (unless kept) and evaluate one experiment; ``seed`` (``--seeds`` mode) puts the run
    in ``out/seedS`` and overrides ``--seed``."""
    train_opts, _ = EXPERIMENTS[name]
    top = out
    if seed is not None:
        out = out / f"seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
    run = out / name
    evaluation = out / f"{name}-eval"
    opts = [o.format(data=data, out=top) for o in train_opts]
    if args.force or not (run / "model.pt").is_file():
        extra = ["--epochs", "2", "--max-batches", "5"] if args.quick else []
        t0 = time.time()
        microseis("train", *opts, "--out", str(run), "--force", "--seed", str(args.seed if seed is None else seed),
                  "--threads", str(args.threads), *extra, log=out / f"{name}-train.log")
        print(f"  trained {name} in {time.time() - t0:.0f} s", file=sys.stderr)
    if name == "source":
        return {"run": str(run)}
    if args.force or not (evaluation / "metrics.json").is_file() or not (run / "model.pt").is_file():
        microseis("evaluate", "--model", str(run), "--data", str(data / "bench-test"),
                  "--out", str(evaluation), log=out / f"{name}-eval.log")
    metrics = json.loads((evaluation / "metrics.json").read_text())
    info = json.loads((run / "run.json").read_text())
    extra = {}
    for test in EXTRA_TESTS.get(name, []):
        ev = out / f"{name}-eval-{test}"
        if args.force or not (ev / "metrics.json").is_file():
            microseis("evaluate", "--model", str(run), "--data", str(data / test), "--out", str(ev),
                      log=out / f"{name}-eval-{test}.log")
        extra[test] = json.loads((ev / "metrics.json").read_text())
    return {"run": str(run), "metrics": metrics, "train_seconds": info.get("seconds"),
            "best_epoch": info.get("best_epoch"), "other_tests": extra}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data", help="folder of the benchmark datasets (data)")
    p.add_argument("--out", default="runs/bench", help="folder of the runs (runs/bench)")
    p.add_argument("--only", nargs="+", choices=ORDER + ["baselines"], help="experiments to run")
    p.add_argument("--force", action="store_true", help="train and evaluate again")
    p.add_argument("--quick", action="store_true", help="small data, 2 short epochs: plumbing only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", metavar="S",
                   help="run the few-label (n262_*) experiments once per seed; mean +- sd")
    p.add_argument("--plot", metavar="PNG", help="with --seeds: macro-F1 of every seed per experiment")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.only or ORDER + ["baselines"]
    ensure_data(data, args.quick, needed_datasets(wanted))
    if args.seeds:
        return run_seeds(wanted, data, out, args)
    results: dict[str, dict] = {}
    for name in ORDER:
        if name in wanted or (name == "source" and "n262_transfer" in wanted):
            results[name] = run_experiment(name, data, out, args)
    if "baselines" in wanted:
        results["baselines"] = microseis("baselines", "--train", str(data / "bench-train"), "--test",
                                         str(data / "bench-test"), "--out", str(out / "baselines"),
                                         log=out / "baselines.log")
    print_table(results)
    print(json.dumps({"benchmark": "trainer", "results": results}, default=str))
    return 0


def run_seeds(wanted: list[str], data: Path, out: Path, args: argparse.Namespace) -> int:
    """Each wanted few-label experiment over ``args.seeds``, experiment by experiment (all
    seeds of one before the next); table of mean +- sd, JSON line with every seed."""
    names = [n for n in ORDER if n.startswith("n262_") and n in wanted]
    if not names:
        print("trainer_results: --seeds is for the few-label experiments (n262_*)", file=sys.stderr)
        return 2
    if "n262_transfer" in names:
        run_experiment("source", data, out, args)
    per: dict[str, dict[int, dict]] = {}
    for name in names:
        for k, seed in enumerate(args.seeds):
            print(f"[{name} seed {seed}: {k + 1}/{len(args.seeds)}]", file=sys.stderr, flush=True)
            per.setdefault(name, {})[seed] = run_experiment(name, data, out, args, seed=seed)
    summary = {name: summarize_seeds([r["metrics"] for r in runs.values()]) for name, runs in per.items()}
    paired = paired_gains(per, "n262_scratch")
    print_seed_table(summary, len(args.seeds))
    for name, g in paired.items():
        print(f"{name} - n262_scratch, same seed: {100 * g['mean']:+.1f} ± {100 * g['sd']:.1f} macro-F1 points "
              f"(min {100 * g['min']:+.1f}, max {100 * g['max']:+.1f})")
    if args.plot:
        plot_seeds(Path(args.plot), per)
    print(json.dumps({"benchmark": "trainer-seeds", "seeds": args.seeds, "summary": summary, "paired": paired,
                      "runs": {n: {str(s): {"macro_f1": r["metrics"]["macro_f1"], "f1": r["metrics"]["f1"],
                                            "accuracy": r["metrics"]["accuracy"],
                                            "train_seconds": r["train_seconds"]}
                                   for s, r in runs.items()} for n, runs in per.items()}}))
    return 0


def _stats(xs: list[float]) -> dict:
    """n, mean, sample standard deviation (ddof 1; 0 for one value), min and max."""
    return {"n": len(xs), "mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs)}


def summarize_seeds(metrics: list[dict]) -> dict:
    """:func:`_stats` over the seeds of macro-F1, accuracy and per-class F1."""
    classes = list(metrics[0]["f1"])
    return {"n": len(metrics), "macro_f1": _stats([m["macro_f1"] for m in metrics]),
            "accuracy": _stats([m["accuracy"] for m in metrics]),
            "f1": {c: _stats([m["f1"][c] for m in metrics]) for c in classes}}


def paired_gains(per: dict[str, dict[int, dict]], base: str) -> dict:
    """Per experiment: mean, sd, min, max over the seeds of (its macro-F1 - ``base``'s) with the
    same seed (the same 262 events and validation split)."""
    if base not in per:
        return {}
    out = {}
    for name, runs in per.items():
        common = [s for s in runs if name != base and s in per[base]]
        if not common:
            continue
        out[name] = _stats([runs[s]["metrics"]["macro_f1"] - per[base][s]["metrics"]["macro_f1"]
                            for s in common])
    return out


def print_seed_table(summary: dict, n: int) -> None:
    print(f"mean +- sd over {n} seeds")
    head = f"{'experiment':<20}{'macro-F1':>15}" + "".join(f"{c[:10]:>15}" for c in CLASSES) + f"{'accuracy':>15}"
    print(head)
    print("-" * len(head))
    for name, s in summary.items():
        cells = [s["macro_f1"]] + [s["f1"][c] for c in CLASSES] + [s["accuracy"]]
        print(f"{name:<20}" + "".join(f"{c['mean']:>8.3f} ±{c['sd']:.3f}" for c in cells))


def plot_seeds(path: Path, per: dict[str, dict[int, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, runs in enumerate(per.values()):
        ys = [r["metrics"]["macro_f1"] for r in runs.values()]
        ax.scatter([i] * len(ys), ys, s=18, alpha=0.7)
        mean = sum(ys) / len(ys)
        ax.hlines(mean, i - 0.25, i + 0.25, color="k")
    ax.set_xticks(range(len(per)), [n.removeprefix("n262_") for n in per], rotation=20)
    ax.set_ylabel("macro-F1 on bench-test")
    ax.set_title(f"262 labels, {max(len(r) for r in per.values())} seeds (dots) and their mean (bar)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(results: dict) -> None:
    head = f"{'experiment':<18}{'macro-F1':>9}" + "".join(f"{c[:9]:>10}" for c in CLASSES) + \
           f"{'M±0.3':>8}{'M±0.2':>8}{'unc w/c':>9}{'train s':>9}"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        m = r.get("metrics")
        if not m:
            continue
        mag = m.get("magnitude") or {}
        unc = (m.get("uncertainty") or {}).get("ratio_wrong_to_correct")
        row = f"{name:<18}{m['macro_f1']:>9.3f}" + "".join(f"{m['f1'][c]:>10.3f}" for c in CLASSES)
        row += f"{_fmt(mag.get('hit_0_3'))}{_fmt(mag.get('hit_0_2'))}{_fmt(unc, 9)}"
        row += f"{(r.get('train_seconds') or 0):>9.0f}"
        print(row)


def _fmt(x, width: int = 8) -> str:
    return f"{x:>{width}.3f}" if isinstance(x, (int, float)) else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
