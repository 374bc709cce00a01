"""GPU: lrfast schedulers on CUDA tensor LRs — values, one launch, no sync, graph replay."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from gpu_support import require_cuda

pytestmark = pytest.mark.gpu
require_cuda()

from lrfast import lr_scheduler  # noqa: E402
from lrfast import schedules as S  # noqa: E402
from lrfast._backend.cuda import ScalarWriter  # noqa: E402

DEVICE = torch.device("cuda")


def make_optimizer(groups: int, tensor_lr: bool = True, dtype=torch.float32):
    params = [torch.nn.Parameter(torch.zeros(16, device=DEVICE)) for _ in range(groups)]
    spec = []
    for i, p in enumerate(params):
        lr = 0.01 * (i + 1)
        spec.append({"params": [p], "lr": torch.tensor(lr, device=DEVICE, dtype=dtype) if tensor_lr else lr})
    # torch's fused AdamW reads a tensor LR as float32 only; a float64 LR goes through the for-loop path
    fused = dtype == torch.float32 or not tensor_lr
    return torch.optim.AdamW(spec, fused=fused, foreach=False if not fused else None), params


def closed_cosine(base: float, t: int, t_max: int, eta_min: float = 0.0) -> float:
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_lr_values_follow_closed_form(dtype):
    opt, params = make_optimizer(5, dtype=dtype)
    lr_objects = [g["lr"] for g in opt.param_groups]
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-4)
    for t in range(1, 121):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
        got = torch.stack([g["lr"] for g in opt.param_groups]).double().cpu().numpy()
        want = np.array([closed_cosine(0.01 * (i + 1), t, 50, 1e-4) for i in range(5)])
        if dtype == torch.float32:  # one rounding of the float64 closed form: equal unless within an ulp
            np.testing.assert_allclose(got, want.astype(np.float32).astype(np.float64), rtol=1.2e-7, atol=0)
        else:  # device cos vs host cos: a couple of ulps
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert all(g["lr"] is obj for g, obj in zip(opt.param_groups, lr_objects))  # updated in place


def test_tensor_lr_matches_torch_scheduler():
    ours, _ = make_optimizer(3)
    theirs, _ = make_optimizer(3)
    a = lr_scheduler.OneCycleLR(ours, max_lr=[0.1, 0.2, 0.3], total_steps=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=[0.1, 0.2, 0.3], total_steps=200)
    for _ in range(199):
        a.step()
        b.step()
        x = torch.stack([g["lr"] for g in ours.param_groups])
        y = torch.stack([g["lr"] for g in theirs.param_groups])
        torch.testing.assert_close(x, y, rtol=1e-6, atol=0)
        assert [g["betas"][0] for g in ours.param_groups] == pytest.approx(
            [g["betas"][0] for g in theirs.param_groups], rel=1e-12)


def test_step_is_sync_free_and_one_launch():
    opt, _ = make_optimizer(100)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    sched.step()  # build and upload outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                sched.step()
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    launches = [e for e in prof.events() if "write_scheduled_values" in e.name]
    assert len(launches) == 10
    assert float(opt.param_groups[7]["lr"]) == pytest.approx(0.08 * 0.5 ** (11 // 3), rel=1e-6)


def test_scalar_writer_counter_replays_in_a_graph():
    schedule = S.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=100)
    packed = S.pack_many([schedule, schedule * 0.5])
    targets = [torch.zeros((), device=DEVICE), torch.zeros((), device=DEVICE, dtype=torch.float64)]
    writer = ScalarWriter(targets, packed)
    counter = torch.zeros((), dtype=torch.int64, device=DEVICE)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        writer.write(0.0, counter=counter, increment=1)  # warm-up on the side stream
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        writer.write(0.0, counter=counter, increment=1)
    for _ in range(40):
        graph.replay()
    torch.cuda.synchronize()
    assert int(counter) == 41
    assert float(targets[0]) == pytest.approx(float(np.float32(schedule(41))), rel=1.2e-7)
    assert float(targets[1]) == pytest.approx(0.5 * schedule(41), rel=1e-15)


def test_evaluate_kernel_matches_host_for_many_groups():
    from lrfast import _C

    items = [S.one_cycle(1.0, 1000, three_phase=True), S.warm_restarts(0.3, 7, 2, 0.01),
             S.cyclic(0.1, 1.0, 13, mode="exp_range", gamma=0.999), S.multistep_decay(2.0, [5, 9, 9, 400])]
    packed = S.pack_many(items)
    steps = np.concatenate([np.arange(0, 1100, dtype=np.float64), [2.0**31 + 5]])
    want = _C.evaluate(packed.descriptors, packed.table, steps)
    d = torch.from_numpy(packed.descriptors).to(DEVICE)
    tab = torch.from_numpy(packed.table).to(DEVICE)
    st = torch.from_numpy(steps).to(DEVICE)
    out = torch.empty((len(items), steps.size), dtype=torch.float64, device=DEVICE)
    _C.cuda_evaluate_schedules(d.data_ptr(), len(items), tab.data_ptr(), st.data_ptr(), steps.size, out.data_ptr(),
                               torch.cuda.current_stream().cuda_stream, DEVICE.index or 0)
    got = out.cpu().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-300)
