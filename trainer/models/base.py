"""What every waveform model shares: heads, embedding, attribute head and ``forward``.

A subclass builds its body, calls :meth:`WaveformEventModel._build_heads` and implements
:meth:`feature_map`; the rest (``features``, ``predict_attributes``, ``forward``,
``noise_dim``) is here once.
"""
from __future__ import annotations

import torch
from torch import nn

from .heads import AttributeHead, EventHeads


class WaveformEventModel(nn.Module):
    """Base of the 1-D models: ``forward(x, log_peak) -> (class_logits, mag_logits)``."""

    heads: EventHeads
    pretrain_head: AttributeHead | None
    embedding_dim: int

    def _build_heads(self, embedding_dim: int, n_classes: int, n_mag_bins: int, head_hidden: int,
                     dropout: float, n_scalar_features: int, log_peak_center: float,
                     log_peak_scale: float, n_attributes: int) -> None:
        self.embedding_dim = embedding_dim
        self.heads = EventHeads(embedding_dim, n_classes, n_mag_bins, head_hidden, dropout,
                                n_scalar_features, log_peak_center, log_peak_scale)
        self.pretrain_head = AttributeHead(embedding_dim, n_attributes) if n_attributes else None

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, embedding_dim, T') map before global pooling (the output of ``last_conv``)."""
        raise NotImplementedError

    @property
    def noise_dim(self) -> int:
        """Width of the optional ``noise`` input of :meth:`forward`."""
        return self.heads.noise_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, embedding_dim) globally average-pooled embedding (transfer / two-stage)."""
        return self.feature_map(x).mean(-1)

    def predict_attributes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_attributes) from :attr:`pretrain_head` (needs ``n_attributes > 0``)."""
        if self.pretrain_head is None:
            raise RuntimeError("model was built with n_attributes=0: no pretrain_head")
        return self.pretrain_head(self.features(x))

    def forward(
        self,
        x: torch.Tensor,
        log_peak: torch.Tensor,
        scalars: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(class_logits (B, n_classes), mag_logits (B, n_mag_bins))``."""
        return self.heads(self.features(x), log_peak, scalars, noise)
