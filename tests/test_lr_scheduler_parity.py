"""lrfast.lr_scheduler against torch.optim.lr_scheduler, step by step.

Every class is driven side by side with torch's on identical fresh optimizers
(``opt.step(); sched.step()``), and at every step each group's ``lr``, ``get_last_lr()``
and momentum / ``betas[0]`` must agree within 1e-9 relative, bit for bit where torch
evaluates a closed form (LambdaLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts;
MultiplicativeLR's products, baked in torch's order); the steps at
which the LR jumps (decays, restarts, milestones) must be the same.

Where torch's float recursion drifts from its own closed form (CosineAnnealingLR over
many periods, near its zeros), the reference is the float64 closed form written here.
ReduceLROnPlateau, which needs metrics, is driven in test_lr_scheduler_plateau.py.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from lr_scheduler_harness import (
    FAST,
    LRS,
    NAMES,
    REL,
    TORCH,
    as_float,
    assert_close,
    assert_state_matches,
    change_steps,
    cosine_closed_form,
    make_optimizer,
    momentum_of,
    run_side_by_side,
)

import lrfast.lr_scheduler as FL


class Warmup:
    """A callable object (not a function): torch saves its __dict__ in state dicts."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def __call__(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.warmup) * 0.999**epoch


def sawtooth(epoch: int) -> float:
    return 0.1 + (epoch % 7) / 7


