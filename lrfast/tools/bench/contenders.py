"""The contenders the bench times side by side: torch's and lrfast's schedulers on twin
optimizers (three schedulers, and every pattern of :func:`~.cases.pattern_cases`), and an
optimizer + cosine scheduler step per implementation (torch for-loop, foreach, fused,
foreach + capturable in a CUDA graph, lrfast)."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from .cases import Pattern

__all__ = ["SCHEDULERS", "optimizer_contenders", "optimizer_step", "pattern_step", "pattern_steps", "scheduler_module",
           "scheduler_steps"]

SCHEDULERS: dict[str, Callable[[Any, Any], Any]] = {
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=10**6),
    "StepLR": lambda m, o: m.StepLR(o, step_size=30),
}


def scheduler_steps(module: Any, name: str, groups: int, steps: int) -> Callable[[], None]:
    """A zero-argument call of ``steps`` ``scheduler.step()`` calls of ``module``'s (torch's or
    lrfast's) ``name`` scheduler, on an SGD optimizer of ``groups`` one-tensor groups."""
    import torch

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": 0.01 * (1 + i % 7)} for i, p in enumerate(params)],
                          lr=0.01, momentum=0.9)
    sched = SCHEDULERS[name](module, opt)

    def run() -> None:
        for _ in range(steps):
            sched.step()
    return run


def scheduler_module(impl: str) -> Any:
    """The scheduler classes of ``impl`` ("torch" or "lrfast") under one namespace: torch's
    lr_scheduler with swa_utils' SWALR, or :mod:`lrfast.lr_scheduler`."""
    if impl == "lrfast":
        from lrfast import lr_scheduler

        return lr_scheduler
    if impl != "torch":
        raise ValueError(f"scheduler_module: impl must be 'torch' or 'lrfast', got {impl!r}")
    import torch.optim.lr_scheduler as torch_schedulers
    from torch.optim import swa_utils

    return types.SimpleNamespace(**{name: getattr(torch_schedulers, name) for name in torch_schedulers.__all__},
                                 SWALR=swa_utils.SWALR)


def pattern_step(impl: str, pattern: Pattern, groups: int, optimizer: str = "torch.optim.SGD"
                 ) -> tuple[Any, Callable[[], None]]:
    """(the optimizer, one loop step) of ``pattern`` with ``impl``'s ("torch" or "lrfast")
    schedulers, on an ``optimizer`` with momentum 0.9 and ``groups`` one-parameter groups of
    float LRs (0.01 to 0.07). The loop step: the pattern's scheduler calls on
    "torch.optim.SGD"; ``optimizer.step()`` then those calls on "lrfast.optim.SGD" (where a
    bound lrfast scheduler's work may sit in the optimizer's step)."""
    import torch

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    spec = [{"params": [p], "lr": 0.01 * (1 + i % 7)} for i, p in enumerate(params)]
    if optimizer == "torch.optim.SGD":
        opt = torch.optim.SGD(spec, lr=0.01, momentum=0.9)
    elif optimizer == "lrfast.optim.SGD":
        import lrfast.optim

        for p in params:
            p.grad = torch.zeros(1)
        opt = lrfast.optim.SGD(spec, lr=0.01, momentum=0.9)
    else:
        raise ValueError(f"pattern_step: optimizer must be 'torch.optim.SGD' or 'lrfast.optim.SGD', got {optimizer!r}")
    calls = pattern.build(scheduler_module(impl), opt)
    if optimizer == "torch.optim.SGD":
        return opt, calls

    def step() -> None:
        opt.step()
        calls()
    return opt, step


def pattern_steps(impl: str, pattern: Pattern, groups: int, steps: int,
                  optimizer: str = "torch.optim.SGD") -> Callable[[], None]:
    """A zero-argument call of ``steps`` loop steps of :func:`pattern_step`."""
    step = pattern_step(impl, pattern, groups, optimizer)[1]

    def run() -> None:
        for _ in range(steps):
            step()
    return run


def optimizer_contenders(device: str) -> list[str]:
    """The optimizer contenders of ``device``'s size curves."""
    names = ["torch for-loop", "torch foreach", "torch fused", "lrfast"]
    if device == "cuda":
        names.append("torch foreach+graph")
    return names


def optimizer_step(contender: str, algo: str, params, device: str, groups: int = 1) -> Callable[[], None]:
    """An ``algo`` ("adamw" or "sgd") optimizer of ``contender`` + a cosine scheduler for
    ``params`` (split evenly into ``groups`` groups); returns a zero-argument step."""
    import torch

    from lrfast import lr_scheduler

    opt_kwargs = {"lr": 1e-3, "weight_decay": 0.01} if algo == "adamw" else {"lr": 1e-2, "momentum": 0.9}
    torch_cls = torch.optim.AdamW if algo == "adamw" else torch.optim.SGD
    per = len(params) // groups
    param_groups = [{"params": params[i * per:(i + 1) * per], "lr": opt_kwargs["lr"] * (1 + i / groups)}
                    for i in range(groups)] if groups > 1 else params
    if contender == "lrfast":
        import lrfast.optim

        opt = (lrfast.optim.AdamW if algo == "adamw" else lrfast.optim.SGD)(param_groups, **opt_kwargs)
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10_000)
    elif contender == "torch foreach+graph":
        from lrfast import schedules

        lr = torch.tensor(opt_kwargs.pop("lr"), device=device)
        extra = {"capturable": True} if algo == "adamw" else {}
        opt = torch_cls(params, lr=lr, foreach=True, **extra, **opt_kwargs)
        counter = torch.zeros((), dtype=torch.int64, device=device)
        write_lr = lr_scheduler.graph_lr_step([lr], [schedules.cosine_annealing(float(lr), 10_000)], counter)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.step()
                write_lr()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
            write_lr()
        return graph.replay
    else:
        flags = {"torch for-loop": {"foreach": False}, "torch foreach": {"foreach": True},
                 "torch fused": {"fused": True}}[contender]
        opt = torch_cls(param_groups, **flags, **opt_kwargs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10_000)

    def step() -> None:
        opt.step()
        sched.step()
    return step
