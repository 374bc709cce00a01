"""Drop-in patterns beyond one scheduler stepped the ordinary way (issue: torch's own suite).

Each test runs torch's class and lrfast's side by side on twin optimizers and compares
every group's LR after every step: stacked schedulers, hand edits, groups added later,
copies, resumes, odd epoch types, and the arguments where torch divides by zero or writes
an infinity (lrfast refuses them before touching the optimizer). The property-based test
at the end draws random mixes of all of it; scripts/fuzz_lr_schedulers.py runs it longer.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import time
import warnings

import numpy as np
import pytest
import torch
from lr_scheduler_harness import FAST, LRS, TORCH, make_optimizer

import lrfast.lr_scheduler as FL
import lrfast.optim


def _lrs(opt) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def _close(a: list[float], b: list[float], where: str, rel: float = 1e-9) -> None:
    assert len(a) == len(b), where
    for x, y in zip(a, b):
        assert math.isfinite(x), where
        assert abs(x - y) <= rel * max(abs(x), abs(y), 1e-12) + 1e-15, f"{where}: lrfast {a} torch {b}"


def _twins(build, steps, after_step=None, tensor_lr=None):
    """Build on twin optimizers, step both ``steps`` times, compare after every step."""
    out = {}
    for ns in (TORCH, FAST):
        opt = make_optimizer(tensor_lr=tensor_lr)
        scheds = build(ns, opt)
        scheds = scheds if isinstance(scheds, list) else [scheds]
        trajectory = [_lrs(opt)]
        for t in range(steps):
            opt.step()
            for s in scheds:
                s.step()
            if after_step is not None:
                after_step(t, opt, scheds)
            trajectory.append(_lrs(opt))
        out[ns.name] = trajectory
    for t, (a, b) in enumerate(zip(out["lrfast"], out["torch"])):
        _close(a, b, f"step {t}")
    return out


# -- 1. stacked schedulers: torch's documented chaining --------------------------------------------

def test_stacked_exponential_and_multistep_issue_example():
    out = _twins(lambda M, o: [M.ExponentialLR(o, 0.9), M.MultiStepLR(o, [3, 6], 0.1)], 8)
    assert out["lrfast"][1][1] == pytest.approx(0.045)
    assert out["lrfast"][3][1] == pytest.approx(0.003645)


@pytest.mark.parametrize("pair", [
    lambda M, o: [M.CosineAnnealingLR(o, 10, eta_min=0.001), M.ExponentialLR(o, 0.95)],
    lambda M, o: [M.LinearLR(o, 0.2, total_iters=5), M.StepLR(o, 3, 0.5)],
    lambda M, o: [M.LambdaLR(o, lambda e: 1 / (e + 1)), M.ExponentialLR(o, 0.9)],
    lambda M, o: [M.ExponentialLR(o, 0.9), M.LambdaLR(o, lambda e: 0.5 ** (e % 3))],
    lambda M, o: [M.MultiplicativeLR(o, lambda e: 0.95), M.SWALR(o, 0.01, anneal_epochs=4)],
    lambda M, o: [M.CyclicLR(o, 0.01, 0.1, 3, cycle_momentum=False), M.PolynomialLR(o, 8, 2.0)],
    lambda M, o: [M.ConstantLR(o, 0.5, 4), M.CosineAnnealingWarmRestarts(o, 3, 2)],
])
def test_stacked_pairs_match_torch(pair):
    _twins(pair, 25)


def test_stacked_with_torch_scheduler():
    _twins(lambda M, o: [M.StepLR(o, 2, 0.5), torch.optim.lr_scheduler.ExponentialLR(o, 0.9)], 12)


def test_stacked_on_fused_optimizer_applies_the_groups_lr():
    """A bound lrfast optimizer applies exactly the LR its group shows (NOTE [scheduler binding])."""
    p_f = torch.nn.Parameter(torch.ones(5))
    p_t = torch.nn.Parameter(torch.ones(5))
    opt_f = lrfast.optim.SGD([p_f], lr=0.1)
    opt_t = torch.optim.SGD([p_t], lr=0.1)
    s_f = [FL.ExponentialLR(opt_f, 0.9), FL.MultiStepLR(opt_f, [2, 4], 0.1)]
    s_t = [TORCH.ExponentialLR(opt_t, 0.9), TORCH.MultiStepLR(opt_t, [2, 4], 0.1)]
    for _ in range(6):
        for p in (p_f, p_t):
            p.grad = torch.ones(5)
        opt_f.step()
        opt_t.step()
        for s in s_f + s_t:
            s.step()
        torch.testing.assert_close(p_f.detach(), p_t.detach(), rtol=1e-6, atol=1e-7)


# -- 2. user subclasses written torch's way --------------------------------------------------------

class _HalfEvery2(FL.LRScheduler):
    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % 2:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * 0.5 for g in self.optimizer.param_groups]


def test_subclass_overriding_get_lr_runs_torchs_path():
    opt = make_optimizer()
    sched = _HalfEvery2(opt)
    for _ in range(4):
        opt.step()
        sched.step()
    assert _lrs(opt) == pytest.approx([lr * 0.25 for lr in LRS])
    assert sched.state_dict()["last_epoch"] == 4


def test_subclass_get_lr_with_an_argument_raises_typeerror_as_torchs():
    class Bad(FL.LRScheduler):
        def get_lr(self, step):
            return [0.1]

    with pytest.raises(TypeError):
        Bad(make_optimizer())


# -- findings from differential fuzzing --------------------------------------------------------------

@pytest.mark.parametrize("pct_start, steps_to_error", [(0.1, 0), (1.0, 10)])
def test_one_cycle_zero_length_phase_refused(pct_start, steps_to_error):  # finding 1
    opt = make_optimizer()
    with pytest.raises(ZeroDivisionError):
        s = TORCH.OneCycleLR(opt, 0.1, total_steps=10, pct_start=pct_start)
        for _ in range(steps_to_error):
            opt.step()
            s.step()
    opt = make_optimizer("sgd")
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=r"OneCycleLR: pct_start=.* total_steps=10 .*phase of length 0"):
        FAST.OneCycleLR(opt, 0.1, total_steps=10, pct_start=pct_start)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in before]


def test_polynomial_negative_power_refused():  # finding 2
    opt = make_optimizer()
    s = TORCH.PolynomialLR(opt, total_iters=3, power=-1.0)
    with pytest.raises(ZeroDivisionError):
        for _ in range(3):
            opt.step()
            s.step()
    with pytest.raises(ValueError, match=r"PolynomialLR: power=-1.0"):
        FAST.PolynomialLR(make_optimizer(), total_iters=3, power=-1.0)


def test_never_writes_a_non_finite_lr():
    opt = make_optimizer()
    s = FAST.ExponentialLR(opt, 1e10)
    with pytest.raises(ValueError, match=r"ExponentialLR\(gamma=1.*\): .*non-finite"):
        for _ in range(100):
            opt.step()
            s.step()
    assert all(math.isfinite(lr) for lr in _lrs(opt))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("tensor_lr", [None, torch.float64, torch.float32])
def test_copies_step_their_own_optimizer(how, tensor_lr):  # findings 3, 8
    opt = make_optimizer(tensor_lr=tensor_lr)
    sched = FL.StepLR(opt, 1, 0.5)
    opt.step()
    sched.step()
    pair = (opt, sched)
    opt2, sched2 = copy.deepcopy(pair) if how == "deepcopy" else pickle.loads(pickle.dumps(pair))
    for _ in range(2):
        opt2.step()
        sched2.step()
    assert _lrs(opt2) == pytest.approx([lr / 8 for lr in LRS], rel=1e-6)
    assert [float(v) for v in sched2.get_last_lr()] == pytest.approx(_lrs(opt2))
    assert _lrs(opt) == pytest.approx([lr / 2 for lr in LRS], rel=1e-6)


def test_deepcopy_has_its_own_compiled_step_handle():  # finding 4
    opt = make_optimizer()
    sched = FL.StepLR(opt, 1, 0.5)
    clone = copy.deepcopy(sched)
    assert clone._lrfast_handle != sched._lrfast_handle
    from lrfast._compile import _lookup

    assert _lookup(clone._lrfast_handle) is clone


def test_schedule_optimizer_copy_with_schedule_lr():  # finding 8
    p = torch.nn.Parameter(torch.ones(3))
    opt = lrfast.optim.SGD([p], lr=lrfast.schedules.step_decay(0.1, 1, 0.5))
    p.grad = torch.ones(3)
    opt.step()
    clone = copy.deepcopy(opt)
    clone.param_groups[0]["params"][0].grad = torch.ones(3)
    clone.step()
    assert clone.param_groups[0]["lr"] == pytest.approx(0.025)


@pytest.mark.parametrize("cls", ["LambdaLR", "MultiplicativeLR", "CyclicLR"])
def test_baked_cost_is_flat_at_huge_steps(cls):  # finding 5: constant time at any step
    def build(o, last_epoch=-1):
        if cls == "LambdaLR":
            return FL.LambdaLR(o, lambda e: 1.0 / (1 + e) ** 0.5, last_epoch=last_epoch)
        if cls == "MultiplicativeLR":
            return FL.MultiplicativeLR(o, lambda e: 0.999999, last_epoch=last_epoch)
        return FL.CyclicLR(o, 0.01, 0.1, 5, scale_fn=lambda x: 1.0 / x, cycle_momentum=False,
                           last_epoch=last_epoch)

    opt = make_optimizer()
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    sched = build(opt, last_epoch=2**31 + 5)
    opt.step()
    sched.step()
    with pytest.warns(UserWarning):
        sched.step(10**7)
    assert all(math.isfinite(lr) for lr in _lrs(opt))
    # LambdaLR bakes nothing unless horizon= is given: its function is called at each step
    if cls == "LambdaLR":
        assert sched._lrfast_rt.window is None
        baked = FL.LambdaLR(opt, lambda e: 1.0 / (1 + e) ** 0.5, last_epoch=2**31 + 5, horizon=1024)
        with pytest.warns(UserWarning):
            baked.step(10**7)
        window = baked._lrfast_rt.window
        assert window[1] - window[0] == 1024 and window[0] == 10**7


def test_lambda_window_matches_torch_across_rebakes():
    _twins(lambda M, o: M.LambdaLR(o, lambda e: 0.99 ** e, **({"horizon": 7} if M is FAST else {})), 30)


def test_groups_added_later_match_torch():  # finding 6
    def add(t, opt, scheds):
        if t == 3:
            opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.7})

    for build in (lambda M, o: M.StepLR(o, 2, 0.5), lambda M, o: M.ExponentialLR(o, 0.9),
                  lambda M, o: M.MultiStepLR(o, [2, 5]), lambda M, o: M.LinearLR(o, 0.5, total_iters=6),
                  lambda M, o: M.ConstantLR(o, 0.5, 6), lambda M, o: M.PolynomialLR(o, 8)):
        _twins(build, 10, after_step=add)


def test_groups_added_later_where_torch_raises_leave_no_trace():
    for ns in (TORCH, FAST):
        opt = make_optimizer()
        sched = ns.LambdaLR(opt, lambda e: 0.5)
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.7})
        with pytest.raises(ValueError):
            sched.step()
    assert sched.last_epoch == 0 and sched._step_count == 1


def test_bound_optimizer_after_loading_its_state_alone():  # finding 7
    p = torch.nn.Parameter(torch.ones(3))
    opt = lrfast.optim.SGD([p], lr=0.1)
    sched = FL.StepLR(opt, 1, 0.5)
    saved = None
    for i in range(3):
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
        if i == 0:
            saved = copy.deepcopy(opt.state_dict())
    opt.load_state_dict(saved)
    before = p.detach().clone()
    p.grad = torch.ones(3)
    opt.step()
    assert opt.param_groups[0]["lr"] == 0.05
    torch.testing.assert_close(before - p.detach(), torch.full((3,), 0.05))


@pytest.mark.parametrize("name", ["StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "MultiStepLR",
                                  "ConstantLR", "PolynomialLR", "SWALR", "MultiplicativeLR"])
def test_hand_edited_lr_continues_as_torch(name):  # finding 9
    builds = {
        "StepLR": lambda M, o: M.StepLR(o, 3, 0.5), "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.9),
        "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 7, 0.001),
        "LinearLR": lambda M, o: M.LinearLR(o, 0.25, total_iters=6), "MultiStepLR": lambda M, o: M.MultiStepLR(o, [4]),
        "ConstantLR": lambda M, o: M.ConstantLR(o, 0.5, 5), "PolynomialLR": lambda M, o: M.PolynomialLR(o, 9, 1.5),
        "SWALR": lambda M, o: M.SWALR(o, 0.01, 5),
        "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lambda e: 0.9),
    }

    def edit(t, opt, scheds):
        if t == 2:
            for g in opt.param_groups:
                g["lr"] *= 0.5

    _twins(builds[name], 14, after_step=edit)


def test_epoch_numpy_and_tensor_and_multiplicative_one_factor():  # finding 10
    for epoch in (np.int64(3), torch.tensor(3)):
        out = {}
        for ns in (TORCH, FAST):
            opt = make_optimizer()
            s = ns.MultiplicativeLR(opt, lambda e: 0.5)
            with pytest.warns(UserWarning):
                s.step(epoch)
            out[ns.name] = _lrs(opt)
        _close(out["lrfast"], out["torch"], "MultiplicativeLR.step(epoch)")
        assert out["lrfast"] == pytest.approx([lr * 0.5 for lr in LRS])


@pytest.mark.parametrize("build, message", [
    (lambda o: FL.StepLR(o, step_size=0), r"^StepLR: step_size must be a positive int, got 0$"),
    (lambda o: FL.CosineAnnealingLR(o, T_max=0), r"^CosineAnnealingLR: T_max must be a positive number, got 0"),
])
def test_errors_name_torchs_class_and_argument(build, message):  # finding 11
    with pytest.raises(ValueError, match=message):
        build(make_optimizer())


def test_negative_gamma_follows_torchs_recursion():
    """Arguments torch accepts that the closed form cannot describe run torch's recursion."""
    _twins(lambda M, o: M.ExponentialLR(o, -0.9), 10)


