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

import copy
import json
import logging
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.signal.dataset import LABELS_FILE, DatasetError
from edge.signal.features import ATTRIBUTES
from edge.signal.labels import CLASSES, MAG_BIN_CENTRES, MAG_BIN_WIDTH, MAG_MAX, MAG_MIN, N_MAG_BINS
from edge.signal.preprocess import WindowSpec
from edge.signal.spectrogram import DEFAULT_NOVERLAP, DEFAULT_NPERSEG, spectrogram, spectrogram_shape
from trainer.balance import balanced_order, smote_resample, stratified_split, stratified_subsample
from trainer.data import EventArrays, dataset_description, load_dataset
from trainer.predict_torch import predict_batches
from trainer.metrics import evaluation_metrics
from trainer.models.registry import MODELS, ModelConfig, build_model, build_model_from_config
from trainer.run import (
    CURVES_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_FILE,
    RunError,
    is_spectrogram_model,
    load_run,
    run_info,
    save_run,
)

__all__ = [
    "TrainConfig", "TrainError", "TrainResult", "train", "evaluate_arrays", "predict_probs",
    "validation_arrays", "magnitude_targets", "augment_waveforms", "summary_table",
    "summary_json", "SYNTHETIC_NOTICE", "SPLIT_FILE",
]

log = logging.getLogger(__name__)

SYNTHETIC_NOTICE = ("Trained on synthetic data; re-train or fine-tune on the site's labeled "
                    "events before relying on it.")
#: which labeled events trained and which validated (``validation_arrays`` reads it back)
SPLIT_FILE = "split.json"
SCHEDULES = ("onecycle", "cosine", "constant")
BALANCES = ("weighted", "smote", "none")
#: parameter-name prefixes of the heads; every other parameter is "backbone"
HEAD_PREFIXES = ("heads.", "pretrain_head.", "fcs.", "out.")
#: attribute z-scores are clipped to +-this in stage 1 (heavy-tailed kurtosis, decay rates)
ATTRIBUTE_CLIP = 5.0
_EPS = 1e-12


class TrainError(ValueError):
    """Bad data or options: the message says what to fix (the CLI prints it, exit 2)."""


