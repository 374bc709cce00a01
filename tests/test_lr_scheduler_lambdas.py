"""LambdaLR and MultiplicativeLR write what their lambdas give, once per step, on float
groups, tensor groups and a mix of both (a tensor lr among floats takes the general write
after the floats before it), and refuse a non-finite value before writing any group."""

from __future__ import annotations

import math

import pytest
import torch
from lr_scheduler_harness import FAST, TORCH, as_float, make_optimizer

BUILD = {
    "LambdaLR": lambda M, o: M.LambdaLR(o, [lambda e: 0.9**e, lambda e: 1.0 / (1 + e), lambda e: 0.5]),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, [lambda e: 0.9, lambda e: 0.99, lambda e: 1.01]),
}


def _mixed(tensor_groups: tuple[int, ...]) -> torch.optim.Optimizer:
    opt = make_optimizer()
    for g in tensor_groups:
        opt.param_groups[g]["lr"] = torch.tensor(opt.param_groups[g]["lr"], dtype=torch.float64)
    return opt


@pytest.mark.parametrize("name", list(BUILD))
@pytest.mark.parametrize("tensor_groups", [(), (0,), (1,), (2,), (0, 1, 2)])
def test_float_tensor_and_mixed_groups_match_torch(name, tensor_groups):
    opt_t, opt_f = _mixed(tensor_groups), _mixed(tensor_groups)
    held = [g["lr"] for g in opt_f.param_groups]
    s_t, s_f = BUILD[name](TORCH, opt_t), BUILD[name](FAST, opt_f)
    for k in range(12):
        s_t.step()
        s_f.step()
        for g, (gt, gf) in enumerate(zip(opt_t.param_groups, opt_f.param_groups, strict=True)):
            assert type(gf["lr"]) is type(gt["lr"]), f"step {k}, group {g}"
            assert as_float(gf["lr"]) == pytest.approx(as_float(gt["lr"]), rel=1e-12, abs=0), f"step {k}"
            if g in tensor_groups:
                assert gf["lr"] is held[g]  # filled in place, never replaced
        last = s_f.get_last_lr()
        assert [as_float(v) for v in last] == [as_float(g["lr"]) for g in opt_f.param_groups]
        if not tensor_groups:
            assert all(type(v) is float for v in last)


@pytest.mark.parametrize("name", list(BUILD))
@pytest.mark.parametrize("bad", [math.inf, math.nan, -math.inf])
@pytest.mark.parametrize("tensor_groups", [(), (2,)])
def test_non_finite_value_raises_before_any_write(name, bad, tensor_groups):
    opt = _mixed(tensor_groups)
    fire = [False]

    def lam(e):
        return bad if fire[0] else 0.9

    build = {"LambdaLR": FAST.LambdaLR, "MultiplicativeLR": FAST.MultiplicativeLR}[name]
    sched = build(opt, [lambda e: 0.9, lam, lambda e: 0.9])
    sched.step()
    before = [as_float(g["lr"]) for g in opt.param_groups]
    fire[0] = True
    with pytest.raises(ValueError, match="non-finite"):
        sched.step()
    assert [as_float(g["lr"]) for g in opt.param_groups] == before
