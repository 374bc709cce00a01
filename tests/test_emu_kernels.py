"""Every CUDA kernel, run on the CPU grid emulator (lrfast._C_emu, docs/emulator.md),
against a host reference, in each of the emulator's thread orders.

The launchers are called directly, as the Python CUDA layer calls them, with the
addresses of CPU tensors and NumPy arrays (device memory is host memory there); the
tables are laid out here with the slot numbers the module reports. Oracles: the host
evaluation of schedule.h (lrfast._C), torch's fused CPU optimizers, torch's
ReduceLROnPlateau, and torch's own float conversions.

``LRFAST_TEST_EMU_MODULE=/path/to/_C_emu.so`` runs these tests against another build of
the emulated module (scripts/emu_mutations.sh uses it to show that a broken kernel fails
here).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import threading
import zlib

import numpy as np
import pytest
import torch

from lrfast import _C
from lrfast import schedules as S


def _load_emulated_module():
    path = os.environ.get("LRFAST_TEST_EMU_MODULE")
    if path:
        spec = importlib.util.spec_from_file_location("lrfast._C_emu", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        from lrfast import _C_emu
    except ImportError as exc:
        pytest.skip(f"lrfast._C_emu was not built (LRFAST_EMU=0 or no ucontext.h): {exc}", allow_module_level=True)
    return _C_emu


E = _load_emulated_module()
FUSED = E.layout()["fused"]
TS, GS = FUSED["tensor"], FUSED["group"]
CHUNK = FUSED["chunk_size"]
CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
SGD, ADAM = 0, 1
COUNTER_NONE, COUNTER_EAGER, COUNTER_GRAPH = 0, 1, 2
LR_VALUE, LR_SCHEDULE, LR_TENSOR = 0, 1, 2
BIG = 2**31 + 5
# As tests/test_gpu_optim.py: torch's fused CPU step and the kernel round differently
# inside one step (lerp, addcdiv); the bound is a few ulps of the math type.
TOLERANCE = {torch.float32: dict(rtol=2e-6, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-12),
             torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2), torch.float16: dict(rtol=2e-3, atol=2e-3)}


@pytest.fixture(params=["forward", "reversed", "shuffled"], autouse=True)
def thread_order(request):
    """Every test runs in each thread order."""
    E.emu_set_thread_order(request.param, 20261201)
    assert E.emu_thread_order() == request.param
    return request.param


def addr(x) -> int:
    """Address of a tensor's or a NumPy array's data; 0 for None."""
    if x is None:
        return 0
    return x.data_ptr() if isinstance(x, torch.Tensor) else x.ctypes.data


# -- the emulator itself ---------------------------------------------------------------------


def test_thread_order_is_checked():
    with pytest.raises(ValueError, match="'backwards'"):
        E.emu_set_thread_order("backwards")
    E.emu_set_thread_order("shuffled", 7)
    assert (E.emu_thread_order(), E.emu_thread_order_seed()) == ("shuffled", 7)


def test_module_reports_the_emulated_device():
    info = E.build_info()
    assert info["emulated"] and info["cuda_built"] and E.has_cuda()
    assert info["cuda_archs"] == "emulated"
    assert E.cuda_device_count()[0] == 1
    assert not _C.build_info()["emulated"]
    before = E.emu_launch_count()
    out = np.zeros(1)
    _launch_writer(S.pack_many([S.constant(0.25)]), 1, None, None, out, None, 0, 0.0)
    assert E.emu_launch_count() == before + 1 and out[0] == 0.25


def test_a_barrier_some_threads_skip_raises_naming_them():
    with pytest.raises(RuntimeError, match=r"divergent_barrier_kernel.*__syncthreads\(\) number 1.*returned without"):
        E.emu_selftest_divergent_barrier(64, 2)
    E.emu_selftest_divergent_barrier(64, 0)  # every thread reaches it: no error


def test_shared_memory_is_shared_and_the_order_exposes_a_missing_barrier(thread_order):
    blocks, threads = 6, 128
    values = np.arange(blocks * threads, dtype=np.int32) * 7 + 1
    expected = values.reshape(blocks, threads).sum(axis=1)
    out = np.zeros(blocks, dtype=np.int32)
    E.emu_selftest_block_sums(values, out, blocks, threads, True)
    np.testing.assert_array_equal(out, expected)
    # Without the barrier, thread 0 sums before the others stored (forward: it runs first;
    # shuffled: almost surely not last); reversed runs it last, which hides the bug.
    stale = np.zeros(blocks, dtype=np.int32)
    E.emu_selftest_block_sums(values + 1, stale, blocks, threads, False)
    if thread_order == "reversed":
        np.testing.assert_array_equal(stale, expected + threads)
    else:
        assert not np.array_equal(stale, expected + threads)


def _float32_probes() -> np.ndarray:
    """Every finite half value's neighbourhood and ties, bfloat16 ties, subnormals,
    overflow thresholds, and random bit patterns."""
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    half_ties = ((halves[:-1].astype(np.float64) + halves[1:]) / 2).astype(np.float32)  # exact in float32
    rng = np.random.default_rng(23)
    random_bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    bf_ties = (rng.integers(0, 2**16, size=20_000, dtype=np.uint32) << 16 | 0x8000).view(np.float32)
    edges = np.array([65504.0, 65519.99, 65520.0, 65536.0, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-14, 1e-45,
                      3.3895314e38, 3.4028235e38, np.inf, 0.0], dtype=np.float32)
    probes = np.concatenate([halves, half_ties, np.nextafter(half_ties, np.float32(0)),
                             np.nextafter(half_ties, np.float32(np.inf)), random_bits, bf_ties, edges])
    probes = probes[~np.isnan(probes)]
    return np.concatenate([probes, -probes])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_narrow_conversions_round_like_the_device(dtype):
    fmt = 0 if dtype == torch.float16 else 1
    probes = _float32_probes()
    bits = np.empty(probes.shape, dtype=np.uint16)
    E.emu_selftest_float_to_narrow(probes, bits, fmt)
    # torch's CPU conversion from float32 rounds to nearest even, as the device does.
    expected = torch.from_numpy(probes).to(dtype).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bits, expected)
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    widened = np.empty(every.shape, dtype=np.float32)
    E.emu_selftest_narrow_to_float(every, widened, fmt)
    expected_wide = torch.from_numpy(every.view(np.int16)).view(dtype).float().numpy()
    np.testing.assert_array_equal(widened, expected_wide)  # NaN == NaN for this comparison
    nan_bits = np.empty(1, dtype=np.uint16)
    E.emu_selftest_float_to_narrow(np.array([np.nan], dtype=np.float32), nan_bits, fmt)
    assert nan_bits[0] == 0x7FFF  # the device's canonical NaN


# -- schedule evaluation -----------------------------------------------------------------------


def _schedules() -> list[S.Schedule]:
    return [
        S.constant(0.3),
        S.linear(1.0, 0.1, 1000, transition_begin=50),
        S.polynomial(1.0, 0.01, 1.7, 5_000),
        S.exponential_decay(1.0, 100, 0.5, staircase=True, end_value=1e-3),
        S.multistep_decay(0.1, [10, 1000, 1000, 2500], 0.5),
        S.piecewise_constant(1.0, {100: 0.5, 1000: 0.1, 5000: 0.3}),
        S.cosine_decay(1.0, 7000, alpha=0.01, exponent=1.5),
        S.warm_restarts(0.1, 7, 2, 1e-5),
        S.cyclic(0.01, 0.1, 50, mode="exp_range", gamma=0.9999),
        S.cyclic(0.01, 0.1, 50, scale_fn=lambda x: 1 / x, horizon=100),
        S.one_cycle(0.1, 3000, 0.2, "linear", three_phase=True),
        S.inverse_sqrt(1.0, timescale=3000, warmup_steps=1000),
        S.sqrt_decay(1.0, 0.01, 6000),
        S.from_values(np.linspace(1.0, 0.0, 777)),
        S.warmup_stable_decay(1.0, 100, 3000, 2000, decay_type="cosine"),
        S.chain(S.warmup_constant(0.0, 1.0, 50), S.step_decay(0.1, 1000, 0.9), S.cyclic(0.5, 1.5, 100)),
    ]


def _steps() -> np.ndarray:
    marks = [0, 1, 50, 100, 999, 1000, 2500, 3000, 5000, 7000, BIG, 2**32, 2**40, 2**53]
    near = [m + d for m in marks for d in (-1, 0, 1) if m + d >= 0]
    rng = np.random.default_rng(5)
    return np.concatenate([np.array(near, dtype=np.float64), rng.uniform(0.0, 9000.0, size=60),
                           np.array([BIG + 0.5, 1e300])])


def test_evaluate_schedules_equals_the_host_at_huge_steps():
    packed = S.pack_many(_schedules())
    steps = _steps()
    host = _C.evaluate(packed.descriptors, packed.table, steps)
    assert np.all(np.isfinite(host))
    out = np.full(host.shape, np.nan)
    n_groups, n_steps = host.shape
    # More evaluations than one block's threads: the grid-stride loop and several blocks run.
    assert n_groups * n_steps > 4 * 256
    E.cuda_evaluate_schedules(addr(packed.descriptors), n_groups, addr(packed.table), addr(steps), n_steps,
                              addr(out), 0, 0)
    # The same functions of schedule.h, compiled by the same compiler: bit for bit.
    np.testing.assert_array_equal(out, host)


def test_evaluate_schedules_with_no_work_launches_nothing():
    before = E.emu_launch_count()
    packed = S.pack_many([S.constant(1.0)])
    E.cuda_evaluate_schedules(addr(packed.descriptors), 1, addr(packed.table), 0, 0, 0, 0, 0)
    assert E.emu_launch_count() == before


# -- the scalar writer ----------------------------------------------------------------------------


def _launch_writer(packed, n_groups, targets, dtypes, out, counter, increment, host_step):
    table = packed.table if packed.table.size else np.zeros(1)
    E.cuda_write_scheduled_values(addr(packed.descriptors), addr(table), n_groups, addr(targets), addr(dtypes),
                                  addr(out), addr(counter), increment, host_step, 0, 0)


def _as_torch_stores(value: float, dtype: torch.dtype) -> torch.Tensor:
    """torch's fill_(double) into a tensor of `dtype`: half and bfloat16 from a float."""
    wide = torch.tensor(value, dtype=torch.float64)
    return wide.to(dtype) if dtype in (torch.float32, torch.float64) else wide.float().to(dtype)


