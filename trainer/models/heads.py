"""Output heads shared by the waveform models, and an export wrapper.

:class:`EventHeads` turns a pooled waveform embedding plus the amplitude scalar ``log_peak``
(and optional extra scalar features) into ``class_logits`` and ``mag_logits``.
:class:`AttributeHead` regresses hand-made attributes (``edge.signal.features``) from the
embedding alone, for self-supervised pre-training.
:class:`ProbabilityModel` wraps a model so that it returns softmax probabilities (what the
exported ONNX/TFLite graphs return).

Class order and magnitude bins: :mod:`edge.signal.labels`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge.signal.labels import N_CLASSES, N_MAG_BINS

from .layers import MCDropout

__all__ = ["EventHeads", "AttributeHead", "ProbabilityModel"]

#: ``log_peak`` (log10 of the peak velocity in m/s) is fed to the heads as
#: ``(log_peak - LOG_PEAK_CENTER) / LOG_PEAK_SCALE``: about -1..1 for 1e-7..1e-3 m/s.
LOG_PEAK_CENTER = -5.0
LOG_PEAK_SCALE = 2.0


class EventHeads(nn.Module):
    """Class and magnitude heads on ``[embedding, normalised log_peak, scalars]``.

    Layout (D = embedding_dim + 1 + n_scalar_features, H = hidden)::

        z = concat(MCDropout(embedding), lp, scalars)   # noise[:, :E], E = embedding_dim
        class_logits = Linear(H, n_classes)(MCDropout(ReLU(Linear(D, H)(z))))   # noise[:, E:E+H]
        mag_logits   = Linear(H, n_mag_bins)(MCDropout(ReLU(Linear(D, H)(z))))  # noise[:, E+H:]

    The amplitude (``lp``) and scalar features are never dropped: the magnitude rests on
    them, and dropping them would turn MC-dropout's spread into amplitude noise.

    ``noise`` (optional, (B, :attr:`noise_dim`) uniform [0, 1)) replaces the three dropout
    masks' ``rand_like`` (for TFLite export, see :class:`~.layers.MCDropout`).
    """

    def __init__(
        self,
        embedding_dim: int,
        n_classes: int = N_CLASSES,
        n_mag_bins: int = N_MAG_BINS,
        hidden: int = 64,
        dropout: float = 0.2,
        n_scalar_features: int = 0,
        log_peak_center: float = LOG_PEAK_CENTER,
        log_peak_scale: float = LOG_PEAK_SCALE,
    ) -> None:
        super().__init__()
        if log_peak_scale <= 0:
            raise ValueError("log_peak_scale must be > 0")
        self.embedding_dim = int(embedding_dim)
        self.n_scalar_features = int(n_scalar_features)
        self.in_dim = self.embedding_dim + 1 + self.n_scalar_features
        self.hidden = int(hidden)
        self.log_peak_center = float(log_peak_center)
        self.log_peak_scale = float(log_peak_scale)
        self.drop_in = MCDropout(dropout)
        self.class_fc = nn.Linear(self.in_dim, hidden)
        self.class_drop = MCDropout(dropout)
        self.class_out = nn.Linear(hidden, n_classes)
        self.mag_fc = nn.Linear(self.in_dim, hidden)
        self.mag_drop = MCDropout(dropout)
        self.mag_out = nn.Linear(hidden, n_mag_bins)

    @property
    def noise_dim(self) -> int:
        return self.embedding_dim + 2 * self.hidden

    def forward(
        self,
        embedding: torch.Tensor,
        log_peak: torch.Tensor,
        scalars: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_in = n_c = n_m = None
        if noise is not None:
            d, h = self.embedding_dim, self.hidden
            n_in, n_c, n_m = noise[:, :d], noise[:, d : d + h], noise[:, d + h : d + 2 * h]
        lp = (log_peak.reshape(-1, 1) - self.log_peak_center) * (1.0 / self.log_peak_scale)
        parts = [self.drop_in(embedding, n_in), lp]
        if self.n_scalar_features:
            if scalars is None:
                raise ValueError(f"model expects {self.n_scalar_features} scalar features")
            parts.append(scalars.reshape(-1, self.n_scalar_features))
        z = torch.cat(parts, dim=1)
        c = self.class_out(self.class_drop(F.relu(self.class_fc(z)), n_c))
        m = self.mag_out(self.mag_drop(F.relu(self.mag_fc(z)), n_m))
        return c, m


class AttributeHead(nn.Module):
    """Regresses ``n_attributes`` (standardised) waveform attributes from the embedding, for
    self-supervised pre-training on unlabeled windows. Sees the embedding only -- not
    ``log_peak`` -- so the encoder has to learn the attributes from the waveform."""

    def __init__(self, embedding_dim: int, n_attributes: int, hidden: int = 64) -> None:
        super().__init__()
        if n_attributes < 1:
            raise ValueError("n_attributes must be >= 1")
        self.n_attributes = int(n_attributes)
        self.net = nn.Sequential(
            nn.Linear(embedding_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_attributes),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding)


class ProbabilityModel(nn.Module):
    """Wraps a model so that it returns softmax probabilities (over the last axis) instead of
    logits -- the form the station runs.

    ``forward(x, log_peak=None, noise=None)``: a waveform model gets ``(x, log_peak)`` (and
    ``noise=`` when given, for a TFLite graph with the MC-dropout noise as an input) and the
    wrapper returns ``(class_probs, mag_probs)``; the spectrogram CNN gets ``(spec)`` alone
    and the wrapper returns ``class_probs``. Explicit arguments (no ``*args``) so that
    ``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)`` can name them.

    Export in eval mode: the wrapper takes the wrapped model's mode when built. (A wrapper in
    training mode makes the dynamo exporter fail with "expected compiled_fn to be
    GraphModule", and the legacy exporter leaves the whole model in training mode after
    export.)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # Start in the wrapped model's mode. A fresh wrapper would be in training mode, and
        # the legacy ONNX exporter "restores" the wrapper's mode afterwards with .train(True),
        # recursively -- silently switching an eval() model to training mode.
        self.train(model.training)

    def forward(
        self,
        x: torch.Tensor,
        log_peak: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ):
        if log_peak is None:
            out = self.model(x)
        elif noise is None:
            out = self.model(x, log_peak)
        else:
            out = self.model(x, log_peak, noise=noise)
        if isinstance(out, tuple):
            return tuple(torch.softmax(o, dim=-1) for o in out)
        return torch.softmax(out, dim=-1)
