"""Event models (torch): 1-D ResNet18-CBAM, plain 1-D CNN, spectrogram CNN baseline.

Waveform models: ``forward(x (B, 3, n), log_peak (B, 1)) -> (class_logits (B, 4),
mag_logits (B, 30))``; the spectrogram CNN: ``forward(spec (B, C, F, T)) -> class_logits``.
Label constants and magnitude-bin helpers live in :mod:`edge.signal.labels` (numpy only, shared
with the station) and are re-exported here.
"""
from edge.signal.labels import (
    CLASSES,
    MAG_BIN_CENTRES,
    MAG_BIN_EDGES,
    N_CLASSES,
    N_MAG_BINS,
    bin_to_magnitude,
    expected_magnitude,
    magnitude_to_bin,
)

from .cnn1d import CNN1d
from .heads import AttributeHead, EventHeads, ProbabilityModel
from .layers import CBAM1d, MaxPool1dExportable, MCDropout, SoftThreshold, set_mc_dropout
from .registry import (
    MODELS,
    ModelConfig,
    build_model,
    build_model_from_config,
    checkpoint_dict,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)
from .resnet_cbam import ResNet18CBAM1d
from .spectrogram_cnn import SpectrogramCNN

__all__ = [
    "CLASSES", "N_CLASSES", "N_MAG_BINS", "MAG_BIN_EDGES", "MAG_BIN_CENTRES",
    "magnitude_to_bin", "bin_to_magnitude", "expected_magnitude",
    "MCDropout", "set_mc_dropout", "CBAM1d", "SoftThreshold", "MaxPool1dExportable",
    "EventHeads", "AttributeHead", "ProbabilityModel",
    "ResNet18CBAM1d", "CNN1d", "SpectrogramCNN",
    "MODELS", "ModelConfig", "build_model", "build_model_from_config", "count_parameters",
    "checkpoint_dict", "save_checkpoint", "load_checkpoint",
]