def test_torch_save_weights_only_round_trip():
    opt = make_optimizer()
    sched = FL.MultiStepLR(opt, [2, 4])
    for _ in range(3):
        opt.step()
        sched.step()
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    opt2 = make_optimizer()
    sched2 = FL.MultiStepLR(opt2, [9])
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(loaded)
    for _ in range(4):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert _lrs(opt2) == _lrs(opt)


def test_state_dict_round_trip_dict_is_equal():
    opt = make_optimizer()
    sched = FL.CosineAnnealingLR(opt, 5)
    for _ in range(7):
        opt.step()
        sched.step()
    other = FL.CosineAnnealingLR(make_optimizer(), 9)
    other.load_state_dict(sched.state_dict())
    assert {k: v for k, v in other.__dict__.items() if k != "optimizer"} == \
        {k: v for k, v in sched.__dict__.items() if k != "optimizer"}


def test_flat_step_cost_smoke():
    """Not timed as an assertion: a LambdaLR at step 10**6 steps without baking from 0."""
    opt = make_optimizer()
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    calls = []
    sched = FL.LambdaLR(opt, lambda e: calls.append(e) or 1.0, last_epoch=10**6)
    start = time.perf_counter()
    for _ in range(10):
        opt.step()
        sched.step()
    assert min(calls) >= 10**6 and len(calls) <= len(LRS) * 1024  # one window per group, not 10**6 calls
    assert time.perf_counter() - start >= 0.0


# -- property-based differential test --------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from fuzz_lr_schedulers import check_random_run, run_strategy  # noqa: E402


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
@hypothesis.given(run_strategy())
def test_random_runs_match_torch(run):
    check_random_run(run)


def test_an_optimizer_with_the_old_private_hook_still_binds_with_a_deprecation_warning():
    # docs/extending.md named the hook _lrfast_bind_scheduler before lrfast/_scheduling_protocol.py
    bound = []

    class OldStyle(torch.optim.SGD):
        def _lrfast_bind_scheduler(self, scheduler):
            bound.append(scheduler)

    opt = OldStyle([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.warns(DeprecationWarning, match="rename it lrfast_bind_scheduler"):
        sched = FL.StepLR(opt, step_size=2)
    assert bound == [sched]

    class NewStyle(torch.optim.SGD):
        def lrfast_bind_scheduler(self, scheduler):
            bound.append(scheduler)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = FL.StepLR(NewStyle([torch.nn.Parameter(torch.zeros(2))], lr=0.1), step_size=2)
    assert bound[-1] is sched
