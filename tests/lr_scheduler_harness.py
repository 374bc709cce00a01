"""Shared driver for the lr_scheduler tests: torch's class and lrfast's, side by side.

``run_side_by_side`` builds two identical fresh optimizers, one scheduler of each kind
on them, calls ``opt.step(); sched.step()`` on both, and asserts at every step that
every group's ``lr``, ``get_last_lr()`` and momentum / ``betas[0]`` agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
import torch.optim.lr_scheduler as TL
from torch.optim.swa_utils import SWALR as TorchSWALR

import lrfast.lr_scheduler as FL

NAMES = (
    "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
    "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR",
    "OneCycleLR", "CosineAnnealingWarmRestarts", "SWALR",
)
TORCH = SimpleNamespace(**{n: getattr(TL, n) for n in NAMES if n != "SWALR"}, SWALR=TorchSWALR, name="torch")
FAST = SimpleNamespace(**{n: getattr(FL, n) for n in NAMES}, name="lrfast")

LRS = (0.1, 0.05, 0.3)
REL = 1e-9

Build = Callable[[SimpleNamespace, torch.optim.Optimizer], object]


def make_optimizer(kind: str = "sgd", lrs: Sequence[float] = LRS, tensor_lr: torch.dtype | None = None,
                   grads: bool = False) -> torch.optim.Optimizer:
    """One param group per entry of ``lrs`` (group i has its own LR), each a small parameter.

    ``tensor_lr``: give every group a 0-d tensor ``lr`` of that dtype instead of a float.
    """
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, generator=gen)) for _ in lrs]
    if grads:
        for p in params:
            p.grad = torch.randn(3, generator=gen)

    def lr(v):
        return torch.tensor(v, dtype=tensor_lr) if tensor_lr is not None else v

    groups = [{"params": [p], "lr": lr(v)} for p, v in zip(params, lrs)]
    default = lr(0.01)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=default, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=default, betas=(0.9, 0.999), foreach=False)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=default, betas=(0.85, 0.99), foreach=False)
    if kind == "sgd_plain":
        return torch.optim.SGD(groups, lr=default)
    if kind == "adagrad":  # neither momentum nor betas
        return torch.optim.Adagrad(groups, lr=default)
    raise ValueError(kind)


def as_float(v) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def momentum_of(group: dict) -> float | None:
    if "betas" in group:
        return as_float(group["betas"][0])
    if "momentum" in group:
        return as_float(group["momentum"])
    return None


def assert_close(actual, expected, where: str, rel: float = REL, scale: float = 1.0) -> None:
    """``actual`` within ``rel`` relative of ``expected``; near zero, within ``rel * 1e-6 * scale``
    absolute (a recursion that lands on 0 may leave 1e-18 where the closed form has 0)."""
    a, e = as_float(actual), as_float(expected)
    if a == e:
        return
    tol = max(rel * abs(e), rel * 1e-6 * scale)
    assert abs(a - e) <= tol, f"{where}: lrfast {a!r}, expected {e!r} (rel {abs(a - e) / max(abs(e), 1e-300):.3g})"


def snapshot(opt: torch.optim.Optimizer, sched) -> tuple[list[float], list[float], list[float | None]]:
    groups = opt.param_groups
    return ([as_float(g["lr"]) for g in groups], [as_float(v) for v in sched.get_last_lr()],
            [momentum_of(g) for g in groups])


def assert_state_matches(step: int, opt_t, opt_f, s_t, s_f, rel: float = REL, exact: bool = False) -> None:
    lr_t, last_t, mom_t = snapshot(opt_t, s_t)
    lr_f, last_f, mom_f = snapshot(opt_f, s_f)
    scale = max(abs(v) for v in lr_t + [1e-300])
    assert len(lr_f) == len(lr_t) and len(last_f) == len(last_t)
    for i in range(len(lr_t)):
        where = f"step {step} group {i}"
        if exact:
            assert lr_f[i] == lr_t[i], f"{where} lr: lrfast {lr_f[i]!r}, torch {lr_t[i]!r}"
            assert last_f[i] == last_t[i], f"{where} get_last_lr: lrfast {last_f[i]!r}, torch {last_t[i]!r}"
        else:
            assert_close(lr_f[i], lr_t[i], f"{where} lr", rel, scale)
            assert_close(last_f[i], last_t[i], f"{where} get_last_lr", rel, scale)
        assert (mom_f[i] is None) == (mom_t[i] is None), where
        if mom_t[i] is not None and exact:
            assert mom_f[i] == mom_t[i], f"{where} momentum: lrfast {mom_f[i]!r}, torch {mom_t[i]!r}"
        elif mom_t[i] is not None:
            assert_close(mom_f[i], mom_t[i], f"{where} momentum", rel)
        # lrfast's get_last_lr() is what the group holds (torch's is too).
        assert last_f[i] == lr_f[i], f"{where}: get_last_lr {last_f[i]!r} but group lr {lr_f[i]!r}"


def counters(sched):
    """The step counts of a scheduler and its children: ``last_epoch`` and ``_step_count``
    (torch's ChainedScheduler keeps none of its own; lrfast's reads its schedulers')."""
    if isinstance(sched, TL.ChainedScheduler):
        return [counters(s) for s in sched._schedulers]
    own = (sched.last_epoch, getattr(sched, "_step_count", None))
    return [own, *(counters(s) for s in getattr(sched, "_schedulers", []))]


def change_steps(trajectory: Sequence[Sequence[float]], rel: float = 1e-12) -> list[set[int]]:
    """Per group, the steps at which the LR moved by more than ``rel`` relative."""
    out = []
    for g in range(len(trajectory[0])):
        steps = set()
        for k in range(1, len(trajectory)):
            a, b = trajectory[k - 1][g], trajectory[k][g]
            if abs(b - a) > rel * max(abs(a), abs(b)):
                steps.add(k)
        out.append(steps)
    return out


def run_side_by_side(build: Build, steps: int, kind: str = "sgd", lrs: Sequence[float] = LRS,
                     rel: float = REL, exact: bool = False, tensor_lr: torch.dtype | None = None,
                     prepare: Callable[[torch.optim.Optimizer], None] | None = None,
                     check_events: bool = True):
    """Drive torch's scheduler and lrfast's on identical optimizers for ``steps`` steps,
    asserting agreement at every step and identical discrete events. Returns
    (torch scheduler, lrfast scheduler, torch LR trajectory, lrfast LR trajectory)."""
    opts, scheds = [], []
    for ns in (TORCH, FAST):
        opt = make_optimizer(kind, lrs, tensor_lr)
        if prepare is not None:
            prepare(opt)
        scheds.append(build(ns, opt))
        opts.append(opt)
    (opt_t, opt_f), (s_t, s_f) = opts, scheds
    assert_state_matches(0, opt_t, opt_f, s_t, s_f, rel, exact)
    traj_t = [snapshot(opt_t, s_t)[0]]
    traj_f = [snapshot(opt_f, s_f)[0]]
    for k in range(1, steps + 1):
        opt_t.step()
        s_t.step()
        opt_f.step()
        s_f.step()
        assert_state_matches(k, opt_t, opt_f, s_t, s_f, rel, exact)
        assert counters(s_f) == counters(s_t), f"step {k}"
        traj_t.append(snapshot(opt_t, s_t)[0])
        traj_f.append(snapshot(opt_f, s_f)[0])
    if check_events:
        assert change_steps(traj_f) == change_steps(traj_t), "LR changes at different steps"
    return s_t, s_f, traj_t, traj_f


def torch_trajectory(build: Build, steps: int, kind: str = "sgd", lrs: Sequence[float] = LRS) -> list[list[float]]:
    """The LRs of an uninterrupted torch run, steps 0..steps."""
    opt = make_optimizer(kind, lrs)
    sched = build(TORCH, opt)
    out = [[as_float(g["lr"]) for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append([as_float(g["lr"]) for g in opt.param_groups])
    return out


def cosine_closed_form(base: float, eta_min: float, t_max: int, t: int) -> float:
    """torch's documented closed form of CosineAnnealingLR, in float64."""
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
