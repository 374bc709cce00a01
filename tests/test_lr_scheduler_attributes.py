"""State torch re-reads at every step, changed mid-run, and user callables called as torch calls them.

torch's schedulers read their attributes (``gamma``, ``step_size``, ``milestones``,
``T_max``, ``base_lrs``, ``lr_lambdas``, ...) and some param-group keys (OneCycleLR's
``max_lr`` / ``initial_lr`` / ``min_lr``, SWALR's ``swa_lr``) at every step, so a user who
changes one after ``k`` steps changes the schedule from there on. Each test here makes
that change on torch's scheduler and on lrfast's, twins on twin optimizers (the stock
torch.optim.SGD, and lrfast.optim.SGD), and compares every group's LR and
``get_last_lr()`` with torch's at every following step (1e-9 relative). With
lrfast.optim.SGD the LR each step applies (one float64 parameter per group, zeroed, grad
1) must also be the one its group shows.

The second half: LambdaLR's ``lr_lambda``, MultiplicativeLR's ``lr_lambda`` and CyclicLR's
``scale_fn`` are called exactly as often, with the same arguments, as torch calls them:
never ahead of the step (a table of 100 entries, a dict, an ``assert``, a function reading
state that changes at step 50).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from lr_scheduler_harness import FAST, TORCH

import lrfast.optim

LRS = (0.1, 0.05, 0.3)
REL = 1e-9
OPTIMIZERS = pytest.mark.parametrize("optimizer", ["torch", "lrfast"])


def _optimizer(optimizer: str, lr_kind=None, lrs=LRS):
    cls = lrfast.optim.SGD if optimizer == "lrfast" else torch.optim.SGD
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))],
               "lr": v if lr_kind is None else torch.tensor(v, dtype=lr_kind)} for v in lrs]
    return cls(groups)


def _last_lrs(scheds) -> list[list[float]]:
    return [[float(v) for v in s.get_last_lr()] for s in scheds]


def _play(ns, optimizer: str, build, steps: int, edit_at: int | None = None, edit=None, lr_kind=None,
          lrs=LRS) -> dict:
    """Build on a fresh optimizer, run ``steps`` x (optimizer.step(), every scheduler.step()),
    calling ``edit(schedulers, optimizer)`` after step ``edit_at``. Returns the group LRs and
    the schedulers' get_last_lr() after construction and after every step."""
    opt = _optimizer(optimizer, lr_kind, lrs)
    scheds = build(ns, opt)
    scheds = scheds if isinstance(scheds, list) else [scheds]
    if edit_at == 0:
        edit(scheds, opt)
    groups = [[float(g["lr"]) for g in opt.param_groups]]
    last = [_last_lrs(scheds)]
    for t in range(1, steps + 1):
        shown = [float(g["lr"]) for g in opt.param_groups]
        with torch.no_grad():
            for g in opt.param_groups:
                g["params"][0].zero_()
                g["params"][0].grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        applied = [-float(g["params"][0].detach()[0]) for g in opt.param_groups]
        for i, (s, a) in enumerate(zip(shown, applied)):
            assert abs(a - s) <= 1e-15 * abs(s), f"{ns.name} step {t} group {i}: shows {s!r}, applies {a!r}"
        for s in scheds:
            s.step()
        if t == edit_at:
            edit(scheds, opt)
        groups.append([float(g["lr"]) for g in opt.param_groups])
        last.append(_last_lrs(scheds))
    return {"groups": groups, "last": last}


def _close(got: list[float], want: list[float], where: str) -> None:
    assert len(got) == len(want), f"{where}: lrfast {got}, torch {want}"
    for g, w in zip(got, want):
        assert math.isfinite(g), f"{where}: lrfast {got}"
        assert abs(g - w) <= REL * max(abs(g), abs(w)) + 1e-15, f"{where}: lrfast {got}, torch {want}"


