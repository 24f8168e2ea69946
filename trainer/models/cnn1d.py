"""Compact plain 1-D CNN baseline: same input contract, heads and forward as the ResNet.

Architecture (defaults, ~30 k parameters)::

    5 x [Conv1d(k7) BN ReLU MaxPool]   widths 8/16/24/32/48, pools 4/4/4/2/2
    3000 -> 750 -> 188 -> 47 -> 24 -> 12 samples   <- last_conv (Grad-CAM)
    GAP -> embedding (48) -> EventHeads (log_peak concat, MC-dropout, class + magnitude)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edge.signal.labels import N_CLASSES, N_MAG_BINS

from .base import WaveformEventModel
from .heads import LOG_PEAK_CENTER, LOG_PEAK_SCALE
from .layers import MaxPool1dExportable

__all__ = ["ConvBlock1d", "CNN1d"]


class ConvBlock1d(nn.Module):
    """Conv1d -> BatchNorm -> ReLU -> max-pool (exportable)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm1d(out_channels)
        self.pool = MaxPool1dExportable(pool, pool, 0) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class CNN1d(WaveformEventModel):
    """Plain 1-D CNN with the heads of :class:`~.resnet_cbam.ResNet18CBAM1d`.

    Args: as :class:`~.resnet_cbam.ResNet18CBAM1d`, plus ``pools`` (max-pool size after each
    conv block; same length as ``widths``). Needs at least ``prod(pools)`` samples.
    """

    def __init__(
        self,
        n_classes: int = N_CLASSES,
        n_mag_bins: int = N_MAG_BINS,
        n_attributes: int = 0,
        n_scalar_features: int = 0,
        in_channels: int = 3,
        widths: Sequence[int] = (8, 16, 24, 32, 48),
        pools: Sequence[int] = (4, 4, 4, 2, 2),
        kernel_size: int = 7,
        dropout: float = 0.2,
        head_hidden: int = 32,
        log_peak_center: float = LOG_PEAK_CENTER,
        log_peak_scale: float = LOG_PEAK_SCALE,
    ) -> None:
        super().__init__()
        widths, pools = tuple(int(w) for w in widths), tuple(int(p) for p in pools)
        if len(widths) != len(pools) or not widths:
            raise ValueError("widths and pools must be non-empty and of equal length")
        self.hparams = dict(
            n_classes=n_classes, n_mag_bins=n_mag_bins, n_attributes=n_attributes,
            n_scalar_features=n_scalar_features, in_channels=in_channels, widths=widths,
            pools=pools, kernel_size=kernel_size, dropout=dropout, head_hidden=head_hidden,
            log_peak_center=log_peak_center, log_peak_scale=log_peak_scale,
        )
        layers = []
        c_in = in_channels
        for w, p in zip(widths, pools):
            layers.append(ConvBlock1d(c_in, w, kernel_size, p))
            c_in = w
        self.body = nn.Sequential(*layers)
        #: Grad-CAM hook point: the last conv block (output = final feature map).
        self.last_conv = self.body[-1]
        self._build_heads(widths[-1], n_classes, n_mag_bins, head_hidden, dropout,
                          n_scalar_features, log_peak_center, log_peak_scale, n_attributes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
