"""Training of the event models: what ``microseis train`` runs (see ``docs/training.md``).

>>> from trainer.train import TrainConfig, train
>>> result = train(["data/bench-train"], "runs/default", TrainConfig(epochs=40))
>>> result.metrics["macro_f1"], result.best_epoch

One call does: load the labeled folders (:func:`trainer.data.load_dataset`, cached), split off
a stratified validation set (or take ``val``), optionally keep only ``max_labeled`` training
events, balance the classes, optionally pre-train the backbone on seismic attributes (stage 1)
and/or start from another run's weights (transfer), train with AdamW + a one-cycle or cosine
schedule and early stopping on the validation score, then write the run directory of
:mod:`trainer.run` with the best epoch's weights and its Monte-Carlo-dropout validation
metrics.

Loss (stage 2)::

    L = CE(class_logits, class) + mag_weight * mean_{earthquakes with ML} CE(mag_logits, q(ML))

``q(ML)`` is a Gaussian over the 30 bin centres (sigma ``mag_sigma`` magnitude units,
normalised; ``mag_sigma=0`` gives the one-hot bin). Rows without a usable magnitude
(other classes, unknown ML, SMOTE rows) add nothing to the magnitude term.

Model selection: after every epoch the deterministic validation score
``macro_f1 + select_mag_weight * hit_0_3`` (the hit term only where the model has a magnitude
head and the validation set has earthquake magnitudes) is computed; the epoch with the
highest score is kept, and training stops ``patience`` epochs after the last improvement.

Reproducibility: same data, config (seed and threads included) and software -> the same
history and metrics on CPU.
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import torch

from edge.signal.features import ATTRIBUTES
from edge.signal.labels import CLASSES
from edge.signal.preprocess import WindowSpec
from trainer.balance import smote_resample, stratified_split, stratified_subsample
from trainer.config import TrainConfig, TrainError
from trainer.data import log_peak_quantiles
from trainer.metrics import metrics_table
from trainer.plots import plot_curves
from trainer.run import (
    CURVES_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    run_info,
    save_run,
)
from trainer.training.inputs import (
    check_folder,
    load_folders,
    prepare_inputs,
    print_stderr,
)
from trainer.training.loop import Stage2, pretrain_backbone
from trainer.training.transfer import build_for_training, copy_weights, load_init
from trainer.training.validation import SPLIT_FILE, predict_probs, validation_scores

__all__ = ["TrainResult", "train", "summary_table", "summary_json", "SYNTHETIC_NOTICE"]

log = logging.getLogger(__name__)

SYNTHETIC_NOTICE = ("Trained on synthetic data; re-train or fine-tune on the site's labeled "
                    "events before relying on it.")


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    epochs_run: int
    metrics: dict
    history: list[dict]
    info: dict
    seconds: float
    seconds_per_epoch: float
    config: TrainConfig = field(default_factory=TrainConfig)


# ------------------------------------------------------------------------------ the run
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rows(sources: list[tuple[str, str]], lines: list[int], idx: np.ndarray) -> list[dict]:
    return [{"folder": sources[i][0], "path": sources[i][1], "line": int(lines[i])} for i in idx]


def train(data: Sequence[str | Path], out: str | Path, config: TrainConfig | None = None, *,
          val: str | Path | Sequence[str | Path] | None = None,
          pretrain_data: Sequence[str | Path] = (), init: str | Path | None = None,
          cache_dir: str | Path | None = None, use_cache: bool = True, force: bool = False,
          progress: bool = True, say: Callable[[str], None] | None = None) -> TrainResult:
    """Train and write the run directory ``out``; see the module docstring.

    Args:
        data: labeled dataset folders (rows without a label are ignored here).
        out: run directory (must not hold a run yet unless ``force``).
        config: :class:`TrainConfig` (defaults when None).
        val: validation folder(s) instead of the stratified split.
        pretrain_data: folders for stage 1 (labels ignored); enables two-stage training.
        init: a run directory whose weights start the model (transfer).
        progress: loading bars and per-batch bars (on a terminal).
        say: receives the progress lines (default: stderr).

    Raises :class:`TrainError` for anything the user can fix (bad folders, no labels, a
    class without events, bad options).
    """
    t_start = time.perf_counter()
    say = say or print_stderr
    cfg = msgspec.structs.replace(config or TrainConfig()).validate()
    data = [data] if isinstance(data, (str, Path)) else list(data)
    if not data:
        raise TrainError("no --data folder given")
    vals = [] if val is None else ([val] if isinstance(val, (str, Path)) else list(val))
    pretrain_data = [pretrain_data] if isinstance(pretrain_data, (str, Path)) else list(pretrain_data)
    for folder, what in [(f, "--data") for f in data] + [(f, "--val") for f in vals] + \
            [(f, "--pretrain-data") for f in pretrain_data]:
        check_folder(folder, what)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out}: exists and is not a folder")
    if (out / MODEL_FILE).exists() and not force:
        raise TrainError(f"--out {out}: already holds a run ({MODEL_FILE}); use --force to overwrite")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"--out {out}: cannot create: {exc}") from None

    torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed)

    # --- transfer source and architecture
    src_model, src_info, base = None, None, None
    spec = WindowSpec()
    if init is not None:
        src_model, src_info = load_init(init)
        base = src_model.config
        try:
            spec = WindowSpec.from_dict(src_info["window"])
        except (KeyError, ValueError) as exc:
            raise TrainError(f"--init {init}: bad window spec in run info: {exc}") from None
        if cfg.model and cfg.model != base.name:
            raise TrainError(f"--init {init} is a {base.name} run; --model {cfg.model} cannot take its weights")
    name = base.name if base is not None else (cfg.model or "resnet18_cbam")
    two_stage = bool(pretrain_data)
    if two_stage and name == "spectrogram_cnn":
        raise TrainError("two-stage training (--pretrain-data) needs a waveform model "
                         "(resnet18_cbam or cnn1d), not spectrogram_cnn")
    factor = cfg.backbone_lr_factor
    if factor is None:
        factor = 0.3 if (two_stage or init is not None) else 1.0
    cfg = msgspec.structs.replace(cfg, model=name, backbone_lr_factor=factor)

    # --- labeled data and validation set
    loaded = load_folders(data, "--data", spec, cache_dir=cache_dir, use_cache=use_cache,
                           progress=progress, say=say)
    arrays = loaded.arrays
    labeled = np.flatnonzero(arrays.y >= 0)
    if labeled.size < len(arrays):
        say(f"{len(arrays) - labeled.size} unlabeled event(s) in --data ignored "
            "(pass such folders as --pretrain-data)")
    if labeled.size == 0:
        raise TrainError(f"no labeled events in {', '.join(map(str, data))} "
                         f"(labels must be one of {', '.join(CLASSES)})")
    all_lab = arrays.subset(labeled)
    src_lab = [loaded.sources[i] for i in labeled]
    if vals:
        vloaded = load_folders(vals, "--val", spec, cache_dir=cache_dir, use_cache=use_cache,
                                progress=progress, say=say)
        if vloaded.arrays.units != all_lab.units and len(vloaded.arrays):
            raise TrainError(f"--val is in {vloaded.arrays.units}, --data in {all_lab.units}")
        vl = np.flatnonzero(vloaded.arrays.y >= 0)
        if vl.size == 0:
            raise TrainError(f"no labeled events in --val {', '.join(map(str, vals))}")
        val_arr = vloaded.arrays.subset(vl)
        val_rows = _rows(vloaded.sources, vloaded.arrays.lines, vl)
        tr_idx = np.arange(len(all_lab))
        val_descs = vloaded.descriptions
    else:
        tr_idx, va_idx = stratified_split(all_lab.y, cfg.val_fraction, cfg.seed)
        if va_idx.size == 0:
            raise TrainError("too few labeled events to split off a validation set "
                             "(need 2 of some class); add data or pass --val")
        val_arr = all_lab.subset(va_idx)
        val_rows = _rows(src_lab, all_lab.lines, va_idx)
        val_descs = []
    n_before = tr_idx.size
    if cfg.max_labeled is not None:
        try:
            keep = stratified_subsample(all_lab.y[tr_idx], cfg.max_labeled, cfg.seed)
        except ValueError as exc:
            raise TrainError(f"--max-labeled: {exc}") from None
        tr_idx = tr_idx[keep]
    train_arr = all_lab.subset(tr_idx)
    train_rows = _rows(src_lab, all_lab.lines, tr_idx)
    counts = train_arr.class_counts()
    missing = [c for c, k in counts.items() if k == 0]
    if missing:
        raise TrainError(f"class {', '.join(map(repr, missing))} has no labeled training events in "
                         f"{', '.join(map(str, data))}; every class of {', '.join(CLASSES)} needs at least one")
    vcounts = val_arr.class_counts()
    say(f"training events: {len(train_arr)}"
        + (f" (of {n_before}, --max-labeled)" if len(train_arr) < n_before else "")
        + " (" + ", ".join(f"{c} {k}" for c, k in counts.items()) + "); validation: "
        + f"{len(val_arr)} (" + ", ".join(f"{c} {k}" for c, k in vcounts.items()) + ")")
    if any(k == 0 for k in vcounts.values()):
        say("warning: validation has no events of " + ", ".join(c for c, k in vcounts.items() if k == 0)
            + " (its F1 is left out of the macro average)")

    # --- pre-training data (labels ignored; validation events left out)
    pre = None
    if two_stage:
        ploaded = load_folders(pretrain_data, "--pretrain-data", spec, cache_dir=cache_dir,
                                use_cache=use_cache, progress=progress, say=say)
        held_out = {(r["folder"], r["path"]) for r in val_rows}
        keep = np.array([s not in held_out for s in ploaded.sources], bool)
        keep &= np.isfinite(ploaded.arrays.attributes).all(axis=1)
        if ploaded.arrays.units != all_lab.units and len(ploaded.arrays):
            say(f"note: --pretrain-data is in {ploaded.arrays.units}, --data in {all_lab.units} "
                "(only log10_peak is affected)")
        if keep.sum() < 2:
            raise TrainError("--pretrain-data: fewer than 2 usable events "
                             "(after leaving out the validation events)")
        pre = (ploaded.arrays.subset(keep), ploaded.descriptions, int((~keep).sum()))
        say(f"pre-training events: {int(keep.sum())}"
            + (f" ({pre[2]} validation or non-finite events left out)" if pre[2] else ""))

    # --- model
    model = build_for_training(name, cfg, spec, len(ATTRIBUTES) if two_stage else 0, base)
    init_report = None
    if src_model is not None:
        init_report = copy_weights(model, src_model)
        init_report["run"] = str(Path(init).resolve())
        init_report["synthetic"] = bool(src_info.get("synthetic", False))
        say(f"--init {init}: {init_report['tensors_loaded']} tensors loaded "
            f"({init_report['head_tensors_loaded']} of the heads)")
        del src_model

    # --- inputs and balancing
    train_inputs = prepare_inputs(name, train_arr.x, spec)
    val_inputs = prepare_inputs(name, val_arr.x, spec)
    tr = {"inputs": train_inputs, "log_peak": train_arr.log_peak.astype(np.float32),
          "y": train_arr.y.astype(np.int64), "magnitude": train_arr.magnitude.astype(np.float32)}
    n_smote = 0
    if cfg.balance == "smote":
        try:
            inp, lp, yy, n_smote = smote_resample(tr["inputs"], tr["log_peak"], tr["y"], cfg.seed,
                                                  class_names=CLASSES)
        except ValueError as exc:
            raise TrainError(str(exc)) from None
        tr = {"inputs": inp, "log_peak": lp, "y": yy,
              "magnitude": np.concatenate([tr["magnitude"], np.full(n_smote, np.nan, np.float32)])}
        say(f"SMOTE: {n_smote} synthetic training rows added (magnitude unknown)")
    for key in ("inputs", "log_peak"):
        if not np.isfinite(tr[key]).all():  # load and SMOTE keep them finite; never optimise NaN
            raise TrainError(f"non-finite training {key} after preprocessing")
    va = {"inputs": val_inputs, "log_peak": val_arr.log_peak.astype(np.float32),
          "y": val_arr.y.astype(np.int64), "magnitude": val_arr.magnitude.astype(np.float32)}

    # --- stage 1
    history: list[dict] = []
    pretrain_info = None
    if pre is not None:
        parr = pre[0]
        say(f"stage 1: attribute pre-training, {cfg.pretrain_epochs} epochs on {len(parr)} events")
        h1, pretrain_info = pretrain_backbone(model, cfg, spec, parr.x, parr.attributes, val_arr.x,
                                      val_arr.attributes, say, progress)
        history += h1
        pretrain_info.update(events=len(parr), left_out=pre[2], data=pre[1])
        say("stage 2: fine-tuning on the labeled events")

    # --- stage 2
    h2, best_epoch, _ = Stage2(model, cfg, spec, tr, va, CLASSES, say, progress).run(cfg.backbone_lr_factor)
    history += h2

    # --- final metrics of the kept model (MC dropout)
    metrics_batch = 64
    probs, mag, unc = predict_probs(model, val_inputs, va["log_peak"], batch_size=metrics_batch,
                                    mc_passes=cfg.mc_passes, seed=cfg.seed)
    metrics = validation_scores(probs, mag, va["y"], va["magnitude"], CLASSES, unc)
    best_row = next(r for r in h2 if r["epoch"] == best_epoch)
    metrics.update({
        "split": "validation", "epoch": best_epoch,
        "mc_dropout": {"passes": cfg.mc_passes, "seed": cfg.seed, "batch_size": metrics_batch,
                       "prediction": "argmax of the mean probabilities; magnitude = centre of the "
                                     "most probable bin of the mean magnitude probabilities",
                       "uncertainty": "predictive entropy of the mean class probabilities / log(n_classes)"},
        "deterministic": {k: best_row[k] for k in ("val_macro_f1", "val_hit_0_2", "val_hit_0_3",
                                                   "val_mag_mae", "score")},
    })

    # --- write the run
    seconds = time.perf_counter() - t_start
    train_epochs = [r for r in history if r["stage"] == "train"]
    per_epoch = float(np.mean([r["seconds"] for r in train_epochs])) if train_epochs else 0.0
    descs = {"train": loaded.descriptions, "val": val_descs or "stratified split of the training folders"}
    if pre is not None:
        descs["pretrain"] = pre[1]
    all_descs = loaded.descriptions + val_descs + (pre[1] if pre is not None else [])
    synthetic = any(d.get("synthetic") for d in all_descs) or bool(init_report and init_report["synthetic"])
    data_info = {
        "synthetic": synthetic, "units": all_lab.units, "folders": descs,
        # amplitudes of the training windows: what a window of unknown calibration is
        # classified over on the station (edge.model.inference)
        "log_peak_quantiles": log_peak_quantiles(train_arr.log_peak),
        "counts": {"train": counts, "val": vcounts,
                   "train_rows_after_balance": int(len(tr["y"])), "smote_rows": n_smote},
        "split_file": SPLIT_FILE,
    }
    extra: dict[str, Any] = {
        "best_epoch": best_epoch, "epochs_run": len(train_epochs), "seconds": seconds,
        "seconds_per_epoch": per_epoch, "threads": cfg.threads,
        "selection": {"score": f"macro_f1 + {cfg.select_mag_weight} * hit_0_3 (deterministic "
                               "validation pass)", "patience": cfg.patience},
        "loss": {"class": "cross-entropy", "magnitude": f"{cfg.mag_weight} * soft cross-entropy, "
                 f"Gaussian targets sigma {cfg.mag_sigma} over the bin centres, earthquakes with known ML"},
        "pretrain": pretrain_info, "init": init_report,
        "validation": {"events": len(val_arr), "macro_f1": metrics["macro_f1"],
                       "magnitude": metrics.get("magnitude")},
    }
    if synthetic:
        extra["notice"] = SYNTHETIC_NOTICE
    info = run_info(model, spec, CLASSES, cfg.to_dict(), data_info, **extra)
    try:
        save_run(out, model, info)
        (out / HISTORY_FILE).write_text(json.dumps(history, indent=1) + "\n")
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        (out / SPLIT_FILE).write_text(json.dumps(
            {"val_source": "folder" if vals else "split", "val_fraction": None if vals else cfg.val_fraction,
             "seed": cfg.seed, "max_labeled": cfg.max_labeled, "train": train_rows, "val": val_rows}) + "\n")
    except OSError as exc:
        raise TrainError(f"--out {out}: cannot write the run: {exc}") from None
    try:
        plot_curves(out / CURVES_FILE, history, best_epoch, title=f"{name} - {out.name}")
    except Exception as exc:  # a plot must never cost the run
        say(f"warning: {CURVES_FILE} not written: {exc}")
    return TrainResult(run_dir=out, best_epoch=best_epoch, epochs_run=len(train_epochs), metrics=metrics,
                       history=history, info=info, seconds=seconds, seconds_per_epoch=per_epoch, config=cfg)


# ------------------------------------------------------------------------------ summaries
def summary_json(result: TrainResult) -> dict:
    m = result.metrics
    mag = m.get("magnitude")
    return {
        "run": str(result.run_dir), "model": result.config.model, "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "val_events": m["n"], "val_macro_f1": m["macro_f1"],
        "val_accuracy": m["accuracy"], "val_f1": m["f1"],
        "magnitude": ({k: mag[k] for k in ("n", "hit_0_2", "hit_0_3", "mae")} if mag else None),
        "uncertainty": m.get("uncertainty"), "synthetic": bool(result.info.get("synthetic")),
        "seconds": round(result.seconds, 2), "seconds_per_epoch": round(result.seconds_per_epoch, 2),
    }


def summary_table(result: TrainResult) -> str:
    m = result.metrics
    lines = [f"run {result.run_dir}: {result.config.model}, kept epoch {result.best_epoch} of "
             f"{result.epochs_run}, {result.seconds:.1f} s ({result.seconds_per_epoch:.1f} s/epoch)",
             f"validation ({m['n']} events, MC dropout x{result.config.mc_passes}): "
             f"macro-F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f}",
             *metrics_table(m)]
    unc = m.get("uncertainty")
    if unc and unc.get("mean_correct") is not None:
        wrong = unc.get("mean_wrong")
        lines.append(f"uncertainty: correct {unc['mean_correct']:.3f}, wrong "
                     + ("-" if wrong is None else f"{wrong:.3f}"))
    if result.info.get("notice"):
        lines.append(result.info["notice"])
    return "\n".join(lines)
