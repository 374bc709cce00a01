"""Adam and AdamW: torch's classes and arguments, one fused kernel call per bucket."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.optimizer import ParamsT

from ._base import FusedOptimizer, LRLike, ScalarLike

__all__ = ["Adam", "AdamW"]


class _AdamMixin(FusedOptimizer):
    _lrfast_kind = "adam"

    def _lrfast_group_row(self, group: dict, lr: float, momentum: float) -> tuple[tuple, Any]:
        beta2 = group["betas"][1]
        amsgrad = bool(group["amsgrad"])
        return (lr, momentum, float(beta2), float(group["eps"]), float(group["weight_decay"]), 0.0, 0.0,
                float(amsgrad), float(bool(group["maximize"])),
                float(bool(group.get("decoupled_weight_decay", False)))), amsgrad

    def _lrfast_momentum_of(self, group: dict) -> Any:
        return group["betas"][0]

    def _lrfast_needed_state(self, group: dict) -> tuple[str, ...]:
        if group["amsgrad"]:
            return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        return ("exp_avg", "exp_avg_sq")

    def _lrfast_sparse_message(self) -> str:
        return "Adam does not support sparse gradients, please consider SparseAdam instead"


class Adam(_AdamMixin, torch.optim.Adam):
    r"""Adam (torch's arguments, defaults, errors and state) in one fused kernel call per
    (device, dtype) bucket and step.

    ``lr`` may be a float, a 1-element tensor or an :class:`lrfast.schedules.Schedule`
    (NOTE [schedule as lr]); an lrfast scheduler built on this optimizer runs inside the
    kernel (NOTE [scheduler binding]). ``foreach``, ``fused`` and ``capturable`` are
    accepted for compatibility and change nothing; ``differentiable=True`` is refused.
    State per parameter is torch's: ``step`` (float32 0-d tensor), ``exp_avg``,
    ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``. See docs/optim.md.

    >>> import torch, lrfast.optim
    >>> p = torch.nn.Parameter(torch.ones(3))
    >>> opt = lrfast.optim.Adam([p], lr=0.1)
    >>> p.grad = torch.ones(3); opt.step()
    >>> [round(x, 4) for x in p.tolist()]
    [0.9, 0.9, 0.9]
    """

    def __init__(self, params: ParamsT, lr: LRLike = 1e-3, betas: tuple[ScalarLike, ScalarLike] = (0.9, 0.999),
                 eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        first_lr = self._lrfast_begin_init(lr)
        torch.optim.Adam.__init__(self, params, first_lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                                  maximize=maximize, capturable=capturable, differentiable=differentiable,
                                  fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        self._lrfast_end_init(differentiable)


class AdamW(_AdamMixin, torch.optim.AdamW):
    r"""AdamW (decoupled weight decay, default ``weight_decay=1e-2``) in one fused kernel
    call per (device, dtype) bucket and step; everything else as :class:`Adam`.

    >>> import torch, lrfast.optim
    >>> from lrfast import schedules
    >>> p = torch.nn.Parameter(torch.ones(2))
    >>> opt = lrfast.optim.AdamW([p], lr=schedules.linear(0.5, 0.0, 4), weight_decay=0.0)
    >>> p.grad = torch.ones(2); opt.step()
    >>> opt.param_groups[0]["lr"], opt.param_groups[0]["lr_step"]  # the lr of the next step
    (0.375, 1)
    >>> [round(v, 6) for v in p.tolist()]  # Adam's first step: lr (0.5) against the gradient's sign
    [0.5, 0.5]
    """

    def __init__(self, params: ParamsT, lr: LRLike = 1e-3, betas: tuple[ScalarLike, ScalarLike] = (0.9, 0.999),
                 eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        first_lr = self._lrfast_begin_init(lr)
        torch.optim.AdamW.__init__(self, params, first_lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                                   foreach=foreach, capturable=capturable, differentiable=differentiable,
                                   fused=fused)
        self._lrfast_end_init(differentiable)