@dataclass
class TrainConfig:
    """Every training option (saved as ``run.json["train"]``). Defaults = ``microseis train``."""

    #: registry name; None = ``resnet18_cbam``, or the ``--init`` run's architecture
    model: str | None = None
    epochs: int = 40
    batch_size: int = 32
    #: peak learning rate (one-cycle max; cosine after warm-up) of AdamW
    lr: float = 2e-3
    #: AdamW decoupled weight decay, on weights only (not biases / BatchNorm)
    weight_decay: float = 1e-2
    schedule: str = "onecycle"
    #: fraction of the steps spent warming up (one-cycle ``pct_start`` / cosine linear warm-up)
    warmup: float = 0.2
    #: stop after this many epochs without a better validation score (0 = never stop early)
    patience: int = 15
    #: improvement of the score that counts
    min_delta: float = 1e-4
    #: score = macro_f1 + select_mag_weight * magnitude hit rate within +-0.3
    select_mag_weight: float = 0.25
    #: stratified validation fraction (when no separate validation folder is given)
    val_fraction: float = 0.15
    seed: int = 0
    #: torch CPU threads (``torch.set_num_threads``)
    threads: int = 2
    #: lambda of the magnitude cross-entropy
    mag_weight: float = 1.0
    #: sigma (magnitude units) of the Gaussian soft magnitude target; 0 = one-hot bin
    mag_sigma: float = 0.15
    #: weighted (class-balanced sampling), smote, none
    balance: str = "weighted"
    #: augmentation of training batches (time shift, polarity flip, optional noise)
    augment: bool = True
    #: maximum time shift of the window, seconds (zero padded)
    shift_s: float = 0.3
    #: random polarity flip of all three components together
    flip: bool = True
    #: std of added Gaussian noise relative to the window peak (0 = off)
    noise_std: float = 0.0
    #: keep only this many labeled training events (stratified, seeded); None = all
    max_labeled: int | None = None
    #: stage-1 epochs (only with pre-training data)
    pretrain_epochs: int = 20
    #: stage-1 peak learning rate; None = ``lr``
    pretrain_lr: float | None = None
    #: stage-2 backbone learning rate = lr * this; None = 1.0 from scratch, 0.3 after
    #: pre-training or ``--init``
    backbone_lr_factor: float | None = None
    #: stage-2 epochs with the backbone frozen (weights and BatchNorm statistics)
    freeze_backbone_epochs: int = 0
    #: MC-dropout probability of the heads; None = the architecture's default
    dropout: float | None = None
    #: MC-dropout passes for the validation metrics of the kept model
    mc_passes: int = 20
    #: at most this many batches per epoch (quick looks, tests); None = all
    max_batches: int | None = None
    #: gradient-norm clipping (0 = off)
    grad_clip: float = 5.0

    def validate(self) -> "TrainConfig":
        problems = []

        def need(ok: bool, msg: str) -> None:
            if not ok:
                problems.append(msg)

        need(self.model is None or self.model in MODELS,
             f"unknown model {self.model!r} (known: {', '.join(sorted(MODELS))})")
        need(self.epochs >= 1, "epochs must be >= 1")
        need(self.batch_size >= 2, "batch size must be >= 2")
        need(self.lr > 0 and math.isfinite(self.lr), "lr must be > 0")
        need(self.weight_decay >= 0, "weight decay must be >= 0")
        need(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}")
        need(0 <= self.warmup < 1, "warmup must be in [0, 1)")
        need(self.patience >= 0, "patience must be >= 0")
        need(0 < self.val_fraction <= 0.5, "validation fraction must be in (0, 0.5]")
        need(self.seed >= 0, "seed must be >= 0")
        need(self.threads >= 1, "threads must be >= 1")
        need(self.mag_weight >= 0, "magnitude weight must be >= 0")
        need(self.mag_sigma >= 0, "magnitude sigma must be >= 0")
        need(self.balance in BALANCES, f"balance must be one of {', '.join(BALANCES)}")
        need(0 <= self.shift_s <= 2.0, "shift must be in [0, 2] s")
        need(self.noise_std >= 0, "noise std must be >= 0")
        need(self.max_labeled is None or self.max_labeled >= 1, "max labeled must be >= 1")
        need(self.pretrain_epochs >= 1, "pretrain epochs must be >= 1")
        need(self.pretrain_lr is None or self.pretrain_lr > 0, "pretrain lr must be > 0")
        need(self.backbone_lr_factor is None or self.backbone_lr_factor >= 0,
             "backbone lr factor must be >= 0")
        need(self.freeze_backbone_epochs >= 0, "freeze-backbone epochs must be >= 0")
        need(self.dropout is None or 0 <= self.dropout < 1, "dropout must be in [0, 1)")
        need(self.mc_passes >= 1, "MC passes must be >= 1")
        need(self.max_batches is None or self.max_batches >= 1, "max batches must be >= 1")
        need(self.grad_clip >= 0, "grad clip must be >= 0")
        if problems:
            raise TrainError("; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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


# ------------------------------------------------------------------------------ data
@dataclass
class _Folders:
    arrays: EventArrays
    #: (resolved folder, path) of every row
    sources: list[tuple[str, str]]
    descriptions: list[dict]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_folder(folder: str | Path, what: str) -> Path:
    p = Path(folder)
    if not p.exists():
        raise TrainError(f"{what} {folder}: no such folder")
    if not p.is_dir():
        raise TrainError(f"{what} {folder}: not a folder")
    if not (p / LABELS_FILE).is_file():
        raise TrainError(f"{what} {folder}: no {LABELS_FILE} in it")
    return p


def _load_folders(folders: Sequence[str | Path], what: str, spec: WindowSpec, *,
                  cache_dir, use_cache: bool, progress: bool, say: Callable[[str], None]) -> _Folders:
    parts, sources, descs = [], [], []
    for folder in folders:
        p = _check_folder(folder, what)
        try:
            arrays, errors = load_dataset(p, spec, CLASSES, cache_dir=cache_dir, use_cache=use_cache,
                                          require_labels=False, progress=progress)
        except (DatasetError, OSError, ValueError) as exc:
            raise TrainError(f"{what} {folder}: {exc}") from None
        if errors:
            say(f"{folder}: {len(errors)} row(s) of {LABELS_FILE} skipped, e.g.:")
            for e in errors[:5]:
                say(f"  {folder}/{e}")
        finite = (np.isfinite(arrays.x).all(axis=(1, 2)) & np.isfinite(arrays.log_peak))
        if not finite.all():
            bad = np.flatnonzero(~finite)
            say(f"{folder}: {bad.size} event(s) with NaN/inf input dropped, e.g. "
                + ", ".join(f"{LABELS_FILE} line {arrays.lines[i]} ({arrays.paths[i]})" for i in bad[:3]))
            arrays = arrays.subset(finite)
        desc = dataset_description(p)
        desc.update(events=len(arrays), labeled=int(np.sum(arrays.y >= 0)),
                    counts=arrays.class_counts(), row_errors=len(errors), units=arrays.units)
        resolved = str(p.resolve())
        parts.append(arrays)
        sources += [(resolved, path) for path in arrays.paths]
        descs.append(desc)
    nonempty = [a for a in parts if len(a)]
    units = {a.units for a in nonempty}
    if len(units) > 1:
        raise TrainError(f"{what} folders mix amplitude units ({', '.join(sorted(units))}): "
                         "give every folder a stations.xml, or none")
    arrays = EventArrays.concatenate(parts)
    if nonempty:
        arrays.units = nonempty[0].units
    return _Folders(arrays, sources, descs)


def prepare_inputs(model_name: str, x: np.ndarray, spec: WindowSpec, chunk: int = 256) -> np.ndarray:
    """Model input array: the waveforms themselves, or (spectrogram_cnn) their spectrograms."""
    if model_name != "spectrogram_cnn":
        return np.ascontiguousarray(x, dtype=np.float32)
    out = [spectrogram(x[i:i + chunk], spec.sampling_rate) for i in range(0, len(x), chunk)]
    if not out:
        f, t = spectrogram_shape(spec.n_samples, spec.sampling_rate)
        return np.zeros((0, x.shape[1], f, t), np.float32)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def magnitude_targets(m: np.ndarray, sigma: float) -> np.ndarray:
    """(N, 30) float32 soft targets over the magnitude bins; rows of NaN magnitudes are 0.

    A Gaussian of ``sigma`` magnitude units around ML (clipped into 0..3) evaluated at the bin
    centres and normalised; ``sigma == 0`` puts all the mass on ML's bin.
    """
    m = np.asarray(m, np.float64)
    out = np.zeros((m.size, N_MAG_BINS), np.float32)
    ok = np.isfinite(m)
    if not ok.any():
        return out
    mc = np.clip(m[ok], MAG_MIN, MAG_MAX)
    if sigma <= 0:
        idx = np.clip(np.floor((mc - MAG_MIN) / MAG_BIN_WIDTH + 1e-9), 0, N_MAG_BINS - 1).astype(int)
        q = np.zeros((mc.size, N_MAG_BINS))
        q[np.arange(mc.size), idx] = 1.0
    else:
        q = np.exp(-0.5 * ((MAG_BIN_CENTRES[None, :] - mc[:, None]) / sigma) ** 2)
        q /= q.sum(axis=1, keepdims=True)
    out[ok] = q
    return out


def augment_waveforms(x: np.ndarray, rng: np.random.Generator, sampling_rate: float,
                      shift_s: float = 0.3, flip: bool = True, noise_std: float = 0.0,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physics-preserving augmentation of normalised windows ``x`` (B, C, n).

    * time shift by an integer number of samples in ``[-shift_s, shift_s]`` (positive = the
      event moves later), zero padded -- an imprecise trigger time;
    * polarity flip of all components together (probability 1/2) -- the same event seen with
      the opposite first motion;
    * optional white noise of ``noise_std`` times the window peak.

    No amplitude scaling: the amplitude lives in ``log_peak``, which stays as it is.
    Returns ``(x_aug, shift in seconds (B,), sign (B,))``.
    """
    b, _, n = x.shape
    kmax = int(round(shift_s * sampling_rate))
    shifts = rng.integers(-kmax, kmax + 1, size=b) if kmax > 0 else np.zeros(b, np.int64)
    signs = np.where(rng.random(b) < 0.5, -1.0, 1.0).astype(np.float32) if flip else np.ones(b, np.float32)
    out = np.zeros_like(x)
    for i, k in enumerate(shifts):
        k = int(min(max(k, -n), n))
        if k >= 0:
            out[i, :, k:] = x[i, :, :n - k]
        else:
            out[i, :, :n + k] = x[i, :, -k:]
    out *= signs[:, None, None]
    if noise_std > 0:
        out += rng.normal(0.0, noise_std, size=out.shape).astype(np.float32)
    return out, shifts / float(sampling_rate), signs


def _augment_spectrograms(s: np.ndarray, rng: np.random.Generator, frames: int) -> np.ndarray:
    """Time shift of spectrogram images (B, C, F, T) by whole frames, zero filled."""
    if frames <= 0:
        return s
    out = np.zeros_like(s)
    t = s.shape[-1]
    for i, k in enumerate(rng.integers(-frames, frames + 1, size=s.shape[0])):
        k = int(k)
        if k >= 0:
            out[i, ..., k:] = s[i, ..., :t - k]
        else:
            out[i, ..., :t + k] = s[i, ..., -k:]
    return out


# ------------------------------------------------------------------------------ model helpers
def _is_head(name: str) -> bool:
    return name.startswith(HEAD_PREFIXES)


def _param_groups(model: nn.Module, lr: float, backbone_lr: float, weight_decay: float,
                  include: Callable[[str], bool] = lambda n: True) -> list[dict]:
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not include(name):
            continue
        key = (_is_head(name), p.ndim > 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (head, decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr if head else backbone_lr,
                    "weight_decay": weight_decay if decay else 0.0, "head": head})
    return out


def _make_scheduler(opt: torch.optim.Optimizer, kind: str, total_steps: int, warmup: float):
    total_steps = max(1, int(total_steps))
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps,
            pct_start=max(warmup, 1e-3), anneal_strategy="cos", div_factor=25.0,
            final_div_factor=1e3)
    if kind == "cosine":
        warm = int(round(warmup * total_steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            frac = (step - warm) / max(1, total_steps - warm)
            return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def _freeze_backbone(model: nn.Module, frozen: bool) -> None:
    for name, p in model.named_parameters():
        if not _is_head(name):
            p.requires_grad_(not frozen)


def _train_mode(model: nn.Module, frozen_backbone: bool) -> None:
    model.train()
    if frozen_backbone:  # frozen means frozen: BatchNorm statistics too
        for name, m in model.named_modules():
            if name and not _is_head(name + ".") and isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def predict_probs(model: nn.Module, inputs: np.ndarray, log_peak: np.ndarray, *,
                  batch_size: int = 64, mc_passes: int = 1, seed: int = 0,
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(class_probs (N, C), mag_probs (N, 30) or None, uncertainty (N,))``.

    ``inputs`` as :func:`prepare_inputs` makes them (spectrograms computed once, not every
    epoch); the MC-dropout loop and the uncertainty are :func:`trainer.predict_torch.predict_batches`.
    """
    spectro = is_spectrogram_model(model)

    def batches():
        for s in range(0, len(inputs), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(inputs[s:s + batch_size], np.float32))
            if spectro:
                yield (xb,)
            else:
                yield (xb, torch.from_numpy(
                    np.asarray(log_peak[s:s + batch_size], np.float32).reshape(-1, 1)))

    p = predict_batches(model, batches(), mc_passes, seed)
    return p.probs, p.mag_probs, p.uncertainty


def _scores(probs: np.ndarray, mag_probs: np.ndarray | None, y: np.ndarray, m: np.ndarray,
            classes: Sequence[str], uncertainty: np.ndarray | None = None) -> dict:
    pred = np.argmax(probs, axis=1)
    m_pred = MAG_BIN_CENTRES[np.argmax(mag_probs, axis=1)] if mag_probs is not None else None
    return evaluation_metrics(y, pred, classes, m if m_pred is not None else None, m_pred, uncertainty)


def evaluate_arrays(model: nn.Module, arrays: EventArrays, spec: WindowSpec | None = None, *,
                    mc_passes: int = 20, seed: int = 0, batch_size: int = 64) -> dict:
    """``metrics.json`` of ``model`` on labeled ``arrays`` (MC-dropout as in training)."""
    spec = spec or WindowSpec()
    inputs = prepare_inputs(model.config.name, arrays.x, spec)
    probs, mag, unc = predict_probs(model, inputs, arrays.log_peak, batch_size=batch_size,
                                    mc_passes=mc_passes, seed=seed)
    return _scores(probs, mag, arrays.y, arrays.magnitude, arrays.classes, unc)


def validation_arrays(run_dir: str | Path, *, cache_dir=None, progress: bool = False) -> EventArrays:
    """The labeled events a run validated on (from its ``split.json``), in that order."""
    run_dir = Path(run_dir)
    try:
        split = json.loads((run_dir / SPLIT_FILE).read_text())
        info = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{run_dir}: cannot read {SPLIT_FILE}/{RUN_FILE}: {exc}") from None
    spec = WindowSpec.from_dict(info["window"])
    rows = split["val"]
    parts = []
    for folder in dict.fromkeys(r["folder"] for r in rows):
        arrays, _ = load_dataset(folder, spec, tuple(info["classes"]), cache_dir=cache_dir,
                                 require_labels=False, progress=progress)
        where = {p: i for i, p in enumerate(arrays.paths)}
        parts.append(arrays.subset([where[r["path"]] for r in rows if r["folder"] == folder]))
    return EventArrays.concatenate(parts)


# ------------------------------------------------------------------------------ loops
def _batches(order: np.ndarray, batch_size: int, max_batches: int | None) -> list[np.ndarray]:
    out = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(out) > 1 and len(out[-1]) < 2:  # BatchNorm needs 2 rows: merge a lone last row
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out[:max_batches] if max_batches else out


def _bar(total: int, desc: str, enabled: bool):
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, leave=False)


def _finite_or_fail(loss: torch.Tensor, stage: str, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise TrainError(f"{stage}: loss became {loss.item()} at epoch {epoch}, batch {step} "
                         "(inputs are finite; lower --lr?)")


class _Stage2:
    """Class + magnitude training with validation, early stopping and the best state kept."""

    def __init__(self, model, cfg: TrainConfig, spec: WindowSpec, train_set: dict, val_set: dict,
                 classes: Sequence[str], say, progress: bool) -> None:
        self.model, self.cfg, self.spec, self.classes = model, cfg, spec, tuple(classes)
        self.tr, self.va, self.say, self.progress = train_set, val_set, say, progress
        self.spectro = is_spectrogram_model(model)
        self.has_mag = not self.spectro and model.config.n_mag_bins > 0
        self.tr["mag_loss_m"] = self._mag_rows(self.tr)
        self.tr["q"] = magnitude_targets(self.tr["mag_loss_m"], cfg.mag_sigma)
        self.va["q"] = magnitude_targets(self._mag_rows(self.va), cfg.mag_sigma)
        self.val_has_mag = self.has_mag and bool(np.isfinite(self._mag_rows(self.va)).any())

    def _mag_rows(self, s: dict) -> np.ndarray:
        """Magnitudes used by the loss: earthquakes with a known ML; NaN elsewhere."""
        m = np.asarray(s["magnitude"], np.float64).copy()
        if "earthquake" in self.classes:
            m[s["y"] != self.classes.index("earthquake")] = np.nan
        return m

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.tr["y"])
        if self.cfg.balance == "weighted":
            return balanced_order(self.tr["y"], rng)
        return rng.permutation(n)

    def validate(self) -> dict:
        probs, mag, _ = predict_probs(self.model, self.va["inputs"], self.va["log_peak"],
                                      batch_size=max(64, self.cfg.batch_size))
        y = self.va["y"]
        out = {"val_loss_class": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], _EPS, 1))))}
        mrows = np.isfinite(self._mag_rows(self.va))
        out["val_loss_mag"] = None
        if self.has_mag and mrows.any():
            q = self.va["q"][mrows]
            out["val_loss_mag"] = float(-np.mean(np.sum(q * np.log(np.clip(mag[mrows], _EPS, 1)), axis=1)))
        out["val_loss"] = out["val_loss_class"] + self.cfg.mag_weight * (out["val_loss_mag"] or 0.0)
        met = _scores(probs, mag, y, self.va["magnitude"], self.classes)
        out["val_macro_f1"] = met["macro_f1"]
        out["val_accuracy"] = met["accuracy"]
        mm = met.get("magnitude")
        out["val_hit_0_2"] = mm["hit_0_2"] if mm else None
        out["val_hit_0_3"] = mm["hit_0_3"] if mm else None
        out["val_mag_mae"] = mm["mae"] if mm else None
        out["score"] = met["macro_f1"] + (self.cfg.select_mag_weight * mm["hit_0_3"] if mm else 0.0)
        return out

    def run(self, backbone_factor: float) -> tuple[list[dict], int, dict]:
        cfg, model = self.cfg, self.model
        rng_order = np.random.default_rng([cfg.seed, 303])
        rng_aug = np.random.default_rng([cfg.seed, 404])
        n_batches = len(_batches(np.arange(len(self.tr["y"])), cfg.batch_size, cfg.max_batches))
        opt = torch.optim.AdamW(_param_groups(model, cfg.lr, cfg.lr * backbone_factor, cfg.weight_decay),
                                lr=cfg.lr)
        sched = _make_scheduler(opt, cfg.schedule, cfg.epochs * n_batches, cfg.warmup)
        frames = int(round(cfg.shift_s * self.spec.sampling_rate / (DEFAULT_NPERSEG - DEFAULT_NOVERLAP)))
        history: list[dict] = []
        best = (-math.inf, 0, copy.deepcopy(model.state_dict()))
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            frozen = epoch <= cfg.freeze_backbone_epochs
            _freeze_backbone(model, frozen)
            _train_mode(model, frozen)
            sums = {"loss": 0.0, "loss_class": 0.0, "loss_mag": 0.0}
            n_seen, n_mag = 0, 0
            batches = _batches(self._order(rng_order), cfg.batch_size, cfg.max_batches)
            bar = _bar(len(batches), f"epoch {epoch}", self.progress)
            for step, idx in enumerate(batches, 1):
                xb = self.tr["inputs"][idx]
                if cfg.augment:
                    if self.spectro:
                        xb = _augment_spectrograms(xb, rng_aug, frames)
                    else:
                        xb, _, _ = augment_waveforms(xb, rng_aug, self.spec.sampling_rate,
                                                     cfg.shift_s, cfg.flip, cfg.noise_std)
                xt = torch.from_numpy(np.ascontiguousarray(xb, np.float32))
                yt = torch.from_numpy(self.tr["y"][idx])
                if self.spectro:
                    logits, mag_logits = model(xt), None
                else:
                    lp = torch.from_numpy(self.tr["log_peak"][idx].reshape(-1, 1))
                    logits, mag_logits = model(xt, lp)
                loss_c = F.cross_entropy(logits, yt)
                loss = loss_c
                mrows = np.isfinite(self.tr["mag_loss_m"][idx])
                loss_m = None
                if self.has_mag and cfg.mag_weight > 0 and mrows.any():
                    sel = torch.from_numpy(np.flatnonzero(mrows))
                    q = torch.from_numpy(self.tr["q"][idx][mrows])
                    loss_m = -(q * F.log_softmax(mag_logits[sel], dim=-1)).sum(-1).mean()
                    loss = loss_c + cfg.mag_weight * loss_m
                _finite_or_fail(loss, "training", epoch, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
                opt.step()
                lrs = [(g["head"], g["lr"]) for g in opt.param_groups]  # the lr this step used
                sched.step()
                b = len(idx)
                n_seen += b
                sums["loss"] += loss.item() * b
                sums["loss_class"] += loss_c.item() * b
                if loss_m is not None:
                    sums["loss_mag"] += loss_m.item() * int(mrows.sum())
                    n_mag += int(mrows.sum())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sums['loss'] / n_seen:.3f}")
            if bar is not None:
                bar.close()
            train_s = time.perf_counter() - t0
            row = {"stage": "train", "epoch": epoch,
                   "loss": sums["loss"] / max(n_seen, 1), "loss_class": sums["loss_class"] / max(n_seen, 1),
                   "loss_mag": sums["loss_mag"] / n_mag if n_mag else None}
            row.update(self.validate())
            heads_lr = [lr for head, lr in lrs if head]
            back_lr = [lr for head, lr in lrs if not head]
            row["lr"] = heads_lr[0] if heads_lr else None
            row["lr_backbone"] = back_lr[0] if back_lr else None
            row["frozen_backbone"] = frozen
            row["batches"] = len(batches)
            improved = row["score"] > best[0] + cfg.min_delta
            if improved:
                best = (row["score"], epoch, copy.deepcopy(model.state_dict()))
            row["best"] = improved
            row["train_seconds"] = train_s
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            self.say(_epoch_line(row, cfg.epochs))
            if cfg.patience and epoch - best[1] >= cfg.patience:
                self.say(f"early stop: no better validation score for {cfg.patience} epochs "
                         f"(best epoch {best[1]})")
                break
        _freeze_backbone(model, False)
        model.load_state_dict(best[2])
        model.eval()
        return history, best[1], best[2]


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "  -  " if v is None else format(v, spec)


