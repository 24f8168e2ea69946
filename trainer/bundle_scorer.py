"""Score a signed model bundle in ``microseis evaluate`` -- through the station's own
:class:`edge.model.inference.EventClassifier`, so the numbers are what a station would report
(int8 vs fp32 can be compared on any dataset by evaluating the two bundles, or one bundle's
two model files with ``runtime``/``model_file``)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge.model.format import BundleError
from edge.model.inference import EventClassifier
from edge.model.predictions import Predictions
from trainer.gradcam import GradCamUnsupported
from trainer.scorer import EvaluationError

__all__ = ["BundleScorer"]


class BundleScorer:
    """:class:`trainer.scorer.Scorer` for a ``*.msb`` bundle.

    Args:
        path: the bundle file.
        trusted_keys: public keys (paths) it may be signed with; default: the shipped keys.
        runtime: ``"onnx"`` or ``"tflite"``.
        batch_size: graph rows per call.
    """

    kind = "bundle"

    def __init__(self, path: str | Path, trusted_keys: Iterable[Any] | None = None,
                 runtime: str = "onnx", batch_size: int = 64) -> None:
        self.path = Path(path)
        try:
            self.clf = EventClassifier.load(self.path, trusted_keys=trusted_keys, runtime=runtime,
                                            batch=max(batch_size, 20))
        except BundleError as exc:
            raise EvaluationError(f"{self.path}: bundle rejected: {exc}") from None
        m = self.clf.bundle.manifest
        self.source = str(self.path)
        self.name = f"{m.name}-{m.version}"
        self.classes = tuple(m.classes)
        self.window = self.clf.window_spec
        self.synthetic = m.synthetic
        self.has_magnitude = self.clf.predictor.mag_output is not None

    def predict(self, x: np.ndarray, log_peak: np.ndarray, mc_passes: int = 20,
                seed: int = 0) -> Predictions:
        p = self.clf.predictor
        p.mc_passes = max(1, int(mc_passes)) if p.noise else 1
        p.seed = int(seed)
        return p.predict(x, log_peak)

    def gradcam(self, x: np.ndarray, log_peak: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        raise GradCamUnsupported("Grad-CAM needs the torch model: evaluate the training run "
                                 "directory for the maps")

    def history(self) -> list[dict] | None:
        return None

    def describe(self) -> dict:
        info = self.clf.info
        m = self.clf.bundle.manifest
        return {"kind": self.kind, "path": str(self.path.resolve()), "name": self.name,
                "model_file": info.file, "format": info.format, "precision": info.precision,
                "runtime": self.clf.runtime, "sha256": info.sha256, "classes": list(self.classes),
                "window": self.window.to_dict(), "synthetic": self.synthetic,
                "created": m.created, "software": m.software,
                "training_data": m.training_data.get("description")}
