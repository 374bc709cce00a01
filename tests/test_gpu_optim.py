"""GPU: lrfast's fused CUDA optimizers against torch's fused ones, step by step.

Parameters after every step match torch's optimizer + torch's scheduler (same schedule)
to float32 rounding, for every option, dtype and a mix of awkward sizes; state dicts move
both ways mid-run; one launch per bucket; no sync; CUDA-graph replay; GradScaler infs.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from gpu_support import require_cuda

pytestmark = pytest.mark.gpu
require_cuda()

import lrfast.optim  # noqa: E402
from lrfast import lr_scheduler  # noqa: E402

DEVICE = torch.device("cuda")
SIZES = (1, 65537, 278011, 3)
STEPS = 50
TOLERANCE = {torch.float32: dict(rtol=2e-6, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-12),
             torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2), torch.float16: dict(rtol=2e-3, atol=2e-3)}


def make_params(dtype, sizes=SIZES, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn(n, generator=g, dtype=torch.float32).to(DEVICE, dtype) for n in sizes]


def grads_for(params, step):
    g = torch.Generator(device="cpu").manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=g, dtype=torch.float32).to(DEVICE, p.dtype) for p in params]


def split_groups(params, lrs):
    """Two groups with different LRs (params alternate between them)."""
    return [{"params": params[0::2], "lr": lrs[0]}, {"params": params[1::2], "lr": lrs[1]}]


def run(opt_cls, sched_factory, module, dtype, kwargs, steps=STEPS, sizes=SIZES, fused_torch=True):
    params = [torch.nn.Parameter(p) for p in make_params(dtype, sizes)]
    extra = {"fused": True} if fused_torch and module is torch.optim.lr_scheduler else {}
    opt = opt_cls(split_groups(params, (1e-2, 3e-3)), **kwargs, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = sched_factory(module, opt) if sched_factory else None
    history = []
    for step in range(steps):
        for p, g in zip(params, grads_for(params, step)):
            p.grad = g  # a new tensor every step, as zero_grad(set_to_none=True) leaves them
        opt.step()
        if sched is not None:
            sched.step()
        history.append([p.detach().clone() for p in params])
    return history, opt


def assert_histories_close(ours, theirs, dtype):
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            torch.testing.assert_close(x.float(), y.float(), **TOLERANCE[dtype],
                                       msg=lambda m, step=step: f"step {step}: {m}")


SCHEDULERS = {
    "none": None,
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=30, eta_min=1e-4),
    "onecycle": lambda m, o: m.OneCycleLR(o, max_lr=[1e-2, 3e-3], total_steps=STEPS),
    "warmup_cosine": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=10),
                                                     m.CosineAnnealingLR(o, T_max=40)], [10]),
}

ADAM_OPTIONS = [dict(), dict(weight_decay=0.1), dict(amsgrad=True), dict(maximize=True, weight_decay=0.01),
                dict(betas=(0.8, 0.95), eps=1e-6)]
SGD_OPTIONS = [dict(momentum=0.9), dict(momentum=0.9, nesterov=True), dict(momentum=0.9, dampening=0.1),
               dict(momentum=0.9, weight_decay=1e-3, maximize=True), dict()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize("name", ["AdamW", "Adam"])
@pytest.mark.parametrize("options", range(len(ADAM_OPTIONS)))
def test_adam_matches_torch_fused(name, options, sched, dtype):
    kwargs = ADAM_OPTIONS[options]
    ours, _ = run(getattr(lrfast.optim, name), SCHEDULERS[sched], lr_scheduler, dtype, kwargs)
    theirs, _ = run(getattr(torch.optim, name), SCHEDULERS[sched], torch.optim.lr_scheduler, dtype, kwargs)
    assert_histories_close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("sched", ["none", "cosine", "onecycle"])
@pytest.mark.parametrize("options", range(len(SGD_OPTIONS)))
def test_sgd_matches_torch_fused(options, sched, dtype):
    kwargs = SGD_OPTIONS[options]
    if sched == "onecycle" and not kwargs.get("momentum"):
        pytest.skip("OneCycleLR cycles momentum, which needs SGD with momentum")  # torch raises the same
    ours, _ = run(lrfast.optim.SGD, SCHEDULERS[sched], lr_scheduler, dtype, kwargs)
    theirs, _ = run(torch.optim.SGD, SCHEDULERS[sched], torch.optim.lr_scheduler, dtype, kwargs)
    assert_histories_close(ours, theirs, dtype)


def test_more_tensors_than_one_torch_launch():
    sizes = tuple(100 + 7 * i for i in range(300))  # torch's fused Adam takes 36 tensors per launch
    ours, _ = run(lrfast.optim.AdamW, SCHEDULERS["cosine"], lr_scheduler, torch.float32, {}, steps=10, sizes=sizes)
    theirs, _ = run(torch.optim.AdamW, SCHEDULERS["cosine"], torch.optim.lr_scheduler, torch.float32, {},
                    steps=10, sizes=sizes)
    assert_histories_close(ours, theirs, torch.float32)


def test_state_dict_moves_between_torch_and_lrfast_mid_run():
    params = [torch.nn.Parameter(p) for p in make_params(torch.float32)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    a = torch.optim.AdamW(split_groups(params, (1e-2, 3e-3)), fused=True)
    b = torch.optim.AdamW(split_groups(ref, (1e-2, 3e-3)), fused=True)
    for step in range(10):
        for p, q, g in zip(params, ref, grads_for(params, step)):
            p.grad, q.grad = g, g.clone()
        a.step()
        b.step()
    ours = lrfast.optim.AdamW(split_groups(params, (1e-2, 3e-3)))
    ours.load_state_dict(a.state_dict())
    for step in range(10, 20):
        for p, q, g in zip(params, ref, grads_for(params, step)):
            p.grad, q.grad = g, g.clone()
        ours.step()
        b.step()
    back = torch.optim.AdamW(split_groups(params, (1e-2, 3e-3)), fused=True)
    back.load_state_dict(ours.state_dict())
    for step in range(20, 30):
        for p, q, g in zip(params, ref, grads_for(params, step)):
            p.grad, q.grad = g, g.clone()
        back.step()
        b.step()
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6)


def test_one_launch_per_bucket_and_no_sync():
    params = [torch.nn.Parameter(p) for p in make_params(torch.float32, sizes=tuple(range(1, 200)))]
    params += [torch.nn.Parameter(p) for p in make_params(torch.bfloat16, sizes=(5, 70000))]
    opt = lrfast.optim.AdamW(split_groups(params, (1e-2, 3e-3)))
    sched = lr_scheduler.OneCycleLR(opt, max_lr=[1e-2, 3e-3], total_steps=100)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()  # first step: build and upload tables outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                opt.step()
                sched.step()
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    launches = [e for e in prof.events() if "fused_step_kernel" in e.name]
    assert len(launches) == 5 * 2  # two buckets (float32, bfloat16), one launch each per step


def test_cuda_graph_replay_equals_eager_steps():
    def setup():
        params = [torch.nn.Parameter(p) for p in make_params(torch.float32)]
        opt = lrfast.optim.AdamW(split_groups(params, (1e-2, 3e-3)), weight_decay=0.1)
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=40, eta_min=1e-4)
        grads = grads_for(params, 0)
        for p, g in zip(params, grads):
            p.grad = g
        return params, opt, sched

    eager_params, eager_opt, eager_sched = setup()
    for _ in range(25):
        eager_opt.step()
        eager_sched.step()

    params, opt, sched = setup()
    for _ in range(3):  # warm-up steps, eager, as torch's graph recipe asks
        opt.step()
        sched.step()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph):
            opt.step()
            sched.step()
    torch.cuda.current_stream().wait_stream(stream)
    for _ in range(22):
        graph.replay()
    torch.cuda.synchronize()
    for p, q in zip(params, eager_params):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_grad_scaler_skips_steps_with_infs_like_torch():
    def train(opt_cls, sched_module, fused):
        params = [torch.nn.Parameter(p) for p in make_params(torch.float32)]
        opt = opt_cls(split_groups(params, (1e-2, 3e-3)), **({"fused": True} if fused else {}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = sched_module.CosineAnnealingLR(opt, T_max=20)
        scaler = torch.amp.GradScaler("cuda", init_scale=2.0**10, growth_interval=3)
        for step in range(20):
            for p, g in zip(params, grads_for(params, step)):
                g = scaler.scale(g)  # get_scale() alone leaves the scaler without its scale tensor
                if step in (4, 11):
                    g[0] = float("inf")
                p.grad = g
            scaler.step(opt)
            scaler.update()
            sched.step()
        return params, [opt.state[p]["step"].item() for p in params]

    ours, our_steps = train(lrfast.optim.AdamW, lr_scheduler, False)
    theirs, their_steps = train(torch.optim.AdamW, torch.optim.lr_scheduler, True)
    assert our_steps == their_steps == [18.0] * len(ours)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6)
