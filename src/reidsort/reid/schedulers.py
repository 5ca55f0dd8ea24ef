"""Learning-rate schedules stepped every optimisation step, with epoch-based knobs.

Both start with a linear warmup from ``warmup_start_factor x lr`` to ``lr`` over
``warmup_epochs`` (Goyal et al. 2017; Luo et al. 2019 use 10 epochs from 0.01x). Stepping per
iteration keeps short runs smooth; ``steps_per_epoch`` is supplied by the LightningModule.
Parameter groups flagged ``constant_lr`` (the centre-loss centres) keep their learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import Enum

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from reidsort.reid.optim import CONSTANT_LR


class Granularity(str, Enum):
    """When the learning rate changes."""

    #: every optimisation step (a smooth curve in fractional epochs)
    STEP = "step"
    #: at epoch starts only, as reid-strong-baseline: its ignite loop steps the scheduler at
    #: each epoch start, so 0-based epoch e trains at the schedule's value for epoch e + 1
    EPOCH = "epoch"


def _per_group(optimizer: Optimizer, factor: Callable[[int], float]) -> list[Callable]:
    return [_unit if group.get(CONSTANT_LR) else factor for group in optimizer.param_groups]


def _unit(step: int) -> float:
    return 1.0


def _epoch_of(step: int, steps_per_epoch: int, granularity: Granularity) -> float:
    if granularity is Granularity.EPOCH:
        return float(step // steps_per_epoch + 1)
    return step / steps_per_epoch


def _warmup_factor(epoch: float, warmup_epochs: float, start_factor: float) -> float:
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return 1.0
    return start_factor + (1.0 - start_factor) * epoch / warmup_epochs


class WarmupMultiStepLR(LambdaLR):
    """Linear warmup, then multiply by ``gamma`` at each milestone epoch."""

    def __init__(
        self,
        optimizer: Optimizer,
        steps_per_epoch: int,
        milestones: Sequence[int] = (40, 70),
        gamma: float = 0.1,
        warmup_epochs: float = 10,
        warmup_start_factor: float = 0.01,
        granularity: Granularity | str = Granularity.STEP,
        last_epoch: int = -1,
    ) -> None:
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        steps = max(1, int(steps_per_epoch))
        marks = list(milestones)
        mode = Granularity(granularity)

        def factor(step: int) -> float:
            epoch = _epoch_of(step, steps, mode)
            decays = sum(1 for m in marks if epoch >= m)
            return _warmup_factor(epoch, warmup_epochs, warmup_start_factor) * gamma**decays

        super().__init__(optimizer, _per_group(optimizer, factor), last_epoch=last_epoch)


class WarmupCosineLR(LambdaLR):
    """Linear warmup, then half-cosine from ``lr`` down to ``lrf x lr`` at ``max_epochs``."""

    def __init__(
        self,
        optimizer: Optimizer,
        steps_per_epoch: int,
        max_epochs: int,
        lrf: float = 0.01,
        warmup_epochs: float = 1,
        warmup_start_factor: float = 0.01,
        granularity: Granularity | str = Granularity.STEP,
        last_epoch: int = -1,
    ) -> None:
        if max_epochs <= 0:
            raise ValueError(f"max_epochs must be positive, got {max_epochs}")
        steps = max(1, int(steps_per_epoch))
        mode = Granularity(granularity)

        def factor(step: int) -> float:
            epoch = _epoch_of(step, steps, mode)
            if warmup_epochs > 0 and epoch < warmup_epochs:
                return _warmup_factor(epoch, warmup_epochs, warmup_start_factor)
            span = max(max_epochs - warmup_epochs, 1e-8)
            progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
            return lrf + (1.0 - lrf) * 0.5 * (1.0 + math.cos(math.pi * progress))

        super().__init__(optimizer, _per_group(optimizer, factor), last_epoch=last_epoch)
