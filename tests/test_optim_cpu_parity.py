"""CPU: lrfast's fused optimizers against torch's, step by step, for 100 steps.

Every option of SGD / Adam / AdamW, every parameter dtype, several param groups driven
by an lrfast scheduler (StepLR, OneCycleLR cycling momentum or beta1, CosineAnnealingLR)
or by a functional Schedule as the lr, on awkward sizes (1, 65537, 278011 elements,
spread over several chunks, plus many small tensors). The parameters are compared
after every step.

Oracles: Adam/AdamW against torch's fused CPU kernels (the same operations; equal bit
for bit in practice, for every dtype), SGD against torch's ``foreach=False`` code in
float32 / float64. For bfloat16 / float16 SGD the oracle is torch's float32 SGD applied
to the upcast values and rounded once per stored value: torch's own reduced-precision
SGD rounds lr, momentum and weight decay to the parameter dtype, which lrfast does not.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

import lrfast.optim
from lrfast import lr_scheduler
from lrfast import schedules as S

STEPS = 100
SIZES = (1, 65537, 278011) + tuple(range(2, 110, 3))  # 3 awkward + 36 small tensors
GROUP_LRS = (1e-2, 3e-3, 5e-4)
TOLERANCE = {torch.float32: dict(rtol=1e-6, atol=1e-7), torch.float64: dict(rtol=1e-10, atol=1e-12),
             torch.bfloat16: dict(rtol=2**-8, atol=1e-5), torch.float16: dict(rtol=2**-10, atol=1e-6)}
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@pytest.fixture(autouse=True)
def parallel_kernels_only(monkeypatch):
    """Every bucket here is big enough to share (NOTE [parallel or serial]): it runs the
    parallel kernel at every step, the one a big bucket starts with, instead of also timing
    its serial twin. The twins are one source compiled twice and give the same bits
    (test_cpu_compiled_variants.py); compiling the serial twin of every option x dtype
    variant as well cost this file a third of its time on a cold cache."""
    from lrfast._backend import cpu

    monkeypatch.setattr(cpu.ModeChooser, "parallel", lambda self: True)


def make_scheduler(name, opt, module):
    if name == "step":
        return module.StepLR(opt, step_size=7, gamma=0.7)
    if name == "onecycle":
        return module.OneCycleLR(opt, max_lr=[2 * lr for lr in GROUP_LRS], total_steps=STEPS)
    if name == "cosine":
        return module.CosineAnnealingLR(opt, T_max=30, eta_min=1e-4)
    return None


def group_schedules():
    """A different functional schedule per group."""
    return [S.warmup_cosine_decay(0.0, GROUP_LRS[0], warmup_steps=10, decay_steps=STEPS, end_value=1e-4),
            S.step_decay(GROUP_LRS[1], step_size=15, gamma=0.5),
            S.one_cycle(GROUP_LRS[2] * 3, STEPS)]


def initial_params(dtype, sizes=SIZES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g).to(dtype) for n in sizes]


@functools.lru_cache(maxsize=4)
def _noise(total):
    return torch.randn(total + 4096, generator=torch.Generator().manual_seed(10_000))


def grads_at(step, sizes, dtype):
    """Different gradients at every step: a shifted, rescaled window of one random
    vector (cheaper than drawing 345K normals a step, which would dominate the test)."""
    total = sum(sizes)
    offset = (step * 997) % 4096
    flat = _noise(total)[offset:offset + total] * (1.0 + 0.05 * (step % 7)) - 0.01 * (step % 3)
    return list(flat.to(dtype).split(list(sizes)))


def groups_of(params, lrs):
    return [{"params": params[i::3], "lr": lr} for i, lr in enumerate(lrs)]


class RoundedShadow:
    """torch's float32 optimizer on upcast copies, rounded back once per step: the
    oracle of fused reduced-precision math (one rounding per stored value)."""

    def __init__(self, cls, params, lrs, options, dtype):
        self.dtype = dtype
        self.params = params
        self.shadow = [torch.nn.Parameter(p.float()) for p in params]
        self.opt = cls(groups_of(self.shadow, lrs), foreach=False, **options)
        self.param_groups = self.opt.param_groups

    def step(self):
        for p, s in zip(self.params, self.shadow):
            s.data.copy_(p.float())
            s.grad = p.grad.float()
        self.opt.step()
        for p, s in zip(self.params, self.shadow):
            p.copy_(s.detach().to(self.dtype))
            state = self.opt.state[s]
            for key, value in state.items():
                if key != "step" and isinstance(value, torch.Tensor):
                    state[key] = value.to(self.dtype).float()  # the state is stored in the low dtype too


def reference(name, params, lrs, options, dtype):
    cls = getattr(torch.optim, name)
    if name != "SGD":
        return cls(groups_of(params, lrs), fused=True, **options)
    if dtype in (torch.float32, torch.float64):
        return cls(groups_of(params, lrs), foreach=False, **options)
    return RoundedShadow(cls, params, lrs, options, dtype)


def run_and_compare(name, options, dtype, sched, sizes=SIZES, steps=STEPS):
    ours_p = [torch.nn.Parameter(p) for p in initial_params(dtype, sizes)]
    theirs_p = [torch.nn.Parameter(p) for p in initial_params(dtype, sizes)]
    functional = sched == "schedule"
    lr_values = group_schedules() if functional else GROUP_LRS
    ours = getattr(lrfast.optim, name)(groups_of(ours_p, lr_values), **options)
    theirs = reference(name, theirs_p, [s(0) for s in lr_values] if functional else GROUP_LRS, options, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's order warnings for the shadow optimizer
        our_sched = make_scheduler(sched, ours, lr_scheduler)
        their_sched = make_scheduler(sched, theirs.opt if isinstance(theirs, RoundedShadow) else theirs,
                                     torch.optim.lr_scheduler)
    tol = TOLERANCE[dtype]
    for step in range(steps):
        for p, q, g in zip(ours_p, theirs_p, grads_at(step, sizes, dtype)):
            p.grad = g  # a fresh tensor each step for lrfast (the set_to_none path) ...
            q.grad = g.clone()  # ... and its own copy for torch
        if functional:
            for group, schedule in zip(theirs.param_groups, lr_values):
                group["lr"] = schedule(step)
        ours.step()
        with torch.no_grad():
            theirs.step()
        torch.testing.assert_close(torch.cat([p.detach().flatten() for p in ours_p]),
                                   torch.cat([q.detach().flatten() for q in theirs_p]),
                                   msg=lambda m, step=step: f"step {step}: {m}", **tol)
        if our_sched is not None and step < steps - 1:
            our_sched.step()
            their_sched.step()
            assert [g["lr"] for g in ours.param_groups] == pytest.approx(
                [g["lr"] for g in theirs.param_groups], rel=1e-9)
    if our_sched is not None:
        assert ours._lrfast_bound_scheduler() is our_sched  # the kernel evaluated the scheduler's program
    return ours, ours_p


SCHEDS = ("step", "onecycle", "cosine", "schedule", "none")
ADAM_OPTIONS = [
    {},
    {"amsgrad": True},
    {"weight_decay": 0.1, "maximize": True},
    {"amsgrad": True, "weight_decay": 0.05, "maximize": True, "betas": (0.3, 0.99), "eps": 1e-6},  # lerp weight >= 0.5
]
ADAMW_OPTIONS = [{}, {"amsgrad": True, "maximize": True, "weight_decay": 0.3}, {"betas": (0.2, 0.9)}]
SGD_OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"momentum": 0.8, "dampening": 0.3, "maximize": True, "weight_decay": 0.1},
]
CASES = [(name, i, options) for name, table in (("Adam", ADAM_OPTIONS), ("AdamW", ADAMW_OPTIONS),
                                               ("SGD", SGD_OPTIONS)) for i, options in enumerate(table)]


def _id(case):
    name, i, options = case
    return f"{name}-{i}"


# 5-76 s a case on 2 shared cores: each (option set, dtype) compiles its own Numba kernel on
# a cold cache. The quick loop (-m "not slow") keeps test_every_scheduler_float32's parity.
@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[1])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_every_option_and_dtype(case, dtype):
    """Each option x dtype, with a scheduler that rotates through all of them."""
    name, i, options = case
    sched = SCHEDS[(i + DTYPES.index(dtype)) % len(SCHEDS)]
    if name == "SGD" and sched == "onecycle" and not options.get("momentum"):
        sched = "cosine"  # OneCycleLR would switch momentum on; that case is covered below
    run_and_compare(name, options, dtype, sched)


@pytest.mark.parametrize("sched", SCHEDS[:4])
@pytest.mark.parametrize("name", ("Adam", "AdamW", "SGD"))
def test_every_scheduler_float32(name, sched):
    options = {"momentum": 0.9} if name == "SGD" else {}
    ours, _ = run_and_compare(name, options, torch.float32, sched)
    if sched == "schedule":
        assert [g["lr_step"] for g in ours.param_groups] == [STEPS] * 3


def test_adam_matches_torch_single_tensor_code():
    """Against torch's foreach=False Adam (the reference formulas) too: equal to float32
    rounding (torch.sqrt there is MKL's, not correctly rounded, hence not bit for bit)."""
    sizes = (1, 65537, 1000, 7)
    ours_p = [torch.nn.Parameter(p) for p in initial_params(torch.float32, sizes)]
    theirs_p = [torch.nn.Parameter(p) for p in initial_params(torch.float32, sizes)]
    ours = lrfast.optim.AdamW(groups_of(ours_p, GROUP_LRS), amsgrad=True, weight_decay=0.1)
    theirs = torch.optim.AdamW(groups_of(theirs_p, GROUP_LRS), amsgrad=True, weight_decay=0.1, foreach=False)
    s1 = lr_scheduler.OneCycleLR(ours, max_lr=0.01, total_steps=STEPS)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.01, total_steps=STEPS)
    for step in range(STEPS):
        for p, q, g in zip(ours_p, theirs_p, grads_at(step, sizes, torch.float32)):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        for p, q in zip(ours_p, theirs_p):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        if step < STEPS - 1:
            s1.step()
            s2.step()
    for p, q in zip(ours_p, theirs_p):
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            torch.testing.assert_close(ours.state[p][key], theirs.state[q][key], rtol=1e-5, atol=1e-9)
        assert ours.state[p]["step"].dtype == torch.float32 and ours.state[p]["step"].dim() == 0
        assert ours.state[p]["step"].item() == theirs.state[q]["step"].item() == STEPS


def test_state_matches_torch_fused_bit_for_bit():
    """The element math follows torch's vectorised fused kernel operation for operation.
    (Its scalar tail -- the last numel % 16 elements -- and its float64 build contract
    products differently, so those agree to the last bit or two, as the tests above
    check; the sizes here are multiples of 16.)"""
    sizes = (16, 65536, 48, 4096)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        ours_p = [torch.nn.Parameter(p) for p in initial_params(dtype, sizes)]
        theirs_p = [torch.nn.Parameter(p) for p in initial_params(dtype, sizes)]
        ours = lrfast.optim.Adam(ours_p, lr=1e-2, amsgrad=True, weight_decay=0.1)
        theirs = torch.optim.Adam(theirs_p, lr=1e-2, amsgrad=True, weight_decay=0.1, fused=True)
        for step in range(10):
            for p, q, g in zip(ours_p, theirs_p, grads_at(step, sizes, dtype)):
                p.grad, q.grad = g.clone(), g.clone()
            ours.step()
            theirs.step()
        for p, q in zip(ours_p, theirs_p):
            assert torch.equal(p, q), dtype
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                assert torch.equal(ours.state[p][key], theirs.state[q][key]), (dtype, key)
