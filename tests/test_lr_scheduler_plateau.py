"""ReduceLROnPlateau: lrfast's decisions are torch's, on metric sequences that improve,
stall, creep below the threshold, are noisy, or hold NaN, for every mode x
threshold_mode x cooldown, with several groups and per-group min_lr."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from lr_scheduler_harness import FAST, TORCH, as_float, make_optimizer

import lrfast.lr_scheduler as FL

N = 150


def _sequences() -> dict[str, list[float]]:
    rng = np.random.default_rng(1234)
    k = np.arange(N)
    noisy = (1.0 / (1 + 0.05 * k) + rng.normal(0, 0.02, N)).tolist()
    with_nan = list(noisy)
    for i in (3, 4, 40, 41, 42, 43, 44, 90):
        with_nan[i] = math.nan
    return {
        "improving": (1.0 / (1 + k)).tolist(),
        "flat": [1.0] * N,
        "creeping": (1.0 * (1 - 5e-5) ** k).tolist(),  # better, but under the default thresholds
        "noisy": noisy,
        "nan": with_nan,
        "plateaus": [round(1.0 - 0.1 * (i // 25), 6) for i in range(N)],
        "worsening": (1.0 + 0.01 * k).tolist(),
    }


SEQUENCES = _sequences()
MIN_LRS = [1e-3, 0.0, 0.05]


def _state(sched) -> tuple:
    return (sched.last_epoch, sched.best, sched.num_bad_epochs, sched.cooldown_counter)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("mode, threshold_mode, cooldown", list(itertools.product(["min", "max"], ["rel", "abs"],
                                                                                   [0, 3])))
@pytest.mark.parametrize("sequence", list(SEQUENCES))
def test_plateau_matches_torch(mode, threshold_mode, cooldown, sequence):
    # "improving" improves in either mode (mirrored, and kept positive: torch's relative
    # threshold reads a negative best the other way round)
    metrics = SEQUENCES[sequence] if mode == "min" else [3.0 - v for v in SEQUENCES[sequence]]
    kwargs = dict(mode=mode, factor=0.5, patience=3, threshold=1e-3, threshold_mode=threshold_mode,
                  cooldown=cooldown, min_lr=MIN_LRS)
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t = TORCH.ReduceLROnPlateau(opt_t, **kwargs)
    s_f = FAST.ReduceLROnPlateau(opt_f, **kwargs)
    reductions = 0
    for k, m in enumerate(metrics):
        before = [g["lr"] for g in opt_f.param_groups]
        opt_t.step()
        s_t.step(m)
        opt_f.step()
        s_f.step(m)
        lr_t = [g["lr"] for g in opt_t.param_groups]
        lr_f = [g["lr"] for g in opt_f.param_groups]
        assert lr_f == lr_t, f"step {k}"
        assert s_f.get_last_lr() == s_t.get_last_lr() == lr_f
        st_t, st_f = _state(s_t), _state(s_f)
        assert st_f[0] == st_t[0] and _same(st_f[1], st_t[1]) and st_f[2:] == st_t[2:], f"step {k}"
        assert all(lr >= lo for lr, lo in zip(lr_f, MIN_LRS, strict=True))
        reductions += lr_f != before
    # the sequences do what their names say
    if sequence in ("flat", "worsening", "creeping") and threshold_mode == "rel":
        assert reductions > 3
    if sequence == "improving" and mode == "min" and threshold_mode == "rel":
        assert reductions == 0


def test_eps_skips_tiny_reductions_like_torch():
    lrs = (1e-8, 3e-9, 0.1)
    opt_t, opt_f = make_optimizer(lrs=lrs), make_optimizer(lrs=lrs)
    s_t = TORCH.ReduceLROnPlateau(opt_t, patience=0, factor=0.5)
    s_f = FAST.ReduceLROnPlateau(opt_f, patience=0, factor=0.5)
    for _ in range(6):
        s_t.step(1.0)
        s_f.step(1.0)
        assert [g["lr"] for g in opt_f.param_groups] == [g["lr"] for g in opt_t.param_groups]
    assert opt_f.param_groups[1]["lr"] == 3e-9  # 1.5e-9 < eps: never reduced
    assert opt_f.param_groups[2]["lr"] == pytest.approx(0.1 * 0.5**5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_tensor_lr_stays_the_same_tensor(dtype, kind):
    opt_t = make_optimizer(kind, tensor_lr=dtype)
    opt_f = make_optimizer(kind, tensor_lr=dtype)
    lr_objects = [g["lr"] for g in opt_f.param_groups]
    s_t = TORCH.ReduceLROnPlateau(opt_t, patience=1, factor=0.3, min_lr=MIN_LRS)
    s_f = FAST.ReduceLROnPlateau(opt_f, patience=1, factor=0.3, min_lr=MIN_LRS)
    reduced = False
    for k, m in enumerate(SEQUENCES["plateaus"][:60]):
        s_t.step(torch.tensor(m))  # a tensor metric: float(metrics)
        s_f.step(torch.tensor(m))
        for g, (gt, gf) in enumerate(zip(opt_t.param_groups, opt_f.param_groups, strict=True)):
            assert gf["lr"] is lr_objects[g], f"step {k}: group {g}'s lr tensor was replaced"
            assert gf["lr"].dtype == dtype
            assert as_float(gf["lr"]) == as_float(gt["lr"])
            reduced |= as_float(gf["lr"]) < (0.1, 0.05, 0.3)[g]
        last = s_f.get_last_lr()
        assert all(isinstance(v, torch.Tensor) for v in last)
        assert [float(v) for v in last] == [float(g["lr"]) for g in opt_f.param_groups]
        assert all(v is not g["lr"] for v, g in zip(last, opt_f.param_groups, strict=True))
    assert reduced


def test_epoch_argument_and_warning_like_torch():
    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t = TORCH.ReduceLROnPlateau(opt_t, patience=0)
    s_f = FAST.ReduceLROnPlateau(opt_f, patience=0)
    for s in (s_t, s_f):
        with pytest.warns(UserWarning, match="epoch parameter"):
            s.step(1.0, epoch=10)
        s.step(1.0)
    assert s_f.last_epoch == s_t.last_epoch == 11
    assert [g["lr"] for g in opt_f.param_groups] == [g["lr"] for g in opt_t.param_groups]


def test_added_param_group_with_default_min_lr():
    """torch's rule: a scalar min_lr extends to a group added later; a list refuses."""
    for min_lr, error in ((1e-4, None), ([0.0, 0.0, 0.0], RuntimeError)):
        opt = make_optimizer()
        sched = FL.ReduceLROnPlateau(opt, patience=0, min_lr=min_lr)
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.2})
        sched.step(1.0)
        if error is None:
            sched.step(1.0)
            assert opt.param_groups[3]["lr"] == pytest.approx(0.02)
            assert sched.min_lrs == [1e-4] * 4
        else:
            with pytest.raises(error, match="param groups"):
                sched.step(1.0)