def _writer_setup(n_groups: int):
    base = _schedules()
    packed = S.pack_many([base[g % len(base)] for g in range(n_groups)])
    dtypes_cycle = [torch.float32, torch.float64, torch.float16, torch.bfloat16, None]
    tensors = [torch.full((), -1.0, dtype=d) if d is not None else None
               for d in (dtypes_cycle[g % 5] for g in range(n_groups))]
    targets = np.array([addr(t) for t in tensors], dtype=np.uint64)
    dtypes = np.array([CODES[t.dtype] if t is not None else 0 for t in tensors], dtype=np.int32)
    return packed, tensors, targets, dtypes


def _check_written(packed, tensors, out, step):
    expected = _C.evaluate(packed.descriptors, packed.table, np.array([float(step)]))[:, 0]
    np.testing.assert_array_equal(out, expected)
    for g, t in enumerate(tensors):
        if t is not None:
            assert torch.equal(t, _as_torch_stores(float(expected[g]), t.dtype)), (g, t.dtype)


def test_scalar_writer_from_the_device_counter_for_300_groups():
    # 300 groups: more than the writer's 256 threads, so threads loop.
    packed, tensors, targets, dtypes = _writer_setup(300)
    counter = np.array([BIG - 2], dtype=np.int64)
    out = np.full(300, np.nan)
    for expected_step in (BIG - 1, BIG, BIG + 1):
        _launch_writer(packed, 300, targets, dtypes, out, counter, 1, -1.0)
        assert counter[0] == expected_step
        _check_written(packed, tensors, out, expected_step)
    _launch_writer(packed, 300, targets, dtypes, out, counter, 3, -1.0)
    assert counter[0] == BIG + 4
    _check_written(packed, tensors, out, BIG + 4)


def test_scalar_writer_from_a_host_step_leaves_no_counter():
    packed, tensors, targets, dtypes = _writer_setup(7)
    out = np.full(7, np.nan)
    for step in (0.0, 999.0, 1000.5, float(BIG)):
        _launch_writer(packed, 7, targets, dtypes, out, None, 1, step)
        _check_written(packed, tensors, out, step)
    # No out buffer: only the tensors are written.
    for t in tensors:
        if t is not None:
            t.fill_(-1)
    _launch_writer(packed, 7, targets, dtypes, None, None, 0, 5.0)
    expected = _C.evaluate(packed.descriptors, packed.table, np.array([5.0]))[:, 0]
    for g, t in enumerate(tensors):
        if t is not None:
            assert torch.equal(t, _as_torch_stores(float(expected[g]), t.dtype))


def test_scalar_writer_with_no_group_still_advances_the_counter():
    counter = np.array([41], dtype=np.int64)
    packed = S.pack_many([S.constant(1.0)])
    _launch_writer(packed, 0, None, None, None, counter, 1, 0.0)
    assert counter[0] == 42


# -- the fused optimizer ----------------------------------------------------------------------------