# (build, steps, optimizer kind): build(namespace, optimizer) makes the scheduler from
# torch's namespace or lrfast's.
CONFIGS = {
    # -- LambdaLR (torch: base * lambda(t), a closed form) ---------------------------------
    "LambdaLR-exp-2000": (lambda M, o: M.LambdaLR(o, lambda e: 0.998**e), 2000, "sgd"),
    "LambdaLR-per-group": (lambda M, o: M.LambdaLR(o, [lambda e: 0.9**e, lambda e: 1 / (1 + e), sawtooth]),
                           400, "sgd"),
    "LambdaLR-warmup-adam": (lambda M, o: M.LambdaLR(o, Warmup(50)), 600, "adam"),
    "LambdaLR-tuple-adamw": (lambda M, o: M.LambdaLR(o, (sawtooth, Warmup(3), lambda e: 2.0)), 300, "adamw"),
    "LambdaLR-zero-at-start": (lambda M, o: M.LambdaLR(o, lambda e: e / (e + 10)), 300, "sgd"),
    # -- MultiplicativeLR (torch: lr *= lambda(t)) ----------------------------------------
    "MultiplicativeLR-const-2000": (lambda M, o: M.MultiplicativeLR(o, lambda e: 0.997), 2000, "sgd"),
    "MultiplicativeLR-per-group": (
        lambda M, o: M.MultiplicativeLR(o, [lambda e: 0.99, lambda e: 1.0 - 1 / (e + 50), Warmup(2)]), 500, "sgd"),
    "MultiplicativeLR-events": (lambda M, o: M.MultiplicativeLR(o, lambda e: 0.5 if e % 10 == 0 else 1.0),
                                300, "adam"),
    "MultiplicativeLR-growing": (lambda M, o: M.MultiplicativeLR(o, lambda e: 1.001), 1500, "adamw"),
    "MultiplicativeLR-sawtooth": (lambda M, o: M.MultiplicativeLR(o, lambda e: 0.9 + sawtooth(e) / 10), 400, "sgd"),
    # -- StepLR ---------------------------------------------------------------------------
    "StepLR-30-0.1-2000": (lambda M, o: M.StepLR(o, 30, 0.1), 2000, "sgd"),
    "StepLR-7-0.5": (lambda M, o: M.StepLR(o, 7, 0.5), 400, "adam"),
    "StepLR-1-0.97": (lambda M, o: M.StepLR(o, 1, 0.97), 1000, "sgd"),
    "StepLR-gamma-gt-1": (lambda M, o: M.StepLR(o, 100, 1.5), 1000, "adamw"),
    "StepLR-default-gamma": (lambda M, o: M.StepLR(o, step_size=3), 100, "sgd_plain"),
    # -- MultiStepLR ------------------------------------------------------------------------
    "MultiStepLR-2000": (lambda M, o: M.MultiStepLR(o, [300, 800, 1500], 0.1), 2000, "sgd"),
    "MultiStepLR-repeated": (lambda M, o: M.MultiStepLR(o, [30, 80, 80, 200], 0.5), 300, "adam"),
    "MultiStepLR-unsorted": (lambda M, o: M.MultiStepLR(o, [200, 30, 80]), 300, "sgd"),
    "MultiStepLR-milestone-0": (lambda M, o: M.MultiStepLR(o, [0, 1, 5], 0.5), 50, "sgd"),
    "MultiStepLR-tuple-gamma-gt-1": (lambda M, o: M.MultiStepLR(o, (10, 20), 3.0), 50, "adamw"),
    # -- ConstantLR ---------------------------------------------------------------------------
    "ConstantLR-default": (lambda M, o: M.ConstantLR(o), 50, "sgd"),
    "ConstantLR-0.5-100": (lambda M, o: M.ConstantLR(o, 0.5, 100), 2000, "adam"),
    "ConstantLR-total-0": (lambda M, o: M.ConstantLR(o, 0.25, 0), 50, "sgd"),
    "ConstantLR-factor-1": (lambda M, o: M.ConstantLR(o, 1.0, 10), 50, "sgd"),
    "ConstantLR-total-1": (lambda M, o: M.ConstantLR(o, 0.1, 1), 50, "adamw"),
    # -- LinearLR -------------------------------------------------------------------------------
    "LinearLR-default": (lambda M, o: M.LinearLR(o), 50, "sgd"),
    "LinearLR-warmup-100": (lambda M, o: M.LinearLR(o, 0.01, 1.0, 100), 2000, "adam"),
    "LinearLR-to-zero": (lambda M, o: M.LinearLR(o, 1.0, 0.0, 50), 200, "sgd"),
    "LinearLR-decay": (lambda M, o: M.LinearLR(o, 1.0, 0.25, 333), 500, "adamw"),
    "LinearLR-total-0": (lambda M, o: M.LinearLR(o, 0.5, 1.0, 0), 50, "sgd"),
    # -- ExponentialLR ----------------------------------------------------------------------------
    "ExponentialLR-0.999-2000": (lambda M, o: M.ExponentialLR(o, 0.999), 2000, "sgd"),
    "ExponentialLR-0.5": (lambda M, o: M.ExponentialLR(o, 0.5), 200, "adam"),
    "ExponentialLR-1.0": (lambda M, o: M.ExponentialLR(o, 1.0), 100, "sgd"),
    "ExponentialLR-growing": (lambda M, o: M.ExponentialLR(o, 1.003), 1000, "adamw"),
    "ExponentialLR-0.9": (lambda M, o: M.ExponentialLR(o, gamma=0.9), 300, "sgd_plain"),
    # -- PolynomialLR -------------------------------------------------------------------------------
    "PolynomialLR-default": (lambda M, o: M.PolynomialLR(o), 50, "sgd"),
    "PolynomialLR-100-2": (lambda M, o: M.PolynomialLR(o, 100, 2.0), 300, "adam"),
    "PolynomialLR-sqrt": (lambda M, o: M.PolynomialLR(o, 50, 0.5), 200, "sgd"),
    "PolynomialLR-2000-3": (lambda M, o: M.PolynomialLR(o, 2000, 3.0), 2000, "adamw"),
    "PolynomialLR-total-1": (lambda M, o: M.PolynomialLR(o, 1, 1.0), 20, "sgd"),
    # -- CosineAnnealingLR (within a few periods: torch's recursion stays within 1e-9) ------------
    "CosineAnnealingLR-2000": (lambda M, o: M.CosineAnnealingLR(o, 2000), 2000, "sgd"),
    "CosineAnnealingLR-eta-min": (lambda M, o: M.CosineAnnealingLR(o, 100, 1e-3), 400, "adam"),
    "CosineAnnealingLR-T1": (lambda M, o: M.CosineAnnealingLR(o, 1, 1e-4), 50, "sgd"),
    "CosineAnnealingLR-T7-periods": (lambda M, o: M.CosineAnnealingLR(o, 7, 0.01), 300, "adamw"),
    "CosineAnnealingLR-500": (lambda M, o: M.CosineAnnealingLR(o, T_max=500, eta_min=0.002), 1000, "sgd"),
    # -- SequentialLR ------------------------------------------------------------------------------
    "SequentialLR-warmup-exp": (
        lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.1, 5), M.ExponentialLR(o, 0.99)], [5]), 300, "sgd"),
    "SequentialLR-linear-cosine-2000": (
        lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.01, 1.0, 100), M.CosineAnnealingLR(o, 1900)], [100]),
        2000, "adam"),
    "SequentialLR-milestone-0": (
        lambda M, o: M.SequentialLR(o, [M.ExponentialLR(o, 0.9), M.StepLR(o, 10, 0.5)], [0]), 100, "sgd"),
    "SequentialLR-repeated-milestones": (
        lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.5, 3), M.LinearLR(o, 0.2, 1.0, 20), M.ExponentialLR(o, 0.95),
                                        M.StepLR(o, 7, 0.5)], [10, 10, 50]), 200, "adamw"),
    "SequentialLR-lambda-multiplicative": (
        lambda M, o: M.SequentialLR(o, [M.LambdaLR(o, Warmup(10)), M.MultiplicativeLR(o, lambda e: 0.98),
                                        M.PolynomialLR(o, 40, 2.0)], [20, 60]), 200, "sgd"),
    "SequentialLR-milestone-0-and-repeated": (
        lambda M, o: M.SequentialLR(o, [M.StepLR(o, 2, 0.5), M.ConstantLR(o, 0.5, 4), M.MultiStepLR(o, [3, 9]),
                                        M.CosineAnnealingLR(o, 30, 1e-3)], [0, 15, 15]), 150, "sgd"),
    # -- ChainedScheduler ----------------------------------------------------------------------------
    "ChainedScheduler-constant-exp": (
        lambda M, o: M.ChainedScheduler([M.ConstantLR(o, 0.1, 5), M.ExponentialLR(o, 0.99)]), 300, "sgd"),
    "ChainedScheduler-step-multistep-linear": (
        lambda M, o: M.ChainedScheduler([M.StepLR(o, 10, 0.5), M.MultiStepLR(o, [30, 60]),
                                         M.LinearLR(o, 0.1, 1.0, 25)]), 200, "adam"),
    "ChainedScheduler-exp-cosine-2000": (
        lambda M, o: M.ChainedScheduler([M.ExponentialLR(o, 0.9995), M.CosineAnnealingLR(o, 2000)]), 2000, "sgd"),
    "ChainedScheduler-absolute-last": (
        lambda M, o: M.ChainedScheduler([M.ExponentialLR(o, 0.9), M.LambdaLR(o, Warmup(20))]), 200, "adamw"),
    "ChainedScheduler-warmup-poly-multiplicative": (
        lambda M, o: M.ChainedScheduler([M.LinearLR(o, 0.2, 1.0, 10), M.PolynomialLR(o, 100, 1.5),
                                         M.MultiplicativeLR(o, lambda e: 0.995)], o), 150, "sgd"),
    # -- CyclicLR -------------------------------------------------------------------------------------
    "CyclicLR-triangular-2000": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=20), 2000, "sgd"),
    "CyclicLR-triangular2-down": (
        lambda M, o: M.CyclicLR(o, [0.01, 0.02, 0.001], [0.1, 0.2, 0.05], 13, 7, mode="triangular2"), 400, "sgd"),
    "CyclicLR-exp-range-adam": (
        lambda M, o: M.CyclicLR(o, 1e-4, 1e-2, 25, mode="exp_range", gamma=0.999), 600, "adam"),
    "CyclicLR-scale-fn-cycle": (
        lambda M, o: M.CyclicLR(o, 0.01, 0.1, 10, 5, scale_fn=lambda x: 1 / math.sqrt(x), scale_mode="cycle",
                                base_momentum=[0.7, 0.8, 0.85], max_momentum=[0.9, 0.95, 0.99]), 1500, "sgd"),
    "CyclicLR-scale-fn-iterations": (
        lambda M, o: M.CyclicLR(o, 0.01, 0.1, 9, scale_fn=lambda x: 0.999**x, scale_mode="iterations"),
        1500, "adamw"),
    "CyclicLR-bad-mode-with-scale-fn": (
        lambda M, o: M.CyclicLR(o, 0.001, 0.01, 4, 8, mode="whatever", scale_fn=sawtooth), 200, "sgd"),
    "CyclicLR-no-momentum-cycling": (
        lambda M, o: M.CyclicLR(o, 0.001, [0.01, 0.02, 0.03], 6, cycle_momentum=False), 100, "sgd_plain"),
    # -- OneCycleLR ------------------------------------------------------------------------------------
    "OneCycleLR-cos-2000": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=2000), 2000, "sgd"),
    "OneCycleLR-linear-three-phase-adam": (
        lambda M, o: M.OneCycleLR(o, 0.01, total_steps=500, anneal_strategy="linear", three_phase=True), 500, "adam"),
    "OneCycleLR-per-group-epochs": (
        lambda M, o: M.OneCycleLR(o, [0.1, 0.2, 0.05], epochs=7, steps_per_epoch=43, pct_start=0.25,
                                  base_momentum=[0.8, 0.85, 0.7], max_momentum=[0.9, 0.95, 0.99]), 301, "sgd"),
    "OneCycleLR-three-phase-cos-adamw": (
        lambda M, o: M.OneCycleLR(o, 3e-3, total_steps=1000, pct_start=0.4, div_factor=10.0, final_div_factor=100.0,
                                  three_phase=True), 1000, "adamw"),
    "OneCycleLR-no-momentum": (
        lambda M, o: M.OneCycleLR(o, 0.1, total_steps=97, cycle_momentum=False, anneal_strategy="linear"),
        97, "sgd_plain"),
    # -- CosineAnnealingWarmRestarts ---------------------------------------------------------------------
    "CosineAnnealingWarmRestarts-10-2000": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 10), 2000, "sgd"),
    "CosineAnnealingWarmRestarts-Tmult2-2000": (
        lambda M, o: M.CosineAnnealingWarmRestarts(o, 5, 2, 1e-3), 2000, "adam"),
    "CosineAnnealingWarmRestarts-Tmult3": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 3, 3, 0.01), 1500, "sgd"),
    "CosineAnnealingWarmRestarts-T1": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 1, eta_min=0.001), 50, "adamw"),
    "CosineAnnealingWarmRestarts-int-eta": (lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=1, eta_min=0),
                                            300, "sgd"),
    # -- SWALR -----------------------------------------------------------------------------------------
    "SWALR-cos-2000": (lambda M, o: M.SWALR(o, swa_lr=0.05), 2000, "sgd"),
    "SWALR-linear-per-group": (lambda M, o: M.SWALR(o, [0.01, 0.2, 0.03], 100, "linear"), 300, "adam"),
    "SWALR-anneal-0": (lambda M, o: M.SWALR(o, 0.02, anneal_epochs=0), 50, "sgd"),
    "SWALR-anneal-1": (lambda M, o: M.SWALR(o, 0.02, 1, "cos"), 50, "adamw"),
    "SWALR-cos-long-anneal": (lambda M, o: M.SWALR(o, 1e-3, anneal_epochs=1000), 1200, "sgd"),
}


