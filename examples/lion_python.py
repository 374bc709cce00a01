"""Lion on lrfast's Python base class (:class:`lrfast.optim.ScheduledOptimizer`).

The step is ordinary torch ops; the learning rate of every group comes from
``self.lr_tensor(device)`` (a float64 (G,) tensor, no host sync), whatever drives it: a
float, a tensor, an ``lrfast.schedules`` Schedule passed as ``lr``, or any
``lrfast.lr_scheduler`` class built on the optimizer.

    opt = PythonLion(model.parameters(), lr=schedules.warmup_cosine_decay(0.0, 3e-4, 100, 10_000))
    ... opt.step()
"""

from __future__ import annotations

import torch

from lrfast.optim import ScheduledOptimizer


class PythonLion(ScheduledOptimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for i, group in enumerate(self.param_groups):
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                lr = self.lr_tensor(p.device)[i]  # 0-d float64 tensor
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                update = (m * beta1 + p.grad * (1 - beta1)).sign_()
                p.mul_(1 - lr * group["weight_decay"]).sub_(update * lr)
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
