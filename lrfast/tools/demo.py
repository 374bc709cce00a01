"""``python -m lrfast demo``: the README's StepLR example, then ``scheduler.step()`` host cost
of torch and lrfast side by side.

>>> from lrfast.tools.demo import demo_training
>>> lrs = demo_training(lambda line: None)
>>> round(lrs[-1], 6)
0.0729
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["demo_costs", "demo_training", "time_scheduler_step"]

def demo_training(print_fn: Callable[[str], None] = print) -> list[float]:
    """The README example: nn.Linear(10, 1), SGD(lr=0.1), StepLR(step_size=10, gamma=0.9), 30 epochs."""
    import torch
    from torch import nn, optim

    from lrfast import lr_scheduler

    torch.manual_seed(0)
    model = nn.Linear(10, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.9)
    inputs, targets = torch.randn(64, 10), torch.randn(64, 1)
    lrs = []
    for epoch in range(30):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
        lrs.append(float(scheduler.get_last_lr()[0]))
        print_fn(f"Epoch {epoch + 1}: Learning Rate = {scheduler.get_last_lr()[0]:.5f}")
    return lrs


_DEMO_SCHEDULERS: dict[str, Callable[[Any, Any], Any]] = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=30, gamma=0.5),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=100_000),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda t: 0.999**t),
}


def time_scheduler_step(module: Any, make: Callable[[Any, Any], Any], groups: int, steps: int = 300,
                        repeats: int = 5) -> float:
    """Median µs per ``scheduler.step()`` over ``repeats`` runs of ``steps`` steps."""
    import torch

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": 0.01 * (1 + i % 7)} for i, p in enumerate(params)],
                          lr=0.01, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(module, opt)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                sched.step()
            samples.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(samples)


def demo_costs(group_counts: Sequence[int] = (1, 10, 100),
               print_fn: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Time ``scheduler.step()`` for torch and lrfast side by side; print and return the rows."""
    import torch.optim.lr_scheduler as torch_sched

    from lrfast import lr_scheduler

    rows = []
    print_fn("")
    print_fn("scheduler.step() host cost, µs per call (median of 5 x 300 calls; torch and lrfast in one run)")
    print_fn(f"{'scheduler':<20} {'groups':>6} {'torch':>9} {'lrfast':>9} {'speedup':>8}")
    for name, make in _DEMO_SCHEDULERS.items():
        for groups in group_counts:
            t_torch = time_scheduler_step(torch_sched, make, groups)
            t_fast = time_scheduler_step(lr_scheduler, make, groups)
            rows.append({"scheduler": name, "groups": groups, "torch_us": t_torch, "lrfast_us": t_fast})
            print_fn(f"{name:<20} {groups:>6} {t_torch:>9.2f} {t_fast:>9.2f} {t_torch / t_fast:>7.1f}x")
    return rows
