"""Spectrogram CNN of the Bossea cave study, kept as a comparison baseline.

Input: the normalised log-power spectrogram image of :func:`edge.signal.spectrogram.spectrogram`,
float32 (B, C, F, T) -- by default (B, 3, 65, 45) for 3 x 3000 samples at 250 Hz (1 channel
works too: ``in_channels=1``). Output: **class logits only** (B, n_classes); this baseline
has no magnitude head and does not use ``log_peak`` (the study classified events only).

Architecture::

    3 x [Conv2d(5x5, pad 2) ReLU MaxPool2d(2)]   16 / 32 / 64 channels
    flatten -> MCDropout -> FC 256 ReLU -> MCDropout -> FC 64 ReLU -> FC n_classes

The flatten size depends on (F, T), so the image size is a constructor argument
(``input_shape=(C, F, T)``); use :func:`edge.signal.spectrogram.spectrogram_shape` to get it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edge.signal.labels import N_CLASSES

from .layers import MCDropout

__all__ = ["SpectrogramCNN", "DEFAULT_SPEC_SHAPE"]

#: (C, F, T) of edge.signal.spectrogram.spectrogram for (3, 3000) at 250 Hz with the defaults.
DEFAULT_SPEC_SHAPE = (3, 65, 45)


class SpectrogramCNN(nn.Module):
    """Bossea-style spectrogram classifier. ``forward(spec) -> class_logits``."""

    def __init__(
        self,
        n_classes: int = N_CLASSES,
        input_shape: Sequence[int] = DEFAULT_SPEC_SHAPE,
        widths: Sequence[int] = (16, 32, 64),
        kernel_size: int = 5,
        fc_hidden: Sequence[int] = (256, 64),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        input_shape = tuple(int(v) for v in input_shape)
        widths, fc_hidden = tuple(int(w) for w in widths), tuple(int(h) for h in fc_hidden)
        if len(input_shape) != 3:
            raise ValueError("input_shape must be (C, F, T)")
        self.hparams = dict(
            n_classes=n_classes, input_shape=input_shape, widths=widths,
            kernel_size=kernel_size, fc_hidden=fc_hidden, dropout=dropout,
        )
        self.input_shape = input_shape
        c_in, f, t = input_shape
        convs = []
        for w in widths:
            convs += [nn.Conv2d(c_in, w, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
            c_in, f, t = w, f // 2, t // 2
        if f < 1 or t < 1:
            raise ValueError(f"input_shape {input_shape} too small for {len(widths)} 2x2 pools")
        self.convs = nn.Sequential(*convs)
        #: Grad-CAM hook point: the last conv layer.
        self.last_conv = [m for m in self.convs if isinstance(m, nn.Conv2d)][-1]
        self.flat_dim = c_in * f * t
        fcs = []
        d = self.flat_dim
        for h in fc_hidden:
            fcs.append(nn.ModuleList([MCDropout(dropout), nn.Linear(d, h)]))
            d = h
        self.fcs = nn.ModuleList(fcs)
        self.out = nn.Linear(d, n_classes)

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, fc_hidden[-1]) embedding before the output layer."""
        z = self.convs(spec).flatten(1)
        for drop, fc in self.fcs:
            z = F.relu(fc(drop(z)))
        return z

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, n_classes) class logits. No magnitude output (see the module docstring)."""
        return self.out(self.features(spec))
