"""Exponential moving average of the generator's weights (Karras et al. 2018, Yazici et al.
2019): samples from the average are smoother and better (lower FID) than from the last step's
weights. Parameters average, ``ema = decay * ema + (1 - decay) * p``; buffers (BatchNorm running
statistics, spectral-norm power-iteration vectors) are copied, since they are statistics of the
live network, not weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

#: the usual generator EMA decay (a horizon of ~1000 generator steps)
EMA_DECAY = 0.999


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` (no gradients, eval mode) to average into."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float = EMA_DECAY) -> None:
    """One EMA step of ``ema`` towards ``model`` (same architecture); ``decay=0`` copies."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema_decay={decay}: expected 0 <= decay < 1")
    ema_parameters = dict(ema.named_parameters())
    for name, parameter in model.named_parameters():
        ema_parameters[name].lerp_(parameter.detach().to(ema_parameters[name].dtype),
                                   1.0 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, buffer in model.named_buffers():
        ema_buffers[name].copy_(buffer)


__all__ = ["EMA_DECAY", "make_ema", "update_ema"]
