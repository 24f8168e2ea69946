"""The training options (:class:`TrainConfig`, a msgspec Struct declared on
:mod:`edge.schema`: type, default, bounds, meaning and ``microseis train`` option written once;
saved as ``run.json["train"]``) and :class:`TrainError`, the error for bad data or options.
"""
from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge.schema import ConfigError, validate
from edge.schema.render import option_lines

__all__ = ["TrainConfig", "TrainError", "SCHEDULES", "BALANCES", "MODEL_NAMES"]

Schedule = Literal["onecycle", "cosine", "constant"]
Balance = Literal["weighted", "smote", "none"]
#: the architectures of :data:`trainer.models.registry.MODELS` (a test keeps them equal; the
#: registry imports torch, the options must not)
ModelName = Literal["resnet18_cbam", "cnn1d", "spectrogram_cnn"]
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)
BALANCES: tuple[str, ...] = typing.get_args(Balance)
MODEL_NAMES: tuple[str, ...] = typing.get_args(ModelName)

DATA, OPTIM, STAGES = "data and output", "model and optimisation", "two-stage and transfer"


class TrainError(ValueError):
    """Bad data or options: the message says what to fix (the CLI prints it, exit 2)."""


def _opt(option: str, group: str = OPTIM, metavar: str | None = None) -> dict[str, Any]:
    return {"cli": option, "group": group, **({"metavar": metavar} if metavar else {})}


def _f(doc: str, option: str | None = None, group: str = OPTIM, metavar: str | None = None,
       **bounds: Any) -> Meta:
    return Meta(description=doc, extra=_opt(option, group, metavar) if option else {}, **bounds)


class TrainConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Every training option (saved as ``run.json["train"]``). Defaults = ``microseis train``.
    :meth:`validate` checks types and bounds (:class:`TrainError` naming the option)."""

    model: Annotated[ModelName | None, _f("architecture; unset = resnet18_cbam, or the --init run's",
                                             "--model")] = None
    epochs: Annotated[int, _f("maximum epochs", "--epochs", metavar="N", ge=1)] = 40
    batch_size: Annotated[int, _f("batch size", "--batch-size", metavar="N", ge=2)] = 32
    lr: Annotated[float, _f("peak learning rate of AdamW (one-cycle maximum; cosine after warm-up)",
                            "--lr", gt=0)] = 2e-3
    weight_decay: Annotated[float, _f("AdamW weight decay on weights, not biases/BatchNorm",
                                      "--weight-decay", metavar="WD", ge=0)] = 1e-2
    schedule: Annotated[Schedule, _f("learning-rate schedule", "--schedule")] = "onecycle"
    warmup: Annotated[float, _f("fraction of the steps warming up (one-cycle pct_start / cosine "
                                "linear warm-up)", "--warmup", metavar="F", ge=0, lt=1)] = 0.2
    patience: Annotated[int, _f("stop after N epochs without a better validation score; 0 = never",
                                "--patience", metavar="N", ge=0)] = 15
    min_delta: Annotated[float, _f("improvement of the score that counts", ge=0)] = 1e-4
    select_mag_weight: Annotated[float, _f("validation score = macro-F1 + W x magnitude hit rate "
                                           "within 0.3", "--select-mag-weight", metavar="W")] = 0.25
    val_fraction: Annotated[float, _f("stratified validation fraction of --data (without --val)",
                                      "--val-fraction", DATA, "F", gt=0, le=0.5)] = 0.15
    seed: Annotated[int, _f("random seed", "--seed", ge=0)] = 0
    threads: Annotated[int, _f("torch CPU threads", "--threads", metavar="N", ge=1)] = 2
    mag_weight: Annotated[float, _f("weight of the magnitude cross-entropy", "--mag-weight",
                                    metavar="L", ge=0)] = 1.0
    mag_sigma: Annotated[float, _f("sigma of the Gaussian soft magnitude targets, magnitude units; "
                                   "0 = one-hot", "--mag-sigma", metavar="S", ge=0)] = 0.15
    balance: Annotated[Balance, _f("class balancing: weighted sampling, SMOTE, or none",
                                   "--balance")] = "weighted"
    augment: Annotated[bool, _f("augmentation of training batches (time shift, polarity flip, "
                                "optional noise); off with --no-augment", "--no-augment")] = True
    shift_s: Annotated[float, _f("maximum random time shift, seconds (zero padded)", "--shift",
                                 metavar="S", ge=0, le=2)] = 0.3
    flip: Annotated[bool, _f("random polarity flip of the three components together; off with "
                             "--no-flip", "--no-flip")] = True
    noise_std: Annotated[float, _f("add Gaussian noise of S x the window peak; 0 = off",
                                   "--noise-std", metavar="S", ge=0)] = 0.0
    max_labeled: Annotated[Annotated[int, Meta(ge=1)] | None, _f(
        "use only N labeled training events (stratified, seeded); unset = all", "--max-labeled", DATA,
        "N")] = None
    pretrain_epochs: Annotated[int, _f("stage-1 epochs (with --pretrain-data)", "--pretrain-epochs",
                                       STAGES, "N", ge=1)] = 20
    pretrain_lr: Annotated[Annotated[float, Meta(gt=0)] | None, _f(
        "stage-1 peak learning rate; unset = --lr", "--pretrain-lr", STAGES, "LR")] = None
    backbone_lr_factor: Annotated[Annotated[float, Meta(ge=0)] | None, _f(
        "backbone lr = F x lr; unset = 1.0 from scratch, 0.3 after pre-training or --init",
        "--backbone-lr-factor", STAGES, "F")] = None
    freeze_backbone_epochs: Annotated[int, _f("keep the backbone frozen (weights and BatchNorm "
                                              "statistics) for the first K epochs",
                                              "--freeze-backbone-epochs", STAGES, "K", ge=0)] = 0
    dropout: Annotated[Annotated[float, Meta(ge=0, lt=1)] | None, _f(
        "MC-dropout probability of the heads; unset = the architecture's default", "--dropout",
        metavar="P")] = None
    mc_passes: Annotated[int, _f("MC-dropout passes for the validation metrics of the kept model",
                                 "--mc-passes", metavar="T", ge=1)] = 20
    max_batches: Annotated[Annotated[int, Meta(ge=1)] | None, _f(
        "at most N batches per epoch (quick looks, tests); unset = all", "--max-batches",
        metavar="N")] = None
    grad_clip: Annotated[float, _f("gradient-norm clipping; 0 = off", "--grad-clip", metavar="G",
                                   ge=0)] = 5.0

    def validate(self) -> TrainConfig:
        """Check types and bounds; returns ``self``, raises :class:`TrainError` naming the
        option of each bad value (``"--epochs: must be >= 1, got 0"``)."""
        try:
            return validate(self)
        except ConfigError as exc:
            raise TrainError("; ".join(option_lines(TrainConfig, exc))) from None

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in msgspec.structs.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
