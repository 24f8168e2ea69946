"""Building blocks that export cleanly to ONNX (torch 2.13, dynamo or legacy) and TFLite.

Rules followed here (see shared/notes/toolchain.md):

* no ``nn.MaxPool1d`` (pins the time length in a dynamo export) -- :class:`MaxPool1dExportable`
  runs ``max_pool2d`` on an unsqueezed tensor instead;
* no adaptive pooling -- global pooling is ``x.mean(-1)`` / ``x.amax(-1)``;
* no in-place ops on inputs;
* dropout is an explicit mask (:class:`MCDropout`), which exports as ``RandomUniformLike``
  and is not removed by onnxruntime's graph optimiser or by static int8 quantization,
  unlike ``nn.Dropout`` in training mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MCDropout",
    "set_mc_dropout",
    "mc_dropout_modules",
    "CBAM1d",
    "SoftThreshold",
    "MaxPool1dExportable",
]


class MCDropout(nn.Module):
    """Dropout as an explicit mask, usable for Monte-Carlo dropout at inference.

    ``y = x * (u >= p) / (1 - p)`` with ``u ~ U[0, 1)`` of the shape of ``x``.

    Active when the module is in training mode **or** its ``mc`` attribute is True (switch it
    for a whole model with :func:`set_mc_dropout`); otherwise the identity. The switch is
    read at trace time: export with ``mc`` on to get a graph that samples
    (``RandomUniformLike``), with it off for a deterministic graph.

    ``forward(x, noise=None)``: when ``noise`` (uniform [0, 1), same shape as ``x``) is given
    it replaces ``torch.rand_like(x)`` -- for TFLite, where litert-torch cannot lower
    ``rand_like``, the caller feeds the noise as a model input. ``noise`` is ignored when the
    module is inactive.
    """

    def __init__(self, p: float = 0.2, mc: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.mc = bool(mc)

    @property
    def active(self) -> bool:
        return self.p > 0.0 and (self.training or self.mc)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if not self.active:
            return x
        u = torch.rand_like(x) if noise is None else noise
        keep = (u >= self.p).to(x.dtype)
        return x * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}, mc={self.mc}"


def mc_dropout_modules(model: nn.Module) -> list[MCDropout]:
    """All :class:`MCDropout` modules of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, MCDropout)]


def set_mc_dropout(model: nn.Module, on: bool) -> int:
    """Switch Monte-Carlo dropout on/off for every :class:`MCDropout` in ``model``.

    With it on, dropout samples even in ``eval()`` mode (BatchNorm stays in eval mode).
    Returns the number of dropout modules switched.
    """
    mods = mc_dropout_modules(model)
    for m in mods:
        m.mc = bool(on)
    return len(mods)


class MaxPool1dExportable(nn.Module):
    """1-D max pooling via ``max_pool2d`` on ``(B, C, 1, T)``: keeps the time axis dynamic
    in a dynamo ONNX export (``nn.MaxPool1d`` pins it)."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride if stride is not None else kernel_size)
        self.padding = int(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(
            x.unsqueeze(2),
            kernel_size=(1, self.kernel_size),
            stride=(1, self.stride),
            padding=(0, self.padding),
        )
        return y.squeeze(2)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class CBAM1d(nn.Module):
    """Convolutional Block Attention Module for (B, C, T) feature maps (Woo et al. 2018).

    Channel attention: average- and max-pool over time -> shared MLP (C -> C/r -> C) ->
    sum -> sigmoid -> scale the channels. Temporal ("spatial") attention: mean and max over
    channels -> conv1d(2 -> 1, kernel 7) -> sigmoid -> scale the time steps.
    """

    def __init__(self, channels: int, reduction: int = 4, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
        )
        self.temporal = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) channel attention in (0, 1)."""
        # mlp(avg) + mlp(max) with the last (linear) layer applied once to the summed hidden
        # activations: the same function with one Gemm fewer per block in the exported graph.
        fc1, fc2 = self.mlp[0], self.mlp[2]
        h = F.relu(fc1(x.mean(-1))) + F.relu(fc1(x.amax(-1)))
        return torch.sigmoid(F.linear(h, fc2.weight, 2.0 * fc2.bias))

    def temporal_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) temporal attention in (0, 1)."""
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.temporal(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_weights(x).unsqueeze(-1)
        return x * self.temporal_weights(x)


class SoftThreshold(nn.Module):
    """Channel-wise soft thresholding of a deep residual shrinkage network (DRSN-CW, Zhao et
    al. 2020).

    ``a = mean_t |x|`` per channel; ``alpha = sigmoid(FC(ReLU(FC(a))))`` in (0, 1);
    threshold ``tau = alpha * a``; ``y = sign(x) * max(|x| - tau, 0)``, written as
    ``x - clamp(x, -tau, tau)`` so it exports and quantizes as plain ops (Neg, Max, Min, Sub).
    The threshold is always between 0 and the mean absolute value of the channel, so the
    layer can never zero a whole channel.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
        )

    def threshold(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1) threshold tau for a (B, C, T) input."""
        a = x.abs().mean(-1)
        alpha = torch.sigmoid(self.fc(a))
        return (alpha * a).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tau = self.threshold(x)
        if self.training and torch.is_grad_enabled():
            # the same function and gradients; its backward is ~3x cheaper than that of
            # maximum/minimum (masked_fill/eq/where: a quarter of a training step's CPU time,
            # bench/train_profile.py)
            return torch.sign(x) * torch.relu(x.abs() - tau)
        # x - clamp(x, -tau, tau) == sign(x) * relu(|x| - tau): four elementwise ops.
        return x - torch.minimum(torch.maximum(x, -tau), tau)
