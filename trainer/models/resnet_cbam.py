"""Compact 1-D ResNet18-CBAM with residual shrinkage, for event class + magnitude.

Input contract (:mod:`edge.signal.preprocess`): ``x`` float32 (B, 3, 3000) -- Z, N, E at 250 Hz,
12 s from 2 s before trigger-on, bandpassed and divided by its peak (|x| <= 1);
``log_peak`` float32 (B, 1) -- log10 of that peak in m/s. Outputs ``(class_logits (B, 4),
mag_logits (B, 30))`` (:mod:`edge.signal.labels`).

Architecture (default widths 16/32/48/64, kernel 7, ~0.23 M parameters)::

    stem    Conv1d(3->16, k7, s4) BN ReLU, MaxPool(k3, s2)      3000 -> 375 samples
    stage1  2 x BasicBlock(16)                                  375
    stage2  2 x BasicBlock(32), first with stride 2             188
    stage3  2 x BasicBlock(48), stride 2                        94
    stage4  2 x BasicBlock(64), stride 2                        47   <- last_conv (Grad-CAM)
    GAP over time -> embedding (64)  [features()]
    concat normalised log_peak (+ optional scalars) -> EventHeads (MC-dropout, 2 small MLPs)

BasicBlock: conv-BN-ReLU-conv-BN -> CBAM -> soft threshold (DRSN-CW) -> + shortcut -> ReLU.
The time length is not fixed: any length >= ~64 samples works and exports with a dynamic
axis (no MaxPool1d / adaptive pooling).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edge.signal.labels import N_CLASSES, N_MAG_BINS

from .base import WaveformEventModel
from .heads import LOG_PEAK_CENTER, LOG_PEAK_SCALE
from .layers import CBAM1d, MaxPool1dExportable, SoftThreshold

__all__ = ["BasicBlock1d", "ResNet18CBAM1d"]


class BasicBlock1d(nn.Module):
    """ResNet basic block (two convs) with CBAM and soft-threshold shrinkage on the residual
    branch."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 7,
        reduction: int = 4,
        cbam: bool = True,
        shrinkage: bool = True,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.cbam = CBAM1d(out_channels, reduction) if cbam else nn.Identity()
        self.shrink = SoftThreshold(out_channels, reduction) if shrinkage else nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm1d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.shrink(self.cbam(out))
        return F.relu(out + self.shortcut(x))


class ResNet18CBAM1d(WaveformEventModel):
    """1-D ResNet18 layout ([2, 2, 2, 2] basic blocks) with CBAM and residual shrinkage.

    Args:
        n_classes: event classes (``len(edge.signal.labels.CLASSES)`` = 4).
        n_mag_bins: magnitude bins (30).
        n_attributes: > 0 builds :attr:`pretrain_head` (:class:`AttributeHead`) for
            self-supervised attribute regression; 0 = none.
        n_scalar_features: extra scalars concatenated with ``log_peak`` before the heads;
            ``forward`` then needs ``scalars`` (B, n_scalar_features).
        in_channels: waveform components (3).
        widths: channels of the four stages.
        blocks: basic blocks per stage (ResNet18: 2, 2, 2, 2).
        kernel_size: conv kernel of the blocks; stem_kernel: of the stem conv.
        stem_stride: stride of the stem conv (4, the default: 3000 -> 375 samples after the
            stem's pooling, int8 ONNX about 0.6 ms; 2: -> 750, about twice the compute).
        reduction: MLP reduction of CBAM and of the shrinkage FC.
        dropout: MC-dropout probability in the heads.
        head_hidden: hidden units of each head MLP.
        cbam, shrinkage: switch the attention / soft thresholding off (ablations).
        log_peak_center, log_peak_scale: ``log_peak`` normalisation in the heads.
    """

    def __init__(
        self,
        n_classes: int = N_CLASSES,
        n_mag_bins: int = N_MAG_BINS,
        n_attributes: int = 0,
        n_scalar_features: int = 0,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 48, 64),
        blocks: Sequence[int] = (2, 2, 2, 2),
        kernel_size: int = 7,
        stem_kernel: int = 7,
        stem_stride: int = 4,
        reduction: int = 4,
        dropout: float = 0.2,
        head_hidden: int = 64,
        cbam: bool = True,
        shrinkage: bool = True,
        log_peak_center: float = LOG_PEAK_CENTER,
        log_peak_scale: float = LOG_PEAK_SCALE,
    ) -> None:
        super().__init__()
        widths, blocks = tuple(int(w) for w in widths), tuple(int(b) for b in blocks)
        if len(widths) != len(blocks) or not widths:
            raise ValueError("widths and blocks must be non-empty and of equal length")
        self.hparams = dict(
            n_classes=n_classes, n_mag_bins=n_mag_bins, n_attributes=n_attributes,
            n_scalar_features=n_scalar_features, in_channels=in_channels, widths=widths,
            blocks=blocks, kernel_size=kernel_size, stem_kernel=stem_kernel, stem_stride=stem_stride,
            reduction=reduction, dropout=dropout, head_hidden=head_hidden, cbam=cbam,
            shrinkage=shrinkage, log_peak_center=log_peak_center, log_peak_scale=log_peak_scale,
        )
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, widths[0], stem_kernel, stem_stride, stem_kernel // 2, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(),
            MaxPool1dExportable(3, 2, 1),
        )
        stages = []
        c_in = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock1d(c_in, w, stride, kernel_size, reduction, cbam, shrinkage))
                c_in = w
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        #: Grad-CAM hook point: the last basic block; its output (B, C, T') is the final
        #: feature map that global average pooling reduces to the embedding.
        self.last_conv = self.stages[-1][-1]
        self._build_heads(widths[-1], n_classes, n_mag_bins, head_hidden, dropout,
                          n_scalar_features, log_peak_center, log_peak_scale, n_attributes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # No zero-init of bn2 ("identity blocks" trick): the soft threshold has zero gradient
        # at x = tau = 0, so a zeroed residual branch would never start learning.

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, widths[-1], T') map before global pooling (the output of :attr:`last_conv`)."""
        return self.stages(self.stem(x))
