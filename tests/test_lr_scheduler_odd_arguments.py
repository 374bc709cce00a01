"""Odd-but-legal arguments, and the errors and warnings around them, as torch has them.

The rule: where torch gives values, lrfast gives the same values (1e-9 relative, and the
same Python types where a test says so: a 0-d tensor hyperparameter or epoch can turn a
float LR into a tensor in torch); where torch raises, lrfast raises the same exception
type, at the same step or earlier, before changing any state (the groups, and the
scheduler's ``last_epoch``). Arguments: non-integer ``total_iters`` / ``T_max``, values
near the float range (``eta_min=1e30``, ``swa_lr=1e30``, ``T_mult=10**30``),
``last_epoch=-2``, 0-d tensor hyperparameters, strings where numbers belong,
``step(epoch=<0-d tensor>)``, a ChainedScheduler inside a SequentialLR and an overflowing
ExponentialLR. torch's warnings (step order, the epoch deprecation, an overridden
``optimizer.step``, ``get_lr()`` outside ``step()``) point at the user's line: the line of
this file that called ``step()``.
"""

from __future__ import annotations

import math
import types
import warnings

import pytest
import torch
from lr_scheduler_harness import FAST, TORCH

LRS = (0.1, 0.05)
REL = 1e-9
LR_KINDS = pytest.mark.parametrize("lr_kind", [None, torch.float64], ids=["float", "f64"])


def _optimizer(lr_kind=None, initial_lr: bool = False):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))],
               "lr": v if lr_kind is None else torch.tensor(v, dtype=lr_kind)} for v in LRS]
    opt = torch.optim.SGD(groups)
    if initial_lr:
        for g in opt.param_groups:
            g["initial_lr"] = float(g["lr"])
    return opt


