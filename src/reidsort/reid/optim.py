"""One torch optimizer for the network and the centre-loss centres.

The Re-ID strong baseline (Luo et al. 2019) steps the centres with their own plain SGD
(lr 0.5) after dividing their gradient by the centre-loss weight (0.0005), so that the small
weight slows down the features' pull towards the centres but not the centres themselves.
Doing that by hand after ``backward`` breaks under mixed precision (the gradients are still
scaled by GradScaler, and a step GradScaler skips for inf/NaN would still move the centres)
and under gradient accumulation (one update per micro-batch instead of per step).

:class:`WithCenterSGD` instead presents the network's optimizer and the centres as *one*
:class:`torch.optim.Optimizer`: its ``param_groups`` are the network optimizer's groups plus
one centre group, so Lightning's precision plugins unscale the centres' gradients with the
rest, skip the whole step together, clip, zero and checkpoint them like any other parameter,
and step them once per optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

#: a parameter-group flag: learning-rate schedules leave this group's lr as it is
CONSTANT_LR = "constant_lr"
#: marks the centre group of :class:`WithCenterSGD`
CENTER_GROUP = "center_sgd"


class WithCenterSGD(Optimizer):
    """``network`` (any torch optimizer) plus plain SGD on ``centers``.

    The centre update is ``c <- c - lr * grad / grad_divisor`` (``grad_divisor`` = the
    centre-loss weight), with no momentum and no weight decay, at a constant ``lr`` that the
    project's schedules do not change (the reference has no scheduler on its centre optimizer).
    """

    def __init__(self, network: Optimizer, centers: Iterable[Tensor], lr: float = 0.5,
                 grad_divisor: float = 1.0) -> None:
        if lr < 0:
            raise ValueError(f"centre learning rate must be >= 0, got {lr}")
        if grad_divisor <= 0:
            raise ValueError(f"centre gradient divisor must be > 0, got {grad_divisor}")
        self.network = network
        self._num_network_groups = len(network.param_groups)
        center_group = {"params": list(centers), "lr": float(lr), "weight_decay": 0.0,
                        "grad_divisor": float(grad_divisor), CONSTANT_LR: True,
                        CENTER_GROUP: True}
        # the same group dicts as the network optimizer's, so schedules reach both views
        super().__init__([*network.param_groups, center_group], defaults={})
        self.state = network.state
        self.register_load_state_dict_post_hook(WithCenterSGD._share_with_network)

    @staticmethod
    def _share_with_network(optimizer: WithCenterSGD) -> None:
        """``load_state_dict`` installs fresh group dicts and state: hand them to the network
        optimizer again so that both keep one set of groups and one state."""
        optimizer.network.param_groups = optimizer.param_groups[: optimizer._num_network_groups]
        optimizer.network.state = optimizer.state

    @property
    def center_groups(self) -> list[dict[str, Any]]:
        return self.param_groups[self._num_network_groups:]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.network.step()
        with torch.no_grad():
            for group in self.center_groups:
                for param in group["params"]:
                    if param.grad is not None:
                        param.add_(param.grad, alpha=-group["lr"] / group["grad_divisor"])
        return loss


__all__ = ["WithCenterSGD", "CONSTANT_LR", "CENTER_GROUP"]