class Bucket:
    """One bucket's tensors and tables as lrfast/_backend/cuda_optim.py lays them out, on
    the CPU; ``step()`` is one cuda_fused_step launch."""

    def __init__(self, kind: str, params: list[torch.Tensor], group_of: list[int], groups: list[dict]):
        self.kind = kind
        self.algorithm = SGD if kind == "sgd" else ADAM
        self.dtype = params[0].dtype
        self.params = params
        self.grads = [torch.zeros_like(p) for p in params]
        self.states = [[torch.zeros_like(p) for _ in range(3)] for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]
        self.groups = groups
        T = len(params)
        table = np.zeros((T, FUSED["tensor_slots"]), dtype=np.int64)
        numels = np.array([p.numel() for p in params], dtype=np.int64)
        chunks = (numels + CHUNK - 1) // CHUNK
        for i, p in enumerate(params):
            table[i, TS["param"]] = addr(p)
            table[i, TS["grad"]] = addr(self.grads[i])
            table[i, TS["state0"]], table[i, TS["state1"]], table[i, TS["state2"]] = map(addr, self.states[i])
            table[i, TS["step"]] = addr(self.steps[i]) if kind != "sgd" else 0
            table[i, TS["numel"]] = numels[i]
            table[i, TS["group"]] = group_of[i]
            table[i, TS["flags"]] = 1 if kind == "sgd" else 0  # SGD: the buffer starts from the grad
        table[:, TS["chunk_start"]] = np.concatenate([[0], np.cumsum(chunks)[:-1]])
        self.tensors = table
        self.n_chunks = int(chunks.sum())
        self.group_table = np.zeros((len(groups), FUSED["group_slots"]))
        self.lr_tensors = np.zeros(len(groups), dtype=np.uint64)
        for g, h in enumerate(groups):
            row = self.group_table[g]
            row[GS["lr"]] = h.get("lr", 0.0)
            row[GS["beta1"]] = h.get("momentum", h.get("betas", (0.0, 0.0))[0])
            row[GS["beta2"]] = h.get("betas", (0.0, 0.0))[1]
            row[GS["eps"]] = h.get("eps", 0.0)
            row[GS["weight_decay"]] = h.get("weight_decay", 0.0)
            row[GS["dampening"]] = h.get("dampening", 0.0)
            row[GS["nesterov"]] = h.get("nesterov", False)
            row[GS["maximize"]] = h.get("maximize", False)
            row[GS["amsgrad"]] = h.get("amsgrad", False)
            row[GS["decoupled"]] = h.get("decoupled", False)
            row[GS["lr_source"]] = h.get("lr_source", LR_VALUE)
            row[GS["beta1_scheduled"]] = h.get("beta1_scheduled", False)
            if "lr_tensor" in h:
                row[GS["lr_tensor_dtype"]] = CODES[h["lr_tensor"].dtype]
                self.lr_tensors[g] = addr(h["lr_tensor"])
        self.ticket = np.zeros(1, dtype=np.uint32)
        self.counter = np.zeros(1, dtype=np.int64)

    def set_grads(self, grads: list[torch.Tensor]) -> None:
        for mine, g in zip(self.grads, grads):
            mine.copy_(g)

    def step(self, *, mode=COUNTER_NONE, counter_next=0, hold=False, grad_scale=None, found_inf=None,
             lr_schedule=None, beta1_schedule=None, n_chunks=None) -> None:
        lr_desc = lr_tab = beta_desc = beta_tab = None
        if lr_schedule is not None:
            lr_desc, lr_tab = lr_schedule.descriptors, lr_schedule.table if lr_schedule.table.size else np.zeros(1)
        if beta1_schedule is not None:
            beta_desc = beta1_schedule.descriptors
            beta_tab = beta1_schedule.table if beta1_schedule.table.size else np.zeros(1)
        chunks = self.n_chunks if n_chunks is None else n_chunks
        if self.algorithm == ADAM:
            chunks = max(chunks, 1)  # the step counts advance even for empty tensors
        E.cuda_fused_step(self.algorithm, CODES[self.dtype], addr(self.tensors), len(self.params), max(chunks, 1),
                          addr(self.group_table), addr(self.lr_tensors), addr(lr_desc), addr(lr_tab), addr(beta_desc),
                          addr(beta_tab), addr(self.counter), mode, counter_next, hold, addr(grad_scale),
                          addr(found_inf), addr(self.ticket), 0, 0)
        if self.kind == "sgd" and (found_inf is None or found_inf[0] == 0):
            self.tensors[:, TS["flags"]] = 0  # as cuda_optim.py clears momentum_fresh after the launch
        assert self.ticket[0] == 0, "the last block must reset the ticket"


def _sized_params(sizes, dtype, offset: bool, generator) -> list[torch.Tensor]:
    """Parameters of the given sizes; with offset, views one element into a larger buffer,
    so no pointer is aligned for the vector path."""
    out = []
    for n in sizes:
        base = torch.randn(n + 1, generator=generator).to(dtype)
        out.append(base[1:] if offset else base[:n].clone())
    return out


def _torch_optimizer(kind: str, params, groups, group_of):
    torch_groups = []
    for g, h in enumerate(groups):
        opts = {k: v for k, v in h.items() if k in ("lr", "momentum", "dampening", "nesterov", "weight_decay",
                                                    "maximize", "betas", "eps", "amsgrad")}
        torch_groups.append(dict(params=[p for p, gi in zip(params, group_of) if gi == g], **opts))
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    return cls(torch_groups, fused=True)


ADAM_OPTIONS = {
    "adam": ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)),
    "adam-wd-amsgrad": ("adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    "adam-maximize": ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05, maximize=True)),
    "adamw-amsgrad": ("adamw", dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, amsgrad=True,
                                    decoupled=True)),
    "adamw-maximize": ("adamw", dict(lr=2e-2, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.3, maximize=True,
                                     decoupled=True)),
}
SGD_OPTIONS = {
    "sgd": ("sgd", dict(lr=0.1)),
    "sgd-momentum-dampening-wd": ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    "sgd-nesterov": ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    "sgd-maximize": ("sgd", dict(lr=0.05, momentum=0.9, maximize=True)),
    "sgd-maximize-wd": ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, maximize=True, weight_decay=0.2)),
}
OPTIONS = {**ADAM_OPTIONS, **SGD_OPTIONS}
SIZES = [0, 1, 3, 8, 65537]  # 65537: a full aligned chunk (vector path) and a 1-element one
OFFSET_SIZES = [1, 3, 8, 70001]  # misaligned views: the scalar path over a whole chunk too


def _run_side_by_side(kind, hyper, params, group_of, n_steps, generator, dtype, **launch):
    groups = [dict(hyper, decoupled=kind == "adamw") for _ in range(max(group_of) + 1)]
    for h in groups:
        if kind != "adamw":
            h.pop("decoupled")
    bucket = Bucket("sgd" if kind == "sgd" else "adam", params, group_of, groups)
    # torch 2.13's fused CPU SGD is wrong for float16/bfloat16 past its first vector (off by
    # up to 0.4 from p - lr * g): the SGD oracle for those is torch's fused SGD in float32,
    # with parameters and momentum buffers rounded to the dtype after every step -- storage
    # in the dtype, math in float, as the kernel (and torch's CUDA fused SGD) computes.
    narrow_sgd = kind == "sgd" and dtype in (torch.float16, torch.bfloat16)
    theirs = [p.detach().clone().float() if narrow_sgd else p.detach().clone() for p in params]
    torch_groups = [{k: v for k, v in h.items() if k != "decoupled"} for h in groups]
    reference = _torch_optimizer(kind, theirs, torch_groups, group_of)
    for _ in range(n_steps):
        grads = [torch.randn(p.shape, generator=generator).to(dtype) for p in params]
        bucket.set_grads(grads)
        for q, g in zip(theirs, grads):
            q.grad = g.clone().to(q.dtype)
        bucket.step(**launch)
        reference.step()
        if narrow_sgd:
            with torch.no_grad():
                for q in theirs:
                    q.copy_(q.to(dtype))
                    buffer = reference.state[q].get("momentum_buffer")
                    if buffer is not None:
                        buffer.copy_(buffer.to(dtype))
        for i, (p, q) in enumerate(zip(params, theirs)):
            torch.testing.assert_close(p, q.to(dtype), **TOLERANCE[dtype], msg=lambda m, i=i: f"tensor {i}: {m}")
    return bucket, reference, theirs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(OPTIONS))
