"""Bad arguments: lrfast rejects what torch rejects, with the same exception type, and
before it changes anything (the optimizer's param groups are left as they were, which
torch's constructors do not always manage). Then lrfast's own, stricter checks.
"""

from __future__ import annotations

import pytest
import torch
from lr_scheduler_harness import FAST, LRS, TORCH, make_optimizer, run_side_by_side

import lrfast.lr_scheduler as FL


def _snapshot(opt) -> list[dict]:
    out = []
    for g in opt.param_groups:
        d = {}
        for k, v in g.items():
            if k == "params":
                d[k] = [id(p) for p in v]
            elif isinstance(v, torch.Tensor):
                d[k] = ("tensor", id(v), v.clone())
            else:
                d[k] = v
        out.append(d)
    return out


def _assert_unchanged(before: list[dict], opt) -> None:
    after = _snapshot(opt)
    assert len(after) == len(before)
    for b, a in zip(before, after, strict=True):
        assert a.keys() == b.keys(), f"keys changed: {sorted(set(a) ^ set(b))}"
        for k in b:
            if isinstance(b[k], tuple) and b[k] and b[k][0] == "tensor":
                assert a[k][1] == b[k][1] and torch.equal(a[k][2], b[k][2]), k
            else:
                assert a[k] == b[k], k


def _raises(build, ns, kind, tensor_lr=None):
    """The exception ``build`` raises on a fresh optimizer, the optimizer, and a snapshot of
    its groups from before the failing constructor. A composite's build takes a third
    argument, ``mark``, to call on its children: the snapshot is taken then (the children
    themselves have written their LRs by design)."""
    opt = make_optimizer(kind, tensor_lr=tensor_lr)
    before = [_snapshot(opt)]

    def mark(children):
        before[0] = _snapshot(opt)
        return children

    with pytest.raises(Exception) as info:
        if build.__code__.co_argcount == 3:
            build(ns, opt, mark)
        else:
            build(ns, opt)
    return info.value, opt, before[0]