def _epoch_line(r: dict, epochs: int) -> str:
    if r["stage"] == "pretrain":
        return (f"pretrain {r['epoch']:>3}/{epochs}  attr MSE {r['loss']:.3f}  "
                f"val {_fmt(r['val_loss'])}  lr {r['lr']:.2e}  {r['seconds']:.1f} s")
    mag = f" mag {_fmt(r['loss_mag'])}" if r.get("loss_mag") is not None else ""
    return (f"epoch {r['epoch']:>3}/{epochs}  loss {r['loss']:.3f} (class {r['loss_class']:.3f}{mag})  "
            f"val loss {r['val_loss']:.3f}  val F1 {r['val_macro_f1']:.3f}  "
            f"mag±0.3 {_fmt(r['val_hit_0_3'])}  lr {r['lr']:.2e}  {r['seconds']:.1f} s"
            + ("  *" if r["best"] else ""))


class AttributeScaler:
    """z-scores of the attributes with the pre-training set's mean and std, clipped."""

    def __init__(self, a: np.ndarray, clip: float = ATTRIBUTE_CLIP) -> None:
        a = np.asarray(a, np.float64)
        self.mean = a.mean(axis=0)
        std = a.std(axis=0)
        self.std = np.where(std > 1e-9, std, 1.0)
        self.clip = float(clip)

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(a, np.float64) - self.mean) / self.std, -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict:
        return {"names": list(ATTRIBUTES), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "clip": self.clip}


