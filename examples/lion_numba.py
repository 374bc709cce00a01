"""Lion as a Numba kernel that evaluates lrfast's schedule itself (CPU).

The kernel receives the packed schedule of each group (``scheduler.packed_lr()``) and
the step (``scheduler.current_step``) and computes the LR inside, with
``lrfast.numba.lr_at`` -- the same function lrfast's own fused kernels use.

    opt = NumbaLion(model.parameters(), lr=3e-4, weight_decay=0.1)
    sched = lrfast.lr_scheduler.SequentialLR(opt, [LinearLR(...), CosineAnnealingLR(...)], [100])
    ... opt.step(); sched.step()
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from lrfast import lr_scheduler
from lrfast.numba import lr_at
from lrfast.schedules import constant, pack_many


@numba.njit(cache=True)
def lion_kernel(param, grad, exp_avg, descriptor, table, step, beta1, beta2, weight_decay):
    lr = lr_at(descriptor, table, step)  # once per call, in float64
    for i in range(param.size):
        g = grad[i]
        c = beta1 * exp_avg[i] + (1.0 - beta1) * g
        update = 1.0 if c > 0 else (-1.0 if c < 0 else 0.0)
        param[i] = param[i] * (1.0 - lr * weight_decay) - lr * update
        exp_avg[i] = beta2 * exp_avg[i] + (1.0 - beta2) * g


class NumbaLion(torch.optim.Optimizer):
    """Lion on CPU float32 tensors; the LR comes from a bound lrfast scheduler, else group["lr"]."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))
        self._scheduler: lr_scheduler.LRScheduler | None = None

    def lrfast_bind_scheduler(self, scheduler: lr_scheduler.LRScheduler) -> None:
        """NOTE [scheduler binding] (lrfast/_scheduling_protocol.py): called by lrfast schedulers."""
        self._scheduler = scheduler

    @torch.no_grad()
    def step(self, closure=None):
        if self._scheduler is not None:
            packed, step = self._scheduler.packed_lr(), float(self._scheduler.current_step)
        else:  # no scheduler: each group's current lr, as a constant schedule
            packed, step = pack_many([constant(float(g["lr"])) for g in self.param_groups]), 0.0
        descriptors = np.atleast_2d(packed.descriptors)
        for i, group in enumerate(self.param_groups):
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                lion_kernel(p.view(-1).numpy(), p.grad.view(-1).numpy(), state["exp_avg"].view(-1).numpy(),
                            descriptors[i], packed.table, step, beta1, beta2, group["weight_decay"])
