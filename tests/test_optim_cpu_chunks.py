"""CPU: the multi-tensor paths -- chunk map, shrunk chunks, many tensors, one call per
bucket -- against torch, with lrfast._config.CHUNK_SIZE shrunk to reach every path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lrfast.optim
from lrfast import _config, lr_scheduler
from lrfast._backend import registry
from lrfast._backend.cpu import chunk_map


def test_chunk_map_cuts_every_tensor():
    tensor, start = chunk_map(np.array([0, 1, 7, 8, 15]), 7)
    assert tensor.tolist() == [1, 2, 3, 3, 4, 4, 4]
    assert start.tolist() == [0, 0, 0, 7, 0, 7, 14]
    assert tensor.dtype == np.int32 and start.dtype == np.int64
    empty_t, empty_s = chunk_map(np.zeros(0, dtype=np.int64), 4)
    assert empty_t.size == empty_s.size == 0
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        chunk_map(np.array([3]), 0)


@pytest.fixture
def chunk_size(request, monkeypatch):
    monkeypatch.setattr(_config, "CHUNK_SIZE", request.param)
    return request.param


SIZES = (1, 13, 64, 1000, 3) + tuple(range(1, 301))  # 305 tensors


def make(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(n, generator=g).to(dtype)) for n in SIZES]


@pytest.mark.parametrize("chunk_size", [1, 7, 256], indirect=True)
@pytest.mark.parametrize("name,options", [("AdamW", dict(amsgrad=True)), ("Adam", dict(weight_decay=0.1)),
                                          ("SGD", dict(momentum=0.9, nesterov=True))])
def test_small_chunks_match_torch(chunk_size, name, options):
    ours, theirs = make(), make()
    groups = lambda ps: [{"params": ps[0::2], "lr": 1e-2}, {"params": ps[1::2], "lr": 3e-3}]  # noqa: E731
    a = getattr(lrfast.optim, name)(groups(ours), **options)
    reference_kind = {"foreach": False} if name == "SGD" else {"fused": True}
    b = getattr(torch.optim, name)(groups(theirs), **options, **reference_kind)
    sa = lr_scheduler.CosineAnnealingLR(a, T_max=5)
    sb = torch.optim.lr_scheduler.CosineAnnealingLR(b, T_max=5)
    for step in range(6):
        g = torch.Generator().manual_seed(step)
        for p, q in zip(ours, theirs):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        a.step()
        b.step()
        sa.step()
        sb.step()
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    tables = a._lrfast_planner.buckets[0].backend_cache
    assert tables.chunk_size == chunk_size
    assert tables.chunk_tensor.shape[0] == sum((n + chunk_size - 1) // chunk_size for n in SIZES)


def test_chunk_size_change_rebuilds_the_chunk_map(monkeypatch):
    ps = make()
    start = [p.detach().clone() for p in ps]
    opt = lrfast.optim.SGD(ps, lr=0.5)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    first = opt._lrfast_planner.buckets[0].backend_cache
    monkeypatch.setattr(_config, "CHUNK_SIZE", 5)
    opt.step()
    second = opt._lrfast_planner.buckets[0].backend_cache
    assert second is not first and second.chunk_size == 5
    for p, p0 in zip(ps, start):
        assert torch.equal(p.detach(), (p0 - 0.5) - 0.5)  # two steps of lr 0.5 on a grad of 1


def test_one_backend_call_per_dtype_bucket(monkeypatch):
    calls = []
    real = registry.backend_for(torch.device("cpu"))

    def counting(bucket):
        calls.append((bucket.dtype, len(bucket.params)))
        real(bucket)

    monkeypatch.setitem(registry._backends, "cpu", counting)
    params = make() + make(torch.bfloat16, seed=1) + make(torch.float64, seed=2)
    opt = lrfast.optim.AdamW([{"params": params[i::4], "lr": 1e-3 * (i + 1)} for i in range(4)])
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)
    for _ in range(3):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    n = len(SIZES)
    assert sorted(calls[:3], key=str) == sorted([(torch.float32, n), (torch.bfloat16, n), (torch.float64, n)], key=str)
    assert len(calls) == 9