# (build(namespace, optimizer), optimizer kind, the exception torch raises)
TORCH_REJECTS = {
    "ConstantLR-factor-gt-1": (lambda M, o: M.ConstantLR(o, factor=1.5), "sgd", ValueError),
    "ConstantLR-factor-negative": (lambda M, o: M.ConstantLR(o, factor=-0.1), "sgd", ValueError),
    "LinearLR-start-0": (lambda M, o: M.LinearLR(o, start_factor=0), "sgd", ValueError),
    "LinearLR-start-gt-1": (lambda M, o: M.LinearLR(o, start_factor=1.2), "sgd", ValueError),
    "LinearLR-end-gt-1": (lambda M, o: M.LinearLR(o, end_factor=1.01), "sgd", ValueError),
    "LinearLR-end-negative": (lambda M, o: M.LinearLR(o, end_factor=-0.5), "adam", ValueError),
    "LambdaLR-list-length": (lambda M, o: M.LambdaLR(o, [lambda e: 1.0] * 2), "sgd", ValueError),
    "LambdaLR-not-callable": (lambda M, o: M.LambdaLR(o, 0.5), "sgd", TypeError),
    "MultiplicativeLR-not-callable": (lambda M, o: M.MultiplicativeLR(o, 0.95), "sgd", TypeError),
    "MultiplicativeLR-list-not-callable": (lambda M, o: M.MultiplicativeLR(o, [lambda e: 0.9, 0.9, None]), "sgd",
                                           TypeError),
    "MultiplicativeLR-list-length": (lambda M, o: M.MultiplicativeLR(o, (lambda e: 0.9,)), "sgd", ValueError),
    "StepLR-not-an-optimizer": (lambda M, o: M.StepLR(object(), 3), "sgd", TypeError),
    "CyclicLR-bad-mode": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, mode="sawtooth"), "sgd", ValueError),
    "CyclicLR-bad-mode-tensor-lr": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, mode="nope"), "sgd_tensor", ValueError),
    "CyclicLR-no-momentum": (lambda M, o: M.CyclicLR(o, 0.01, 0.1), "adagrad", ValueError),
    "CyclicLR-base-lr-length": (lambda M, o: M.CyclicLR(o, [0.01, 0.02], 0.1), "sgd", ValueError),
    "CyclicLR-max-lr-length": (lambda M, o: M.CyclicLR(o, 0.01, [0.1] * 4), "sgd", ValueError),
    "CyclicLR-base-momentum-length": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]), "sgd", ValueError),
    "CyclicLR-max-momentum-length": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, max_momentum=(0.9, 0.9)), "adam",
                                     ValueError),
    "CyclicLR-sizes-0": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, 0, 0), "sgd", ZeroDivisionError),
    "CyclicLR-not-an-optimizer": (lambda M, o: M.CyclicLR(object(), 0.01, 0.1), "sgd", TypeError),
    "OneCycleLR-no-total": (lambda M, o: M.OneCycleLR(o, 0.1), "sgd", ValueError),
    "OneCycleLR-epochs-only": (lambda M, o: M.OneCycleLR(o, 0.1, epochs=3), "sgd", ValueError),
    "OneCycleLR-total-0": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=0), "sgd", ValueError),
    "OneCycleLR-total-float": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=10.0), "sgd", ValueError),
    "OneCycleLR-epochs-0": (lambda M, o: M.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=10), "sgd", ValueError),
    "OneCycleLR-steps-per-epoch-negative": (lambda M, o: M.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=-1), "sgd",
                                            ValueError),
    "OneCycleLR-int-pct-start": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, pct_start=1), "sgd",
                                 ValueError),
    "OneCycleLR-pct-start-gt-1": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, pct_start=1.5), "sgd",
                                  ValueError),
    "OneCycleLR-pct-start-negative": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, pct_start=-0.1), "sgd",
                                      ValueError),
    "OneCycleLR-bad-anneal": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, anneal_strategy="cosine"), "sgd",
                              ValueError),
    "OneCycleLR-max-lr-length": (lambda M, o: M.OneCycleLR(o, [0.1, 0.2], total_steps=100), "sgd", ValueError),
    "OneCycleLR-max-momentum-length": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, max_momentum=[0.9]),
                                       "adam", ValueError),
    "OneCycleLR-base-momentum-length": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, base_momentum=[0.8] * 5),
                                        "sgd", ValueError),
    "OneCycleLR-no-momentum": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100), "adagrad", ValueError),
    "OneCycleLR-div-factor-0": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, div_factor=0), "sgd",
                                ZeroDivisionError),
    "OneCycleLR-final-div-factor-0": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=100, final_div_factor=0), "sgd",
                                      ZeroDivisionError),
    "OneCycleLR-not-an-optimizer": (lambda M, o: M.OneCycleLR(object(), 0.1, total_steps=10), "sgd", TypeError),
    "CosineAnnealingWarmRestarts-T0-0": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 0), "sgd", ValueError),
    "CosineAnnealingWarmRestarts-T0-float": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 2.5), "sgd", ValueError),
    "CosineAnnealingWarmRestarts-Tmult-half": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 10, T_mult=0.5), "sgd",
                                               ValueError),
    "CosineAnnealingWarmRestarts-Tmult-0": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 10, T_mult=0), "sgd",
                                            ValueError),
    "CosineAnnealingWarmRestarts-eta-min-str": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 10, eta_min="0"),
                                                "sgd", ValueError),
    "SWALR-anneal-epochs-negative": (lambda M, o: M.SWALR(o, 0.05, anneal_epochs=-1), "sgd", ValueError),
    "SWALR-anneal-epochs-float": (lambda M, o: M.SWALR(o, 0.05, anneal_epochs=2.0), "sgd", ValueError),
    "SWALR-bad-anneal": (lambda M, o: M.SWALR(o, 0.05, anneal_strategy="exp"), "adam", ValueError),
    "SWALR-swa-lr-length": (lambda M, o: M.SWALR(o, [0.05, 0.01]), "sgd", ValueError),
    "SWALR-not-an-optimizer": (lambda M, o: M.SWALR(object(), 0.05), "sgd", AttributeError),
    "SequentialLR-milestone-count": (
        lambda M, o, mark: M.SequentialLR(o, mark([M.ConstantLR(o), M.ExponentialLR(o, 0.9)]), [3, 6]), "sgd",
        ValueError),
    "SequentialLR-no-milestone": (
        lambda M, o, mark: M.SequentialLR(o, mark([M.ConstantLR(o), M.ExponentialLR(o, 0.9)]), []), "sgd", ValueError),
    "SequentialLR-empty": (lambda M, o: M.SequentialLR(o, [], []), "sgd", ValueError),
    "SequentialLR-other-optimizer": (
        lambda M, o, mark: M.SequentialLR(o, mark([M.ConstantLR(o), M.ExponentialLR(make_optimizer(), 0.9)]), [3]),
        "sgd", ValueError),
    "SequentialLR-plateau": (
        lambda M, o, mark: M.SequentialLR(o, mark([M.ConstantLR(o), M.ReduceLROnPlateau(o)]), [3]), "sgd", ValueError),
    "SequentialLR-not-a-scheduler": (
        lambda M, o, mark: M.SequentialLR(o, mark([M.ConstantLR(o), object()]), [3]), "sgd", TypeError),
    "ChainedScheduler-empty": (lambda M, o: M.ChainedScheduler([]), "sgd", ValueError),
    "ChainedScheduler-other-optimizer": (
        lambda M, o, mark: M.ChainedScheduler(mark([M.ConstantLR(o), M.ExponentialLR(make_optimizer(), 0.9)])), "sgd",
        ValueError),
    "ChainedScheduler-plateau": (
        lambda M, o, mark: M.ChainedScheduler(mark([M.ConstantLR(o), M.ReduceLROnPlateau(o)])), "sgd", ValueError),
    "ReduceLROnPlateau-factor-1": (lambda M, o: M.ReduceLROnPlateau(o, factor=1.0), "sgd", ValueError),
    "ReduceLROnPlateau-factor-2": (lambda M, o: M.ReduceLROnPlateau(o, factor=2.0), "sgd", ValueError),
    "ReduceLROnPlateau-bad-mode": (lambda M, o: M.ReduceLROnPlateau(o, mode="minimum"), "sgd", ValueError),
    "ReduceLROnPlateau-bad-threshold-mode": (lambda M, o: M.ReduceLROnPlateau(o, threshold_mode="relative"), "sgd",
                                             ValueError),
    "ReduceLROnPlateau-min-lr-length": (lambda M, o: M.ReduceLROnPlateau(o, min_lr=[0.0, 0.1]), "sgd", ValueError),
    "ReduceLROnPlateau-not-an-optimizer": (lambda M, o: M.ReduceLROnPlateau(object()), "sgd", TypeError),
}

