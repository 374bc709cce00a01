"""The host-sync counter of the device API (NOTE [sync counting] in
lrfast/_backend/device_api.py): what it counts on the emulated device, and what it does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrfast._backend import device_api
from lrfast._scheduling_protocol import host_float

pytest.importorskip("lrfast._C_emu", reason="the emulated device needs lrfast._C_emu")


@pytest.fixture
def emulated():
    with device_api.use(device_api.emulated()) as api:
        yield api


def test_every_kind_of_device_to_host_read_counts_once(emulated):
    t = torch.tensor([1.5, 0.0])
    s = torch.tensor(3.0)
    reads = [
        ("item", lambda: s.item()),
        ("tolist", lambda: t.tolist()),
        ("numpy", lambda: t.numpy()),
        ("cpu", lambda: t.cpu()),
        ("__float__", lambda: float(s)),
        ("__int__", lambda: int(s)),
        ("__bool__", lambda: bool(s)),
        ("__index__", lambda: [0, 1, 2, 3][torch.tensor(2)]),
        ("__array__", lambda: np.asarray(t)),
        ("__format__", lambda: f"{s:.3f}"),
        ("__repr__", lambda: repr(s)),
        ("equal", lambda: torch.equal(t, t)),
        ("allclose", lambda: torch.allclose(t, t)),
        ("nonzero", lambda: t.nonzero()),
        ("masked_select", lambda: t.masked_select(t > 0)),
        ("unique", lambda: torch.unique(t)),
        ("copy_ to host", lambda: emulated.pinned_empty(2, torch.float32).copy_(t)),
        ("Event.synchronize", lambda: emulated.event().synchronize()),
        ("Stream.synchronize", lambda: emulated.current_stream(t.device).synchronize()),
        ("synchronize", lambda: emulated.synchronize()),
    ]
    for name, read in reads:
        with device_api.count_syncs() as syncs:
            read()
        assert (syncs.count, syncs.reads) == (1, [name]), name


def test_device_work_and_host_buffers_are_not_syncs(emulated):
    t = torch.randn(5)
    staging = emulated.pinned_empty(5, torch.float32)
    with device_api.count_syncs() as syncs:
        u = (t * 2 + 1).sum()
        t.add_(u)
        staging.copy_(t, non_blocking=True)  # an asynchronous copy: waited for by an event, later
        staging[:2].copy_(t[:2], non_blocking=True)
        emulated.event().record(emulated.current_stream(t.device))
        staging.numpy()  # host memory: reading it is no sync (the event's synchronize is)
        staging[1:].tolist()
        float(staging[0])
        assert host_float(t[:1], sync=False) != host_float(t[:1], sync=False)  # NaN: the kernel reads it
        host_float(0.5, sync=True)
    assert (syncs.count, syncs.reads) == (0, [])


def test_host_float_with_sync_counts(emulated):
    found_inf = torch.zeros(1)
    with device_api.count_syncs() as syncs:
        assert host_float(found_inf, sync=True) == 0.0
    assert syncs.reads == ["item"]


def test_nested_counters_each_see_a_read_once(emulated):
    t = torch.ones(1)
    with device_api.count_syncs() as outer:
        t.item()
        with device_api.count_syncs() as inner:
            t.item()
            float(t)
        t.tolist()
    assert (outer.count, inner.count) == (4, 2)
    assert outer.reads == ["item", "item", "__float__", "tolist"]
    # after the blocks nothing is counted any more
    t.item()
    assert outer.count == 4


def test_a_counter_counts_only_the_active_devices_tensors():
    t = torch.ones(1)
    with device_api.use(device_api.CUDA), device_api.count_syncs() as syncs:
        t.item()  # a CPU tensor is host memory on the real runtime
        float(t)
    assert syncs.count == 0
    with device_api.use(device_api.emulated()), device_api.count_syncs() as syncs:
        t.item()  # ... and device memory on the emulated one
    assert syncs.count == 1


def test_an_lrfast_step_with_a_bound_scheduler_makes_no_sync(emulated):
    """The counter on a real training step: an lrfast AdamW stepping through the CUDA path
    (one fused launch), its bound cosine scheduler writing the groups."""
    from lrfast import lr_scheduler, optim

    model = torch.nn.Linear(8, 4)
    opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    x = torch.randn(16, 8)

    def step():
        opt.zero_grad(set_to_none=False)
        model(x).square().mean().backward()
        opt.step()
        sched.step()

    for _ in range(3):  # the first steps build buckets and upload tables
        step()
    launches = emulated.kernels().emu_launch_count()
    with device_api.count_syncs() as syncs:
        for _ in range(5):
            step()
    assert emulated.kernels().emu_launch_count() > launches  # the kernels ran: the CUDA path was taken
    assert (syncs.count, syncs.reads) == (0, [])