def _pretrain(model, cfg: TrainConfig, spec: WindowSpec, x: np.ndarray, attrs: np.ndarray,
              val_x: np.ndarray, val_attrs: np.ndarray, say, progress: bool) -> tuple[list[dict], dict]:
    """Stage 1: backbone + ``pretrain_head`` regress the z-scored attributes (MSE)."""
    scaler = AttributeScaler(attrs)
    i_skew = ATTRIBUTES.index("skewness")
    i_tpeak = ATTRIBUTES.index("envelope_peak_time_s")
    lr = cfg.pretrain_lr or cfg.lr
    rng_order = np.random.default_rng([cfg.seed, 505])
    rng_aug = np.random.default_rng([cfg.seed, 606])
    n_batches = len(_batches(np.arange(len(x)), cfg.batch_size, cfg.max_batches))
    opt = torch.optim.AdamW(_param_groups(model, lr, lr, cfg.weight_decay,
                                          include=lambda n: not n.startswith("heads.")), lr=lr)
    sched = _make_scheduler(opt, cfg.schedule, cfg.pretrain_epochs * n_batches, cfg.warmup)
    val_ok = np.isfinite(val_attrs).all(axis=1)
    val_x, val_t = val_x[val_ok], scaler(val_attrs[val_ok])
    history: list[dict] = []
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    for epoch in range(1, cfg.pretrain_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        batches = _batches(rng_order.permutation(len(x)), cfg.batch_size, cfg.max_batches)
        bar = _bar(len(batches), f"pretrain {epoch}", progress)
        for step, idx in enumerate(batches, 1):
            xb, a = x[idx], attrs[idx].astype(np.float64)
            if cfg.augment:  # keep the targets true to the augmented window
                xb, shift, sign = augment_waveforms(xb, rng_aug, spec.sampling_rate, cfg.shift_s,
                                                    cfg.flip, cfg.noise_std)
                a[:, i_skew] *= sign
                a[:, i_tpeak] += shift
            pred = model.predict_attributes(torch.from_numpy(np.ascontiguousarray(xb, np.float32)))
            loss = F.mse_loss(pred, torch.from_numpy(scaler(a)))
            _finite_or_fail(loss, "pre-training", epoch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            lr_used = opt.param_groups[0]["lr"]
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        model.eval()
        val_loss = None
        if len(val_x):
            with torch.no_grad():
                preds = [model.predict_attributes(torch.from_numpy(val_x[i:i + 64]))
                         for i in range(0, len(val_x), 64)]
            val_loss = float(F.mse_loss(torch.cat(preds), torch.from_numpy(val_t)))
        row = {"stage": "pretrain", "epoch": epoch, "loss": total / max(seen, 1), "val_loss": val_loss,
               "lr": lr_used, "batches": len(batches)}
        crit = val_loss if val_loss is not None else row["loss"]
        row["best"] = crit < best[0]
        if row["best"]:
            best = (crit, epoch, copy.deepcopy(model.state_dict()))
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        say(_epoch_line(row, cfg.pretrain_epochs))
    model.load_state_dict(best[2])
    return history, {"best_epoch": best[1], "attributes": scaler.to_dict()}


# ------------------------------------------------------------------------------ transfer
def _load_init(init: str | Path) -> tuple[nn.Module, dict]:
    try:
        return load_run(init)
    except RunError as exc:
        raise TrainError(f"--init {exc}") from None


def _copy_weights(model: nn.Module, source: nn.Module) -> dict:
    """Copy every tensor of ``source`` whose name and shape match; report what was skipped."""
    target = model.state_dict()
    loaded, skipped = [], []
    for k, v in source.state_dict().items():
        if k in target and target[k].shape == v.shape:
            target[k] = v.clone()
            loaded.append(k)
        else:
            skipped.append(k)
    model.load_state_dict(target)
    heads = [k for k in loaded if _is_head(k)]
    return {"tensors_loaded": len(loaded), "head_tensors_loaded": len(heads),
            "skipped": skipped, "not_initialised": [k for k in target if k not in set(loaded)]}


def _build(name: str, cfg: TrainConfig, spec: WindowSpec, n_attributes: int,
           base: ModelConfig | None) -> nn.Module:
    if base is not None:
        d = base.to_dict()
        if n_attributes and not d.get("n_attributes"):
            d["n_attributes"] = n_attributes
        if cfg.dropout is not None:
            d["dropout"] = cfg.dropout
        return build_model_from_config(d)
    kw: dict[str, Any] = {}
    if name == "spectrogram_cnn":
        kw["input_shape"] = (len(spec.components),) + spectrogram_shape(spec.n_samples, spec.sampling_rate)
    elif n_attributes:
        kw["n_attributes"] = n_attributes
    if cfg.dropout is not None:
        kw["dropout"] = cfg.dropout
    return build_model(name, **kw)


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
    say = say or _stderr
    cfg = replace(config or TrainConfig()).validate()
    data = [data] if isinstance(data, (str, Path)) else list(data)
    if not data:
        raise TrainError("no --data folder given")
    vals = [] if val is None else ([val] if isinstance(val, (str, Path)) else list(val))
    pretrain_data = [pretrain_data] if isinstance(pretrain_data, (str, Path)) else list(pretrain_data)
    for folder, what in [(f, "--data") for f in data] + [(f, "--val") for f in vals] + \
            [(f, "--pretrain-data") for f in pretrain_data]:
        _check_folder(folder, what)
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
        src_model, src_info = _load_init(init)
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
    cfg = replace(cfg, model=name, backbone_lr_factor=factor)

    # --- labeled data and validation set
    loaded = _load_folders(data, "--data", spec, cache_dir=cache_dir, use_cache=use_cache,
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
        vloaded = _load_folders(vals, "--val", spec, cache_dir=cache_dir, use_cache=use_cache,
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
        ploaded = _load_folders(pretrain_data, "--pretrain-data", spec, cache_dir=cache_dir,
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
    model = _build(name, cfg, spec, len(ATTRIBUTES) if two_stage else 0, base)
    init_report = None
    if src_model is not None:
        init_report = _copy_weights(model, src_model)
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
        h1, pretrain_info = _pretrain(model, cfg, spec, parr.x, parr.attributes, val_arr.x,
                                      val_arr.attributes, say, progress)
        history += h1
        pretrain_info.update(events=len(parr), left_out=pre[2], data=pre[1])
        say("stage 2: fine-tuning on the labeled events")

    # --- stage 2
    h2, best_epoch, _ = _Stage2(model, cfg, spec, tr, va, CLASSES, say, progress).run(cfg.backbone_lr_factor)
    history += h2

    # --- final metrics of the kept model (MC dropout)
    metrics_batch = 64
    probs, mag, unc = predict_probs(model, val_inputs, va["log_peak"], batch_size=metrics_batch,
                                    mc_passes=cfg.mc_passes, seed=cfg.seed)
    metrics = _scores(probs, mag, va["y"], va["magnitude"], CLASSES, unc)
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
        from trainer.training_plots import plot_training_curves

        plot_training_curves(history, out / CURVES_FILE, best_epoch, title=f"{name} - {out.name}")
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
             f"{'class':<12}{'precision':>10}{'recall':>8}{'f1':>8}{'events':>8}"]
    for c in m["f1"]:
        lines.append(f"{c:<12}{m['precision'][c]:>10.3f}{m['recall'][c]:>8.3f}{m['f1'][c]:>8.3f}"
                     f"{m['support'][c]:>8d}")
    mag = m.get("magnitude")
    if mag:
        lines.append(f"magnitude ({mag['n']} earthquakes): hit ±0.2 {mag['hit_0_2']:.3f}, "
                     f"hit ±0.3 {mag['hit_0_3']:.3f}, MAE {mag['mae']:.3f}")
    unc = m.get("uncertainty")
    if unc and unc.get("mean_correct") is not None:
        wrong = unc.get("mean_wrong")
        lines.append(f"uncertainty: correct {unc['mean_correct']:.3f}, wrong "
                     + ("-" if wrong is None else f"{wrong:.3f}"))
    if result.info.get("notice"):
        lines.append(result.info["notice"])
    return "\n".join(lines)
