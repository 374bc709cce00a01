"""state_dict() / load_state_dict(): lrfast -> lrfast, torch -> lrfast, lrfast -> torch.

Each checkpoint goes through ``torch.save`` / ``torch.load`` (an in-memory file,
``weights_only=False`` since scheduler states hold plain Python objects), with the
optimizer's state, and is restored the way torch recommends: build the optimizer and the
scheduler, load the optimizer's state, then the scheduler's. The restored run must then
continue as the uninterrupted one does.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
from lr_scheduler_harness import FAST, TORCH, assert_state_matches, counters, make_optimizer

EXACT = ("LambdaLR", "MultiplicativeLR", "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts")


class Warmup:
    """A callable object: its __dict__ travels in the state dict (torch's rule)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def __call__(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.warmup)


class Decay:
    def __init__(self, rate: float) -> None:
        self.rate = rate

    def __call__(self, x: float) -> float:
        return self.rate**x


# name -> (build(namespace, optimizer), optimizer kind, steps before the checkpoint)
CONFIGS = {
    "LambdaLR": (lambda M, o: M.LambdaLR(o, lambda e: 0.97**e), "sgd", 37),
    "LambdaLR-callable-object": (lambda M, o: M.LambdaLR(o, [Warmup(20), lambda e: 1 / (1 + e), Warmup(5)]),
                                 "adam", 12),
    "MultiplicativeLR": (lambda M, o: M.MultiplicativeLR(o, lambda e: 0.95), "sgd", 30),
    "StepLR": (lambda M, o: M.StepLR(o, 7, 0.5), "sgd", 20),
    "MultiStepLR": (lambda M, o: M.MultiStepLR(o, [5, 25, 25, 60], 0.5), "adam", 24),
    "ConstantLR": (lambda M, o: M.ConstantLR(o, 0.25, 30), "sgd", 10),
    "LinearLR": (lambda M, o: M.LinearLR(o, 0.1, 1.0, 40), "adamw", 15),
    "ExponentialLR": (lambda M, o: M.ExponentialLR(o, 0.98), "sgd", 33),
    "PolynomialLR": (lambda M, o: M.PolynomialLR(o, 60, 2.0), "sgd", 21),
    "CosineAnnealingLR": (lambda M, o: M.CosineAnnealingLR(o, 40, 1e-3), "adam", 27),
    "SequentialLR": (lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.1, 1.0, 10), M.ExponentialLR(o, 0.97),
                                                     M.CosineAnnealingLR(o, 30)], [10, 40]), "sgd", 25),
    "SequentialLR-lambda-milestone-0": (
        lambda M, o: M.SequentialLR(o, [M.StepLR(o, 3), M.LambdaLR(o, Warmup(8)), M.MultiplicativeLR(o, lambda e: 0.9)],
                                    [0, 20]), "sgd", 15),
    "ChainedScheduler": (lambda M, o: M.ChainedScheduler([M.ConstantLR(o, 0.5, 8), M.ExponentialLR(o, 0.97),
                                                          M.StepLR(o, 10, 0.5)]), "adam", 19),
    "ChainedScheduler-absolute-last": (
        lambda M, o: M.ChainedScheduler([M.StepLR(o, 5, 0.5), M.CyclicLR(o, [0.1, 0.05, 0.3], 0.5, 4)]), "sgd", 11),
    "CyclicLR": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, 6, 4, mode="triangular2"), "sgd", 23),
    "CyclicLR-scale-fn-object": (lambda M, o: M.CyclicLR(o, 0.01, [0.1, 0.2, 0.3], 5, scale_fn=Decay(0.99),
                                                         scale_mode="iterations"), "adam", 31),
    "CyclicLR-scale-fn-lambda": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, 5, scale_fn=lambda x: 1 / math.sqrt(x)),
                                 "sgd", 17),
    "OneCycleLR": (lambda M, o: M.OneCycleLR(o, 0.1, total_steps=120), "sgd", 40),
    "OneCycleLR-three-phase-adam": (lambda M, o: M.OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=100, three_phase=True,
                                                              anneal_strategy="linear"), "adam", 35),
    "CosineAnnealingWarmRestarts": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 5, 2, 1e-3), "sgd", 22),
    "SWALR": (lambda M, o: M.SWALR(o, 0.02, 10), "sgd", 4),
    "SWALR-linear-done": (lambda M, o: M.SWALR(o, [0.01, 0.02, 0.03], 5, "linear"), "adam", 9),
    "ReduceLROnPlateau": (lambda M, o: M.ReduceLROnPlateau(o, patience=2, min_lr=[0.0, 1e-3, 0.0]), "sgd", 15),
}


def _metric(k: int) -> float:
    return 1.0 / (1 + k) if k < 5 else 0.5  # improves, then stalls


def _step(opt, sched, k: int) -> None:
    opt.step()
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(_metric(k))
    else:
        sched.step()