def _against_torch(build, steps: int, optimizer: str, edit_at: int | None = None, edit=None, lr_kind=None,
                   lrs=LRS) -> dict:
    want = _play(TORCH, "torch", build, steps, edit_at, edit, lr_kind, lrs)
    got = _play(FAST, optimizer, build, steps, edit_at, edit, lr_kind, lrs)
    for t in range(steps + 1):
        _close(got["groups"][t], want["groups"][t], f"step {t} group LRs")
        for i, (g, w) in enumerate(zip(got["last"][t], want["last"][t])):
            _close(g, w, f"step {t} scheduler {i} get_last_lr()")
    return want


# -- attributes torch re-reads at every step --------------------------------------------------------

def _set(**values):
    def edit(scheds, opt):
        for name, value in values.items():
            setattr(scheds[0], name, value(scheds[0]) if callable(value) else value)
    return edit


def _group_keys(**values):
    def edit(scheds, opt):
        for g in opt.param_groups:
            for key, scale in values.items():
                g[key] = g[key] * scale
    return edit


def _in_place(name: str, fn):
    def edit(scheds, opt):
        fn(getattr(scheds[0], name))
    return edit


def _scale_list_in_place(values):
    for i in range(len(values)):
        values[i] = values[i] * 0.5


def _counter_add(counter):
    counter[6] += 1
    counter[9] += 2


