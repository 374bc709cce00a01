"""GPU: ReduceLROnPlateau fed a CUDA metric -- decided on the device (csrc/cuda/plateau.cu):
torch's decisions and LRs, one launch per step, no host sync, the host mirror, transitions
to and from host metrics, composition with a schedule, the live table a fused kernel reads,
and lr_tensor."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from gpu_support import require_cuda

pytestmark = pytest.mark.gpu
require_cuda()

import lrfast.lr_scheduler as FL  # noqa: E402
from lrfast import _C  # noqa: E402
from lrfast import schedules as S  # noqa: E402

DEVICE = torch.device("cuda", torch.cuda.current_device())
LRS = (0.1, 0.05, 0.3)
MIN_LRS = [1e-3, 0.0, 0.05]


def _sequence(name: str, n: int = 120) -> list[float]:
    rng = np.random.default_rng(11)
    k = np.arange(n)
    if name == "flat":
        return [1.0] * n
    if name == "plateaus":
        return [round(1.0 - 0.1 * (i // 25), 6) for i in range(n)]
    values = (1.0 / (1 + 0.05 * k) + rng.normal(0, 0.02, n)).tolist()
    if name == "nan":
        for i in (3, 4, 40, 41, 42, 43, 90):
            values[i] = math.nan
    return values


def _optimizer(device, lr_dtype: torch.dtype | None, lrs=LRS):
    params = [torch.nn.Parameter(torch.zeros(4, device=device)) for _ in lrs]
    groups = [{"params": [p], "lr": torch.tensor(v, dtype=lr_dtype, device=device) if lr_dtype else v}
              for p, v in zip(params, lrs)]
    return torch.optim.SGD(groups, lr=0.01)


def _floats(opt) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


@pytest.mark.parametrize("mode, threshold_mode, cooldown", list(itertools.product(["min", "max"], ["rel", "abs"],
                                                                                   [0, 2])))
@pytest.mark.parametrize("sequence", ["noisy", "flat", "plateaus", "nan"])
@pytest.mark.parametrize("lr_dtype", [torch.float32, torch.float64])
def test_device_decisions_equal_torch(mode, threshold_mode, cooldown, sequence, lr_dtype):
    metrics = _sequence(sequence)
    if mode == "max":
        metrics = [3.0 - m for m in metrics]
    kwargs = dict(mode=mode, factor=0.5, patience=2, threshold=1e-3, threshold_mode=threshold_mode,
                  cooldown=cooldown, min_lr=MIN_LRS)
    ours_opt, ref_opt = _optimizer(DEVICE, lr_dtype), _optimizer(DEVICE, lr_dtype)
    ours = FL.ReduceLROnPlateau(ours_opt, **kwargs)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **kwargs)
    lr_objects = [g["lr"] for g in ours_opt.param_groups]
    device_metrics = torch.tensor(metrics, dtype=torch.float32, device=DEVICE)
    for k, m in enumerate(metrics):
        ours.step(device_metrics[k])
        ref.step(float(np.float32(m)))  # the metric as the device holds it
        # the plain rule on a tensor LR is torch's, rounding to the LR's dtype included: bit for bit
        assert _floats(ours_opt) == _floats(ref_opt), f"step {k}"
        assert ours.lr_tensor.tolist() == _floats(ref_opt), f"step {k}"
        if k % 10 == 0 or k == len(metrics) - 1:  # reading the mirror syncs: now and then
            assert (ours.best == ref.best) or (math.isnan(ours.best) and math.isnan(ref.best))
            assert (ours.num_bad_epochs, ours.cooldown_counter) == (ref.num_bad_epochs, ref.cooldown_counter)
            assert ours.last_epoch == ref.last_epoch
    assert all(g["lr"] is obj for g, obj in zip(ours_opt.param_groups, lr_objects))


def test_step_is_sync_free_and_one_launch():
    opt = _optimizer(DEVICE, torch.float32)
    sched = FL.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    metric = torch.ones((), device=DEVICE)
    sched.step(metric)  # first upload outside the checked region (it is sync-free too)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(20):
                sched.step(metric)
                sched.lr_tensor.sum()  # reading lr_tensor never syncs
                sched.get_last_lr()  # tensor groups: device clones, no sync
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    launches = [e for e in prof.events() if "plateau_step" in e.name]
    assert len(launches) == 20
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.1 * 0.5**10, rel=1e-6)


def test_float_lrs_are_written_before_the_optimizer_reads_them():
    metrics = _sequence("plateaus")
    ours_opt, ref_opt = _optimizer(DEVICE, None), _optimizer(DEVICE, None)
    ours = FL.ReduceLROnPlateau(ours_opt, patience=1, factor=0.3, min_lr=MIN_LRS)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=1, factor=0.3, min_lr=MIN_LRS)
    device_metrics = torch.tensor(metrics, dtype=torch.float64, device=DEVICE)
    for k, m in enumerate(metrics):
        torch.cuda.set_sync_debug_mode("error")
        try:
            ours.step(device_metrics[k])  # stages the values, waits for nothing
        finally:
            torch.cuda.set_sync_debug_mode("default")
        ref.step(m)
        ours_opt.step()  # the step pre-hook writes the staged LRs into the groups: the one sync
        ref_opt.step()
        assert _floats(ours_opt) == _floats(ref_opt), f"step {k}"
        assert ours.get_last_lr() == ref.get_last_lr()


def test_host_and_device_metrics_alternate_like_torch():
    metrics = _sequence("noisy")
    ours_opt, ref_opt = _optimizer(DEVICE, torch.float32), _optimizer(DEVICE, torch.float32)
    ours = FL.ReduceLROnPlateau(ours_opt, patience=2, factor=0.5, cooldown=1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=2, factor=0.5, cooldown=1)
    for k, m in enumerate(metrics):
        m32 = float(np.float32(m))
        ours.step(torch.tensor(m32, device=DEVICE) if (k // 7) % 2 else m32)  # seven steps each way
        ref.step(m32)
        assert _floats(ours_opt) == _floats(ref_opt), f"step {k}"
    assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == (ref.best, ref.num_bad_epochs,
                                                                       ref.cooldown_counter)


def test_state_dict_after_device_steps_is_torchs():
    ours_opt, ref_opt = _optimizer(DEVICE, torch.float64), _optimizer(DEVICE, torch.float64)
    ours = FL.ReduceLROnPlateau(ours_opt, patience=1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=1)
    for m in _sequence("plateaus")[:60]:
        ours.step(torch.tensor(m, dtype=torch.float64, device=DEVICE))
        ref.step(m)
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert set(mine) == set(theirs)
    for key in theirs:
        if key == "_last_lr":
            assert [float(v) for v in mine[key]] == [float(v) for v in theirs[key]]
        else:
            assert mine[key] == theirs[key], key
    fresh = FL.ReduceLROnPlateau(_optimizer(DEVICE, torch.float64), patience=1)
    fresh.load_state_dict(theirs)
    assert fresh.best == ref.best and fresh.num_bad_epochs == ref.num_bad_epochs


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64])
def test_metric_dtypes(dtype):
    ours_opt, ref_opt = _optimizer(DEVICE, torch.float32), _optimizer(DEVICE, torch.float32)
    ours = FL.ReduceLROnPlateau(ours_opt, patience=1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=1)
    for m in [5, 4, 4, 4, 3, 3, 3, 3]:
        t = torch.tensor(m * 1.0009765625 if dtype != torch.int64 else m, device=DEVICE).to(dtype)
        ours.step(t)
        ref.step(t.cpu())
        assert _floats(ours_opt) == _floats(ref_opt)
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        ours.step(torch.ones(2, device=DEVICE))


def test_composed_on_device_matches_the_host_rule():
    schedule = S.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=100, end_value=0.05)
    metrics = _sequence("plateaus")
    dev_opt = _optimizer(DEVICE, torch.float64)
    host_opt = _optimizer("cpu", torch.float64)
    kwargs = dict(factor=0.5, patience=2, threshold=1e-3, min_lr=MIN_LRS, schedule=schedule)
    dev, host = FL.ReduceLROnPlateau(dev_opt, **kwargs), FL.ReduceLROnPlateau(host_opt, **kwargs)
    device_metrics = torch.tensor(metrics, dtype=torch.float64, device=DEVICE)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k, m in enumerate(metrics):
            if k % 3 == 2:
                dev.step(device_metrics[k])
                host.step(m)
            else:
                dev.step()
                host.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(dev.lr_tensor.cpu(), host.lr_tensor, rtol=1e-13, atol=0)
    assert dev.lr_factors == host.lr_factors and min(host.lr_factors) < 1.0
    torch.testing.assert_close(torch.stack([g["lr"] for g in dev_opt.param_groups]).cpu(),
                               torch.stack([g["lr"] for g in host_opt.param_groups]), rtol=1e-13, atol=0)


def test_live_table_gives_a_kernel_the_reduced_lr():
    """What a fused optimizer kernel does: evaluate the descriptors against the live table."""
    schedule = S.cosine_annealing(1.0, 50)
    opt = _optimizer(DEVICE, torch.float32)
    sched = FL.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=MIN_LRS, schedule=schedule)
    assert sched.live_lr_program() is None  # the host decides until a CUDA metric comes
    metric = torch.ones((), device=DEVICE)
    for _ in range(6):
        sched.step(metric)
    descriptors, table, step = sched.live_lr_program()
    out = torch.empty((len(LRS), 1), dtype=torch.float64, device=DEVICE)
    steps = torch.tensor([step], dtype=torch.float64, device=DEVICE)
    _C.cuda_evaluate_schedules(descriptors.data_ptr(), len(LRS), table.data_ptr(), steps.data_ptr(), 1,
                               out.data_ptr(), torch.cuda.current_stream().cuda_stream, DEVICE.index)
    torch.testing.assert_close(out[:, 0], sched.lr_tensor, rtol=1e-15, atol=0)
    want = [max(lo, base * schedule(6) * 0.5**5) for lo, base in zip(MIN_LRS, LRS)]
    torch.testing.assert_close(sched.lr_tensor.cpu(), torch.tensor(want, dtype=torch.float64), rtol=1e-13, atol=0)


def test_composed_with_an_inner_scheduler_on_device():
    ours_opt = _optimizer(DEVICE, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inner = FL.SequentialLR(ours_opt, [FL.LinearLR(ours_opt, 0.1, total_iters=5),
                                           FL.CosineAnnealingLR(ours_opt, 60)], [5])
        sched = FL.ReduceLROnPlateau(ours_opt, factor=0.5, patience=0, schedule=inner)
        for k in range(30):
            if k % 5 == 4:
                sched.step(torch.ones((), device=DEVICE))
            else:
                sched.step()
    factors = sched.lr_factors
    assert factors[0] < 1.0
    values = [s(30) * f for s, f in zip(inner.schedules, factors)]
    torch.testing.assert_close(torch.stack([g["lr"] for g in ours_opt.param_groups]).double().cpu(),
                               torch.tensor(values, dtype=torch.float64), rtol=1e-6, atol=0)
