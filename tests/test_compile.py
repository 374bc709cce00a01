"""torch.compile: a compiled training step calling opt.step() and sched.step() on lrfast
objects compiles once and never recompiles as the LR changes (NOTE [compiled steps]),
and trains exactly as the eager torch loop does."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

import lrfast.optim
from lrfast import lr_scheduler

STEPS = 1000


def make(opt_factory, sched_factory):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = opt_factory(model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = sched_factory(opt)
    return model, opt, sched


def train(model, opt, sched, x, steps, compile_backend=None):
    def train_step():
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        return loss

    counter = None
    if compile_backend is not None:
        counter = CompileCounter() if compile_backend == "counter" else None
        train_step = torch.compile(train_step, backend=counter or compile_backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            train_step()
        frames = counter.frame_count if counter else None
        with torch._dynamo.config.patch(error_on_recompile=True):
            for _ in range(steps - 3):
                train_step()
    return counter, frames


pytestmark = pytest.mark.slow  # every case compiles a training step with torch.compile


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


CASES = {
    "adamw-cosine": (lambda p: lrfast.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
                     lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
                     lambda m, o: m.CosineAnnealingLR(o, T_max=300, eta_min=1e-4)),
    "sgd-onecycle": (lambda p: lrfast.optim.SGD(p, lr=1e-2, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
                     lambda m, o: m.OneCycleLR(o, max_lr=0.05, total_steps=STEPS)),
    # a class with its own step() (checks for compilation itself, NOTE [compiled steps])
    "sgd-warm-restarts": (lambda p: lrfast.optim.SGD(p, lr=1e-2, momentum=0.9),
                          lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
                          lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2, eta_min=1e-4)),
    "adam-warmup-cosine": (lambda p: lrfast.optim.Adam(p, lr=1e-2),
                           lambda p: torch.optim.Adam(p, lr=1e-2),
                           lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=50),
                                                           m.CosineAnnealingLR(o, T_max=950)], [50])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_step_never_recompiles_and_matches_eager_torch(case):
    ours_opt, torch_opt, sched = CASES[case]
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    model, opt, s = make(ours_opt, lambda o: sched(lr_scheduler, o))
    counter, frames_after_warmup = train(model, opt, s, x, STEPS, compile_backend="counter")
    assert counter.frame_count == frames_after_warmup  # error_on_recompile held for the other steps
    assert s.last_epoch == STEPS
    ref_model, ref_opt, ref_s = make(torch_opt, lambda o: sched(torch.optim.lr_scheduler, o))
    train(ref_model, ref_opt, ref_s, x, STEPS)
    assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_aot_eager_functionalizes_the_custom_ops():
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    model, opt, s = make(lambda p: lrfast.optim.AdamW(p, lr=1e-2), lambda o: lr_scheduler.StepLR(o, 10, 0.5))
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, s, x, 40, compile_backend="aot_eager")
    assert s.last_epoch == 40 and opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**4)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_stock_optimizer_with_tensor_lr_does_not_recompile():
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    model, opt, s = make(lambda p: torch.optim.SGD(p, lr=torch.tensor(0.05)),
                         lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=100))
    counter, frames = train(model, opt, s, x, 200, compile_backend="counter")
    assert counter.frame_count == frames
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.05, rel=1e-6)  # cosine back at its peak, t = 200


def test_inductor_default_backend_trains_and_does_not_recompile():
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    model, opt, s = make(lambda p: lrfast.optim.AdamW(p, lr=1e-2), lambda o: lr_scheduler.CosineAnnealingLR(o, 50))
    ref_model, ref_opt, ref_s = make(lambda p: torch.optim.AdamW(p, lr=1e-2),
                                     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 50))
    train(model, opt, s, x, 60, compile_backend="inductor")  # error_on_recompile after 3 steps
    train(ref_model, ref_opt, ref_s, x, 60)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def _compiled_optimizer_step_compiles(opt_factory, sched_factory, steps=24):
    """pytorch#133898's pattern: ``opt.step()`` compiled, ``sched.step()`` eager; the number
    of graph compiles over ``steps`` steps and the optimizer's group."""
    model, opt, sched = make(opt_factory, sched_factory)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    counter = CompileCounter()

    @torch.compile(backend=counter)
    def opt_step():
        opt.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            model(x).pow(2).mean().backward()
            opt_step()
            opt.zero_grad()
            if isinstance(sched, lr_scheduler.ReduceLROnPlateau):
                sched.step(torch.tensor(1.0))
            else:
                sched.step()
    return counter.frame_count, opt.param_groups[0]


TENSOR_HYPER = {
    "adamw-onecycle": (lambda p: torch.optim.AdamW(p, lr=torch.tensor(0.01),
                                                   betas=(torch.tensor(0.9), torch.tensor(0.999))),
                       lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=100), "betas"),
    "adamw-cyclic": (lambda p: torch.optim.AdamW(p, lr=torch.tensor(0.01),
                                                 betas=(torch.tensor(0.9), torch.tensor(0.999))),
                     lambda o: lr_scheduler.CyclicLR(o, 0.001, 0.1, step_size_up=5), "betas"),
    "sgd-cyclic": (lambda p: torch.optim.SGD(p, lr=torch.tensor(0.01), momentum=torch.tensor(0.9)),
                   lambda o: lr_scheduler.CyclicLR(o, 0.001, 0.1, step_size_up=5), "momentum"),
    "sgd-onecycle": (lambda p: torch.optim.SGD(p, lr=torch.tensor(0.01), momentum=torch.tensor(0.9)),
                     lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=100), "momentum"),
    "adamw-plateau": (lambda p: torch.optim.AdamW(p, lr=torch.tensor(0.01)),
                      lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1), None),
}


@pytest.mark.parametrize("case", sorted(TENSOR_HYPER))
def test_tensor_lr_and_betas_are_written_in_place_so_compiles_stay_bounded(case):
    """Where a group holds tensor LR / betas / momentum, lrfast's schedulers fill them in
    place (torch's own write floats over them, and Dynamo recompiles at each step)."""
    opt_factory, sched_factory, key = TENSOR_HYPER[case]
    frames, group = _compiled_optimizer_step_compiles(opt_factory, sched_factory)
    held = group[key][0] if key == "betas" else (group[key] if key else group["lr"])
    assert isinstance(group["lr"], torch.Tensor) and isinstance(held, torch.Tensor)
    assert frames <= 2, f"{frames} graph compiles in 24 steps"