# Resuming (last_epoch >= 0) needs each group's initial_lr: torch raises KeyError.
for _name, _build in {
    "StepLR": lambda M, o: M.StepLR(o, 3, last_epoch=4),
    "LambdaLR": lambda M, o: M.LambdaLR(o, lambda e: 1.0, last_epoch=0),
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1, last_epoch=7),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, 0.1, total_steps=50, last_epoch=7),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 5, last_epoch=2),
    "SWALR": lambda M, o: M.SWALR(o, 0.05, last_epoch=3),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, last_epoch=1),
}.items():
    TORCH_REJECTS[f"{_name}-resume-without-initial-lr"] = (_build, "sgd", KeyError)


def _kind_and_dtype(kind):
    return ("sgd", torch.float64) if kind == "sgd_tensor" else (kind, None)


@pytest.mark.parametrize("name", list(TORCH_REJECTS))
def test_rejected_like_torch(name):
    build, kind, expected = TORCH_REJECTS[name]
    kind, dtype = _kind_and_dtype(kind)
    err_t, _, _ = _raises(build, TORCH, kind, dtype)
    err_f, opt_f, before = _raises(build, FAST, kind, dtype)
    assert type(err_t) is expected, f"torch raised {err_t!r}"
    assert type(err_f) is expected, f"lrfast raised {err_f!r}, torch {err_t!r}"
    _assert_unchanged(before, opt_f)


@pytest.mark.parametrize("name", [n for n in TORCH_REJECTS if n.startswith(("CyclicLR-bad", "SWALR-bad",
                                                                            "OneCycleLR-final", "SWALR-resume"))])
def test_torch_changes_the_groups_before_raising_where_lrfast_does_not(name):
    """The cases above where torch writes into the groups before it raises: the check in
    test_rejected_like_torch is not vacuous."""
    build, kind, _ = TORCH_REJECTS[name]
    kind, dtype = _kind_and_dtype(kind)
    _, opt_t, before = _raises(build, TORCH, kind, dtype)
    with pytest.raises(AssertionError):
        _assert_unchanged(before, opt_t)


