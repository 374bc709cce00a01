"""ReduceLROnPlateau(..., schedule=...): plateau reductions composed with another schedule,
on the host (float and CPU-tensor LRs; the device is tests/test_gpu_plateau.py).

The oracle: torch's ReduceLROnPlateau decides when to reduce (its _reduce_lr is recorded,
not run), a float64 reference applies docs/schedulers.md's rule
    lr(t) = max(min_lr, s(t) * f),  f *= factor at a decision when that lowers lr(t) by > eps,
and s(t) comes from the schedule itself, or from torch's own scheduler run alongside."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import lrfast.lr_scheduler as FL
from lrfast import schedules as S

LRS = (0.1, 0.05, 0.3)
MIN_LRS = [1e-3, 0.0, 0.02]
STEPS = 120


class _Decisions(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """torch's rule, recording its decisions instead of changing any LR."""

    reduced = False

    def _reduce_lr(self, epoch) -> None:
        self.reduced = True


def _metrics(seed: int = 3, every: int = 3) -> list[float | None]:
    rng = np.random.default_rng(seed)
    k = np.arange(STEPS)
    noisy = 1.0 - 0.1 * (k // 30) + rng.normal(0, 0.002, STEPS)  # stalls between drops
    noisy[[20, 21, 50]] = math.nan
    return [float(noisy[i]) if i % every == every - 1 else None for i in range(STEPS)]


def _optimizer(tensor_lr: torch.dtype | None = None, lrs=LRS):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    groups = [{"params": [p], "lr": torch.tensor(v, dtype=tensor_lr) if tensor_lr else v} for p, v in zip(params, lrs)]
    return torch.optim.SGD(groups, lr=0.01)


def _run(sched, opt, metrics, schedule_values, min_lrs, rel=1e-13, **rule):
    """Steps sched and the reference side by side; schedule_values(t) -> per-group s(t)."""
    rule.pop("min_lr", None)  # decisions do not depend on it
    ref = _Decisions(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), **rule)
    factor, eps = rule.get("factor", 0.1), rule.get("eps", 1e-8)
    f = [1.0] * len(opt.param_groups)
    decisions = 0
    for t, m in enumerate(metrics, start=1):
        opt.step()
        if m is None:
            sched.step()
        else:
            sched.step(m)
        s = schedule_values(t)
        if m is not None:
            ref.reduced = False
            ref.step(m)
            if ref.reduced:
                decisions += 1
                for g in range(len(f)):
                    product = s[g] * f[g]
                    old, new = max(min_lrs[g], product), max(min_lrs[g], product * factor)
                    if old - new > eps:
                        f[g] *= factor
        want = [max(lo, v * fg) for lo, v, fg in zip(min_lrs, s, f)]
        got = [float(g["lr"]) for g in opt.param_groups]
        last = [float(v) for v in sched.get_last_lr()]
        assert sched.lr_factors == f, f"step {t}: factors {sched.lr_factors} vs {f}"
        assert sched.last_epoch == t
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == pytest.approx(
            (ref.best, ref.num_bad_epochs, ref.cooldown_counter), nan_ok=True), f"step {t}"
        assert sched.lr_tensor.tolist() == last, f"step {t}"
        for g in range(len(f)):
            assert got[g] == pytest.approx(want[g], rel=rel, abs=0), f"step {t} group {g}"
            assert last[g] == got[g]
    return decisions


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("cooldown", [0, 2])
def test_plateau_on_warmup_cosine(mode, cooldown):
    schedule = S.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=100, end_value=0.05)
    opt = _optimizer()
    metrics = _metrics()
    if mode == "max":
        metrics = [None if m is None else 2.0 - m for m in metrics]
    rule = dict(mode=mode, factor=0.5, patience=2, threshold=1e-3, cooldown=cooldown)
    sched = FL.ReduceLROnPlateau(opt, **rule, min_lr=MIN_LRS, schedule=schedule)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) and sched.composed
    # construction applies step 0, floored: warmup starts at 0, lifted to min_lr
    assert [g["lr"] for g in opt.param_groups] == MIN_LRS
    decisions = _run(sched, opt, metrics, lambda t: [b * schedule(t) for b in LRS], MIN_LRS, min_lr=MIN_LRS,
                     **rule)
    assert decisions >= 2


