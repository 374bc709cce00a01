"""The scheduler configurations timed by the benchmarks, shared by the pytest-benchmark
file, the report script and ``python -m lrfast bench`` (one definition of each case, in
lrfast/tools/bench/cases.py: one scheduler of every class, and the patterns of use)."""

from __future__ import annotations

import warnings

import torch

from lrfast.tools.bench.cases import SCHEDULER_CASES as CASES
from lrfast.tools.bench.cases import pattern_cases
from lrfast.tools.bench.cases import scheduler_calls as stepper
from lrfast.tools.bench.contenders import pattern_step, scheduler_module

__all__ = ["CASES", "lrfast_module", "make_scheduler", "pattern_cases", "pattern_step", "stepper", "torch_module"]


def torch_module():
    """torch's scheduler classes under one namespace, SWALR included."""
    return scheduler_module("torch")


def lrfast_module():
    return scheduler_module("lrfast")


def make_scheduler(module, name: str, groups: int, tensor_lr: bool):
    """An SGD(momentum) optimizer with ``groups`` one-parameter groups and its scheduler."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    spec = [{"params": [p], "lr": (torch.tensor(0.01 * (1 + i % 7)) if tensor_lr else 0.01 * (1 + i % 7))}
            for i, p in enumerate(params)]
    opt = torch.optim.SGD(spec, lr=0.01, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = CASES[name](module, opt)
    return opt, sched