# torch evaluates these as closed forms (or, for MultiplicativeLR, as products lrfast bakes
# in torch's order): lrfast's LRs and momenta are torch's to the bit.
EXACT = ("LambdaLR", "MultiplicativeLR", "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_step_by_step(name):
    build, steps, kind = CONFIGS[name]
    run_side_by_side(build, steps, kind, exact=name.split("-")[0] in EXACT)


def test_every_class_has_five_configurations():
    counts = {n: sum(k.split("-")[0] == n for k in CONFIGS) for n in NAMES if n != "ReduceLROnPlateau"}
    assert all(c >= 5 for c in counts.values()), counts


# -- degenerate arguments torch accepts ---------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda M, o: M.PolynomialLR(o, total_iters=0),  # torch's recursion: the LR never moves
    lambda M, o: M.PolynomialLR(o, total_iters=-3, power=2.0),
    lambda M, o: M.LinearLR(o, 0.5, 1.0, total_iters=-2),
    lambda M, o: M.ExponentialLR(o, gamma=0.0),  # 0 from the first step on
    lambda M, o: M.MultiStepLR(o, [-1, 3, 5, 5]),  # a negative milestone is never reached
    lambda M, o: M.StepLR(o, 4, gamma=0.0),
    lambda M, o: M.ConstantLR(o, 1.0, total_iters=0),
    lambda M, o: M.CosineAnnealingLR(o, 10, eta_min=0.5),  # eta_min above some base LRs
], ids=["poly-0", "poly-neg", "linear-neg", "exp-0", "multistep-neg", "step-gamma-0", "constant-0", "cos-eta-high"])
def test_degenerate_arguments_torch_accepts(build):
    run_side_by_side(build, 40)


