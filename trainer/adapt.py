"""Site adaptation: what ``microseis adapt`` runs (see ``docs/adapt.md``).

>>> from trainer.adapt import AdaptConfig, adapt
>>> report = adapt("site-labels/", "site.msb", "site.key", source=None, config=AdaptConfig())
>>> report["before"]["macro_f1"], report["after"]["macro_f1"]

One call does:

1. the starting model: the shipped bundle's float weights (package data,
   :mod:`trainer.float_weights`), a given bundle's float weights, or a training run directory;
2. the site's labeled folder (``docs/spec/dataset.md``) loaded with the model's window, a
   held-out part split off per class (seeded, :func:`trainer.balance.stratified_split`);
   labels the model does not know are refused unless ``new_classes`` (then the class head
   grows: the old rows are kept, new rows start fresh, everything else is kept);
3. fine-tuning with the trainer's own stage-2 loop (class-balanced sampling, augmentation,
   lower backbone learning rate, early stopping on the held-out part, best epoch kept);
4. export with :func:`export.build.build_bundle` (int8 calibrated on the training part,
   parity report on the held-out part), with ``adapted_from`` / ``adapted_on`` in the
   manifest, signed with the given key and verified (self-test) before it is written;
5. the starting model and the new bundle scored on the held-out part -- bundles through the
   station's own :class:`edge.model.inference.EventClassifier` (int8), a starting run with
   torch -- and the report written beside the bundle (:mod:`trainer.adapt_report`).

Outputs for ``--out site.msb``: ``site.msb`` (the signed bundle for the stations),
``site.weights/`` (its float weights: a run directory + ``bundle.json``, so it can be adapted
again) and ``site.report/`` (``adapt.json``, confusion and per-class plots before/after).

Note: the held-out part both stops the training (best epoch) and scores "after"; with a few
events per class that flatters "after" a little (docs/adapt.md).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.model.format import DEFAULT_BUNDLE, BundleError
from edge.model.keys import default_trusted_keys, key_id
from edge.model.verify import inspect_bundle
from edge.signal.dataset import LABELS_FILE, DatasetError, read_labels
from edge.signal.preprocess import WindowSpec
from export.build import NOT_EXPORTED, ExportError, ExportOptions, build_bundle
from export.signing import load_private_key
from trainer.adapt_report import before_after, write_report
from trainer.balance import stratified_split
from trainer.config import TrainConfig, TrainError
from trainer.data import EventArrays, dataset_description, load_dataset, log_peak_quantiles
from trainer.float_weights import (
    WeightsError,
    file_sha256,
    find_float_weights,
    weights_dir_for,
    write_float_weights,
)
from trainer.models.registry import build_model_from_config
from trainer.run import MODEL_FILE, RUN_FILE, RunError, load_run, run_info, save_run
from trainer.scorer import EvaluationError
from trainer.training.inputs import prepare_inputs
from trainer.training.loop import Stage2
from trainer.training.transfer import copy_weights

__all__ = ["AdaptConfig", "AdaptError", "adapt", "Start", "resolve_start", "grow_class_head",
           "report_paths"]


class AdaptError(ValueError):
    """Bad input (site folder, starting model, key, options): one line saying what to fix."""


@dataclass
class AdaptConfig:
    """Options of ``microseis adapt`` (fine-tuning defaults differ from ``microseis train``)."""

    #: stratified fraction of the site's labeled events held out (early stopping + report)
    held_out: float = 0.25
    epochs: int = 30
    #: stop after this many epochs without a better held-out score
    patience: int = 8
    #: peak learning rate of the heads; the backbone gets lr * backbone_lr_factor
    lr: float = 1e-3
    backbone_lr_factor: float = 0.3
    batch_size: int = 16
    seed: int = 0
    threads: int = 2
    #: at most this many batches per epoch (tests, quick looks); None = all
    max_batches: int | None = None
    #: MC-dropout passes of the station (bundle manifest and before/after scores)
    mc_passes: int = 20
    #: allow labels the starting model does not know (the class head grows)
    new_classes: bool = False
    #: bundle name / version; None = derived from the starting model
    name: str | None = None
    version: str | None = None
    #: timed forward passes per format in the parity report
    latency_repeats: int = 50

    def validate(self) -> AdaptConfig:
        if not 0 < self.held_out <= 0.5:
            raise AdaptError(f"--held-out must be in (0, 0.5], got {self.held_out}")
        if self.epochs < 1 or self.batch_size < 2 or self.patience < 0 or self.mc_passes < 1:
            raise AdaptError("--epochs and --mc-passes must be >= 1, --batch-size >= 2, --patience >= 0")
        if not (self.lr > 0 and self.backbone_lr_factor >= 0):
            raise AdaptError("--lr must be > 0 and --backbone-lr-factor >= 0")
        if self.seed < 0 or self.threads < 1:
            raise AdaptError("--seed must be >= 0 and --threads >= 1")
        if self.max_batches is not None and self.max_batches < 1:
            raise AdaptError("--max-batches must be >= 1")
        return self

    def train_config(self, model_name: str) -> TrainConfig:
        """The trainer's options for the fine-tuning loop."""
        return TrainConfig(model=model_name, epochs=self.epochs, patience=self.patience,
                       lr=self.lr, backbone_lr_factor=self.backbone_lr_factor,
                       batch_size=self.batch_size, seed=self.seed, threads=self.threads,
                       max_batches=self.max_batches, mc_passes=self.mc_passes,
                       val_fraction=self.held_out, balance="weighted").validate()


