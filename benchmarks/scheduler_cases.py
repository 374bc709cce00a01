"""The scheduler configurations timed by the benchmarks, shared by the pytest-benchmark
file and the report script (one definition of each case)."""

from __future__ import annotations

import warnings

import torch

CASES = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda t: 0.999**t),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda t: 0.999),
    "StepLR": lambda m, o: m.StepLR(o, step_size=30, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[100, 200, 300], gamma=0.5),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=100),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=1000),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.999),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=100), m.CosineAnnealingLR(o, T_max=10_000)], [100]),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=100_000, power=2.0),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=100), m.ExponentialLR(o, gamma=0.999)]),
    "ReduceLROnPlateau": lambda m, o: m.ReduceLROnPlateau(o, patience=5),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=500),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=1_000_000),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=100, T_mult=2),
    "SWALR": lambda m, o: m.SWALR(o, swa_lr=0.01, anneal_epochs=100),
}


def torch_module():
    import torch.optim.lr_scheduler as torch_sched
    from torch.optim import swa_utils

    class Torch:  # torch's classes under one namespace, SWALR included
        pass

    for name in CASES:
        setattr(Torch, name, getattr(torch_sched, name, None) or getattr(swa_utils, name))
    return Torch


def lrfast_module():
    from lrfast import lr_scheduler

    return lr_scheduler


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


def stepper(sched):
    """A zero-argument callable doing one ``step()`` (ReduceLROnPlateau gets a flat metric)."""
    if hasattr(sched, "patience"):
        return lambda: sched.step(1.0)
    return sched.step
