"""The training loops: stage 2 (class + magnitude, validation, early stopping, best
state kept) and stage 1 (attribute pre-training of the backbone), with the epoch lines.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.signal.features import ATTRIBUTES
from edge.signal.preprocess import WindowSpec
from edge.signal.spectrogram import DEFAULT_NOVERLAP, DEFAULT_NPERSEG
from trainer.balance import balanced_order
from trainer.config import TrainConfig, TrainError
from trainer.progress import progress_bar
from trainer.run import is_spectrogram_model
from trainer.training.inputs import (
    augment_spectrograms,
    augment_waveforms,
    magnitude_targets,
)
from trainer.training.optim import (
    freeze_backbone,
    make_scheduler,
    param_groups,
    train_mode,
)
from trainer.training.validation import predict_probs, validation_scores

__all__ = ["Stage2", "AttributeScaler", "pretrain_backbone", "ATTRIBUTE_CLIP"]

#: attribute z-scores are clipped to +-this in stage 1 (heavy-tailed kurtosis, decay rates)
ATTRIBUTE_CLIP = 5.0
_EPS = 1e-12


def _batches(order: np.ndarray, batch_size: int, max_batches: int | None) -> list[np.ndarray]:
    out = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(out) > 1 and len(out[-1]) < 2:  # BatchNorm needs 2 rows: merge a lone last row
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out[:max_batches] if max_batches else out


def _finite_or_fail(loss: torch.Tensor, stage: str, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise TrainError(f"{stage}: loss became {loss.item()} at epoch {epoch}, batch {step} "
                         "(inputs are finite; lower --lr?)")


class Stage2:
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
        met = validation_scores(probs, mag, y, self.va["magnitude"], self.classes)
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
        opt = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.lr * backbone_factor, cfg.weight_decay),
                                lr=cfg.lr)
        sched = make_scheduler(opt, cfg.schedule, cfg.epochs * n_batches, cfg.warmup)
        frames = int(round(cfg.shift_s * self.spec.sampling_rate / (DEFAULT_NPERSEG - DEFAULT_NOVERLAP)))
        history: list[dict] = []
        best = (-math.inf, 0, copy.deepcopy(model.state_dict()))
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            frozen = epoch <= cfg.freeze_backbone_epochs
            freeze_backbone(model, frozen)
            train_mode(model, frozen)
            sums = {"loss": 0.0, "loss_class": 0.0, "loss_mag": 0.0}
            n_seen, n_mag = 0, 0
            batches = _batches(self._order(rng_order), cfg.batch_size, cfg.max_batches)
            bar = progress_bar(len(batches), f"epoch {epoch}", self.progress, unit="batch", tty_only=True,
                               leave=False)
            for step, idx in enumerate(batches, 1):
                xb = self.tr["inputs"][idx]
                if cfg.augment:
                    if self.spectro:
                        xb = augment_spectrograms(xb, rng_aug, frames)
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
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / n_seen:.3f}")
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
        freeze_backbone(model, False)
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


def pretrain_backbone(model, cfg: TrainConfig, spec: WindowSpec, x: np.ndarray, attrs: np.ndarray,
              val_x: np.ndarray, val_attrs: np.ndarray, say, progress: bool) -> tuple[list[dict], dict]:
    """Stage 1: backbone + ``pretrain_head`` regress the z-scored attributes (MSE)."""
    scaler = AttributeScaler(attrs)
    i_skew = ATTRIBUTES.index("skewness")
    i_tpeak = ATTRIBUTES.index("envelope_peak_time_s")
    lr = cfg.pretrain_lr or cfg.lr
    rng_order = np.random.default_rng([cfg.seed, 505])
    rng_aug = np.random.default_rng([cfg.seed, 606])
    n_batches = len(_batches(np.arange(len(x)), cfg.batch_size, cfg.max_batches))
    opt = torch.optim.AdamW(param_groups(model, lr, lr, cfg.weight_decay,
                                          include=lambda n: not n.startswith("heads.")), lr=lr)
    sched = make_scheduler(opt, cfg.schedule, cfg.pretrain_epochs * n_batches, cfg.warmup)
    val_ok = np.isfinite(val_attrs).all(axis=1)
    val_x, val_t = val_x[val_ok], scaler(val_attrs[val_ok])
    history: list[dict] = []
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    for epoch in range(1, cfg.pretrain_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        batches = _batches(rng_order.permutation(len(x)), cfg.batch_size, cfg.max_batches)
        bar = progress_bar(len(batches), f"pretrain {epoch}", progress, unit="batch", tty_only=True,
                           leave=False)
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
            bar.update(1)
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
