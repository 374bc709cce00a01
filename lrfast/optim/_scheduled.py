"""The base class for your own optimizers: lrfast schedules, bound schedulers, and the
current LR of every group as a tensor (docs/extending.md, level 1).

NOTE [scheduled optimizer] A :class:`ScheduledOptimizer` subclass writes its own
``step()`` with ordinary torch ops and reads the scheduled values through
:meth:`~ScheduledOptimizer.lr_tensor` / :meth:`~ScheduledOptimizer.momentum_tensor`:
a float64 (G,) tensor on the device asked for, one value per param group, built without
a host sync. Everything else comes from lrfast's fused optimizers' machinery
(:class:`lrfast.optim._base.FusedOptimizer`): ``lr`` may be a float, a tensor, or an
:mod:`lrfast.schedules` Schedule (then the optimizer owns the step count, in the group's
``"lr_step"``, advanced after every ``step()``), any :mod:`lrfast.lr_scheduler` class
binds to it, and ``state_dict()`` stays plain data that torch can load.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from ._base import FusedOptimizer

__all__ = ["ScheduledOptimizer"]


class ScheduledOptimizer(FusedOptimizer, torch.optim.Optimizer):
    """Base class for custom optimizers that run on lrfast schedules.

    >>> import torch
    >>> from lrfast import schedules
    >>> class SignSGD(ScheduledOptimizer):
    ...     def __init__(self, params, lr=1e-3):
    ...         super().__init__(params, dict(lr=lr))
    ...     @torch.no_grad()
    ...     def step(self, closure=None):
    ...         for i, group in enumerate(self.param_groups):
    ...             for p in group["params"]:
    ...                 if p.grad is not None:
    ...                     p.sub_(p.grad.sign() * self.lr_tensor(p.device)[i])
    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> opt = SignSGD([p], lr=schedules.linear(1.0, 0.0, 4))
    >>> for _ in range(2):
    ...     p.grad = torch.ones(2); opt.step()
    >>> p.tolist(), opt.param_groups[0]["lr"]
    ([-1.75, -1.75], 0.5)
    """

    _lrfast_kind = "custom"

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        defaults = dict(defaults)
        if "lr" in defaults:
            defaults["lr"] = self._lrfast_begin_init(defaults["lr"])
        torch.optim.Optimizer.__init__(self, params, defaults)
        self._lrfast_end_init(False)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_lrfast_advances", False):
            @functools.wraps(step)
            def stepped(self, *args, **kw):
                out = step(self, *args, **kw)
                self._lrfast_advance_owned_schedules()  # NOTE [schedule as lr]
                return out

            stepped._lrfast_advances = True  # type: ignore[attr-defined]  # the marker a subclass checks
            cls.step = stepped  # type: ignore[method-assign]  # wrapping the subclass's own step

    # -- the scheduled values as tensors -------------------------------------------------
    def lr_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Every group's current LR as a float64 (G,) tensor on ``device`` (default: the
        first parameter's), without a host sync: a bound scheduler's ``lr_tensor``, else
        the groups' own values (a tensor ``lr`` is read on the device)."""
        device = self._lrfast_device(device)
        scheduler = self._lrfast_bound_scheduler()
        if scheduler is not None and len(scheduler.optimizer.param_groups) == len(self.param_groups):
            values = scheduler.lr_tensor
            return values if values.device == device else values.to(device, non_blocking=True)
        return self._lrfast_gather([g["lr"] for g in self.param_groups], device)

    def momentum_tensor(self, device: torch.device | str | None = None, key: str | None = None) -> torch.Tensor:
        """Every group's momentum (or ``betas[0]``) as a float64 (G,) tensor on ``device``:
        the values a cycling scheduler (CyclicLR, OneCycleLR) keeps writing into the groups."""
        device = self._lrfast_device(device)
        values = []
        for g in self.param_groups:
            if key is not None:
                values.append(g[key])
            elif "betas" in g:
                values.append(g["betas"][0])
            else:
                values.append(g.get("momentum", 0.0))
        return self._lrfast_gather(values, device)

    def _lrfast_device(self, device) -> torch.device:
        if device is not None:
            return torch.device(device)
        for group in self.param_groups:
            for p in group["params"]:
                return p.device
        return torch.device("cpu")

    @staticmethod
    def _lrfast_gather(values: list, device: torch.device) -> torch.Tensor:
        if any(isinstance(v, torch.Tensor) for v in values):
            return torch.stack([v.detach().to(device=device, dtype=torch.float64).reshape(())
                                if isinstance(v, torch.Tensor) else torch.full((), float(v), dtype=torch.float64,
                                                                               device=device) for v in values])
        host = torch.from_numpy(np.asarray(values, dtype=np.float64))
        if device.type == "cpu":
            return host
        return host.pin_memory().to(device, non_blocking=True)  # no sync (the host allocator keeps the source)