def test_constant_lr_factor_0():
    """torch divides by the factor to restore the LR at total_iters, and fails there with
    factor 0 (ZeroDivisionError at step 3); lrfast refuses the arguments up front, before
    touching the optimizer. With total_iters=0 there is no division: torch's values."""
    opt_t = make_optimizer()
    s_t = TORCH.ConstantLR(opt_t, 0.0, 3)
    for _ in range(2):
        opt_t.step()
        s_t.step()
    with pytest.raises(ZeroDivisionError):
        s_t.step()
    opt_f = make_optimizer()
    with pytest.raises(ValueError, match=r"ConstantLR: factor=0 with total_iters=3"):
        FAST.ConstantLR(opt_f, 0.0, 3)
    assert [g["lr"] for g in opt_f.param_groups] == list(LRS)
    assert all("initial_lr" not in g for g in opt_f.param_groups)
    run_side_by_side(lambda M, o: M.ConstantLR(o, 0.0, 0), 5)


# -- class identity --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_isinstance_of_torch_classes(name):
    cls = getattr(FL, name)
    torch_cls = getattr(TORCH, name)
    assert issubclass(cls, torch_cls)
    if name == "ReduceLROnPlateau":
        return
    assert issubclass(cls, torch.optim.lr_scheduler.LRScheduler)
    opt = make_optimizer()
    build = next(b for k, (b, _, _) in CONFIGS.items() if k.split("-")[0] == name)
    sched = build(FAST, opt)
    assert isinstance(sched, torch_cls)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)


def test_reduce_lr_on_plateau_instance():
    sched = FL.ReduceLROnPlateau(make_optimizer())
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)


# -- resuming with last_epoch -----------------------------------------------------------------------

def _checkpoint_state(build_resumable, kind, n_steps, total):
    """The optimizer state of an uninterrupted torch run after ``n_steps`` scheduler steps,
    and that run's LR trajectory (steps 0..total)."""
    opt = make_optimizer(kind)
    sched = build_resumable(TORCH, opt, -1)
    traj = [[as_float(g["lr"]) for g in opt.param_groups]]
    state = None
    for k in range(1, total + 1):
        opt.step()
        sched.step()
        traj.append([as_float(g["lr"]) for g in opt.param_groups])
        if k == n_steps:
            state = opt.state_dict()
    return state, traj


