"""What ``microseis evaluate`` scores: the :class:`Scorer` protocol every model format
implements (a training run: :class:`trainer.evaluate.TorchRunScorer`; a signed bundle:
:class:`trainer.bundle_scorer.BundleScorer`) and :class:`EvaluationError`."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from edge.model.predictions import Predictions
from edge.signal.preprocess import WindowSpec

__all__ = ["EvaluationError", "Scorer"]


class EvaluationError(ValueError):
    """A problem the user can fix (missing run, missing data, no usable rows): one line."""


@runtime_checkable
class Scorer(Protocol):
    """What :func:`evaluate` needs from a model, whatever its format."""

    #: "torch-run" or, later, "bundle"
    kind: str
    #: the path it was loaded from
    source: str
    #: a short name (run directory name, bundle name + version)
    name: str
    #: class names in the model's output order
    classes: tuple[str, ...]
    #: the model's input window (what the data must be cut and filtered with)
    window: WindowSpec
    #: True when the model was trained on synthetic data (None when unknown)
    synthetic: bool | None
    #: whether the model predicts magnitude
    has_magnitude: bool

    def predict(self, x: np.ndarray, log_peak: np.ndarray, mc_passes: int = 20,
                seed: int = 0) -> Predictions:
        """Predictions for normalised windows ``x`` (N, 3, n) and ``log_peak`` (N,)."""
        ...

    def gradcam(self, x: np.ndarray, log_peak: np.ndarray,
                target: np.ndarray | None = None) -> np.ndarray:
        """(N, n) Grad-CAM maps in [0, 1]; raises ``GradCamUnsupported`` (a ValueError) with
        the reason when the model cannot give them."""
        ...

    def history(self) -> list[dict] | None:
        """Training history (epoch records) when known."""
        ...

    def describe(self) -> dict:
        """JSON-able description for ``metrics.json["model"]``."""
        ...
