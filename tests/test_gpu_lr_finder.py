"""GPU: lrfast.find_lr reads the loss on the host once every ``check_every`` steps and once
at the end, never per step (counted with torch's sync debug mode), and gives the CPU's
answer. The same checks run on the emulated device in CI: tests/test_lr_finder.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gpu_support import require_cuda

pytestmark = pytest.mark.gpu
require_cuda()

import lrfast  # noqa: E402
import lrfast.optim  # noqa: E402

DEVICE = torch.device("cuda")


def make_net(device) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(device)


def make_data(device, n: int = 12) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n * 16, 6, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).tanh()
    return [(x[i:i + 16].to(device), y[i:i + 16].to(device)) for i in range(0, n * 16, 16)]


def mse(model, batch):
    return torch.nn.functional.mse_loss(model(batch[0]), batch[1])


def syncs_during(fn) -> int:
    """How many synchronizing CUDA calls ``fn`` makes (torch's sync debug mode, "warn")."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, lrfast.optim.SGD], ids=["torch", "lrfast"])
def test_one_sync_per_check_not_per_step(optimizer_class):
    model = make_net(DEVICE)
    optimizer = optimizer_class(model.parameters(), lr=0.05, momentum=0.9)
    data = make_data(DEVICE)
    run = lambda n: lrfast.find_lr(model, optimizer, data, mse, min_lr=1e-4, max_lr=0.05, num_steps=n,  # noqa: E731
                                   check_every=10)
    run(30)  # first use: kernels loaded, buffers built
    short, long = syncs_during(lambda: run(30)), syncs_during(lambda: run(60))
    # 30 steps: checks after steps 10, 20 and the read at the end; 60 steps: 10 .. 50 and the end
    assert long - short == 3
    if optimizer_class is torch.optim.SGD:
        assert short == 3


def test_the_gpu_gives_the_cpu_answer():
    # a run that stays stable (no divergence, where float rounding would grow step by step)
    cpu = torch.device("cpu")
    results = []
    for device, optimizer_class in ((cpu, torch.optim.SGD), (DEVICE, lrfast.optim.SGD)):
        model = make_net(device)
        results.append(lrfast.find_lr(model, optimizer_class(model.parameters(), lr=0.05, momentum=0.9),
                                      make_data(device), mse, min_lr=1e-4, max_lr=0.05, num_steps=40))
    on_cpu, on_gpu = results
    assert on_gpu.stop_reason == on_cpu.stop_reason == "completed"
    np.testing.assert_array_equal(on_gpu.lrs, on_cpu.lrs)
    np.testing.assert_allclose(on_gpu.smoothed, on_cpu.smoothed, rtol=1e-4)