def test_fused_step_matches_torch_fused(name, dtype):
    kind, hyper = OPTIONS[name]
    # A fixed seed per case (str hashes change between processes): where a coupled weight decay
    # nearly cancels the gradient, torch's vectorised CPU step (FMA) and the kernel (no FMA
    # on the host) can differ by more than the tolerance; the fixed data has no such element.
    generator = torch.Generator().manual_seed(zlib.crc32(f"{name}-{dtype}".encode()))
    # Aligned buffers (vector path for whole packs) and views one element in (scalar path).
    params = _sized_params(SIZES, dtype, False, generator) + _sized_params(OFFSET_SIZES, dtype, True, generator)
    assert any(p.data_ptr() % 16 for p in params if p.numel())
    bucket, reference, theirs = _run_side_by_side(kind, hyper, params, [0] * len(params), 2, generator, dtype)
    for i, q in enumerate(theirs):
        state = reference.state[q]
        if kind == "sgd":
            if hyper.get("momentum", 0):
                torch.testing.assert_close(bucket.states[i][0], state["momentum_buffer"].to(dtype),
                                           **TOLERANCE[dtype])
        else:
            assert bucket.steps[i].item() == float(state["step"]) == 2.0
            torch.testing.assert_close(bucket.states[i][0], state["exp_avg"], **TOLERANCE[dtype])
            torch.testing.assert_close(bucket.states[i][1], state["exp_avg_sq"], **TOLERANCE[dtype])
            if hyper.get("amsgrad"):
                torch.testing.assert_close(bucket.states[i][2], state["max_exp_avg_sq"], **TOLERANCE[dtype])


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_fused_step_on_278011_elements(kind):
    hyper = OPTIONS["adamw-amsgrad" if kind == "adamw" else "sgd-nesterov"][1]
    generator = torch.Generator().manual_seed(11)
    params = _sized_params([278011], torch.float32, False, generator)
    assert (278011 + CHUNK - 1) // CHUNK == 5
    _run_side_by_side(kind, hyper, params, [0], 2, generator, torch.float32)


def test_fused_adam_with_no_elements_still_counts_its_steps():
    params = [torch.zeros(0), torch.zeros(0)]
    bucket = Bucket("adam", params, [0, 0], [dict(lr=0.1, betas=(0.9, 0.99), eps=1e-8)])
    assert bucket.n_chunks == 0
    bucket.step()
    bucket.step()
    assert [s.item() for s in bucket.steps] == [2.0, 2.0]


def _lr_beta_schedules():
    lr = S.pack_many([S.warmup_cosine_decay(0.0, 1e-2, 3, 40, end_value=1e-4), S.constant(0.0),
                      S.constant(0.0), S.step_decay(5e-3, 2, 0.5)])
    beta1 = S.pack_many([S.linear(0.95, 0.85, 10), S.constant(0.0), S.constant(0.0), S.constant(0.0)])
    return lr, beta1


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_300_tensors_in_groups_with_schedules_lr_tensors_and_counter_modes(kind):
    """Four groups: a scheduled LR and scheduled beta1/momentum; an LR held in a float32
    tensor; a plain LR; a scheduled LR. The first launch takes its schedule step from the
    group table and leaves the next step in the device counter (eager mode), the later
    ones read and advance the counter (graph mode), as cuda_optim.py launches them."""
    generator = torch.Generator().manual_seed(3)
    n = 310
    sizes = torch.randint(1, 6, (n,), generator=generator).tolist()
    sizes[7] = 70_000  # one tensor of two chunks among the small ones
    group_of = [i % 4 for i in range(n)]
    params = [torch.randn(s, generator=generator) for s in sizes]
    lr_tensor = torch.tensor(2.5e-3, dtype=torch.float32)
    lr_packed, beta_packed = _lr_beta_schedules()
    if kind == "sgd":
        base = [dict(momentum=0.9, weight_decay=1e-2), dict(momentum=0.5, nesterov=True), dict(momentum=0.0),
                dict(momentum=0.9, dampening=0.1)]
    else:
        base = [dict(betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, decoupled=True) for _ in range(4)]
        base[2]["amsgrad"] = True
    groups = [dict(base[0], lr_source=LR_SCHEDULE, beta1_scheduled=True),
              dict(base[1], lr_source=LR_TENSOR, lr_tensor=lr_tensor),
              dict(base[2], lr=4e-3), dict(base[3], lr_source=LR_SCHEDULE)]
    bucket = Bucket("sgd" if kind == "sgd" else "adam", params, group_of, groups)
    theirs = [p.detach().clone() for p in params]
    torch_groups = []
    for h in groups:
        t = {k: v for k, v in h.items() if k in ("momentum", "dampening", "nesterov", "weight_decay", "betas", "eps",
                                                 "amsgrad")}
        torch_groups.append(dict(t, lr=h.get("lr", 0.0)))
    reference = _torch_optimizer(kind, theirs, torch_groups, group_of)
    start = 2
    for k in range(3):
        t = start + k
        lrs = _C.evaluate(lr_packed.descriptors, lr_packed.table, np.array([float(t)]))[:, 0]
        beta1 = float(_C.evaluate(beta_packed.descriptors[:1], beta_packed.table, np.array([float(t)]))[0, 0])
        for g in (0, 3):
            reference.param_groups[g]["lr"] = float(lrs[g])
        reference.param_groups[1]["lr"] = float(lr_tensor)
        if kind == "sgd":
            reference.param_groups[0]["momentum"] = beta1
        else:
            reference.param_groups[0]["betas"] = (beta1, 0.99)
        grads = [torch.randn(p.shape, generator=generator) for p in params]
        bucket.set_grads(grads)
        for q, g in zip(theirs, grads):
            q.grad = g.clone()
        if k == 0:
            bucket.group_table[:, GS["schedule_step"]] = float(t)
            bucket.step(mode=COUNTER_EAGER, counter_next=t + 1, lr_schedule=lr_packed, beta1_schedule=beta_packed)
        else:
            bucket.group_table[:, GS["schedule_step"]] = -1.0  # graph mode must not read it
            bucket.step(mode=COUNTER_GRAPH, lr_schedule=lr_packed, beta1_schedule=beta_packed)
        assert bucket.counter[0] == t + 1
        reference.step()
        for i, (p, q) in enumerate(zip(params, theirs)):
            torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6, msg=lambda m, i=i, t=t: f"step {t}, tensor {i}: {m}")
        lr_tensor.mul_(0.5)  # read at every launch: the LR-tensor group follows it