def _group_state(opt) -> list[dict]:
    def plain(v):
        return (type(v).__name__, v.tolist()) if isinstance(v, torch.Tensor) else v
    return [{k: plain(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]


def _snapshot(opt, sched) -> tuple[list, list]:
    """(group LRs, get_last_lr()), each value as (type name, float)."""
    def typed(v):
        return type(v).__name__, float(v)
    return [typed(g["lr"]) for g in opt.param_groups], [typed(v) for v in sched.get_last_lr()]


def _play(ns, build, steps: int, lr_kind=None, initial_lr: bool = False, epochs=None) -> dict:
    """Construction and ``steps`` x (optimizer.step(), scheduler.step()); stops at the first
    exception and records where it came, its type, and whether the state was left as it was."""
    opt = _optimizer(lr_kind, initial_lr)
    before = _group_state(opt)
    out: dict = {"snapshots": [], "error": None}
    try:
        sched = build(ns, opt)
    except Exception as exc:  # noqa: BLE001 - any exception is compared with torch's
        out["error"] = (0, type(exc), exc, _group_state(opt) == before)
        return out
    out["snapshots"].append(_snapshot(opt, sched))
    for t in range(1, steps + 1):
        opt.step()
        before, epoch_before = _group_state(opt), getattr(sched, "last_epoch", None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sched.step() if epochs is None else sched.step(epochs[t - 1])
        except Exception as exc:  # noqa: BLE001
            untouched = _group_state(opt) == before and getattr(sched, "last_epoch", None) == epoch_before
            out["error"] = (t, type(exc), exc, untouched)
            return out
        out["snapshots"].append(_snapshot(opt, sched))
    return out


def _same_value(a: float, b: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= REL * max(abs(a), abs(b)) + 1e-300


def _assert_as_torch(build, steps: int = 10, lr_kind=None, initial_lr: bool = False, epochs=None,
                     check_types: bool = False) -> dict:
    want = _play(TORCH, build, steps, lr_kind, initial_lr, epochs)
    got = _play(FAST, build, steps, lr_kind, initial_lr, epochs)
    if want["error"] is not None:
        k, kind, exc, _ = want["error"]
        assert got["error"] is not None, f"torch raised {kind.__name__}({exc}) at step {k}; lrfast did not"
        j, got_kind, got_exc, untouched = got["error"]
        assert got_kind is kind, f"torch raised {kind.__name__} at step {k}; lrfast {got_kind.__name__}({got_exc})"
        assert j <= k, f"torch raised at step {k}, lrfast only at step {j}"
        assert untouched, f"lrfast changed the optimizer or the scheduler before raising {got_kind.__name__}"
    else:
        assert got["error"] is None, f"lrfast raised {got['error'][1].__name__}({got['error'][2]}), torch did not"
    for t, ((groups_g, last_g), (groups_w, last_w)) in enumerate(zip(got["snapshots"], want["snapshots"])):
        for what, g, w in (("group lr", groups_g, groups_w), ("get_last_lr()", last_g, last_w)):
            assert len(g) == len(w), f"step {t} {what}: lrfast {g}, torch {w}"
            assert all(_same_value(a[1], b[1]) for a, b in zip(g, w)), f"step {t} {what}: lrfast {g}, torch {w}"
            if check_types:
                assert [a[0] for a in g] == [b[0] for b in w], f"step {t} {what} types: lrfast {g}, torch {w}"
    return want


# -- non-integer total_iters / T_max, and values near the float range ---------------------------------

@LR_KINDS
@pytest.mark.parametrize("build", [
    pytest.param(lambda M, o: M.ConstantLR(o, 0.5, 2.5), id="ConstantLR total_iters=2.5"),
    pytest.param(lambda M, o: M.PolynomialLR(o, 2.5, 1.0), id="PolynomialLR total_iters=2.5"),
    pytest.param(lambda M, o: M.PolynomialLR(o, 2.5, 2.0), id="PolynomialLR total_iters=2.5 power=2"),
    pytest.param(lambda M, o: M.CosineAnnealingLR(o, 2.5), id="CosineAnnealingLR T_max=2.5"),
    pytest.param(lambda M, o: M.CosineAnnealingLR(o, 2.5, 0.01), id="CosineAnnealingLR T_max=2.5 eta_min"),
    pytest.param(lambda M, o: M.LinearLR(o, 0.5, 1.0, 2.5), id="LinearLR total_iters=2.5"),
    pytest.param(lambda M, o: M.CosineAnnealingWarmRestarts(o, 2.5), id="CosineAnnealingWarmRestarts T_0=2.5"),
])
def test_non_integer_periods(build, lr_kind):
    _assert_as_torch(build, 12, lr_kind)


@LR_KINDS
@pytest.mark.parametrize("build, first", [
    pytest.param(lambda M, o: M.SWALR(o, 1e30, 3), 0.1, id="SWALR swa_lr=1e30"),
    pytest.param(lambda M, o: M.SWALR(o, 1e30, 3, "linear"), 0.1, id="SWALR swa_lr=1e30 linear"),
    pytest.param(lambda M, o: M.CosineAnnealingWarmRestarts(o, 2, 10**30), 0.1, id="WarmRestarts T_mult=10**30"),
    # torch's formula at T_cur = 0 (eta_min + (lr - eta_min)) loses the LR: 0.0, and lrfast follows
    pytest.param(lambda M, o: M.CosineAnnealingWarmRestarts(o, 2, 1, 1e30), 0.0, id="WarmRestarts eta_min=1e30"),
])
def test_values_near_the_float_range(build, first, lr_kind):
    want = _assert_as_torch(build, 10, lr_kind)
    assert want["snapshots"][0][0][0][1] == pytest.approx(first, abs=0)  # torch's LR at construction


@pytest.mark.parametrize("lr_kind", [None, torch.float64], ids=["float", "f64"])
def test_cosine_eta_min_1e30_is_the_exact_closed_form(lr_kind):
    """torch's recursion cancels catastrophically with eta_min=1e30 (at 2*T_max it reads
    -2.8e14 where the exact LR is 0.1); lrfast's LRs are the exact closed form, and the
    group's own LR at construction, as torch keeps it there."""
    import mpmath

    got = _play(FAST, lambda M, o: M.CosineAnnealingLR(o, 5, 1e30), 12, lr_kind)
    assert got["error"] is None
    with mpmath.workdps(60):
        for t, (groups, _) in enumerate(got["snapshots"]):
            for (_, lr), base in zip(groups, LRS):
                w = (1 + mpmath.cos(mpmath.pi * t / 5)) / 2
                exact = float(mpmath.mpf(1e30) + (mpmath.mpf(base) - mpmath.mpf(1e30)) * w)
                assert lr == pytest.approx(exact, rel=1e-12, abs=0), (t, lr, exact)


def test_cosine_eta_min_1e30_keeps_the_lr_at_construction():
    for ns in (TORCH, FAST):
        opt = _optimizer()
        ns.CosineAnnealingLR(opt, 5, eta_min=1e30)
        assert [g["lr"] for g in opt.param_groups] == list(LRS), ns.name


# -- last_epoch=-2 ---------------------------------------------------------------------------------------

CLASSES = {
    "ExponentialLR": lambda M, o, **k: M.ExponentialLR(o, 0.5, **k),
    "StepLR": lambda M, o, **k: M.StepLR(o, 2, 0.5, **k),
    "MultiStepLR": lambda M, o, **k: M.MultiStepLR(o, [1, 2, 3], 0.5, **k),
    "ConstantLR": lambda M, o, **k: M.ConstantLR(o, 0.125, 4, **k),
    "LinearLR": lambda M, o, **k: M.LinearLR(o, 0.125, 1.0, 4, **k),
    "PolynomialLR": lambda M, o, **k: M.PolynomialLR(o, 4, 3.0, **k),
    "LambdaLR": lambda M, o, **k: M.LambdaLR(o, lambda e: 0.5 ** e, **k),
    "MultiplicativeLR": lambda M, o, **k: M.MultiplicativeLR(o, lambda e: 0.5, **k),
    "CosineAnnealingLR": lambda M, o, **k: M.CosineAnnealingLR(o, 10, **k),
    "CosineAnnealingWarmRestarts": lambda M, o, **k: M.CosineAnnealingWarmRestarts(o, 10, **k),
    "CyclicLR": lambda M, o, **k: M.CyclicLR(o, 0.01, 0.1, 4, cycle_momentum=False, **k),
    "OneCycleLR": lambda M, o, **k: M.OneCycleLR(o, 0.5, total_steps=20, cycle_momentum=False, **k),
    "SWALR": lambda M, o, **k: M.SWALR(o, 0.01, 4, **k),
}


@pytest.mark.parametrize("initial_lr", [True, False], ids=["initial_lr", "no initial_lr"])
@pytest.mark.parametrize("name", list(CLASSES))
def test_last_epoch_minus_two(name, initial_lr):
    _assert_as_torch(lambda M, o: CLASSES[name](M, o, last_epoch=-2), 8, initial_lr=initial_lr)


# -- 0-d tensor hyperparameters ----------------------------------------------------------------------------

def _t(v):
    return torch.tensor(v)


TENSOR_ARGUMENTS = {
    "ExponentialLR gamma": lambda M, o: M.ExponentialLR(o, _t(0.5)),
    "StepLR gamma": lambda M, o: M.StepLR(o, 2, _t(0.5)),
    "StepLR step_size": lambda M, o: M.StepLR(o, _t(2), 0.5),
    "MultiStepLR gamma": lambda M, o: M.MultiStepLR(o, [2, 4], _t(0.5)),
    "MultiStepLR tensor milestones": lambda M, o: M.MultiStepLR(o, _t([2, 4]), 0.5),
    "MultiStepLR list of 0-d tensor milestones": lambda M, o: M.MultiStepLR(o, [_t(2), _t(4)], 0.5),
    "ConstantLR factor": lambda M, o: M.ConstantLR(o, _t(0.5), 3),
    "ConstantLR total_iters": lambda M, o: M.ConstantLR(o, 0.5, _t(3)),
    "LinearLR start_factor": lambda M, o: M.LinearLR(o, _t(0.5), 1.0, 3),
    "LinearLR end_factor": lambda M, o: M.LinearLR(o, 0.5, _t(0.75), 3),
    "LinearLR total_iters": lambda M, o: M.LinearLR(o, 0.5, 1.0, _t(3)),
    "PolynomialLR power": lambda M, o: M.PolynomialLR(o, 4, _t(2.0)),
    "PolynomialLR total_iters": lambda M, o: M.PolynomialLR(o, _t(4), 2.0),
    "CosineAnnealingLR T_max": lambda M, o: M.CosineAnnealingLR(o, _t(4)),
    "CosineAnnealingLR eta_min": lambda M, o: M.CosineAnnealingLR(o, 4, _t(0.01)),
    "CosineAnnealingWarmRestarts eta_min": lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 1, _t(0.01)),
    "SWALR swa_lr": lambda M, o: M.SWALR(o, _t(0.01), 3),
    "CyclicLR base_lr max_lr": lambda M, o: M.CyclicLR(o, _t(0.01), _t(0.1), 3, cycle_momentum=False),
    "OneCycleLR max_lr": lambda M, o: M.OneCycleLR(o, _t(0.5), total_steps=10, cycle_momentum=False),
}


@LR_KINDS
@pytest.mark.parametrize("name", list(TENSOR_ARGUMENTS))
def test_tensor_hyperparameter_values(name, lr_kind):
    _assert_as_torch(TENSOR_ARGUMENTS[name], 10, lr_kind)


@LR_KINDS
@pytest.mark.parametrize("name", list(TENSOR_ARGUMENTS))
def test_tensor_hyperparameter_types(name, lr_kind):
    _assert_as_torch(TENSOR_ARGUMENTS[name], 10, lr_kind, check_types=True)


# -- strings where numbers belong: raise where torch raises, with torch's exception type ----------------

@pytest.mark.parametrize("build", [
    pytest.param(lambda M, o: M.CosineAnnealingLR(o, 4, "1"), id="CosineAnnealingLR eta_min='1'"),
    pytest.param(lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 1, "1"), id="WarmRestarts eta_min='1'"),
    pytest.param(lambda M, o: M.ExponentialLR(o, "0.9"), id="ExponentialLR gamma='0.9'"),
    pytest.param(lambda M, o: M.StepLR(o, 2, "0.5"), id="StepLR gamma='0.5'"),
    pytest.param(lambda M, o: M.LinearLR(o, "0.5"), id="LinearLR start_factor='0.5'"),
    pytest.param(lambda M, o: M.ConstantLR(o, "0.5"), id="ConstantLR factor='0.5'"),
    pytest.param(lambda M, o: M.PolynomialLR(o, 4, "2"), id="PolynomialLR power='2'"),
    pytest.param(lambda M, o: M.SWALR(o, "0.01"), id="SWALR swa_lr='0.01'"),
])
def test_strings_raise_as_torch(build):
    want = _assert_as_torch(build, 6)
    assert want["error"] is not None  # the case is one where torch raises


# -- step(epoch=<0-d tensor>) ------------------------------------------------------------------------------

EPOCHS = pytest.mark.parametrize("epoch", [torch.tensor(3), torch.tensor(3.0), torch.tensor(3.0, dtype=torch.float64)],
                                 ids=["int64", "float32", "float64"])


@LR_KINDS
@EPOCHS
@pytest.mark.parametrize("name", list(CLASSES))
def test_step_with_tensor_epoch_values(name, epoch, lr_kind):
    _assert_as_torch(CLASSES[name], 1, lr_kind, epochs=[epoch])


@LR_KINDS
@EPOCHS
@pytest.mark.parametrize("name", list(CLASSES))
def test_step_with_tensor_epoch_types(name, epoch, lr_kind):
    _assert_as_torch(CLASSES[name], 1, lr_kind, epochs=[epoch], check_types=True)


def test_step_with_a_float64_tensor_epoch_is_computed_in_float64():
    for ns in (TORCH, FAST):
        opt = _optimizer()
        sched = ns.ExponentialLR(opt, 0.5)
        opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched.step(torch.tensor(3.0, dtype=torch.float64))
        assert float(opt.param_groups[0]["lr"]) == 0.0125, ns.name


# -- composites ---------------------------------------------------------------------------------------------

def test_sequential_lr_with_a_chained_scheduler_after_the_milestone_raises_as_torch():
    def build(M, o):
        return M.SequentialLR(o, [M.StepLR(o, 2), M.ChainedScheduler([M.ConstantLR(o, 0.5, 3),
                                                                     M.ExponentialLR(o, 0.9)])], [3])

    want = _assert_as_torch(build, 6)
    assert want["error"][:2] == (3, NotImplementedError)


def test_sequential_lr_with_a_chained_scheduler_first_runs_as_torch():
    def build(M, o):
        return M.SequentialLR(o, [M.ChainedScheduler([M.ConstantLR(o, 0.5, 3), M.ExponentialLR(o, 0.9)]),
                                  M.StepLR(o, 2)], [3])

    _assert_as_torch(build, 10)


# -- an overflowing ExponentialLR ----------------------------------------------------------------------------

def test_exponential_overflow_as_torch_or_an_error_naming_the_argument():
    want = _play(TORCH, lambda M, o: M.ExponentialLR(o, 1e200), 3)
    assert want["error"] is None and math.isinf(want["snapshots"][2][0][0][1])  # torch writes inf
    got = _play(FAST, lambda M, o: M.ExponentialLR(o, 1e200), 3)
    if got["error"] is None:
        _assert_as_torch(lambda M, o: M.ExponentialLR(o, 1e200), 3)
        return
    message = str(got["error"][2])
    assert "ExponentialLR" in message and "gamma" in message and "1e+200" in message, message
    assert "assign_group_values" not in message, message
    assert got["error"][3], "lrfast changed the optimizer or the scheduler before raising"


# -- torch's warnings point at the user's line ----------------------------------------------------------------

ALL_CLASSES = dict(CLASSES, **{
    "SequentialLR": lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, 0.5, 2), M.ExponentialLR(o, 0.9)], [2]),
    "ChainedScheduler": lambda M, o: M.ChainedScheduler([M.StepLR(o, 2), M.ExponentialLR(o, 0.9)]),
})


