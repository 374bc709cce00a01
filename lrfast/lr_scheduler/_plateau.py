"""ReduceLROnPlateau: torch's decisions, from the host metric.

This is torch's class (subclassed, so ``isinstance`` checks and state dicts carry
over) with one fix of its own: a tensor ``lr`` is updated in place, never replaced
by a float.
"""

from __future__ import annotations

import torch

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Reduce each group's LR by ``factor`` once the metric has stopped improving for
    ``patience`` steps (torch's ``ReduceLROnPlateau``; same arguments, same decisions).

    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = ReduceLROnPlateau(opt, patience=1)
    >>> for loss in [1.0, 1.0, 1.0]: s.step(loss)
    >>> s.get_last_lr()
    [0.1]
    """

    def _reduce_lr(self, epoch) -> None:
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    "The number of param groups in the `optimizer` "
                    f"({len(self.optimizer.param_groups)}) differs from when `ReduceLROnPlateau` was "
                    f"initialized ({len(self.min_lrs)}), usually due to a new param group being added to the "
                    "optimizer. Please modify the `min_lrs` field to match the length of the `optimizer` "
                    "param groups."
                )
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for i, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(new_lr)
                else:
                    group["lr"] = new_lr