# -- GradScaler and counter modes -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_grad_scaler_unscales_and_skips(kind):
    hyper = OPTIONS["adam-wd-amsgrad" if kind == "adam" else "sgd-momentum-dampening-wd"][1]
    generator = torch.Generator().manual_seed(9)
    params = _sized_params([5, 65537], torch.float32, False, generator)
    bucket = Bucket(kind, params, [0, 0], [hyper])
    theirs = [p.detach().clone() for p in params]
    reference = _torch_optimizer(kind, theirs, [hyper], [0, 0])
    scale = np.array([1024.0], dtype=np.float32)
    clear, found = np.zeros(1, dtype=np.float32), np.ones(1, dtype=np.float32)
    for step, found_inf in enumerate([clear, found, clear, found, found, clear]):
        grads = [torch.randn(p.shape, generator=generator) for p in params]
        scaled = [g * 1024.0 for g in grads]  # exact: a power of two
        bucket.set_grads(scaled)
        before = [p.clone() for p in params] + [s.clone() for states in bucket.states for s in states]
        steps_before = [s.item() for s in bucket.steps]
        bucket.step(grad_scale=scale, found_inf=found_inf)
        if found_inf[0]:
            after = [p for p in params] + [s for states in bucket.states for s in states]
            assert all(torch.equal(a, b) for a, b in zip(before, after)), f"skipped step {step} changed something"
            assert [s.item() for s in bucket.steps] == steps_before
            for mine, g in zip(bucket.grads, scaled):
                assert torch.equal(mine, g)  # a skipped step leaves the grads as they were
            continue
        for mine, g in zip(bucket.grads, grads):
            assert torch.equal(mine, g)  # unscaled in place, as torch's fused step leaves them
        for q, g in zip(theirs, grads):
            q.grad = g.clone()
        reference.step()
        for p, q in zip(params, theirs):
            torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6)
    if kind == "adam":
        assert [s.item() for s in bucket.steps] == [3.0, 3.0]


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_counter_modes(kind):
    params = [torch.randn(9), torch.randn(70_000)]
    bucket = Bucket(kind, params, [0, 1], [dict(lr=0.1, betas=(0.9, 0.99), eps=1e-8),
                                          dict(lr_source=LR_SCHEDULE, betas=(0.9, 0.99), eps=1e-8)])
    lr = S.pack_many([S.constant(0.0), S.linear(0.1, 0.0, 100)])
    found = np.ones(1, dtype=np.float32)
    clear = np.zeros(1, dtype=np.float32)
    bucket.counter[0] = 123
    bucket.step(lr_schedule=lr)  # kCounterNone: the counter is left alone
    assert bucket.counter[0] == 123
    bucket.step(mode=COUNTER_EAGER, counter_next=17, lr_schedule=lr)
    assert bucket.counter[0] == 17
    bucket.step(mode=COUNTER_GRAPH, lr_schedule=lr)
    assert bucket.counter[0] == 18
    bucket.step(mode=COUNTER_GRAPH, lr_schedule=lr, found_inf=found, hold=True)
    assert bucket.counter[0] == 18  # held on a skipped step
    bucket.step(mode=COUNTER_GRAPH, lr_schedule=lr, found_inf=found, hold=False)
    assert bucket.counter[0] == 19
    bucket.step(mode=COUNTER_GRAPH, lr_schedule=lr, found_inf=clear, hold=True)
    assert bucket.counter[0] == 20
    # The graph-mode step really read the counter: the scheduled group moved by lr(19).
    p1 = params[1].clone()
    g1 = bucket.grads[1].clone()
    bucket.group_table[:, GS["schedule_step"]] = 0.0  # would give lr(0) = 0.1 if it were read
    bucket.counter[0] = 99  # lr(99) = 0.001
    state = [s.clone() for s in bucket.states[1]]
    step = float(bucket.steps[1])
    bucket.step(mode=COUNTER_GRAPH, lr_schedule=lr)
    expected_lr = 0.1 * (1 - 99 / 100)
    if kind == "sgd":
        torch.testing.assert_close(params[1], p1 - expected_lr * g1, rtol=1e-6, atol=1e-7)
    else:
        m = state[0] + (g1 - state[0]) * 0.1
        v = state[1] * 0.99 + 0.01 * g1 * g1
        t = step + 1
        denom = v.sqrt() / math.sqrt(1 - 0.99**t) + 1e-8
        torch.testing.assert_close(params[1], p1 - expected_lr / (1 - 0.9**t) * m / denom, rtol=1e-5, atol=1e-7)


def test_launch_preconditions_raise():
    params = [torch.randn(3)]
    bucket = Bucket("adam", params, [0], [dict(lr=0.1, betas=(0.9, 0.99), eps=1e-8)])
    args = dict(tensors=addr(bucket.tensors), n_tensors=1, n_chunks=1, groups=addr(bucket.group_table),
                lr_tensors=0, lr_descriptors=0, lr_table=0, beta1_descriptors=0, beta1_table=0, step_counter=0,
                counter_mode=COUNTER_NONE, counter_next=0, hold_counter_on_skip=False, grad_scale=0, found_inf=0,
                ticket=addr(bucket.ticket), stream=0, device=0)
    with pytest.raises(ValueError, match="needs a ticket"):
        E.cuda_fused_step(ADAM, 0, **dict(args, ticket=0))
    with pytest.raises(ValueError, match="needs a step counter"):
        E.cuda_fused_step(ADAM, 0, **dict(args, counter_mode=COUNTER_GRAPH))
    with pytest.raises(ValueError, match="unsupported dtype code 7"):
        E.cuda_fused_step(ADAM, 7, **args)
    E.cuda_fused_step(ADAM, 0, **args)
    assert bucket.steps[0].item() == 1.0


def _adam_in_float32(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay,
                     step, decoupled, amsgrad):
    """optim_math.h's adam_update with fused_optim.cu's per-step scalars, every operation
    rounded to float32 (NumPy float32 arithmetic; the host compiler contracts nothing)."""
    f = np.float32
    step_size, bias_correction2_sqrt = f(lr / (1.0 - beta1**step)), f(math.sqrt(1.0 - beta2**step))
    if weight_decay:
        if decoupled:
            param = param * f(1.0 - lr * weight_decay)
        else:
            grad = grad + f(weight_decay) * param
    exp_avg = exp_avg + (grad - exp_avg) * f(1.0 - beta1)
    exp_avg_sq = exp_avg_sq * f(beta2) + f(1.0 - beta2) * grad * grad
    second = exp_avg_sq
    if amsgrad:
        max_exp_avg_sq = np.maximum(max_exp_avg_sq, exp_avg_sq)
        second = max_exp_avg_sq
    denom = np.sqrt(second) / bias_correction2_sqrt + f(eps)
    return param - step_size * (exp_avg / denom), exp_avg, exp_avg_sq, max_exp_avg_sq


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_float32_math_is_float_math_bit_for_bit(decoupled):
    """Review finding: an unqualified sqrt(float) in optim_math.h was the double ::sqrt on
    the host (the quotient then computed in double) and float on the device. Now float on
    both: the emulated kernel equals a float32 evaluation of the same formula exactly."""
    hyper = dict(lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=decoupled, amsgrad=True)
    generator = torch.Generator().manual_seed(31)
    param = torch.randn(65537, generator=generator)
    bucket = Bucket("adam", [param], [0], [dict(lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                                                eps=hyper["eps"], weight_decay=hyper["weight_decay"],
                                                decoupled=decoupled, amsgrad=True)])
    expected = [param.numpy().copy(), *(np.zeros(65537, dtype=np.float32) for _ in range(3))]
    for step in (1.0, 2.0, 3.0):
        grad = torch.randn(65537, generator=generator)
        bucket.set_grads([grad])
        bucket.step()
        expected = _adam_in_float32(expected[0], grad.numpy(), *expected[1:], step=step, **hyper)
        np.testing.assert_array_equal(param.numpy(), expected[0])
        np.testing.assert_array_equal(bucket.states[0][1].numpy(), expected[2])