CASES = {
    "ExponentialLR.gamma": (lambda M, o: M.ExponentialLR(o, 0.9), _set(gamma=0.5)),
    "StepLR.step_size": (lambda M, o: M.StepLR(o, 4, 0.5), _set(step_size=2)),
    "StepLR.gamma": (lambda M, o: M.StepLR(o, 2, 0.5), _set(gamma=0.1)),
    "MultiStepLR.milestones edited": (lambda M, o: M.MultiStepLR(o, [4, 8], 0.5),
                                      _in_place("milestones", _counter_add)),
    "MultiStepLR.milestones replaced": (lambda M, o: M.MultiStepLR(o, [4, 8], 0.5),
                                        _set(milestones=Counter([5, 7, 7]))),
    "MultiStepLR.gamma": (lambda M, o: M.MultiStepLR(o, [4, 8], 0.5), _set(gamma=0.1)),
    "ConstantLR.factor": (lambda M, o: M.ConstantLR(o, 0.5, 6), _set(factor=0.25)),
    "ConstantLR.total_iters": (lambda M, o: M.ConstantLR(o, 0.5, 6), _set(total_iters=9)),
    "LinearLR.start_factor": (lambda M, o: M.LinearLR(o, 0.25, 1.0, 8), _set(start_factor=0.5)),
    "LinearLR.end_factor": (lambda M, o: M.LinearLR(o, 0.25, 1.0, 8), _set(end_factor=0.5)),
    "LinearLR.total_iters": (lambda M, o: M.LinearLR(o, 0.25, 1.0, 8), _set(total_iters=12)),
    "PolynomialLR.total_iters": (lambda M, o: M.PolynomialLR(o, 8, 2.0), _set(total_iters=12)),
    "PolynomialLR.power": (lambda M, o: M.PolynomialLR(o, 8, 2.0), _set(power=0.5)),
    "CosineAnnealingLR.T_max": (lambda M, o: M.CosineAnnealingLR(o, 6, 0.001), _set(T_max=4)),
    "CosineAnnealingLR.eta_min": (lambda M, o: M.CosineAnnealingLR(o, 6, 0.001), _set(eta_min=0.02)),
    "CosineAnnealingLR.base_lrs replaced": (lambda M, o: M.CosineAnnealingLR(o, 2, 0.001),
                                            _set(base_lrs=lambda s: [b * 0.5 for b in s.base_lrs])),
    "CosineAnnealingLR.base_lrs in place": (lambda M, o: M.CosineAnnealingLR(o, 2, 0.001),
                                            _in_place("base_lrs", _scale_list_in_place)),
    "LambdaLR.base_lrs replaced": (lambda M, o: M.LambdaLR(o, lambda t: 0.9 ** t),
                                   _set(base_lrs=lambda s: [b * 0.5 for b in s.base_lrs])),
    "LambdaLR.base_lrs in place": (lambda M, o: M.LambdaLR(o, lambda t: 0.9 ** t),
                                   _in_place("base_lrs", _scale_list_in_place)),
    "LambdaLR.lr_lambdas replaced": (lambda M, o: M.LambdaLR(o, lambda t: 0.9 ** t),
                                     _set(lr_lambdas=lambda s: [lambda t: 0.5] * len(s.lr_lambdas))),
    "LambdaLR.lr_lambdas in place": (lambda M, o: M.LambdaLR(o, lambda t: 0.9 ** t),
                                     _in_place("lr_lambdas", lambda f: f.__setitem__(0, lambda t: 1 / (1 + t)))),
    "MultiplicativeLR.lr_lambdas": (lambda M, o: M.MultiplicativeLR(o, lambda t: 0.9),
                                    _set(lr_lambdas=lambda s: [lambda t: 1.1] * len(s.lr_lambdas))),
    "CyclicLR.base_lrs replaced": (lambda M, o: M.CyclicLR(o, 0.01, 0.2, 3, cycle_momentum=False),
                                   _set(base_lrs=lambda s: [b * 2 for b in s.base_lrs])),
    "CyclicLR.base_lrs in place": (lambda M, o: M.CyclicLR(o, 0.01, 0.2, 3, cycle_momentum=False),
                                   _in_place("base_lrs", _scale_list_in_place)),
    "CyclicLR.max_lrs replaced": (lambda M, o: M.CyclicLR(o, 0.01, 0.2, 3, cycle_momentum=False),
                                  _set(max_lrs=lambda s: [m * 0.5 for m in s.max_lrs])),
    "CyclicLR.max_lrs in place": (lambda M, o: M.CyclicLR(o, 0.01, 0.2, 3, cycle_momentum=False),
                                  _in_place("max_lrs", _scale_list_in_place)),
    # torch binds exp_range's gamma into its scale function at construction: an edit changes nothing
    "CyclicLR.gamma (exp_range, bound at construction)": (
        lambda M, o: M.CyclicLR(o, 0.01, 0.2, 3, mode="exp_range", gamma=0.9, cycle_momentum=False), _set(gamma=0.5)),
    "CosineAnnealingWarmRestarts.eta_min": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 0.001),
                                            _set(eta_min=0.02)),
    "CosineAnnealingWarmRestarts.base_lrs replaced": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 0.001),
                                                      _set(base_lrs=lambda s: [b * 0.5 for b in s.base_lrs])),
    "CosineAnnealingWarmRestarts.base_lrs in place": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 0.001),
                                                      _in_place("base_lrs", _scale_list_in_place)),
    # T_0 is read by step(epoch) only; step() restarts from T_i
    "CosineAnnealingWarmRestarts.T_0 (unread by step())": (
        lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 0.001), _set(T_0=3)),
    "CosineAnnealingWarmRestarts.T_mult": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 0.001),
                                           _set(T_mult=3)),
    "CosineAnnealingWarmRestarts.T_i": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 0.001), _set(T_i=7)),
    "OneCycleLR group max_lr": (lambda M, o: M.OneCycleLR(o, 0.5, total_steps=30, cycle_momentum=False),
                                _group_keys(max_lr=0.5)),
    "OneCycleLR group initial_lr": (lambda M, o: M.OneCycleLR(o, 0.5, total_steps=30, cycle_momentum=False),
                                    _group_keys(initial_lr=2.0)),
    "OneCycleLR group min_lr": (lambda M, o: M.OneCycleLR(o, 0.5, total_steps=30, cycle_momentum=False),
                                _group_keys(min_lr=100.0)),
    "SWALR group swa_lr": (lambda M, o: M.SWALR(o, 0.01, anneal_epochs=8), _group_keys(swa_lr=3.0)),
}