RESUMABLE = {
    # (build(M, opt, last_epoch), N). torch's resume convention (pytorch#102261, #149312): the
    # optimizer's state is the checkpoint's, taken when the scheduler stood at N + 1; the
    # scheduler is rebuilt with last_epoch=N and its construction step brings it to N + 1.
    # For StepLR, MultiStepLR and ConstantLR torch re-applies the decay of step N + 1 at
    # construction, so N + 1 is chosen off their milestones.
    "LambdaLR": (lambda M, o, le: M.LambdaLR(o, [Warmup(30), sawtooth, lambda e: 0.99**e], last_epoch=le), 37),
    "MultiplicativeLR": (lambda M, o, le: M.MultiplicativeLR(o, lambda e: 0.98, last_epoch=le), 20),
    "StepLR": (lambda M, o, le: M.StepLR(o, 10, 0.5, last_epoch=le), 23),
    "MultiStepLR": (lambda M, o, le: M.MultiStepLR(o, [10, 30, 30, 60], 0.5, last_epoch=le), 24),
    "ConstantLR": (lambda M, o, le: M.ConstantLR(o, 0.5, 40, last_epoch=le), 12),
    "LinearLR": (lambda M, o, le: M.LinearLR(o, 0.1, 1.0, 50, last_epoch=le), 17),
    "ExponentialLR": (lambda M, o, le: M.ExponentialLR(o, 0.97, last_epoch=le), 30),
    "PolynomialLR": (lambda M, o, le: M.PolynomialLR(o, 80, 2.0, last_epoch=le), 25),
    "CosineAnnealingLR": (lambda M, o, le: M.CosineAnnealingLR(o, 60, 1e-3, last_epoch=le), 14),
    "CyclicLR": (lambda M, o, le: M.CyclicLR(o, 0.01, [0.1, 0.2, 0.3], 10, 6, mode="triangular2",
                                             last_epoch=le), 41),
    "OneCycleLR": (lambda M, o, le: M.OneCycleLR(o, 0.1, total_steps=150, three_phase=True, last_epoch=le), 66),
    # torch's stateful step recomputes T_cur from last_epoch by one wrap only; with T_mult=1 that is
    # exact for any N, with T_mult > 1 only before the first restart.
    "CosineAnnealingWarmRestarts": (lambda M, o, le: M.CosineAnnealingWarmRestarts(o, 10, 1, 1e-3, last_epoch=le),
                                    26),
    "CosineAnnealingWarmRestarts-Tmult2": (
        lambda M, o, le: M.CosineAnnealingWarmRestarts(o, 10, 2, 1e-3, last_epoch=le), 3),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_resume_with_last_epoch(name, kind):
    build, n = RESUMABLE[name]
    steps = 150 - (n + 1) if name == "OneCycleLR" else 100  # OneCycleLR: to its total_steps
    state, full = _checkpoint_state(build, kind, n + 1, n + 1 + steps)

    def prepare(opt):
        opt.load_state_dict(state)
        assert all("initial_lr" in g for g in opt.param_groups)

    s_t, s_f, traj_t, traj_f = run_side_by_side(lambda M, o: build(M, o, n), steps, kind, prepare=prepare)
    assert s_f.last_epoch == s_t.last_epoch == n + 1 + steps
    # ...and both continue the uninterrupted run.
    for k, lrs in enumerate(traj_f):
        for g, v in enumerate(lrs):
            assert_close(v, full[n + 1 + k][g], f"resumed step {n + 1 + k} group {g}")


def test_swalr_with_last_epoch_anneals_from_the_current_lr():
    def prepare(opt):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
            g["lr"] = g["lr"] / 3

    s_t, s_f, _, traj_f = run_side_by_side(lambda M, o: M.SWALR(o, 0.01, 5, "linear", last_epoch=12), 20,
                                           prepare=prepare)
    assert traj_f[0] == pytest.approx([v / 3 for v in LRS], rel=1e-15)
    assert traj_f[5] == pytest.approx([0.01] * 3, rel=1e-12)


# -- CosineAnnealingLR over many periods: the closed form is the oracle --------------------------

@pytest.mark.parametrize("t_max, eta_min, steps", [(10, 0.0, 20_000), (37, 1e-3, 20_000), (3, 0.0, 5000)])
def test_cosine_annealing_many_periods_against_closed_form(t_max, eta_min, steps):
    """torch's CosineAnnealingLR is a recursion: over many periods (and near its zeros when
    eta_min=0, where the ratio of two tiny cosines amplifies rounding) it drifts from the
    closed form it documents. lrfast evaluates that closed form; the reference here is
    torch's formula in float64, and torch itself is only required to stay near it."""
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t = TORCH.CosineAnnealingLR(opt_t, t_max, eta_min)
    s_f = FAST.CosineAnnealingLR(opt_f, t_max, eta_min)
    worst_torch = 0.0
    for t in range(steps + 1):
        if t:
            opt_t.step()
            s_t.step()
            opt_f.step()
            s_f.step()
        for g, base in enumerate(LRS):
            want = cosine_closed_form(base, eta_min, t_max, t)
            assert_close(opt_f.param_groups[g]["lr"], want, f"step {t} group {g}", rel=1e-12, scale=base)
            assert s_f.get_last_lr()[g] == opt_f.param_groups[g]["lr"]
            got_t = opt_t.param_groups[g]["lr"]
            worst_torch = max(worst_torch, abs(got_t - want) / base)
    # torch's drift is real but small: lrfast is not hiding a gross disagreement.
    assert worst_torch < 1e-6


def test_cosine_annealing_periodic_restart_steps_match_torch():
    """Past T_max the cosine climbs back; the turning points are torch's."""
    _, _, traj_t, traj_f = run_side_by_side(lambda M, o: M.CosineAnnealingLR(o, 25, 0.01), 200, check_events=False)
    def minima(traj):
        return [k for k in range(1, len(traj) - 1) if traj[k][0] < traj[k - 1][0] and traj[k][0] <= traj[k + 1][0]]
    assert minima(traj_f) == minima(traj_t) == [25, 75, 125, 175]


# -- discrete events at the same steps --------------------------------------------------------------

@pytest.mark.parametrize("build, steps, expected", [
    (lambda M, o: M.StepLR(o, 7, 0.5), 30, {7, 14, 21, 28}),
    (lambda M, o: M.MultiStepLR(o, [3, 9, 9, 20]), 30, {3, 9, 20}),
    (lambda M, o: M.ConstantLR(o, 0.5, 6), 30, {6}),
    (lambda M, o: M.CosineAnnealingWarmRestarts(o, 2, 3), 60, None),
    (lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.5, 100), M.StepLR(o, 5, 0.1)], [4]), 30, {4, 9, 14, 19, 24, 29}),
])
def test_discrete_events(build, steps, expected):
    _, _, traj_t, traj_f = run_side_by_side(build, steps)
    events_t, events_f = change_steps(traj_t), change_steps(traj_f)
    assert events_f == events_t
    if expected is not None:
        assert events_f[0] == expected
    else:  # warm restarts: the LR jumps up exactly at T_0 * (T_mult^n - 1) / (T_mult - 1)
        ups = {k for k in range(1, len(traj_f)) if traj_f[k][0] > traj_f[k - 1][0]}
        assert ups == {2, 8, 26} == {k for k in range(1, len(traj_t)) if traj_t[k][0] > traj_t[k - 1][0]}