def test_launchers_release_the_gil():
    """Review finding: the launchers held the GIL for the whole launch. Another Python
    thread must run while a (long) emulated launch is in progress."""
    params = [torch.randn(24 * CHUNK)]
    bucket = Bucket("adam", params, [0], [dict(lr=0.1, betas=(0.9, 0.99), eps=1e-8)])
    launcher = threading.Thread(target=bucket.step)
    saw_it_running = False
    launcher.start()
    while launcher.is_alive() and not saw_it_running:
        saw_it_running = E.emu_launch_in_progress()
    launcher.join()
    assert bucket.steps[0].item() == 1.0  # the launch did run, in the other thread
    assert saw_it_running, "no Python code ran during the launch: the GIL was held"


def test_a_driver_older_than_the_runtime_is_said_plainly():
    """Review finding: with static cudart from CUDA 13, a CUDA 12 driver made lrfast
    report only an error code. runtime.cu's message, on the emulated runtime (13.0)."""
    try:
        E.emu_set_driver_version(12040)
        count, why = E.cuda_device_count()
        assert count == 0
        assert "driver supports CUDA 12.4" in why and "CUDA 13.0 runtime" in why and "update the driver" in why
        E.emu_set_driver_version(0)
        assert E.cuda_device_count() == (0, "no NVIDIA driver was found (libcuda could not be loaded)")
    finally:
        E.emu_set_driver_version(-1)
    assert E.cuda_device_count() == (1, "")


# -- ReduceLROnPlateau ----------------------------------------------------------------------------


def _plateau_metrics() -> list[float]:
    rng = np.random.default_rng(17)
    return [1.0, 0.9, 0.95, 0.95, 0.9, 0.91, 0.92, 0.93, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4999,
            *rng.uniform(0.3, 0.6, size=30).tolist(),
            # a new best, then values within the relative threshold of it, above and below
            1.2, 1.2, 1.205, 1.21, 1.1999, 1.23, 1.225, 1.2, 1.24, 1.2399]


@pytest.mark.parametrize("mode,threshold_mode,cooldown", [("min", "rel", 0), ("max", "abs", 2), ("min", "abs", 1),
                                                          ("max", "rel", 1)])
def test_plateau_kernel_follows_torchs_rule(mode, threshold_mode, cooldown):
    from lrfast.lr_scheduler._plateau_host import HostProgram as _HostProgram
    from lrfast.lr_scheduler._plateau_host import _slot

    lrs = [0.1, 0.05, 1e-3, 0.2]
    min_lrs = [0.0, 0.01, 1e-3, 0.0]
    rule = dict(factor=0.5, threshold=1e-2, eps=1e-8, patience=2, cooldown=cooldown)
    dummy = [torch.zeros(1, requires_grad=True) for _ in lrs]
    opt = torch.optim.SGD([dict(params=[p], lr=lr) for p, lr in zip(dummy, lrs)], lr=1.0)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, threshold_mode=threshold_mode,
                                                        min_lr=min_lrs, **rule)
    program = _HostProgram([_slot(lr) for lr in lrs], min_lrs)
    layout = E.layout()["plateau"]
    state = np.array([math.inf if mode == "min" else -math.inf, 0.0, 0.0])
    table = program.table.copy()
    targets_t = [torch.tensor(lr, dtype=torch.float64) for lr in lrs[:3]]  # group 3 has no tensor
    targets = np.array([addr(t) for t in targets_t] + [0], dtype=np.uint64)
    dtypes = np.array([CODES[torch.float64]] * 4, dtype=np.int32)
    out = np.full(4, np.nan)
    for epoch, value in enumerate(_plateau_metrics(), start=1):
        metric = torch.tensor(value, dtype=torch.float32)
        E.cuda_plateau_step(addr(metric), CODES[torch.float32], addr(state), addr(program.descriptors), addr(table),
                            addr(program.min_lrs), 4, float(epoch), addr(targets), addr(dtypes), addr(out),
                            rule["factor"], rule["threshold"], rule["eps"], rule["patience"], rule["cooldown"],
                            layout[mode], layout[threshold_mode], False, 0, 0)
        theirs.step(float(metric))
        expected = [g["lr"] for g in opt.param_groups]
        assert out.tolist() == expected, f"epoch {epoch}"
        assert [float(t) for t in targets_t] == expected[:3]
        assert state[layout["best"]] == theirs.best
        assert state[layout["num_bad_epochs"]] == theirs.num_bad_epochs
        assert state[layout["cooldown_counter"]] == theirs.cooldown_counter
    assert min(out) < max(lrs)  # the sequence made it reduce


def test_plateau_kernel_composed_equals_the_host_twin():
    from lrfast.lr_scheduler._plateau_host import HostProgram as _HostProgram
    from lrfast.lr_scheduler._plateau_host import _slot

    base = [S.cosine_decay(0.1, 50), S.constant(0.05), S.step_decay(0.2, 5, 0.5)]
    min_lrs = [0.0, 1e-3, 0.0]
    # As ReduceLROnPlateau composes: the schedule times a live factor slot, floored at min_lr.
    program = _HostProgram([S.chain(b, _slot(1.0)).with_floor(m) for b, m in zip(base, min_lrs)], min_lrs)
    layout = E.layout()["plateau"]
    rule = dict(factor=0.3, threshold=1e-3, eps=1e-8, patience=1, cooldown=1, mode=layout["min"],
                threshold_mode=layout["rel"], composed=True)
    state_dev, state_host = np.array([math.inf, 0.0, 0.0]), np.array([math.inf, 0.0, 0.0])
    table_dev, table_host = program.table.copy(), program.table.copy()
    out, host_lrs = np.full(3, np.nan), np.empty(3)
    for epoch, value in enumerate(_plateau_metrics(), start=1):
        metric = np.array([value], dtype=np.float64)
        E.cuda_plateau_step(addr(metric), CODES[torch.float64], addr(state_dev), addr(program.descriptors),
                            addr(table_dev), addr(program.min_lrs), 3, float(epoch), 0, 0, addr(out), stream=0,
                            device=0, **rule)
        _C.plateau_step_host(state_host, table_host, program.descriptors, program.min_lrs, value, float(epoch),
                             lrs=host_lrs, **rule)
        np.testing.assert_array_equal(out, host_lrs)
        np.testing.assert_array_equal(state_dev, state_host)
        np.testing.assert_array_equal(table_dev, table_host)
    assert not np.array_equal(table_dev, program.table)  # some factor was reduced


