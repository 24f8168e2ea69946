"""The training options (:class:`TrainConfig`, saved as ``run.json["train"]``) and
:class:`TrainError`, the error for bad data or options.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from trainer.models.registry import MODELS

__all__ = ["TrainConfig", "TrainError", "SCHEDULES", "BALANCES"]

SCHEDULES = ("onecycle", "cosine", "constant")
BALANCES = ("weighted", "smote", "none")


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