# -- step(epoch) --------------------------------------------------------------------------------------

EPOCHS = [0, 1, 2, 5, 3, 3, 10, 40, 7, 100, 250, 0, 1999]
CLOSED_FORM_BUILDS = {
    "StepLR": lambda M, o: M.StepLR(o, 10, 0.5),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, [3, 10, 10, 90], 0.5),
    "ConstantLR": lambda M, o: M.ConstantLR(o, 0.3, 6),
    "LinearLR": lambda M, o: M.LinearLR(o, 0.1, 0.9, 50),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.99),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, 120, 1.7),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 30, 1e-3),
    "LambdaLR": lambda M, o: M.LambdaLR(o, [Warmup(8), sawtooth, lambda e: 1 / (1 + e)]),
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1, 6, 9, mode="exp_range", gamma=0.998),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 1e-3),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, 0.1, total_steps=2000, three_phase=True),
}


@pytest.mark.parametrize("name", list(CLOSED_FORM_BUILDS))
def test_step_with_epoch(name):
    build = CLOSED_FORM_BUILDS[name]
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t, s_f = build(TORCH, opt_t), build(FAST, opt_f)
    for i, epoch in enumerate(EPOCHS):
        opt_t.step()
        opt_f.step()
        with pytest.warns(UserWarning, match="epoch parameter") if name != "CosineAnnealingWarmRestarts" \
                else warnings.catch_warnings():
            s_t.step(epoch)
        with pytest.warns(UserWarning, match="epoch parameter") if name != "CosineAnnealingWarmRestarts" \
                else warnings.catch_warnings():
            s_f.step(epoch)
        assert s_f.last_epoch == s_t.last_epoch == epoch
        assert_state_matches(i, opt_t, opt_f, s_t, s_f)


def test_warm_restarts_fractional_epochs():
    """torch's documented use: ``scheduler.step(epoch + i / iters)`` inside the epoch loop."""
    iters = 7
    for t0, t_mult in [(3, 1), (2, 2), (1, 3)]:
        opt_t, opt_f = make_optimizer(), make_optimizer()
        s_t = TORCH.CosineAnnealingWarmRestarts(opt_t, t0, t_mult, 1e-3)
        s_f = FAST.CosineAnnealingWarmRestarts(opt_f, t0, t_mult, 1e-3)
        for epoch in range(40):
            for i in range(iters):
                opt_t.step()
                opt_f.step()
                s_t.step(epoch + i / iters)
                s_f.step(epoch + i / iters)
                where = (t0, t_mult, epoch, i)
                assert s_f.last_epoch == s_t.last_epoch, where
                if t_mult == 3 and i == 0 and epoch in (13, 40):
                    continue  # torch's float log misplaces these restarts (next test)
                assert s_f.T_i == s_t.T_i, where
                assert_close(s_f.T_cur, s_t.T_cur, f"T_cur {where}", rel=1e-12, scale=1.0)
                assert_state_matches(epoch * iters + i, opt_t, opt_f, s_t, s_f)


def test_warm_restarts_epoch_on_a_restart_boundary():
    """torch computes the cycle index as int(log(x, T_mult)); for T_mult=3 and a restart
    epoch, log(3**n, 3) can round below n (e.g. n=5: epoch 121 with T_0=1), which puts torch
    at the end of the previous cycle (eta_min) instead of the start of the new one. lrfast
    restarts exactly there, as torch's own stateful step() does."""
    assert int(math.log(3**5, 3)) == 4  # the float behaviour this test is about
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t = TORCH.CosineAnnealingWarmRestarts(opt_t, 1, 3, 1e-3)
    s_f = FAST.CosineAnnealingWarmRestarts(opt_f, 1, 3, 1e-3)
    for _ in range(121):  # torch's stateful stepping: the reference
        opt_t.step()
        s_t.step()
    assert opt_t.param_groups[0]["lr"] == pytest.approx(LRS[0], rel=1e-15)  # restarted
    opt_f.step()
    s_f.step(121)
    assert s_f.T_cur == 0 and s_f.T_i == 243
    for g, base in enumerate(LRS):
        assert opt_f.param_groups[g]["lr"] == pytest.approx(base, rel=1e-15)