def test_per_group_schedules_and_cpu_tensor_lrs():
    schedules = [S.cosine_annealing(1.0, 40), S.constant(1.0), S.exponential_decay(1.0, 10, 0.5)]
    opt = _optimizer(torch.float64)
    lr_objects = [g["lr"] for g in opt.param_groups]
    rule = dict(factor=0.3, patience=1, threshold=1e-2, eps=1e-4)
    sched = FL.ReduceLROnPlateau(opt, **rule, min_lr=MIN_LRS, schedule=schedules)
    _run(sched, opt, _metrics(every=2), lambda t: [b * s(t) for b, s in zip(LRS, schedules)], MIN_LRS,
         min_lr=MIN_LRS, **rule)
    assert all(g["lr"] is obj for g, obj in zip(opt.param_groups, lr_objects))  # updated in place


def _torch_values(build):
    """s(t) from torch's own scheduler on an optimizer of its own."""
    opt = _optimizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = build(torch.optim.lr_scheduler, opt)
    values = {0: [g["lr"] for g in opt.param_groups]}

    def at(t):
        while t not in values:
            opt.step()
            sched.step()
            values[max(values) + 1] = [g["lr"] for g in opt.param_groups]
        return values[t]
    return at


@pytest.mark.parametrize("name", ["SequentialLR", "ChainedScheduler", "LambdaLR", "CosineAnnealingWarmRestarts"])
def test_plateau_on_an_lrfast_scheduler(name):
    def build(ns, opt):
        if name == "SequentialLR":  # warmup + cosine, torch's idiom -- torch refuses a plateau on top
            return ns.SequentialLR(opt, [ns.LinearLR(opt, 0.1, total_iters=5), ns.CosineAnnealingLR(opt, 60)], [5])
        if name == "ChainedScheduler":
            return ns.ChainedScheduler([ns.ConstantLR(opt, 0.5, total_iters=4), ns.ExponentialLR(opt, 0.99)])
        if name == "LambdaLR":
            kwargs = {"horizon": 8} if ns is FL else {}  # re-baked every few steps
            return ns.LambdaLR(opt, lambda t: 1.0 / math.sqrt(1 + t), **kwargs)
        return ns.CosineAnnealingWarmRestarts(opt, T_0=7, T_mult=2)

    opt = _optimizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inner = build(FL, opt)
        rule = dict(factor=0.5, patience=1, threshold=1e-3)
        sched = FL.ReduceLROnPlateau(opt, **rule, min_lr=MIN_LRS, schedule=inner)
        before = inner.last_epoch
        _run(sched, opt, _metrics(every=2), _torch_values(build), MIN_LRS, rel=1e-12, min_lr=MIN_LRS, **rule)
    assert inner.last_epoch == before + STEPS  # the inner scheduler counted along


def test_step_without_metric_only_advances_the_schedule():
    opt = _optimizer()
    sched = FL.ReduceLROnPlateau(opt, patience=0, schedule=S.linear(1.0, 0.5, 10))
    for _ in range(5):
        sched.step()
    assert sched.best == math.inf and sched.num_bad_epochs == 0 and sched.lr_factors == [1.0] * 3
    sched.step(1.0)
    sched.step(1.0)  # not better: a reduction (patience 0)
    assert sched.lr_factors == [0.1] * 3
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * (1.0 - 0.5 * 7 / 10) * 0.1, rel=1e-14)


def test_state_dict_round_trip_and_torch_compatibility():
    schedule = S.warmup_cosine_decay(0.0, 1.0, 5, 100)
    metrics = _metrics(every=2)
    opt = _optimizer()
    sched = FL.ReduceLROnPlateau(opt, factor=0.5, patience=1, schedule=schedule)
    for m in metrics[:60]:
        sched.step() if m is None else sched.step(m)
    state = sched.state_dict()
    assert state["lr_factors"] == sched.lr_factors and min(state["lr_factors"]) < 1.0
    torch_keys = set(torch.optim.lr_scheduler.ReduceLROnPlateau(_optimizer()).state_dict())
    assert torch_keys | {"lr_factors"} == set(state)
    # a torch scheduler loads it (the extra key is an attribute to torch)
    torch.optim.lr_scheduler.ReduceLROnPlateau(_optimizer()).load_state_dict(state)
    # a fresh composed scheduler resumes where this one was
    opt2 = _optimizer()
    opt2.load_state_dict(opt.state_dict())
    resumed = FL.ReduceLROnPlateau(opt2, factor=0.5, patience=1, schedule=schedule)
    resumed.load_state_dict(state)
    for m in metrics[60:]:
        for s in (sched, resumed):
            s.step() if m is None else s.step(m)
        assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
        assert resumed.state_dict() == sched.state_dict()


