"""Optimiser set-up: backbone/head parameter groups, the learning-rate schedules
(one-cycle, cosine, constant) and freezing the backbone.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "HEAD_PREFIXES",
    "is_head",
    "param_groups",
    "make_scheduler",
    "freeze_backbone",
    "train_mode",
]

#: parameter-name prefixes of the heads; every other parameter is "backbone"
HEAD_PREFIXES = ("heads.", "pretrain_head.", "fcs.", "out.")


def is_head(name: str) -> bool:
    return name.startswith(HEAD_PREFIXES)


def param_groups(model: nn.Module, lr: float, backbone_lr: float, weight_decay: float,
                  include: Callable[[str], bool] = lambda n: True) -> list[dict]:
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not include(name):
            continue
        key = (is_head(name), p.ndim > 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (head, decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr if head else backbone_lr,
                    "weight_decay": weight_decay if decay else 0.0, "head": head})
    return out


def make_scheduler(opt: torch.optim.Optimizer, kind: str, total_steps: int, warmup: float):
    total_steps = max(1, int(total_steps))
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps,
            pct_start=max(warmup, 1e-3), anneal_strategy="cos", div_factor=25.0,
            final_div_factor=1e3)
    if kind == "cosine":
        warm = int(round(warmup * total_steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            frac = (step - warm) / max(1, total_steps - warm)
            return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    for name, p in model.named_parameters():
        if not is_head(name):
            p.requires_grad_(not frozen)


def train_mode(model: nn.Module, frozen_backbone: bool) -> None:
    model.train()
    if frozen_backbone:  # frozen means frozen: BatchNorm statistics too
        for name, m in model.named_modules():
            if name and not is_head(name + ".") and isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