# -- tensor lr ------------------------------------------------------------------------------------------

TENSOR_BUILDS = {
    "StepLR": lambda M, o: M.StepLR(o, 5, 0.5),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 40, 1e-3),
    "LambdaLR": lambda M, o: M.LambdaLR(o, Warmup(10)),
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1, 5),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, 0.1, total_steps=60),
    "SequentialLR": lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.1, 1.0, 10), M.ExponentialLR(o, 0.95)], [10]),
    "ChainedScheduler": lambda M, o: M.ChainedScheduler([M.ConstantLR(o, 0.5, 5), M.ExponentialLR(o, 0.97)]),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2),
    "SWALR": lambda M, o: M.SWALR(o, 0.02, 8),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lambda e: 0.97),
}


@pytest.mark.parametrize("name", list(TENSOR_BUILDS))
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tensor_lr_updated_in_place(name, kind, dtype):
    """A tensor ``lr`` stays the same tensor object and holds torch's value (float64
    tensors within 1e-9; float32 tensors, where torch's recursion runs in float32,
    within float32 rounding of the steps taken)."""
    build = TENSOR_BUILDS[name]
    opt_t = make_optimizer(kind, tensor_lr=dtype, grads=True)
    opt_f = make_optimizer(kind, tensor_lr=dtype, grads=True)
    lr_objects = [g["lr"] for g in opt_f.param_groups]
    s_t, s_f = build(TORCH, opt_t), build(FAST, opt_f)
    rel = REL if dtype == torch.float64 else 1e-5
    steps = 60 if name == "OneCycleLR" else 80
    for k in range(steps + 1):
        if k:
            opt_t.step()
            s_t.step()
            opt_f.step()
            s_f.step()
        for g, (gt, gf) in enumerate(zip(opt_t.param_groups, opt_f.param_groups)):
            assert gf["lr"] is lr_objects[g], f"step {k}: group {g}'s lr tensor was replaced"
            assert gf["lr"].dtype == dtype
            assert_close(gf["lr"], gt["lr"], f"step {k} group {g}", rel=rel, scale=0.3)
            last = s_f.get_last_lr()[g]
            assert isinstance(last, torch.Tensor) and isinstance(s_t.get_last_lr()[g], torch.Tensor)
            assert last is not gf["lr"] and float(last) == float(gf["lr"])
            if momentum_of(gt) is not None:
                assert_close(momentum_of(gf), momentum_of(gt), f"step {k} group {g} momentum", rel=rel)
    # the optimizers used those LRs: same parameters as torch's run
    for pt, pf in zip(opt_t.param_groups, opt_f.param_groups):
        torch.testing.assert_close(pf["params"][0], pt["params"][0], rtol=1e-5,
                                   atol=1e-7 if dtype == torch.float64 else 1e-5)


def test_sgd_tensor_lr_scalar_and_adam_tensor_lr():
    """The two spellings the brief names: SGD(lr=torch.tensor(0.1)) and Adam(lr=tensor)."""
    for make in (lambda p: torch.optim.SGD(p, lr=torch.tensor(0.1), momentum=0.9),
                 lambda p: torch.optim.Adam(p, lr=torch.tensor(0.01), foreach=False)):
        opts = [make([torch.nn.Parameter(torch.ones(4))]) for _ in range(2)]
        lr_obj = opts[1].param_groups[0]["lr"]
        s_t = TORCH.OneCycleLR(opts[0], 0.5, total_steps=30)
        s_f = FAST.OneCycleLR(opts[1], 0.5, total_steps=30)
        for k in range(30):
            for o, s in zip(opts, (s_t, s_f)):
                o.param_groups[0]["params"][0].grad = torch.full((4,), 0.1 * (k + 1))
                o.step()
                s.step()
            assert opts[1].param_groups[0]["lr"] is lr_obj
            assert_close(lr_obj, opts[0].param_groups[0]["lr"], f"step {k}", rel=2e-6)
        torch.testing.assert_close(opts[1].param_groups[0]["params"][0], opts[0].param_groups[0]["params"][0])


# -- composites ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("absolute", [
    lambda M, o: M.LambdaLR(o, Warmup(5)), lambda M, o: M.CyclicLR(o, 0.01, 0.1, 4),
    lambda M, o: M.CosineAnnealingWarmRestarts(o, 5), lambda M, o: M.SWALR(o, 0.01),
    lambda M, o: M.OneCycleLR(o, 0.1, total_steps=50)])
def test_chained_absolute_followed_by_multiplicative(absolute):
    """A scheduler that sets the LR outright followed by a multiplicative one: torch applies
    the later one's step ratio to what the first set, every step; so does lrfast."""
    run_side_by_side(lambda M, o: M.ChainedScheduler([absolute(M, o), M.ExponentialLR(o, 0.9)]), 40)