def _step_before_optimizer(opt, sched):
    sched.step()


def _step_with_epoch(opt, sched):
    opt.step()
    sched.step(2)


def _step_after_overriding_optimizer_step(opt, sched):
    plain_step = opt.step
    opt.step = types.MethodType(lambda self, *a, **k: plain_step(*a, **k), opt)
    opt.step()
    sched.step()


def _get_lr_outside_step(opt, sched):
    sched.get_lr()


PATTERNS = {"step before optimizer.step()": _step_before_optimizer, "step(epoch)": _step_with_epoch,
            "optimizer.step overridden": _step_after_overriding_optimizer_step,
            "get_lr() outside step()": _get_lr_outside_step}


def _warnings_of(ns, name: str, pattern) -> list[tuple]:
    opt = _optimizer()
    sched = ALL_CLASSES[name](ns, opt)
    raised = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pattern(opt, sched)
        except Exception as exc:  # noqa: BLE001 - compared with torch's
            raised.append((type(exc), "raised", "", None))
    here = __file__
    return [(w.category, str(w.message), "user's line" if w.filename == here else w.filename,
             w.lineno if w.filename == here else None) for w in caught] + raised


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("name", list(ALL_CLASSES))
def test_warnings_point_at_the_users_line(name, pattern):
    want = _warnings_of(TORCH, name, PATTERNS[pattern])
    got = _warnings_of(FAST, name, PATTERNS[pattern])
    assert [w[:2] for w in got] == [w[:2] for w in want], "lrfast warns other than torch"
    for g, w in zip(got, want):
        if w[2] == "user's line":
            assert g[2:] == w[2:], f"{w[1][:60]!r}: torch points at this file, line {w[3]}; lrfast at {g[2]}:{g[3]}"


def test_plateau_epoch_warning_points_at_the_users_line():
    for ns in (TORCH, FAST):
        sched = ns.ReduceLROnPlateau(_optimizer())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sched.step(1.0, 3)
        where = [(w.filename, w.lineno) for w in caught]
        assert len(caught) == 1 and where[0][0] == __file__, f"{ns.name}: {where}"