@pytest.mark.parametrize("lr_kind", [None, torch.float64], ids=["float", "f64"])
@OPTIMIZERS
@pytest.mark.parametrize("case", list(CASES))
def test_attribute_edited_mid_run_as_torch(case, optimizer, lr_kind):
    build, edit = CASES[case]
    _against_torch(build, 24, optimizer, edit_at=3, edit=edit, lr_kind=lr_kind)


@pytest.mark.parametrize("lr_kind", [None, torch.float64], ids=["float", "f64"])
@OPTIMIZERS
@pytest.mark.parametrize("case", ["ExponentialLR.gamma", "MultiStepLR.milestones replaced", "LinearLR.end_factor",
                                  "CosineAnnealingLR.T_max", "LambdaLR.base_lrs replaced"])
def test_attribute_edited_before_the_first_step_as_torch(case, optimizer, lr_kind):
    build, edit = CASES[case]
    _against_torch(build, 12, optimizer, edit_at=0, edit=edit, lr_kind=lr_kind)


@pytest.mark.parametrize("step_both", [False, True])
@OPTIMIZERS
def test_two_one_cycle_lrs_sharing_an_optimizer(optimizer, step_both):
    """The second OneCycleLR rewrites the group keys the first reads at every step."""
    def build(M, o):
        return [M.OneCycleLR(o, 0.5, total_steps=20, cycle_momentum=False),
                M.OneCycleLR(o, 1.3, total_steps=40, cycle_momentum=False)]

    if step_both:
        _against_torch(build, 18, optimizer)
        return
    want = {}
    for ns, opt_kind in ((TORCH, "torch"), (FAST, optimizer)):
        opt = _optimizer(opt_kind)
        first, second = build(ns, opt)
        trajectory = []
        for _ in range(10):
            opt.step()
            first.step()
            trajectory.append(([float(v) for v in first.get_last_lr()], [float(g["lr"]) for g in opt.param_groups]))
        want[ns.name] = trajectory
    for t, ((last_f, groups_f), (last_t, groups_t)) in enumerate(zip(want["lrfast"], want["torch"])):
        _close(last_f, last_t, f"step {t + 1} first.get_last_lr()")
        _close(groups_f, groups_t, f"step {t + 1} group LRs")


# -- user callables: called as torch calls them -----------------------------------------------------

def _recording(fn, calls: list):
    def recorded(x):
        calls.append((type(x).__name__, x))
        return fn(x)
    return recorded


CALLABLE_BUILDS = {
    "LambdaLR": lambda M, o, f: M.LambdaLR(o, f),
    "LambdaLR per group": lambda M, o, f: M.LambdaLR(o, [f] * len(o.param_groups)),
    "MultiplicativeLR": lambda M, o, f: M.MultiplicativeLR(o, f),
    "CyclicLR scale_fn cycle": lambda M, o, f: M.CyclicLR(o, 0.01, 0.2, 3, scale_fn=f, scale_mode="cycle",
                                                          cycle_momentum=False),
    "CyclicLR scale_fn iterations": lambda M, o, f: M.CyclicLR(o, 0.01, 0.2, 3, scale_fn=f,
                                                               scale_mode="iterations", cycle_momentum=False),
    "CyclicLR scale_fn with momentum": lambda M, o, f: M.CyclicLR(o, 0.01, 0.2, 3, scale_fn=f, scale_mode="cycle"),
}
TOTAL = 100


def _callable_run(name: str, optimizer: str, fn, steps: int) -> tuple[dict, dict]:
    """(torch's trajectory and calls, lrfast's), each scheduler built with ``fn`` recorded."""
    out = {}
    for ns, opt_kind in ((TORCH, "torch"), (FAST, optimizer)):
        calls: list = []
        opt = _optimizer(opt_kind)
        if "momentum" in name:
            for g in opt.param_groups:
                g["momentum"] = 0.9
        sched = CALLABLE_BUILDS[name](ns, opt, _recording(fn, calls))
        constructed = list(calls)
        lrs = [[float(g["lr"]) for g in opt.param_groups]]
        for _ in range(steps):
            opt.step()
            sched.step()
            lrs.append([float(g["lr"]) for g in opt.param_groups])
        out[ns.name] = {"lrs": lrs, "calls": calls, "constructed": constructed}
    for t, (g, w) in enumerate(zip(out["lrfast"]["lrs"], out["torch"]["lrs"])):
        _close(g, w, f"step {t}")
    return out["torch"], out["lrfast"]


