"""SGD: torch's class and arguments, one fused kernel call per bucket."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from .._scheduling_protocol import host_float
from ._base import FusedOptimizer, LRLike, ScalarLike

__all__ = ["SGD"]


class SGD(FusedOptimizer, torch.optim.SGD):
    r"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch's
    arguments, defaults, errors and state) in one fused kernel call per (device, dtype)
    bucket and step.

    ``lr`` may be a float, a 1-element tensor or an :class:`lrfast.schedules.Schedule`
    (NOTE [schedule as lr]); an lrfast scheduler built on this optimizer runs inside the
    kernel, momentum cycling included (NOTE [scheduler binding]). ``foreach`` and
    ``fused`` are accepted and change nothing; ``differentiable=True`` is refused. State
    per parameter is torch's ``momentum_buffer`` (only when momentum is nonzero).

    >>> import torch, lrfast.optim
    >>> p = torch.nn.Parameter(torch.ones(2))
    >>> opt = lrfast.optim.SGD([p], lr=0.5, momentum=0.9)
    >>> for _ in range(2): p.grad = torch.ones(2); opt.step()
    >>> p.tolist()  # torch.optim.SGD gives the same float32 values
    [-0.44999998807907104, -0.44999998807907104]
    """

    _lrfast_kind = "sgd"

    def __init__(self, params: ParamsT, lr: LRLike = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: ScalarLike = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        first_lr = self._lrfast_begin_init(lr)
        torch.optim.SGD.__init__(self, params, first_lr, momentum, dampening, weight_decay, nesterov, maximize=maximize,
                                 foreach=foreach, differentiable=differentiable, fused=fused)
        self._lrfast_end_init(differentiable)

    def _lrfast_group_row(self, group: dict, lr: float, momentum: float) -> tuple[tuple, Any]:
        return (lr, momentum, 0.0, 0.0, host_float(group["weight_decay"], sync=False), float(group["dampening"]),
                float(bool(group["nesterov"])), 0.0, float(bool(group["maximize"])), 0.0), group["momentum"] != 0

    def _lrfast_momentum_of(self, group: dict) -> Any:
        return group["momentum"]

    def _lrfast_needed_state(self, group: dict) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _lrfast_sparse_message(self) -> str:
        return "SGD (lrfast.optim) does not support sparse gradients, please consider torch.optim.SGD instead"