@dataclass
class Start:
    """The starting model: its float weights (a run directory) and, when it is a bundle,
    the bundle the "before" scores come from."""

    kind: str                 # "bundle" | "run"
    weights: Path             # run directory with model.pt
    bundle: Path | None       # the bundle whose int8 graph is "before" (None for a run)
    adapted_from: dict        # {name, version, sha256, kind}
    synthetic: bool = False   # the starting model was trained on synthetic data


def report_paths(out: str | Path) -> tuple[Path, Path]:
    """``(weights folder, report folder)`` written beside the bundle ``out``."""
    out = Path(out)
    stem = out.stem if out.suffix == ".msb" else out.name
    return weights_dir_for(out), out.with_name(stem + ".report")


def resolve_start(source: str | Path | None) -> Start:
    """The starting model of ``--from`` (None: the shipped default bundle)."""
    try:
        if source is not None and Path(source).is_dir():
            run = Path(source)
            if not (run / MODEL_FILE).is_file():
                raise AdaptError(f"--from {run}: not a run directory (no {MODEL_FILE})")
            try:
                run_meta = json.loads((run / RUN_FILE).read_text())
            except (OSError, ValueError):
                run_meta = {}
            if not isinstance(run_meta, dict):
                run_meta = {}
            return Start("run", run, None, {"kind": "run", "name": run.resolve().name[:64] or "run",
                                            "version": str(run_meta.get("created") or "") or "unknown",
                                            "sha256": file_sha256(run / MODEL_FILE)},
                         bool(run_meta.get("synthetic")))
        if source is not None and not Path(source).is_file():
            raise AdaptError(f"--from {source}: no such run directory or bundle")
        bundle = Path(DEFAULT_BUNDLE if source is None else source)
        weights, record = find_float_weights(None if source is None else bundle)
        meta = inspect_bundle(bundle)
    except (WeightsError, BundleError) as exc:
        raise AdaptError(f"--from {source or 'default'}: {exc}" if source else str(exc)) from None
    return Start("bundle", weights, bundle, {"kind": "bundle", "name": meta["name"],
                                             "version": meta["version"], "sha256": record["bundle_sha256"]},
                 bool(meta.get("synthetic")))


def grow_class_head(model: torch.nn.Module, n_classes: int) -> tuple[torch.nn.Module, dict]:
    """A copy of ``model`` with ``n_classes`` class outputs: every tensor that fits is copied
    (backbone, magnitude head, hidden class layer); the class output layer keeps its old rows,
    the new rows get PyTorch's default init and the mean of the old biases."""
    old_n = int(model.config.n_classes)
    cfg = model.config.to_dict()
    cfg["n_classes"] = int(n_classes)
    grown = build_model_from_config(cfg)
    report = copy_weights(grown, model)
    with torch.no_grad():
        src, dst = model.heads.class_out, grown.heads.class_out
        dst.weight[:old_n] = src.weight
        dst.bias[:old_n] = src.bias
        dst.bias[old_n:] = src.bias.mean()
    report["grown"] = {"from": old_n, "to": int(n_classes)}
    return grown, report


