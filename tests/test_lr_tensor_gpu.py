"""GPU: scheduler.lr_tensor on a CUDA optimizer -- written by the scalar writer's out buffer in
the same launch as the tensor LRs (or alone, for float LRs), never stale, never a sync."""

from __future__ import annotations

import pytest
import torch
from gpu_support import require_cuda

pytestmark = pytest.mark.gpu
require_cuda()

import lrfast.lr_scheduler as FL  # noqa: E402

DEVICE = torch.device("cuda", torch.cuda.current_device())


def _optimizer(lr_dtype: torch.dtype | None):
    params = [torch.nn.Parameter(torch.zeros(4, device=DEVICE)) for _ in range(3)]
    lrs = (0.1, 0.05, 0.3)
    groups = [{"params": [p], "lr": torch.tensor(v, dtype=lr_dtype, device=DEVICE) if lr_dtype else v}
              for p, v in zip(params, lrs)]
    return torch.optim.SGD(groups, lr=0.01)


@pytest.mark.parametrize("lr_dtype", [None, torch.float32, torch.float64])
def test_lr_tensor_follows_every_step_in_one_launch_without_sync(lr_dtype):
    opt = _optimizer(lr_dtype)
    sched = FL.CosineAnnealingLR(opt, T_max=17, eta_min=1e-4)
    lr = sched.lr_tensor
    assert lr.device == DEVICE and lr.dtype == torch.float64 and lr.shape == (3,)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            snapshots = []
            for _ in range(25):
                sched.step()
                snapshots.append(lr.clone())
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    launches = [e for e in prof.events() if "write_scheduled_values" in e.name]
    assert len(launches) == 25  # one per step, tensor LRs and lr_tensor together
    for t, snap in enumerate(snapshots, start=1):
        want = torch.tensor([s(t) for s in sched.schedules], dtype=torch.float64)
        torch.testing.assert_close(snap.cpu(), want, rtol=1e-15, atol=0)
    assert sched.lr_tensor is lr
    # get_last_lr() holds the host's evaluation (rounded to the LR's dtype): the same up to the
    # last bit of the device's cos
    last = torch.tensor([float(v) for v in sched.get_last_lr()], dtype=torch.float64)
    torch.testing.assert_close(lr.cpu(), last, rtol=1e-7 if lr_dtype == torch.float32 else 1e-15, atol=0)