# -- the kernels' contracts, pinned one by one -------------------------------------------------------

# Just above a tie of the format: through float32 it *is* the tie (float has too few bits to
# keep 2**-40), which rounds to even (down, to 1); from the double it would round up.
HALF_TIES = {torch.float16: (1 + 2**-11 + 2**-40, 1 + 2**-10), torch.bfloat16: (1 + 2**-8 + 2**-40, 1 + 2**-7)}


def _tie_values(dtype):
    tie, up = HALF_TIES[dtype]
    # the tie, its negative, and the same ties eight binades up and down
    return [tie, -tie, tie * 256, tie / 256], [1.0, -1.0, 256.0, 1 / 256], [up, -up, up * 256, up / 256]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_writer_stores_half_precision_through_float_as_torch_does(dtype):
    values, through_float, from_double = _tie_values(dtype)
    packed = S.pack_many([S.constant(v) for v in values])
    assert _C.evaluate(packed.descriptors, packed.table, np.array([0.0]))[:, 0].tolist() == values
    tensors = [torch.full((), 7.0, dtype=dtype) for _ in values]
    targets = np.array([addr(t) for t in tensors], dtype=np.uint64)
    dtypes = np.full(len(values), CODES[dtype], dtype=np.int32)
    _launch_writer(packed, len(values), targets, dtypes, None, None, 0, 0.0)
    for t, v, f, d in zip(tensors, values, through_float, from_double):
        assert torch.equal(t, _as_torch_stores(v, dtype)) and float(t) == f != d, (v, float(t))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_plateau_kernel_stores_half_precision_through_float_as_torch_does(dtype):
    from lrfast.lr_scheduler._plateau_host import HostProgram as _HostProgram
    from lrfast.lr_scheduler._plateau_host import _slot

    values, through_float, _ = _tie_values(dtype)
    # composed: lr = constant(v) * factor slot (1): no metric, so no decision; every LR is stored
    program = _HostProgram([S.chain(S.constant(v), _slot(1.0)) for v in values], [0.0] * len(values))
    layout = E.layout()["plateau"]
    tensors = [torch.full((), 7.0, dtype=dtype) for _ in values]
    targets = np.array([addr(t) for t in tensors], dtype=np.uint64)
    dtypes = np.full(len(values), CODES[dtype], dtype=np.int32)
    out = np.full(len(values), np.nan)
    state = np.array([math.inf, 0.0, 0.0])
    E.cuda_plateau_step(0, 0, addr(state), addr(program.descriptors), addr(program.table), addr(program.min_lrs),
                        len(values), 0.0, addr(targets), addr(dtypes), addr(out), 0.5, 1e-4, 1e-8, 0.0, 0.0,
                        layout["min"], layout["rel"], True, 0, 0)
    assert out.tolist() == values
    for t, v, f in zip(tensors, values, through_float):
        assert torch.equal(t, _as_torch_stores(v, dtype)) and float(t) == f, (v, float(t))