def _say_default(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _site_labels(data: Path) -> tuple[list[str], str]:
    """Labels used in ``data/labels.csv`` (first-appearance order) and the file's sha256."""
    if not data.exists():
        raise AdaptError(f"--data {data}: no such folder")
    if not data.is_dir():
        raise AdaptError(f"--data {data}: not a folder")
    if not (data / LABELS_FILE).is_file():
        raise AdaptError(f"--data {data}: no {LABELS_FILE} in it")
    try:
        rows, _ = read_labels(data, check_files=False)
    except DatasetError as exc:
        raise AdaptError(f"--data {exc}") from None
    labels = list(dict.fromkeys(r.label for r in rows if r.label is not None))
    return labels, hashlib.sha256((data / LABELS_FILE).read_bytes()).hexdigest()


def _load_site(data: Path, spec: WindowSpec, classes: tuple[str, ...], cfg: AdaptConfig, *,
               cache_dir, use_cache: bool, progress: bool, say) -> EventArrays:
    try:
        arrays, errors = load_dataset(data, spec, classes, cache_dir=cache_dir, use_cache=use_cache,
                                      require_labels=True, progress=progress)
    except (DatasetError, OSError, ValueError) as exc:
        raise AdaptError(f"--data {data}: {exc}") from None
    if errors:
        say(f"{data}: {len(errors)} row(s) of {LABELS_FILE} skipped, e.g. {errors[0]}")
    finite = arrays.finite()
    arrays = arrays.subset(finite & (arrays.y >= 0))
    counts = {c: k for c, k in arrays.class_counts().items() if k}
    if len(counts) < 2:
        only = ", ".join(f"{c!r}" for c in counts) or "none"
        raise AdaptError(f"--data {data}: usable labeled events of {len(counts)} class(es) only "
                         f"({only}); adaptation needs at least two classes")
    few = {c: k for c, k in counts.items() if k < 2}
    if few:
        raise AdaptError(f"--data {data}: class(es) {', '.join(f'{c!r} ({k} event)' for c, k in few.items())}"
                         " too small: the held-out part needs at least 2 usable events of every class "
                         "(one to train on, one to hold out)")
    return arrays


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def adapt(data: str | Path, out: str | Path, key: str | Path, source: str | Path | None = None,
          config: AdaptConfig | None = None, *, force: bool = False, cache_dir=None,
          use_cache: bool = True, progress: bool = False,
          say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Adapt, export, sign and report; see the module docstring. Returns the report dict
    (also ``<out stem>.report/adapt.json``). Raises :class:`AdaptError` (nothing written) for
    bad input."""
    t0 = time.perf_counter()
    say = say or _say_default
    cfg = (config or AdaptConfig()).validate()
    data, out = Path(data), Path(out)

    # --- everything that can be checked before anything is written
    try:
        private_key = load_private_key(key)
    except ValueError as exc:
        raise AdaptError(f"--key {exc}") from None
    weights_out, report_dir = report_paths(out)
    if out.exists() and out.is_dir():
        raise AdaptError(f"--out {out}: is a folder (give the bundle file to write, e.g. site.msb)")
    existing = [p for p in (out, weights_out, report_dir) if p.exists()]
    if existing and not force:
        raise AdaptError(f"--out {out}: {existing[0]} exists; use --force to overwrite")
    start = resolve_start(source)
    try:
        model, info = load_run(start.weights)
    except RunError as exc:
        raise AdaptError(f"--from {source or 'default'}: {exc}") from None
    name = model.config.name
    if name in NOT_EXPORTED:
        raise AdaptError(f"--from {source}: {NOT_EXPORTED[name]}")
    spec = WindowSpec.from_dict(info["window"])
    old_classes = tuple(info["classes"])
    labels, labels_sha = _site_labels(data)
    if len(labels) < 2:
        raise AdaptError(f"--data {data}: {LABELS_FILE} labels {len(labels)} class(es) only "
                         f"({', '.join(map(repr, labels)) or 'none'}); adaptation needs at least two classes")
    unknown = [c for c in labels if c not in old_classes]
    if unknown and not cfg.new_classes:
        raise AdaptError(f"--data {data}: label(s) {', '.join(map(repr, unknown))} unknown to the model "
                         f"(classes: {', '.join(old_classes)}); pass --new-classes to add them")
    classes = old_classes + tuple(unknown)
    site = _load_site(data, spec, classes, cfg, cache_dir=cache_dir, use_cache=use_cache,
                      progress=progress, say=say)
    tr_idx, ho_idx = stratified_split(site.y, cfg.held_out, cfg.seed)
    train_arr, held = site.subset(tr_idx), site.subset(ho_idx)
    tcfg = cfg.train_config(name)
    trusted = dict(default_trusted_keys())
    pub = private_key.public_key()
    if key_id(pub) not in trusted:
        say(f"note: key {key_id(pub)} is not among the shipped trusted keys: give the stations its "
            ".pub ([model] trusted_keys or --pubkey) or they will refuse the bundle")
    trusted[key_id(pub)] = pub
    say(f"starting from {start.kind} {start.adapted_from['name']} {start.adapted_from['version']} "
        f"({name}, classes {', '.join(old_classes)})"
        + (f"; new class(es) {', '.join(unknown)}" if unknown else ""))
    say(f"site events: {len(train_arr)} to train on, {len(held)} held out ("
        + ", ".join(f"{c} {k}" for c, k in held.class_counts().items() if k) + ")")

    # --- before: the starting model on the held-out part
    try:
        before_preds = before_after(start, held, cfg.mc_passes, cfg.seed, trusted)
    except EvaluationError as exc:
        raise AdaptError(f"--from {source or 'default'}: {exc}") from None

    # --- fine-tuning with the trainer's loop
    torch.set_num_threads(cfg.threads)
    _seed(cfg.seed)
    transfer = None
    if len(classes) > len(old_classes):
        model, transfer = grow_class_head(model, len(classes))
        say(f"class head grown from {len(old_classes)} to {len(classes)} outputs")
    tr = {"inputs": prepare_inputs(name, train_arr.x, spec), "log_peak": train_arr.log_peak.astype(np.float32),
          "y": train_arr.y.astype(np.int64), "magnitude": train_arr.magnitude.astype(np.float32)}
    va = {"inputs": prepare_inputs(name, held.x, spec), "log_peak": held.log_peak.astype(np.float32),
          "y": held.y.astype(np.int64), "magnitude": held.magnitude.astype(np.float32)}
    try:
        history, best_epoch, _ = Stage2(model, tcfg, spec, tr, va, classes, say, progress).run(
            tcfg.backbone_lr_factor)
    except TrainError as exc:
        raise AdaptError(str(exc)) from None
    train_s = time.perf_counter() - t0

    # --- the adapted run, exported, signed and verified
    desc = dataset_description(data)
    adapted_on = {"counts": {c: int(k) for c, k in site.class_counts().items()},
                  "labels_sha256": labels_sha, "held_out": held.class_counts(),
                  "held_out_fraction": cfg.held_out, "seed": cfg.seed}
    # a model fine-tuned from a synthetic-trained one still says so (export's notice)
    data_info = {"synthetic": bool(desc.get("synthetic")) or start.synthetic, "units": site.units,
                 "log_peak_quantiles": log_peak_quantiles(train_arr.log_peak),  # the site's amplitudes
                 "folders": {"train": [desc], "val": "stratified held-out part of the site folder"},
                 "counts": {"train": train_arr.class_counts(), "val": held.class_counts()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_run = out.with_name(f".{out.name}.run-tmp")
    shutil.rmtree(tmp_run, ignore_errors=True)
    info_new = run_info(model, spec, classes, tcfg.to_dict(), data_info, best_epoch=best_epoch,
                        epochs_run=len(history), init=transfer, adapted_from=start.adapted_from,
                        adapted_on=adapted_on)
    save_run(tmp_run, model, info_new)
    (tmp_run / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    parent = start.adapted_from
    bundle_name = cfg.name or (f"{parent['name']}-site" if start.kind == "bundle"
                               else f"microseis-{name.replace('_', '-')}-site")[:64]
    version = cfg.version or (f"{parent['version'] if start.kind == 'bundle' else '0.1.0'}"
                              f"+adapt.{labels_sha[:8]}")
    opts = ExportOptions(
        int8=True, calibration_arrays=train_arr, parity_arrays=held,
        calibration_data=f"{data} (training part)", parity_data=f"{data} (held-out part)",
        mc_passes=cfg.mc_passes, name=bundle_name, version=version,
        latency_repeats=cfg.latency_repeats,
        description=(f"{name} adapted from {parent['name']} {parent['version']} on "
                     f"{len(site)} labeled events of {data.resolve().name}"),
        manifest_fields={"adapted_from": {k: parent[k] for k in ("name", "version", "sha256")},
                         "adapted_on": {"counts": adapted_on["counts"], "labels_sha256": labels_sha}})
    try:
        built = build_bundle(tmp_run, out, key, opts, progress=progress)
        write_float_weights(tmp_run, out, weights_out)
    except (ExportError, BundleError, WeightsError) as exc:
        raise AdaptError(f"export: {exc}") from None
    finally:
        shutil.rmtree(tmp_run, ignore_errors=True)

    # --- after: the new bundle, run as the station runs it, on the same held-out events
    after_preds = before_after(Start("bundle", weights_out, out, {}), held, cfg.mc_passes, cfg.seed, trusted)
    seconds = time.perf_counter() - t0
    return write_report(report_dir, held=held, classes=classes, new_classes=unknown, start=start,
                        before=before_preds, after=after_preds, bundle=out, built=built,
                        weights=weights_out, adapted_on=adapted_on, train_events=len(train_arr),
                        best_epoch=best_epoch, epochs_run=len(history), train_seconds=train_s,
                        seconds=seconds)