def test_with_an_lrfast_optimizer_the_plateau_drives_the_groups():
    from lrfast import optim

    params = [torch.nn.Parameter(torch.zeros(3)) for _ in LRS]
    opt = optim.SGD([{"params": [p], "lr": v} for p, v in zip(params, LRS)], lr=0.01)
    inner = FL.CosineAnnealingLR(opt, T_max=30)  # binds itself to the optimizer ...
    sched = FL.ReduceLROnPlateau(opt, factor=0.5, patience=0, schedule=inner)  # ... and is replaced
    assert sched.packed_lr() is None  # the optimizer reads the groups this scheduler writes
    for _ in range(12):
        lrs = [g["lr"] for g in opt.param_groups]
        before = [p.detach().clone() for p in params]
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        for p, b, lr in zip(params, before, lrs):
            torch.testing.assert_close(p.detach(), b - lr, rtol=1e-6, atol=1e-7)
        sched.step(1.0)
    assert sched.lr_factors[0] < 1e-2


def test_bad_schedule_arguments():
    full = S.chain(*[S.step_decay(1.0, 10 + i, 0.9) for i in range(8)])
    cases = [
        (TypeError, "schedule must be an lrfast Schedule", dict(schedule=lambda t: 1.0)),
        (ValueError, "expected 3 schedules", dict(schedule=[S.constant(1.0)] * 2)),
        (ValueError, "has a floor", dict(schedule=S.constant(1.0).with_floor(0.5))),
        (ValueError, "needs one more", dict(schedule=full)),
        (ValueError, "another optimizer", dict(schedule=FL.StepLR(_optimizer(), 3))),
        (ValueError, "Factor should be < 1.0", dict(factor=1.0, schedule=S.constant(1.0))),
    ]
    for error, message, kwargs in cases:
        opt = _optimizer()
        before = [dict(g) for g in opt.param_groups]
        with pytest.raises(error, match=message):
            FL.ReduceLROnPlateau(opt, **kwargs)
        assert [dict(g) for g in opt.param_groups] == before  # checked before anything changed
    opt = _optimizer()
    with pytest.raises(ValueError, match="cycles momentum"):
        FL.ReduceLROnPlateau(opt, schedule=FL.OneCycleLR(opt, 1.0, total_steps=10))
    plain = FL.ReduceLROnPlateau(_optimizer())
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'metrics'"):
        plain.step()
    inner_opt = _optimizer()
    composed = FL.ReduceLROnPlateau(inner_opt, schedule=FL.StepLR(inner_opt, 3))
    with pytest.raises(TypeError, match="epoch= is not supported"):
        composed.step(1.0, epoch=5)


def test_floor_composition_rules():
    s = S.cosine_annealing(1.0, 10)
    with pytest.raises(ValueError, match="apply with_floor"):
        S.chain(s.with_floor(0.1), s)
    with pytest.raises(ValueError, match="apply with_floor"):
        S.join([s, s.with_floor(0.1)], [5])
    assert (s.with_floor(0.1) * 2.0).floor == 0.2
    with pytest.raises(ValueError, match="negative factor"):
        s.with_floor(0.1) * -1.0
    assert "with_floor(0.1)" in repr(s.with_floor(0.1))
    assert s.with_floor(0.0).floor == 0.0 and s.with_floor(0.0)(10) == s(10)


def test_plain_state_dict_is_torchs_both_ways():
    metrics = [m if m is not None else 1.0 for m in _metrics(every=1)]
    ours_opt, ref_opt = _optimizer(), _optimizer()
    ours = FL.ReduceLROnPlateau(ours_opt, patience=2, factor=0.5, cooldown=1, min_lr=MIN_LRS)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=2, factor=0.5, cooldown=1, min_lr=MIN_LRS)
    for m in metrics[:70]:
        ours.step(m)
        ref.step(m)
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert set(mine) == set(theirs)
    assert all(mine[k] == theirs[k] or (k == "best" and math.isnan(mine[k]) and math.isnan(theirs[k]))
               for k in theirs)
    swapped_opt = _optimizer()
    swapped_opt.load_state_dict(ref_opt.state_dict())
    swapped = FL.ReduceLROnPlateau(swapped_opt)
    swapped.load_state_dict(theirs)  # torch's dict into lrfast's class
    ref.load_state_dict(mine)  # and lrfast's into torch's
    for m in metrics[70:]:
        swapped.step(m)
        ref.step(m)
        assert [g["lr"] for g in swapped_opt.param_groups] == [g["lr"] for g in ref_opt.param_groups]
    assert (swapped.best, swapped.num_bad_epochs, swapped.cooldown_counter) == (ref.best, ref.num_bad_epochs,
                                                                                ref.cooldown_counter)
    swapped.best = 0.0  # torch's attributes stay plain attributes to the user
    assert swapped.best == 0.0 and "best" not in swapped.__dict__
