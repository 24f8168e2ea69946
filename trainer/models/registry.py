"""Model registry, configuration saved with checkpoints, parameter counting.

>>> model = build_model("resnet18_cbam", n_attributes=12)
>>> model.config.to_dict()["name"]
'resnet18_cbam'
>>> again = build_model_from_config(ModelConfig.from_dict(model.config.to_dict()))

Every model built here carries ``model.config`` (a :class:`ModelConfig` holding *all* its
constructor arguments, defaults filled in), so a checkpoint rebuilds exactly the same
architecture: :func:`checkpoint_dict` / :func:`save_checkpoint` / :func:`load_checkpoint`.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.signal.labels import N_CLASSES, N_MAG_BINS

from .cnn1d import CNN1d
from .resnet_cbam import ResNet18CBAM1d
from .spectrogram_cnn import SpectrogramCNN

__all__ = [
    "MODELS",
    "ModelConfig",
    "build_model",
    "build_model_from_config",
    "count_parameters",
    "checkpoint_dict",
    "save_checkpoint",
    "load_checkpoint",
]

#: name -> class. Waveform models take ``forward(x, log_peak)`` and return
#: ``(class_logits, mag_logits)``; ``spectrogram_cnn`` takes ``forward(spec)`` and returns
#: class logits only.
MODELS: dict[str, type[nn.Module]] = {
    "resnet18_cbam": ResNet18CBAM1d,
    "cnn1d": CNN1d,
    "spectrogram_cnn": SpectrogramCNN,
}

_COMMON = ("n_classes", "n_mag_bins", "n_attributes", "dropout", "widths")


def _tuplify(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_tuplify(x) for x in v)
    return v


def _listify(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_listify(x) for x in v]
    return v


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model: registry name + constructor arguments.

    ``n_mag_bins`` is 0 and ``n_attributes`` 0 for models without those heads
    (``spectrogram_cnn`` has neither). ``dropout`` / ``widths`` None mean the architecture's
    default; :func:`build_model` always stores the resolved values. Architecture-specific
    arguments (``blocks``, ``kernel_size``, ``pools``, ``input_shape``, ...) are in
    ``options``.
    """

    name: str
    n_classes: int = N_CLASSES
    n_mag_bins: int = N_MAG_BINS
    n_attributes: int = 0
    dropout: float | None = None
    widths: tuple[int, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}; known: {sorted(MODELS)}")
        if self.widths is not None:
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "options", {k: _tuplify(v) for k, v in dict(self.options).items()})

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the model class."""
        params = inspect.signature(MODELS[self.name].__init__).parameters
        kw: dict[str, Any] = {}
        for name in _COMMON:
            value = getattr(self, name)
            if name in params:
                if value is not None:
                    kw[name] = value
            elif value not in (None, 0):
                raise ValueError(f"model {self.name!r} has no {name!r} (got {value!r})")
        unknown = set(self.options) - set(params) | (set(self.options) & set(_COMMON))
        if unknown:
            raise ValueError(f"model {self.name!r}: unknown/duplicate options {sorted(unknown)}")
        kw.update(self.options)
        return kw

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        return {f.name: _listify(getattr(self, f.name)) if f.name != "options"
                else {k: _listify(v) for k, v in self.options.items()} for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {sorted(unknown)}")
        return cls(**dict(d))

    @classmethod
    def from_hparams(cls, name: str, hparams: Mapping[str, Any]) -> ModelConfig:
        """Split a model's ``hparams`` into the common fields and ``options``."""
        hp = dict(hparams)
        common = {k: hp.pop(k) for k in _COMMON if k in hp}
        if name == "spectrogram_cnn":
            common.setdefault("n_mag_bins", 0)
        return cls(name=name, **common, options=hp)


def build_model(name: str, **kw: Any) -> nn.Module:
    """Build a registered model (``"resnet18_cbam"``, ``"cnn1d"``, ``"spectrogram_cnn"``)
    with constructor arguments ``kw``; sets ``model.config`` (resolved :class:`ModelConfig`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    model = MODELS[name](**kw)
    model.config = ModelConfig.from_hparams(name, model.hparams)
    return model


def build_model_from_config(config: ModelConfig | Mapping[str, Any]) -> nn.Module:
    """Rebuild the architecture described by ``config`` (weights freshly initialised)."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    return build_model(config.name, **config.model_kwargs())


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def checkpoint_dict(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """``{"model_config": config dict, "state_dict": ..., **extra}`` for ``torch.save``."""
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError("model has no ModelConfig (build it with build_model)")
    return {"model_config": config.to_dict(), "state_dict": model.state_dict(), **extra}


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> None:
    """Save weights + config (+ ``extra``: plain Python values, e.g. epoch, metrics)."""
    torch.save(checkpoint_dict(model, **extra), Path(path))


def load_checkpoint(path_or_dict: str | Path | Mapping[str, Any], map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from a checkpoint; returns ``(model in eval mode, checkpoint dict)``."""
    if isinstance(path_or_dict, Mapping):
        ckpt = dict(path_or_dict)
    else:
        ckpt = torch.load(Path(path_or_dict), map_location=map_location, weights_only=True)
    model = build_model_from_config(ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