def test_multiplicative_lr_within_sequential_at_milestone_0():
    run_side_by_side(lambda M, o: M.SequentialLR(o, [M.MultiplicativeLR(o, lambda e: 0.9), M.ExponentialLR(o, 0.5)],
                                                 [0]), 30)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("build", [
    lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.5, 1.0, 4), M.CyclicLR(o, 0.01, 0.2, 3)], [12]),
    lambda M, o: M.SequentialLR(o, [M.LambdaLR(o, Warmup(5)), M.OneCycleLR(o, 0.1, total_steps=40),
                                    M.ExponentialLR(o, 0.9)], [5, 45]),
    lambda M, o: M.SequentialLR(o, [M.CyclicLR(o, 0.01, 0.1, 2, scale_fn=sawtooth), M.StepLR(o, 3, 0.5),
                                    M.CyclicLR(o, 0.001, 0.01, 4, 1, base_momentum=0.5, max_momentum=0.7)], [10, 20]),
    # base_lr = the groups' initial_lr: torch's CyclicLR computes its construction-time LR from
    # initial_lr, which an earlier scheduler may have set to something else (a step-0 quirk).
    lambda M, o: M.ChainedScheduler([M.ExponentialLR(o, 0.9), M.CyclicLR(o, list(LRS), 0.5, 3)]),
    lambda M, o: M.ChainedScheduler([M.CyclicLR(o, 0.01, 0.1, 3, base_momentum=0.6), M.LambdaLR(o, Warmup(4))]),
    lambda M, o: M.ChainedScheduler([M.CyclicLR(o, 0.01, 0.1, 3), M.OneCycleLR(o, 0.1, total_steps=70)]),
])
def test_composites_cycle_momentum_like_their_children(build, kind):
    """NOTE [composite momentum]: CyclicLR / OneCycleLR inside SequentialLR or ChainedScheduler
    write momentum (SGD) or beta1 (Adam) whenever torch would have them step."""
    run_side_by_side(build, 60, kind)


@pytest.mark.parametrize("build", [
    lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.5, 1.0, 4), M.CyclicLR(o, 0.01, 0.2, 3)], [5]),
    lambda M, o: M.ChainedScheduler([M.StepLR(o, 3), M.CyclicLR(o, 0.01, 0.5, 3)]),
    lambda M, o: M.ChainedScheduler([M.StepLR(o, 3), M.OneCycleLR(o, 0.1, total_steps=100)]),
    lambda M, o: M.SequentialLR(o, [M.LambdaLR(o, Warmup(3)), M.ExponentialLR(o, 0.9)], [5]),
])
def test_composites_reuse_their_program(build):
    """A composite compiles its children once; only a baked table running out rebuilds it
    (a built-in-mode CyclicLR child used to force a rebuild at every step)."""
    opt = make_optimizer()
    sched = build(FAST, opt)
    opt.step()
    sched.step()
    program = sched._lrfast_program_cache
    for _ in range(60):
        opt.step()
        sched.step()
        assert sched._lrfast_program_cache is program


# -- LambdaLR / MultiplicativeLR past the baked horizon --------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda M, o: M.LambdaLR(o, [Warmup(20), sawtooth, lambda e: 0.97**e], **M.horizon),
    lambda M, o: M.MultiplicativeLR(o, [lambda e: 0.97, Warmup(3), lambda e: 1.0 + (e % 5 == 0) * 0.1], **M.horizon),
    lambda M, o: M.CyclicLR(o, 0.01, 0.1, 3, 2, scale_fn=Warmup(4), scale_mode="iterations", **M.horizon),
    lambda M, o: M.SequentialLR(o, [M.LambdaLR(o, sawtooth, **M.horizon),
                                    M.MultiplicativeLR(o, lambda e: 0.99, **M.horizon)], [13]),
    lambda M, o: M.ChainedScheduler([M.ExponentialLR(o, 0.99), M.LambdaLR(o, Warmup(30), **M.horizon)]),
])
def test_past_the_baked_horizon(build):
    torch_ns = _with_horizon(TORCH, {})
    fast_ns = _with_horizon(FAST, {"horizon": 8})
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t, s_f = build(torch_ns, opt_t), build(fast_ns, opt_f)
    for k in range(101):
        if k:
            opt_t.step()
            s_t.step()
            opt_f.step()
            s_f.step()
        assert_state_matches(k, opt_t, opt_f, s_t, s_f)


def _with_horizon(ns, horizon):
    from types import SimpleNamespace

    return SimpleNamespace(**vars(ns), horizon=horizon)


# -- OneCycleLR past total_steps --------------------------------------------------------------------------

def test_one_cycle_past_total_steps_raises():
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t = TORCH.OneCycleLR(opt_t, 0.1, total_steps=10)
    s_f = FAST.OneCycleLR(opt_f, 0.1, total_steps=10)
    for _ in range(10):
        opt_t.step()
        s_t.step()
        opt_f.step()
        s_f.step()
    before = [g["lr"] for g in opt_f.param_groups], [momentum_of(g) for g in opt_f.param_groups]
    last = list(s_f.get_last_lr())
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        s_t.step()
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        s_f.step()
    # lrfast checks before changing anything (torch has already advanced last_epoch to 11)
    assert s_f.last_epoch == 10
    assert ([g["lr"] for g in opt_f.param_groups], [momentum_of(g) for g in opt_f.param_groups]) == before
    assert s_f.get_last_lr() == last
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        s_f.step()
    assert s_f.last_epoch == 10
