"""A training run directory: what ``microseis train`` writes and everything else reads.

::

    RUN/
      model.pt       weights + ModelConfig (trainer.models.registry checkpoint) + run info
      run.json       the run info: model config, window spec, classes, magnitude bins, training
                     config, data description (synthetic or not), best epoch, timings
      history.json   one object per epoch (losses, validation macro-F1, magnitude hit rates, lr)
      curves.png     training curves
      metrics.json   validation metrics of the kept (best) model, as ``microseis evaluate``

:func:`model_inputs` turns :class:`~trainer.data.EventArrays` rows into the tensors a model
takes, so training, evaluation and export feed models identically.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge import __version__
from edge.signal.labels import MAG_BIN_WIDTH, MAG_MAX, MAG_MIN, N_MAG_BINS
from edge.signal.preprocess import WindowSpec
from edge.signal.spectrogram import spectrogram
from trainer.models.registry import load_checkpoint, save_checkpoint

MODEL_FILE = "model.pt"
RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"


class RunError(ValueError):
    """A run directory that is missing, incomplete or unreadable."""


def run_info(model: nn.Module, spec: WindowSpec, classes: tuple[str, ...], train_config: dict,
             data: dict, **extra: Any) -> dict:
    """The ``run.json`` object (also stored inside ``model.pt``)."""
    return {
        "model": model.config.to_dict(),
        "window": spec.to_dict(),
        "classes": list(classes),
        "magnitude_bins": {"min": MAG_MIN, "max": MAG_MAX, "width": MAG_BIN_WIDTH, "n": N_MAG_BINS,
                           "value": "bin centre"},
        "train": train_config,
        "data": data,
        "synthetic": bool(data.get("synthetic", False)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "software": f"microseis-edge {__version__}",
        **extra,
    }


def save_run(run_dir: str | Path, model: nn.Module, info: dict) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run_dir / MODEL_FILE, model, run=info)
    (run_dir / RUN_FILE).write_text(json.dumps(info, indent=2) + "\n")


def load_run(run_dir: str | Path) -> tuple[nn.Module, dict]:
    """``(model in eval mode, run info)``; raises :class:`RunError` naming what is wrong."""
    run_dir = Path(run_dir)
    path = run_dir / MODEL_FILE
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a run directory")
    if not path.is_file():
        raise RunError(f"{run_dir}: no {MODEL_FILE} (did training finish?)")
    try:
        model, ckpt = load_checkpoint(path)
    except Exception as exc:
        raise RunError(f"{path}: unreadable checkpoint: {exc}") from None
    info = ckpt.get("run")
    if not isinstance(info, dict):
        raise RunError(f"{path}: checkpoint has no run info")
    return model, info


def is_spectrogram_model(model: nn.Module) -> bool:
    return model.config.name == "spectrogram_cnn"


def model_inputs(model: nn.Module, x: np.ndarray, log_peak: np.ndarray,
                 sampling_rate: float) -> tuple[torch.Tensor, ...]:
    """The tensors ``model(*inputs)`` takes for events ``x`` (B, 3, n) and ``log_peak`` (B,)."""
    if is_spectrogram_model(model):
        return (torch.from_numpy(np.ascontiguousarray(spectrogram(x, sampling_rate))),)
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.asarray(log_peak, np.float32).reshape(-1, 1)))


__all__ = ["RunError", "run_info", "save_run", "load_run", "model_inputs", "is_spectrogram_model",
           "MODEL_FILE", "RUN_FILE", "HISTORY_FILE", "METRICS_FILE", "CURVES_FILE"]
