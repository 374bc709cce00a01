"""FunctionalLR: a scheduler driven by functional :mod:`lrfast.schedules` factors.

The bridge from the functional API to the drop-in one: ``LambdaLR`` with a
:class:`~lrfast.schedules.Schedule` in place of the lambda, so nothing is baked and the
factor is evaluated in closed form at any step. The twins of transformers' schedule
helpers (``lrfast.integrations.transformers``) are built on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..schedules import Schedule
from ._base import LRScheduler

__all__ = ["FunctionalLR"]


class FunctionalLR(LRScheduler):
    r"""Sets each group's LR to ``base_lr * schedule_factor(t)`` at step ``t``: torch's
    ``LambdaLR`` with an lrfast :class:`~lrfast.schedules.Schedule` as the lambda, evaluated
    in closed form (no table, no horizon).

    ``schedule_factor`` is one Schedule for every group or a list of one per group. The
    schedules are configuration, as LambdaLR's lambdas are: ``state_dict()`` leaves them
    out, so a resumed run rebuilds the scheduler with the same factors, then loads.

    >>> import torch
    >>> from lrfast import schedules as S
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    >>> sched = FunctionalLR(opt, S.warmup_constant(0.0, 1.0, warmup_steps=4))
    >>> [sched.get_last_lr()[0]] + [(opt.step(), sched.step(), sched.get_last_lr()[0])[2] for _ in range(5)]
    [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    """

    _lrfast_absolute = True

    def __init__(self, optimizer: torch.optim.Optimizer, schedule_factor: Schedule | Sequence[Schedule],
                 last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        if isinstance(schedule_factor, Schedule):
            factors = [schedule_factor] * n
        elif isinstance(schedule_factor, Sequence) and all(isinstance(s, Schedule) for s in schedule_factor):
            factors = list(schedule_factor)
            if len(factors) != n:
                raise ValueError(f"FunctionalLR: expected {n} schedules (one per param group), "
                                 f"got {len(factors)}")
        else:
            raise TypeError(f"FunctionalLR: schedule_factor must be an lrfast Schedule or a list of one per "
                            f"param group, got {schedule_factor!r}")
        self._lrfast_factors = factors  # private: kept out of state_dict (configuration, as lr_lambdas)
        LRScheduler.__init__(self, optimizer, last_epoch)

    @property
    def factors(self) -> list[Schedule]:
        """The factor schedule of each param group (the LR is ``base_lr`` times it)."""
        return list(self._lrfast_factors)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        return base_lr * self._lrfast_factors[group]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._lrfast_factors[0]!r}, last_epoch={self.last_epoch})"
