"""Validation of a model being trained: (MC-dropout) class and magnitude probabilities on
event arrays, their metrics, and a run's validation events read back.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.signal.labels import MAG_BIN_CENTRES
from edge.signal.preprocess import WindowSpec
from trainer.data import EventArrays, load_dataset
from trainer.metrics import evaluation_metrics
from trainer.predict_torch import predict_batches
from trainer.run import RUN_FILE, RunError, is_spectrogram_model
from trainer.training.inputs import prepare_inputs

__all__ = [
    "SPLIT_FILE",
    "predict_probs",
    "validation_scores",
    "evaluate_arrays",
    "validation_arrays",
]

#: which labeled events trained and which validated (``validation_arrays`` reads it back)
SPLIT_FILE = "split.json"


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


def validation_scores(probs: np.ndarray, mag_probs: np.ndarray | None, y: np.ndarray, m: np.ndarray,
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
    return validation_scores(probs, mag, arrays.y, arrays.magnitude, arrays.classes, unc)


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
