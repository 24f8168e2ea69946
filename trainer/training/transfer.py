"""Transfer: building the model to train, from scratch or with another run's weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from edge.signal.preprocess import WindowSpec
from edge.signal.spectrogram import spectrogram_shape
from trainer.config import TrainConfig, TrainError
from trainer.models.registry import ModelConfig, build_model, build_model_from_config
from trainer.run import RunError, load_run
from trainer.training.optim import is_head

__all__ = ["load_init", "copy_weights", "build_for_training"]


def load_init(init: str | Path) -> tuple[nn.Module, dict]:
    try:
        return load_run(init)
    except RunError as exc:
        raise TrainError(f"--init {exc}") from None


def copy_weights(model: nn.Module, source: nn.Module) -> dict:
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
    heads = [k for k in loaded if is_head(k)]
    return {"tensors_loaded": len(loaded), "head_tensors_loaded": len(heads),
            "skipped": skipped, "not_initialised": [k for k in target if k not in set(loaded)]}


def build_for_training(name: str, cfg: TrainConfig, spec: WindowSpec, n_attributes: int,
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