def test_warm_restarts_negative_epoch():
    for ns in (TORCH, FAST):
        opt = make_optimizer()
        sched = ns.CosineAnnealingWarmRestarts(opt, 5)
        with pytest.raises(ValueError, match="non-negative epoch"):
            sched.step(-1)
        assert sched.last_epoch == 0


# -- where torch fails only later, lrfast rejects at construction -----------------------------------

@pytest.mark.parametrize("build, at_step", [
    (lambda M, o: M.StepLR(o, step_size=0), 1),  # torch: 1 % 0
    (lambda M, o: M.CosineAnnealingLR(o, T_max=0), 1),  # torch: (t - 1 - 0) % 0
    (lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=0, step_size_down=5), 0),  # torch: x / 0.0
])
def test_rejected_at_construction_where_torch_fails_at_a_step(build, at_step):
    opt = make_optimizer()
    with pytest.raises(ZeroDivisionError):
        sched = build(TORCH, opt)
        for _ in range(at_step):
            opt.step()
            sched.step()
    opt = make_optimizer()
    before = _snapshot(opt)
    with pytest.raises(ValueError):
        build(FAST, opt)
    _assert_unchanged(before, opt)


# -- what torch accepts, lrfast accepts: composites as torch's ----------------------------------------

def test_sequential_unsorted_milestones_as_torch():
    """torch does not check SequentialLR's milestones; bisect decides which child steps.
    lrfast runs torch's composition, so the LRs are torch's."""
    run_side_by_side(lambda M, o: M.SequentialLR(o, [M.ConstantLR(o), M.ExponentialLR(o, 0.9), M.StepLR(o, 2)],
                                                 [10, 5]), 30)


@pytest.mark.parametrize("composite", ["SequentialLR", "ChainedScheduler"])
def test_torch_scheduler_as_a_child(composite):
    """A torch scheduler may be a child: it steps the same optimizer, as in torch."""
    def build(M, o):
        children = [M.ConstantLR(o), torch.optim.lr_scheduler.StepLR(o, 3)]
        return M.SequentialLR(o, children, [4]) if composite == "SequentialLR" else M.ChainedScheduler(children)
    run_side_by_side(build, 20)


def test_chained_children_at_different_steps():
    def build(M, o):
        a = M.ExponentialLR(o, 0.9)
        o.step()
        a.step()
        return M.ChainedScheduler([a, M.StepLR(o, 3)])
    run_side_by_side(build, 20)


@pytest.mark.parametrize("horizon", [0, -5, 2.5, True])
def test_bad_horizon(horizon):
    for cls, args in ((FL.LambdaLR, (lambda e: 1.0,)), (FL.MultiplicativeLR, (lambda e: 1.0,)),
                      (FL.CyclicLR, (0.01, 0.1))):
        opt = make_optimizer()
        before = _snapshot(opt)
        with pytest.raises(ValueError, match="horizon"):
            cls(opt, *args, horizon=horizon)
        _assert_unchanged(before, opt)


def test_epoch_types_torch_accepts():
    """torch's step(epoch) takes any number: NumPy integers, 0-d tensors, floats (its closed
    forms compute with them). lrfast takes them too; a negative or non-finite epoch, or a
    non-number, is refused before anything changes."""
    import numpy as np

    for epoch in (np.int64(4), torch.tensor(4), 4.0):
        for ns in (TORCH, FAST):
            opt = make_optimizer()
            sched = ns.StepLR(opt, 3)
            with pytest.warns(UserWarning):
                sched.step(epoch)
            assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([lr * 0.1 for lr in LRS], rel=1e-6)
    opt = make_optimizer()
    sched = FL.StepLR(opt, 3)
    t_sched = TORCH.StepLR(make_optimizer(), 3)
    with pytest.warns(UserWarning):
        sched.step(2.5)
        t_sched.step(2.5)
    assert sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12)
    for bad, err in ((-2, ValueError), (float("nan"), ValueError), ("3", TypeError)):
        with pytest.raises(err, match="StepLR.step: epoch"):
            sched.step(bad)
        assert sched.last_epoch == 2.5