@pytest.mark.parametrize("lr_kind", ["float", "tensor"])
def test_float_metric_host_step_matches_torch(lr_kind):
    """A float metric takes the host step of NOTE [plateau host step]: torch's decisions,
    torch's get_last_lr() (tensor LRs cloned, written in place) and lr_tensor kept current."""
    tensor_lr = torch.float64 if lr_kind == "tensor" else None
    opt_t, opt_f = make_optimizer(tensor_lr=tensor_lr), make_optimizer(tensor_lr=tensor_lr)
    s_t = TORCH.ReduceLROnPlateau(opt_t, patience=2, factor=0.5, cooldown=1, min_lr=MIN_LRS)
    s_f = FAST.ReduceLROnPlateau(opt_f, patience=2, factor=0.5, cooldown=1, min_lr=MIN_LRS)
    buffer = s_f.lr_tensor
    for k, m in enumerate(SEQUENCES["plateaus"][:80]):
        s_t.step(m)
        s_f.step(m)
        assert [as_float(g["lr"]) for g in opt_f.param_groups] == [as_float(g["lr"]) for g in opt_t.param_groups]
        assert _state(s_f) == _state(s_t), f"step {k}"
        last_f, last_t = s_f.get_last_lr(), s_t.get_last_lr()
        assert [type(v) for v in last_f] == [type(v) for v in last_t]
        assert [as_float(v) for v in last_f] == [as_float(v) for v in last_t]
        assert all(v is not g["lr"] for v, g in zip(last_f, opt_f.param_groups, strict=True)) or lr_kind == "float"
        assert buffer.tolist() == [as_float(g["lr"]) for g in opt_f.param_groups]
    assert s_f.get_last_lr() != [0.1, 0.05, 0.3]  # it reduced


def test_overridden_rule_is_called_as_torch_calls_it():
    """A subclass's in_cooldown and best, and an _is_better patched on the instance, are
    used as torch's step() uses them."""
    calls = []

    def make(base):
        class Sub(base):
            @property
            def in_cooldown(self):
                calls.append(base)
                return False  # cooldown never counts

        return Sub

    opt_t, opt_f = make_optimizer(), make_optimizer()
    s_t = make(TORCH.ReduceLROnPlateau)(opt_t, patience=1, cooldown=5)
    s_f = make(FAST.ReduceLROnPlateau)(opt_f, patience=1, cooldown=5)
    for s in (s_t, s_f):
        s._is_better = lambda a, best: a < best - 0.5  # noqa: B023 - the instance's own rule
    for m in [1.0, 0.9, 0.8, 0.0, 0.1, 0.1, 0.1, 0.1]:
        s_t.step(m)
        s_f.step(m)
        assert [g["lr"] for g in opt_f.param_groups] == [g["lr"] for g in opt_t.param_groups]
        assert _state(s_f) == _state(s_t)
    assert calls.count(TORCH.ReduceLROnPlateau) == calls.count(FAST.ReduceLROnPlateau) == 8
    assert opt_f.param_groups[0]["lr"] < 0.1 * 0.1  # reduced twice and more, with no cooldown in between