def _table_value(x) -> float:
    return 0.99 ** int(x) if not isinstance(x, float) else 0.5 + 0.5 / (1 + x)


def _step_index(x) -> int:
    """A table index from what the callable receives (an int step, or CyclicLR's float x)."""
    return int(x) if not isinstance(x, float) else int(x * 10) % TOTAL


@OPTIMIZERS
@pytest.mark.parametrize("name", list(CALLABLE_BUILDS))
def test_callable_called_exactly_as_torch_calls_it(name, optimizer):
    want, got = _callable_run(name, optimizer, _table_value, 30)
    assert got["constructed"] == want["constructed"], "calls during construction differ from torch's"
    assert got["calls"] == want["calls"], "lrfast calls the user's function other than torch does"


@OPTIMIZERS
@pytest.mark.parametrize("name", list(CALLABLE_BUILDS))
def test_table_lookup_of_length_100(name, optimizer):
    table = [_table_value(i) for i in range(TOTAL)]
    _callable_run(name, optimizer, lambda x: table[_step_index(x)], TOTAL - 1)


@OPTIMIZERS
@pytest.mark.parametrize("name", list(CALLABLE_BUILDS))
def test_dict_lookup(name, optimizer):
    table = {i: _table_value(i) for i in range(TOTAL)}
    _callable_run(name, optimizer, lambda x: table[_step_index(x)], TOTAL - 1)


@OPTIMIZERS
@pytest.mark.parametrize("name", list(CALLABLE_BUILDS))
def test_assert_guard(name, optimizer):
    def guarded(x):
        assert _step_index(x) < TOTAL
        return _table_value(x)

    _callable_run(name, optimizer, guarded, TOTAL - 1)


@OPTIMIZERS
@pytest.mark.parametrize("name", list(CALLABLE_BUILDS))
def test_mutable_state_changed_at_step_50(name, optimizer):
    state = {"multiplier": 1.0}

    class Switch:
        """Reads ``state`` on every call; the loop below changes it after step 50."""

        def __call__(self, x):
            return state["multiplier"] * (0.999 if name.startswith("Multiplicative") else 1.0)

    out = {}
    for ns, opt_kind in ((TORCH, "torch"), (FAST, optimizer)):
        state["multiplier"] = 1.0
        opt = _optimizer(opt_kind)
        if "momentum" in name:
            for g in opt.param_groups:
                g["momentum"] = 0.9
        sched = CALLABLE_BUILDS[name](ns, opt, Switch())
        lrs = []
        for t in range(1, 80):
            opt.step()
            sched.step()
            if t == 50:
                state["multiplier"] = 0.1
            lrs.append([float(g["lr"]) for g in opt.param_groups])
        out[ns.name] = lrs
    for t, (g, w) in enumerate(zip(out["lrfast"], out["torch"])):
        _close(g, w, f"step {t + 1}")
    if name.startswith("LambdaLR"):
        assert out["torch"][50][0] == pytest.approx(0.01)  # 0.1 -> 0.01 after the change, in torch


def test_one_cycle_phase_edited_in_place_as_torch():
    """OneCycleLR reads its phase dicts at each step: one edited in place is read too."""
    lrs = {}
    for ns in (TORCH, FAST):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        sched = ns.OneCycleLR(opt, 1.0, total_steps=20)
        for _ in range(3):
            opt.step()
            sched.step()
        sched._schedule_phases[0]["end_step"] = 10.0
        lrs[ns.name] = []
        for _ in range(8):
            opt.step()
            sched.step()
            lrs[ns.name].append(opt.param_groups[0]["lr"])
    assert lrs["lrfast"] == pytest.approx(lrs["torch"], rel=1e-12)