def _through_a_file(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def _checkpoint(opt, sched) -> dict:
    return _through_a_file({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})


def _restore(ns, name, checkpoint):
    build, kind, _ = CONFIGS[name]
    opt = make_optimizer(kind)
    sched = build(ns, opt)
    opt.load_state_dict(checkpoint["optimizer"])
    sched.load_state_dict(checkpoint["scheduler"])
    return opt, sched


def _run(ns, name):
    build, kind, k = CONFIGS[name]
    opt = make_optimizer(kind)
    sched = build(ns, opt)
    for i in range(k):
        _step(opt, sched, i)
    return opt, sched


def _continue_together(name, a, b, steps=50, exact=False):
    (opt_a, s_a), (opt_b, s_b) = a, b
    k = CONFIGS[name][2]
    exact = exact or name.split("-")[0] in EXACT
    # SWALR recovers the LR it anneals from out of the group's LR, as torch's does: a
    # restored SWALR is one rounding away from the original.
    rel = 1e-13 if name.startswith("SWALR") else 1e-9
    exact = exact and not name.startswith("SWALR")
    assert_state_matches(k, opt_a, opt_b, s_a, s_b, rel=rel, exact=exact)
    assert counters(s_b) == counters(s_a)
    for i in range(k, k + steps):
        _step(opt_a, s_a, i)
        _step(opt_b, s_b, i)
        assert_state_matches(i + 1, opt_a, opt_b, s_a, s_b, rel=rel, exact=exact)
        assert counters(s_b) == counters(s_a)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lrfast_round_trip_continues_identically(name):
    original = _run(FAST, name)
    restored = _restore(FAST, name, _checkpoint(*original))
    _continue_together(name, original, restored, exact=True)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_torch_state_loads_into_lrfast(name):
    original = _run(TORCH, name)
    restored = _restore(FAST, name, _checkpoint(*original))
    assert type(restored[1]).__module__.startswith("lrfast")
    _continue_together(name, original, restored)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lrfast_state_loads_into_torch(name):
    original = _run(FAST, name)
    restored = _restore(TORCH, name, _checkpoint(*original))
    assert type(restored[1]).__module__.startswith("torch")
    # the harness compares its second pair as "lrfast": here that is the torch restore
    _continue_together(name, original, restored)


def _keys(state: dict) -> dict:
    """The key structure of a state dict, nested schedulers included."""
    out = {k: None for k in state}
    if "_schedulers" in state:
        out["_schedulers"] = [_keys(s) for s in state["_schedulers"]]
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_has_torchs_keys(name):
    (_, s_t), (_, s_f) = _run(TORCH, name), _run(FAST, name)
    state_t, state_f = s_t.state_dict(), s_f.state_dict()
    # SWALR also keeps the LR its anneal started from (torch recovers it from the group's LR)
    keys_f = _keys(state_f)
    keys_f.pop("_anneal_start_lrs", None)
    assert keys_f == _keys(state_t)

    def private(state):
        found = [k for k in state if k.startswith("_lrfast")]
        for child in state.get("_schedulers", []):
            found += private(child)
        return found

    assert private(state_f) == []


def test_callable_object_state_is_restored():
    """LambdaLR saves a callable object's __dict__ and load_state_dict puts it back: the
    restored scheduler follows the saved warmup length, not the one it was built with."""
    opt = make_optimizer()
    sched = FAST.LambdaLR(opt, Warmup(20))
    for _ in range(5):
        opt.step()
        sched.step()
    state = _through_a_file(sched.state_dict())
    assert state["lr_lambdas"] == [{"warmup": 20}] * 3

    opt2 = make_optimizer()
    other = Warmup(2)
    sched2 = FAST.LambdaLR(opt2, other)
    sched2.load_state_dict(state)
    assert other.warmup == 20
    opt2.step()
    sched2.step()
    assert sched2.get_last_lr()[0] == pytest.approx(0.1 * 7 / 20, rel=1e-15)  # not 0.1 (warmup 2)


def test_cyclic_scale_fn_object_state_is_restored():
    opt = make_optimizer()
    sched = FAST.CyclicLR(opt, 0.01, 0.1, 4, scale_fn=Decay(0.5), scale_mode="iterations")
    state = _through_a_file(sched.state_dict())
    assert state["_scale_fn_custom"] == {"rate": 0.5}
    assert "_scale_fn_ref" not in state
    fn = Decay(1.0)
    opt2 = make_optimizer()
    sched2 = FAST.CyclicLR(opt2, 0.01, 0.1, 4, scale_fn=fn, scale_mode="iterations")
    sched2.load_state_dict(state)
    assert fn.rate == 0.5
    for _ in range(3):
        opt2.step()
        sched2.step()
    # t=3 of an up-ramp of 4: scale factor 3/4, times 0.5**3
    assert sched2.get_last_lr()[0] == pytest.approx(0.01 + 0.09 * 0.75 * 0.125, rel=1e-14)


def test_swalr_state_needs_the_optimizer_state_first():
    """SWALR (like torch's) recovers the LR it anneals from out of the groups' current LR:
    loaded after the optimizer's state, it continues exactly."""
    opt_a = make_optimizer()
    s_a = FAST.SWALR(opt_a, 0.02, 10)
    for _ in range(4):
        opt_a.step()
        s_a.step()
    checkpoint = _checkpoint(opt_a, s_a)
    opt_b = make_optimizer()
    opt_b.param_groups[0]["lr"] = 0.7  # a different LR at construction: the load must not care
    s_b = FAST.SWALR(opt_b, 0.02, 10)
    opt_b.load_state_dict(checkpoint["optimizer"])
    s_b.load_state_dict(checkpoint["scheduler"])
    for k in range(12):
        opt_a.step()
        s_a.step()
        opt_b.step()
        s_b.step()
        assert_state_matches(k, opt_a, opt_b, s_a, s_b, rel=1e-13)


def test_load_state_dict_leaves_the_callers_dict_intact():
    for name in ("LambdaLR-callable-object", "SequentialLR", "ChainedScheduler", "CyclicLR-scale-fn-object"):
        _, sched = _run(FAST, name)
        state = _through_a_file(sched.state_dict())
        before = _keys(state)
        _restore(FAST, name, {"optimizer": make_optimizer(CONFIGS[name][1]).state_dict(), "scheduler": state})
        assert _keys(state) == before, name