# Exact in every dtype, and read as the other 16-bit format it is another number: bfloat16
# 0.30078125 (0x3E9A) read as half is 1.650390625.
READ_VALUE = 0.30078125


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_the_plateau_metric_is_read_in_its_dtype(dtype):
    from lrfast.lr_scheduler._plateau_host import HostProgram as _HostProgram
    from lrfast.lr_scheduler._plateau_host import _slot

    program_state = np.array([math.inf, 0.0, 0.0])
    layout = E.layout()["plateau"]
    program = _HostProgram([_slot(0.1)], [0.0])
    out = np.full(1, np.nan)
    values = (READ_VALUE, READ_VALUE / 2, 4 * READ_VALUE, -READ_VALUE)
    for k, value in enumerate(values, start=1):
        metric = torch.tensor(value, dtype=dtype)
        assert float(metric) == value
        E.cuda_plateau_step(addr(metric), CODES[dtype], addr(program_state), addr(program.descriptors),
                            addr(program.table), addr(program.min_lrs), 1, float(k), 0, 0, addr(out), 0.5, 0.0, 1e-8,
                            10.0, 0.0, layout["min"], layout["abs"], False, 0, 0)
        assert program_state[layout["best"]] == min(values[:k]), (k, program_state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_the_fused_step_reads_an_lr_tensor_in_its_dtype(dtype):
    lr = torch.tensor(READ_VALUE, dtype=dtype)
    param = torch.randn(37, generator=torch.Generator().manual_seed(3))
    start = param.clone()
    bucket = Bucket("sgd", [param], [0], [dict(lr_source=LR_TENSOR, lr_tensor=lr)])
    grad = torch.randn(37, generator=torch.Generator().manual_seed(4))
    bucket.set_grads([grad])
    bucket.step()
    # SGD without momentum in float: p - float(lr) * g, two roundings, as torch computes it
    assert torch.equal(param, start - torch.tensor(READ_VALUE, dtype=torch.float32) * grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_plateau_kernel_reads_each_groups_lr_tensor_in_its_dtype(dtype):
    """The plain rule reduces the LR the group's tensor holds (torch's float(group["lr"]))."""
    from lrfast.lr_scheduler._plateau_host import HostProgram as _HostProgram
    from lrfast.lr_scheduler._plateau_host import _slot

    program = _HostProgram([_slot(0.9), _slot(0.9)], [0.0, 0.0])  # the slots are rewritten from the tensors
    layout = E.layout()["plateau"]
    tensors = [torch.tensor(READ_VALUE, dtype=dtype), torch.tensor(2 * READ_VALUE, dtype=torch.float64)]
    targets = np.array([addr(t) for t in tensors], dtype=np.uint64)
    dtypes = np.array([CODES[t.dtype] for t in tensors], dtype=np.int32)
    state = np.array([math.inf, 0.0, 0.0])
    out = np.full(2, np.nan)
    metric = np.array([1.0])
    for epoch in (1, 2):  # patience 0: the second, equal metric is a bad epoch, and reduces
        E.cuda_plateau_step(addr(metric), CODES[torch.float64], addr(state), addr(program.descriptors),
                            addr(program.table), addr(program.min_lrs), 2, float(epoch), addr(targets), addr(dtypes),
                            addr(out), 0.1, 0.0, 1e-8, 0.0, 0.0, layout["min"], layout["abs"], False, 0, 0)
    # torch: max(lr * factor, min_lr) from the LR as the tensor holds it, then stored in its dtype
    # (fill_), and the LR is what the tensor then holds
    stored = _as_torch_stores(READ_VALUE * 0.1, dtype)
    assert float(stored) != READ_VALUE * 0.1  # rounded: the out buffer must hold the stored value
    assert torch.equal(tensors[0], stored)
    assert out.tolist() == [float(stored), 2 * READ_VALUE * 0.1]
    assert program.table[program.slots].tolist() == out.tolist()


def test_evaluate_schedules_at_every_size_below_a_block_and_at_the_block_edges():
    """1..255 evaluations launch one block (a block count rounded down would be none), and
    the sizes around one and two blocks."""
    packed = S.pack_many([S.linear(1.0, 0.0, 300), S.cosine_decay(1.0, 300), S.step_decay(1.0, 7, 0.5)])
    sizes = [(1, n) for n in range(1, 256)] + [(2, n) for n in (127, 128, 129, 255, 256, 257)] + [(3, 171)]
    for n_groups, n_steps in sizes:
        steps = np.arange(n_steps, dtype=np.float64) * 1.5
        host = _C.evaluate(packed.descriptors[:n_groups], packed.table, steps)
        out = np.full((n_groups, n_steps), np.nan)
        E.cuda_evaluate_schedules(addr(packed.descriptors), n_groups, addr(packed.table), addr(steps), n_steps,
                                  addr(out), 0, 0)
        np.testing.assert_array_equal(out, host, err_msg=f"{n_groups} x {n_steps}")


def test_plateau_kernel_with_permuted_slots_and_a_floor_per_group():
    """The kernel's own contract: group g's slot is wherever its descriptor says (not g),
    and its floor is min_lrs[g]."""
    from lrfast.lr_scheduler._plateau_host import HostProgram as _HostProgram
    from lrfast.lr_scheduler._plateau_host import _slot

    lrs = [0.1, 0.05, 0.2, 0.08, 0.3]
    min_lrs = [0.03, 0.001, 0.07, 0.02, 0.005]
    perm = [3, 0, 4, 1, 2]  # group g's slot
    slot_values = [0.0] * 5
    for g, slot in enumerate(perm):
        slot_values[slot] = lrs[g]
    program = _HostProgram([_slot(v) for v in slot_values], [0.0] * 5)
    descriptors = np.ascontiguousarray(program.descriptors[perm])
    assert _C.plateau_slots(descriptors, program.table.shape[0]).tolist() == perm
    table, table_host = program.table.copy(), program.table.copy()
    floors = np.array(min_lrs)
    layout = E.layout()["plateau"]
    rule = dict(factor=0.5, threshold=1e-4, eps=1e-8, patience=0, cooldown=0, mode=layout["min"],
                threshold_mode=layout["rel"], composed=False)
    state, state_host = np.array([math.inf, 0.0, 0.0]), np.array([math.inf, 0.0, 0.0])
    targets_t = [torch.tensor(lr, dtype=torch.float64) for lr in lrs]
    targets = np.array([addr(t) for t in targets_t], dtype=np.uint64)
    dtypes = np.full(5, CODES[torch.float64], dtype=np.int32)
    dummy = [torch.zeros(1, requires_grad=True) for _ in lrs]
    opt = torch.optim.SGD([dict(params=[p], lr=lr) for p, lr in zip(dummy, lrs)], lr=1.0)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=0, threshold=1e-4,
                                                        min_lr=min_lrs, eps=1e-8)
    out, host_lrs = np.full(5, np.nan), np.empty(5)
    for epoch in range(1, 9):
        metric = np.array([1.0])  # never better after the first: a reduction at every later step
        E.cuda_plateau_step(addr(metric), CODES[torch.float64], addr(state), addr(descriptors), addr(table),
                            addr(floors), 5, float(epoch), addr(targets), addr(dtypes), addr(out), stream=0, device=0,
                            **rule)
        _C.plateau_step_host(state_host, table_host, descriptors, floors, 1.0, float(epoch), lrs=host_lrs, **rule)
        theirs.step(1.0)
        expected = [g["lr"] for g in opt.param_groups]
        assert out.tolist() == expected == host_lrs.tolist(), f"epoch {epoch}"
        assert [float(t) for t in targets_t] == expected
        assert table[perm].tolist() == expected  # each group's LR in its own slot
    assert out.tolist() == min_lrs  # every group ended on its own floor


# -- out-of-bounds accesses ---------------------------------------------------------------------------


@contextlib.contextmanager
def _allocations(*buffers):
    """The emulator bounds every kernel array inside these buffers by their ends."""
    try:
        for b in buffers:
            E.emu_register_allocation(addr(b), b.numel() * b.element_size() if isinstance(b, torch.Tensor)
                                      else b.nbytes)
        assert E.emu_allocation_count() == len(buffers)
        yield
    finally:
        E.emu_clear_allocations()
    assert E.emu_allocation_count() == 0


# told of one more element: the scalar path (1001 % 4 != 0); of four more: the vector path,
# whose first pack past the end is elements 1000..1003, read by thread 1000 / 4
@pytest.mark.parametrize("extra,thread,index", [(1, 1000 % 512, "1000"), (4, 250, "1000..1003")])
def test_a_launch_told_of_more_elements_than_its_buffer_holds_fails_naming_the_access(extra, thread, index):
    n = 1000
    memory = torch.zeros(n + 8)
    param = memory[:n]  # the elements after the buffer are memory the kernel must not touch
    bucket = Bucket("sgd", [param], [0], [dict(lr=0.1)])
    bucket.set_grads([torch.ones(n)])
    bucket.tensors[0, TS["numel"]] = n + extra  # more than the buffers hold
    with _allocations(param, bucket.grads[0], *bucket.states[0]):
        with pytest.raises(RuntimeError, match=rf"kernel fused_step_kernel<T, fused::kSgd>, block \(0,0,0\), "
                                               rf"thread \({thread},0,0\): out-of-bounds access to "
                                               rf"param\[{index}\] \(its registered allocation holds {n} "
                                               rf"elements\)"):
            E.cuda_fused_step(SGD, CODES[torch.float32], addr(bucket.tensors), 1, 1, addr(bucket.group_table), 0, 0,
                              0, 0, 0, 0, COUNTER_NONE, 0, False, 0, 0, 0, 0, 0)
    assert torch.equal(memory[n:], torch.zeros(8))
    # the block's in-bounds elements were stepped (the block runs to its end); the emulator is
    # left clean: the same launch with the right size runs
    torch.testing.assert_close(param, torch.full((n,), -0.1))
    bucket.tensors[0, TS["numel"]] = n
    bucket.step()
    torch.testing.assert_close(param, torch.full((n,), -0.2))


def test_a_write_one_past_the_end_fails_naming_the_kernel_and_index():
    packed = S.pack_many([S.constant(0.5)] * 7)
    out = np.full(6, np.nan)  # one short of the 7 groups the launch is told of
    with _allocations(out):
        with pytest.raises(RuntimeError, match=r"kernel write_scheduled_values_kernel, block \(0,0,0\), thread "
                                               r"\(6,0,0\): out-of-bounds access to out\[6\] \(its registered "
                                               r"allocation holds 6 elements\); the access was not made"):
            _launch_writer(packed, 7, None, None, out, None, 0, 0.0)
    assert out.tolist() == [0.5] * 6


def test_a_null_buffer_the_kernel_reads_fails_naming_it():
    packed = S.pack_many([S.constant(0.5)])
    out = np.full(3, np.nan)
    message = r"kernel evaluate_schedules_kernel.*steps\[[012]\] \(it is a null pointer\)"
    with pytest.raises(RuntimeError, match=message):
        E.cuda_evaluate_schedules(addr(packed.descriptors), 1, addr(packed.table), 0, 3, addr(out), 0, 0)
