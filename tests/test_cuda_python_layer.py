"""The Python CUDA layer -- lrfast.optim's CUDA backend, the scalar LR writer, lr_tensor,
the device ReduceLROnPlateau, graph capture -- run through the same Python code a GPU runs,
on the emulated device (NOTE [emulated device] in lrfast/_backend/device_api.py: the CPU
stands for the GPU, kernels from lrfast._C_emu) in its three thread orders, and on the real
GPU when there is one (benchmarks/gpu_check.sh). The assertions are the GPU tests' (parity
with torch's optimizers step by step, state dicts both ways, one launch per bucket, graph
replay = eager steps, GradScaler infs), on small tensors and few steps (the emulator runs
each CUDA thread as a coroutine), plus review findings 1, 2 and 4 of issue 13.
``LRFAST_TEST_EMU_MODULE=/path/to/_C_emu*.so`` runs the emulated variants against another
build of the kernels (as tests/test_emu_kernels.py does). docs/emulated-device.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import lrfast
import lrfast.lr_scheduler as FL
import lrfast.optim
from lrfast._backend import device_api

# the tests step schedulers without an optimizer step in between, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")

ORDERS = ("forward", "reversed", "shuffled")
SIZES = (1, 3, 1031, 4099)  # 4099: more than one block's ILP sweep, odd; 1 and 3: tails only
STEPS = 6
TOLERANCE = {torch.float32: dict(rtol=2e-6, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-12),
             torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2), torch.float16: dict(rtol=2e-3, atol=2e-3)}


@dataclass
class Device:
    """Where a test runs: the emulated device (CPU tensors) or the real GPU."""

    device: torch.device
    api: Any
    emulator: Any = None  # lrfast._C_emu on the emulated device

    @contextlib.contextmanager
    def count_launches(self, kernel: str):
        """Counts the kernel launches made inside the block into the yielded list's length
        (emulated: the emulator's counter; GPU: the profiler's kernel events named ``kernel``)."""
        found: list = []
        if self.emulator is not None:
            before = self.emulator.emu_launch_count()
            yield found
            found.extend([kernel] * (self.emulator.emu_launch_count() - before))
            return
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            yield found
            torch.cuda.synchronize()
        found.extend(e.name for e in prof.events() if kernel in e.name)

    def capture(self, steps):
        """A graph of ``steps()``, captured the way torch's recipe does on this device."""
        graph = self.api.graph()
        with self.api.capture(graph):
            steps()
        return graph


def _open(kind: str):
    if kind == "cuda":
        usable, why = lrfast.cuda_status()
        if not usable or not torch.cuda.is_available():
            pytest.skip(f"the real-GPU variant needs lrfast's CUDA kernels and a GPU: {why}")
        return device_api.CUDA, Device(torch.device("cuda", torch.cuda.current_device()), device_api.CUDA)
    path = os.environ.get("LRFAST_TEST_EMU_MODULE")  # another build, e.g. scripts/emu_mutations.sh's
    if path:
        spec = importlib.util.spec_from_file_location("lrfast._C_emu", path)
        _C_emu = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_C_emu)
    else:
        try:
            from lrfast import _C_emu
        except ImportError as exc:
            pytest.skip(f"lrfast._C_emu (the kernels on the CPU grid emulator) is not built here ({exc}); "
                        "LRFAST_EMU=1, the default, builds it")
    api = device_api.emulated(kind.split("-")[1], seed=1234, kernels=_C_emu)
    return api, Device(torch.device("cpu"), api, _C_emu)


# The real-GPU variants carry the gpu marker (-m "not gpu" deselects them; tests/conftest.py
# skips them with the reason where no GPU is usable).
_REAL_GPU = pytest.param("cuda", marks=pytest.mark.gpu)


@pytest.fixture(params=["emulated-forward", _REAL_GPU])
def dev(request):
    """The big parity tests: the emulator in forward order, and the real GPU."""
    api, device = _open(request.param)
    with device_api.use(api):
        yield device


@pytest.fixture(params=[*(f"emulated-{o}" for o in ORDERS), _REAL_GPU])
def dev3(request):
    """A representative set: all three thread orders, and the real GPU."""
    api, device = _open(request.param)
    with device_api.use(api):
        yield device


# -- helpers (the GPU tests', on a given device) ----------------------------------------------

def make_params(device, dtype, sizes=SIZES, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float32).to(device, dtype)) for n in sizes]


def grads_for(params, step):
    g = torch.Generator(device="cpu").manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.device, p.dtype) for p in params]


def split_groups(params, lrs=(1e-2, 3e-3)):
    """Two groups with different LRs (params alternate between them)."""
    return [{"params": params[0::2], "lr": lrs[0]}, {"params": params[1::2], "lr": lrs[1]}]


SCHEDULERS = {
    "none": None,
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=4, eta_min=1e-4),
    "onecycle": lambda m, o: m.OneCycleLR(o, max_lr=[1e-2, 3e-3], total_steps=STEPS),
    "warmup_cosine": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=2),
                                                     m.CosineAnnealingLR(o, T_max=4)], [2]),
}


def run(opt_cls, sched_name, module, device, dtype, kwargs, steps=STEPS, sizes=SIZES, fused_torch=False):
    params = make_params(device, dtype, sizes)
    opt = opt_cls(split_groups(params), **kwargs, **({"fused": True} if fused_torch else {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        factory = SCHEDULERS[sched_name]
        sched = factory(module, opt) if factory else None
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


ADAM_OPTIONS = [dict(), dict(weight_decay=0.1), dict(amsgrad=True), dict(maximize=True, weight_decay=0.01),
                dict(betas=(0.8, 0.95), eps=1e-6)]
SGD_OPTIONS = [dict(momentum=0.9), dict(momentum=0.9, nesterov=True), dict(momentum=0.9, dampening=0.1),
               dict(momentum=0.9, weight_decay=1e-3, maximize=True), dict()]
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


# -- lrfast.optim through the CUDA backend ------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", range(len(ADAM_OPTIONS)))
def test_adam_matches_torch(dev, options, dtype):
    kwargs = ADAM_OPTIONS[options]
    name = ("AdamW", "Adam")[options % 2]
    sched = sorted(SCHEDULERS)[(options + DTYPES.index(dtype)) % len(SCHEDULERS)]
    ours, _ = run(getattr(lrfast.optim, name), sched, FL, dev.device, dtype, kwargs)
    theirs, _ = run(getattr(torch.optim, name), sched, torch.optim.lr_scheduler, dev.device, dtype, kwargs,
                    fused_torch=True)
    assert_histories_close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("options", range(len(SGD_OPTIONS)))
def test_sgd_matches_torch(dev, options, dtype):
    kwargs = SGD_OPTIONS[options]
    sched = ("none", "cosine", "onecycle")[(options + dtype.itemsize) % 3]
    if sched == "onecycle" and not kwargs.get("momentum"):
        sched = "cosine"  # OneCycleLR cycles momentum, which needs SGD with momentum
    ours, _ = run(lrfast.optim.SGD, sched, FL, dev.device, dtype, kwargs)
    # torch's CPU fused SGD rounds bfloat16 differently from its CUDA one (up to 4 ulps off the
    # float32-math update at step 0); its single-tensor loop is within an ulp of it
    cpu_bf16 = dev.emulator is not None and dtype == torch.bfloat16
    theirs, _ = run(torch.optim.SGD, sched, torch.optim.lr_scheduler, dev.device, dtype,
                    {**kwargs, "foreach": False} if cpu_bf16 else kwargs, fused_torch=not cpu_bf16)
    assert_histories_close(ours, theirs, dtype)


@pytest.mark.parametrize("case", ["adamw-amsgrad-bf16-onecycle", "sgd-nesterov-f32-warmup", "adam-plain-f16-cosine"])
def test_representative_steps_in_every_thread_order(dev3, case):
    name, option, dtype, sched = case.split("-")
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32, "f16": torch.float16}[dtype]
    sched = {"onecycle": "onecycle", "warmup": "warmup_cosine", "cosine": "cosine"}[sched]
    kwargs = {"amsgrad": dict(amsgrad=True, weight_decay=0.1), "nesterov": dict(momentum=0.9, nesterov=True),
              "f16": {}}.get(option, {})
    cls_name = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD"}[name]
    ours, _ = run(getattr(lrfast.optim, cls_name), sched, FL, dev3.device, dtype, kwargs, sizes=(1, 3, 65537))
    theirs, _ = run(getattr(torch.optim, cls_name), sched, torch.optim.lr_scheduler, dev3.device, dtype, kwargs,
                    sizes=(1, 3, 65537), fused_torch=True)
    assert_histories_close(ours, theirs, dtype)


def test_more_tensors_than_one_torch_launch(dev):
    sizes = tuple(1 + 7 * (i % 5) for i in range(300))  # torch's fused Adam takes 36 tensors per launch
    ours, _ = run(lrfast.optim.AdamW, "cosine", FL, dev.device, torch.float32, {}, steps=3, sizes=sizes)
    theirs, _ = run(torch.optim.AdamW, "cosine", torch.optim.lr_scheduler, dev.device, torch.float32, {},
                    steps=3, sizes=sizes, fused_torch=True)
    assert_histories_close(ours, theirs, torch.float32)


def test_state_dict_moves_between_torch_and_lrfast_mid_run(dev3):
    params = make_params(dev3.device, torch.float32)
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    a = torch.optim.AdamW(split_groups(params), fused=True)
    b = torch.optim.AdamW(split_groups(ref), fused=True)

    def steps(opt, first, last):
        for step in range(first, last):
            for p, q, g in zip(params, ref, grads_for(params, step)):
                p.grad, q.grad = g, g.clone()
            opt.step()
            b.step()

    steps(a, 0, 3)
    ours = lrfast.optim.AdamW(split_groups(params))
    ours.load_state_dict(a.state_dict())
    steps(ours, 3, 6)
    back = torch.optim.AdamW(split_groups(params), fused=True)
    back.load_state_dict(ours.state_dict())
    steps(back, 6, 9)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6)


def test_one_launch_per_bucket(dev):
    params = make_params(dev.device, torch.float32, sizes=tuple(range(1, 40)))
    params += make_params(dev.device, torch.bfloat16, sizes=(5, 700))
    opt = lrfast.optim.AdamW(split_groups(params))
    sched = FL.OneCycleLR(opt, max_lr=[1e-2, 3e-3], total_steps=100)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()  # the first step builds and uploads the tables
    with dev.count_launches("fused_step_kernel") as launches:
        for _ in range(3):
            opt.step()
            sched.step()
    assert len(launches) == 3 * 2  # two buckets (float32, bfloat16), one launch each per step


def _graph_setup(device, scheduler=None):
    params = make_params(device, torch.float32)
    opt = lrfast.optim.AdamW(split_groups(params), weight_decay=0.1)
    sched = (scheduler or (lambda o: FL.CosineAnnealingLR(o, T_max=12, eta_min=1e-4)))(opt)
    for p, g in zip(params, grads_for(params, 0)):
        p.grad = g  # the same grads every step: a graph reads fixed addresses
    return params, opt, sched


def _graph_equals_eager(dev, scheduler=None, warmup=2, replays=6):
    eager_params, eager_opt, eager_sched = _graph_setup(dev.device, scheduler)
    for _ in range(warmup + replays):  # capturing runs nothing; each replay is one step
        eager_opt.step()
        eager_sched.step()
    params, opt, sched = _graph_setup(dev.device, scheduler)
    for _ in range(warmup):  # eager warm-up steps, as torch's graph recipe asks
        opt.step()
        sched.step()

    def step():
        opt.step()
        sched.step()

    graph = dev.capture(step)
    for _ in range(replays):
        graph.replay()
    dev.api.synchronize()
    for p, q in zip(params, eager_params):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_graph_replay_equals_eager_steps(dev3):
    _graph_equals_eager(dev3)


def test_grad_scaler_skips_steps_with_infs_like_torch(dev):
    def train(opt_cls, sched_module, fused):
        params = make_params(dev.device, torch.float32)
        opt = opt_cls(split_groups(params), **({"fused": True} if fused else {}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = sched_module.CosineAnnealingLR(opt, T_max=8)
        scaler = torch.amp.GradScaler(dev.device.type, init_scale=2.0**10, growth_interval=3)
        for step in range(8):
            for p, g in zip(params, grads_for(params, step)):
                g = scaler.scale(g)  # (also makes the scaler's scale tensor, on the grads' device)
                if step in (2, 5):
                    g[0] = float("inf")
                p.grad = g
            scaler.step(opt)
            scaler.update()
            sched.step()
        return params, [opt.state[p]["step"].item() for p in params]

    ours, our_steps = train(lrfast.optim.AdamW, FL, False)
    theirs, their_steps = train(torch.optim.AdamW, torch.optim.lr_scheduler, True)
    assert our_steps == their_steps == [6.0] * len(ours)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6)


# -- the scalar LR writer and lr_tensor ----------------------------------------------------------

def _torch_sgd(device, lr_dtype, lrs=(0.1, 0.05, 0.3)):
    params = [torch.nn.Parameter(torch.zeros(4, device=device)) for _ in lrs]
    groups = [{"params": [p], "lr": torch.tensor(v, dtype=lr_dtype, device=device) if lr_dtype else v}
              for p, v in zip(params, lrs)]
    return torch.optim.SGD(groups, lr=0.01)


@pytest.mark.parametrize("lr_dtype", [None, torch.float32, torch.float64])
def test_lr_tensor_and_tensor_lrs_written_in_one_launch_per_step(dev3, lr_dtype):
    opt = _torch_sgd(dev3.device, lr_dtype)
    sched = FL.CosineAnnealingLR(opt, T_max=7, eta_min=1e-4)
    lr = sched.lr_tensor
    assert lr.device == dev3.device and lr.dtype == torch.float64 and lr.shape == (3,)
    lr_objects = [g["lr"] for g in opt.param_groups]
    snapshots, group_values = [], []
    with dev3.count_launches("write_scheduled_values") as launches:
        for _ in range(9):
            sched.step()
            snapshots.append(lr.clone())
            group_values.append([g["lr"].clone() if lr_dtype else g["lr"] for g in opt.param_groups])
    assert len(launches) == 9  # one per step: tensor LRs and lr_tensor together
    for t, (snap, values) in enumerate(zip(snapshots, group_values), start=1):
        want = torch.tensor([s(t) for s in sched.schedules], dtype=torch.float64)
        torch.testing.assert_close(snap.cpu(), want, rtol=1e-15, atol=0)
        got = torch.tensor([float(v) for v in values], dtype=torch.float64)
        torch.testing.assert_close(got, want, rtol=1e-7 if lr_dtype == torch.float32 else 1e-15, atol=0)
    assert sched.lr_tensor is lr
    if lr_dtype is not None:
        assert all(g["lr"] is obj for g, obj in zip(opt.param_groups, lr_objects))  # written in place


def test_tensor_lr_writer_refuses_capture(dev):
    opt = _torch_sgd(dev.device, torch.float32)
    sched = FL.StepLR(opt, step_size=2)
    sched.step()
    with pytest.raises(RuntimeError, match="cannot be captured in a CUDA graph"):
        dev.capture(sched.step)


# -- ReduceLROnPlateau on the device -------------------------------------------------------------

def _plateau_metrics(n=40):
    rng = np.random.default_rng(11)
    k = np.arange(n)
    values = (1.0 / (1 + 0.05 * k) + rng.normal(0, 0.02, n)).tolist()
    for i in (3, 4, 20, 21):
        values[i] = math.nan
    return [round(1.0 - 0.1 * (i // 9), 6) if i % 2 else v for i, v in enumerate(values)]


@pytest.mark.parametrize("mode, threshold_mode, cooldown", [("min", "rel", 0), ("max", "abs", 2)])
@pytest.mark.parametrize("lr_dtype", [torch.float32, torch.float64])
def test_device_plateau_decides_as_torch(dev3, mode, threshold_mode, cooldown, lr_dtype):
    metrics = _plateau_metrics()
    if mode == "max":
        metrics = [3.0 - m for m in metrics]
    kwargs = dict(mode=mode, factor=0.5, patience=2, threshold=1e-3, threshold_mode=threshold_mode,
                  cooldown=cooldown, min_lr=[1e-3, 0.0, 0.05])
    ours_opt, ref_opt = _torch_sgd(dev3.device, lr_dtype), _torch_sgd(dev3.device, lr_dtype)
    ours = FL.ReduceLROnPlateau(ours_opt, **kwargs)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **kwargs)
    device_metrics = torch.tensor(metrics, dtype=torch.float32, device=dev3.device)
    with dev3.count_launches("plateau_step") as launches:
        for k, m in enumerate(metrics):
            ours.step(device_metrics[k])
            ref.step(float(np.float32(m)))  # the metric as the device holds it
            assert [float(g["lr"]) for g in ours_opt.param_groups] == [float(g["lr"]) for g in ref_opt.param_groups]
            assert ours.lr_tensor.tolist() == [float(g["lr"]) for g in ref_opt.param_groups], f"step {k}"
    assert len(launches) == len(metrics)
    assert (ours.best == ref.best) or (math.isnan(ours.best) and math.isnan(ref.best))
    assert (ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == \
        (ref.num_bad_epochs, ref.cooldown_counter, ref.last_epoch)


@pytest.mark.parametrize("lr_dtype", [None, torch.float32])
def test_device_plateau_and_float_metrics_alternate_like_torch(dev3, lr_dtype):
    """Seven CUDA metrics, then seven floats (the host step of NOTE [plateau host step], from
    the state the device hands back), and so on: torch's decisions throughout."""
    metrics = [float(np.float32(m)) for m in _plateau_metrics(56)]
    ours_opt, ref_opt = _torch_sgd(dev3.device, lr_dtype), _torch_sgd(dev3.device, lr_dtype)
    ours = FL.ReduceLROnPlateau(ours_opt, patience=2, factor=0.5, cooldown=1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=2, factor=0.5, cooldown=1)
    with dev3.count_launches("plateau_step") as launches:
        for k, m in enumerate(metrics):
            ours.step(torch.tensor(m, device=dev3.device) if (k // 7) % 2 else m)
            ref.step(m)
            ours_opt.step()  # float LRs the device decided reach the groups here
            ref_opt.step()
            assert [float(g["lr"]) for g in ours_opt.param_groups] == [float(g["lr"]) for g in ref_opt.param_groups]
            assert (ours.num_bad_epochs, ours.cooldown_counter) == (ref.num_bad_epochs, ref.cooldown_counter)
            assert ours.best == ref.best or (math.isnan(ours.best) and math.isnan(ref.best)), f"step {k}"
    assert len(launches) == len(metrics) // 2
    assert float(ours_opt.param_groups[0]["lr"]) < 0.1  # reductions happened along the way


def test_device_plateau_float_lrs_reach_the_optimizer(dev):
    metrics = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.2]
    ours_opt, ref_opt = _torch_sgd(dev.device, None), _torch_sgd(dev.device, None)
    ours = FL.ReduceLROnPlateau(ours_opt, patience=1, factor=0.3)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, patience=1, factor=0.3)
    device_metrics = torch.tensor(metrics, dtype=torch.float64, device=dev.device)
    for k, m in enumerate(metrics):
        ours.step(device_metrics[k])
        ref.step(m)
        ours_opt.step()  # the step pre-hook writes the staged LRs into the groups
        ref_opt.step()
        assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in ref_opt.param_groups], f"step {k}"
    assert ours.get_last_lr() == ref.get_last_lr()


# -- review findings of issue 13 ---------------------------------------------------------------

@pytest.mark.parametrize("make, why", [
    (lambda o: FL.LambdaLR(o, lambda t: 1.0 / (1 + t)), "horizon= covering the whole run"),
    (lambda o: FL.SequentialLR(o, [FL.LinearLR(o, 0.5, total_iters=2), FL.LambdaLR(o, lambda t: 0.99**t)], [2]),
     "horizon="),
    (lambda o: FL.ChainedScheduler([FL.SequentialLR(o, [FL.LinearLR(o, 0.5, total_iters=2),
                                                         FL.LambdaLR(o, lambda t: 0.99**t)], [2]),
                                    FL.ExponentialLR(o, 0.9)]), "horizon="),
    (lambda o: FL.MultiplicativeLR(o, lambda t: 0.9), "on the host.* LambdaLR\\(..., horizon=total_steps\\)"),
    (lambda o: FL.CyclicLR(o, 1e-3, 1e-2, step_size_up=3, scale_fn=lambda x: 0.5**x, cycle_momentum=False),
     "on the host"),
], ids=["LambdaLR", "SequentialLR-of-LambdaLR", "ChainedScheduler-of-SequentialLR-of-LambdaLR", "MultiplicativeLR",
        "CyclicLR-scale_fn"])
def test_finding_1_schedules_a_graph_would_freeze_refuse_capture(dev, make, why):
    _, opt, sched = _graph_setup(dev.device, make)
    opt.step()
    sched.step()
    with pytest.raises(RuntimeError, match="cannot capture this step in a CUDA graph: .*" + why):
        dev.capture(opt.step)


def test_finding_1_baked_schedule_with_horizon_replays_like_eager(dev3):
    _graph_equals_eager(dev3, lambda o: FL.LambdaLR(o, lambda t: 1.0 / (1 + 0.3 * t), horizon=16))


def test_finding_1_schedule_rebuilt_during_capture_is_refused_and_captured_buffers_stay(dev):
    # horizon=3: the table baked at construction covers steps [0, 3); reaching step 3 bakes [3, 6)
    _, opt, sched = _graph_setup(dev.device, lambda o: FL.LambdaLR(o, lambda t: 0.9**t, horizon=3))
    opt.step()
    sched.step()

    def step():
        opt.step()
        sched.step()

    graph = dev.capture(step)
    tables = opt._lrfast_planner.buckets[0].backend_cache
    captured_table = tables.schedules["lr"][2]
    step()  # eager; the scheduler reaches step 3 and bakes its next table on the host
    with pytest.raises(RuntimeError, match="schedule was rebuilt"):
        dev.capture(opt.step)  # capturing would have to upload the new table
    opt.step()  # eager: uploads the new table; the graph's table must stay allocated
    assert tables.schedules["lr"][2] is not captured_table
    assert any(entry[2] is captured_table for entry in tables.retired)
    graph.replay()


def test_finding_2_state_replaced_by_hand_is_used(dev3):
    params = make_params(dev3.device, torch.float32)
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ours, theirs = lrfast.optim.AdamW(split_groups(params)), torch.optim.AdamW(split_groups(ref))
    for step in range(5):
        for p, q, g in zip(params, ref, grads_for(params, step)):
            p.grad, q.grad = g, g.clone()
        if step == 2:
            # no refresh(): the kernel held the old tensors' addresses
            old = ours.state[params[0]]["exp_avg"]
            old_values = old.clone()
            for opt, p in ((ours, params[0]), (theirs, ref[0])):
                opt.state[p]["exp_avg"] = torch.full_like(p, 0.5)
            for opt, p in ((ours, params[1]), (theirs, ref[1])):
                state = opt.state[p]
                opt.state[p] = {"step": state["step"].clone(), "exp_avg": state["exp_avg"] * 2,
                                "exp_avg_sq": state["exp_avg_sq"].clone()}
        ours.step()
        theirs.step()
        for p, q in zip(params, ref):
            torch.testing.assert_close(p, q, rtol=2e-6, atol=2e-6, msg=lambda m, step=step: f"step {step}: {m}")
    torch.testing.assert_close(old, old_values, rtol=0, atol=0)  # nothing wrote into the replaced tensor
    for p, q in zip(params, ref):
        torch.testing.assert_close(ours.state[p]["exp_avg"], theirs.state[q]["exp_avg"], rtol=2e-6, atol=2e-6)


def test_finding_4_device_plateau_refuses_capture(dev3):
    opt = _torch_sgd(dev3.device, torch.float32)
    sched = FL.ReduceLROnPlateau(opt, patience=1)
    metric = torch.ones((), device=dev3.device)
    sched.step(metric)  # on the device from here on
    with pytest.raises(RuntimeError, match="ReduceLROnPlateau.step: cannot be captured in a CUDA graph"):
        dev3.capture(lambda: sched.step(metric))
    sched.step(metric * 2)
    sched.step(metric * 2)  # after the refusals, the device rule goes on: one reduction
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([0.01, 0.005, 0.03], rel=1e-6)


def test_emulation_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv(device_api.ENVIRONMENT_VARIABLE, raising=False)
    assert device_api._from_environment() is device_api.CUDA
    monkeypatch.setenv(device_api.ENVIRONMENT_VARIABLE, "0")
    assert device_api._from_environment() is device_api.CUDA
    monkeypatch.setenv(device_api.ENVIRONMENT_VARIABLE, "yes")
    with pytest.raises(ValueError, match="LRFAST_EMULATED_CUDA must be 1 .* got 'yes'"):
        device_api._from_environment()
    with device_api.use(device_api.CUDA):
        assert not device_api.is_device(torch.device("cpu"))


def test_scalar_writer_counter_mode_advances_in_graph_replays(dev3):
    from lrfast import schedules as S
    from lrfast._backend.cuda import ScalarWriter

    schedules = [S.cosine_annealing(0.1, 20), S.cosine_annealing(0.02, 7)]
    lrs = [torch.tensor(1.0, device=dev3.device), torch.tensor(1.0, dtype=torch.float64, device=dev3.device)]
    out = torch.zeros(2, dtype=torch.float64, device=dev3.device)
    writer = ScalarWriter(lrs, S.pack_many(schedules), out)
    counter = torch.zeros((), dtype=torch.int64, device=dev3.device)
    for _ in range(3):  # eager: counter += 1, then writes schedule(counter), as scheduler.step() does
        writer.write(0.0, counter=counter, increment=1)
    graph = dev3.capture(lambda: writer.write(0.0, counter=counter, increment=1))
    for t in range(4, 13):
        graph.replay()
        dev3.api.synchronize()
        want = [s(t) for s in schedules]
        assert out.tolist() == pytest.approx(want, rel=1e-15), f"replay at step {t}"
        assert [float(lrs[0]), float(lrs[1])] == pytest.approx(want, rel=1e-7)
    assert int(counter) == 12
    with pytest.raises(RuntimeError, match="cannot be captured in a CUDA graph"):
        dev3.capture(lambda: writer.write(5.0))  # a host step would be frozen into the graph


def test_graph_lr_step_advances_tensor_lrs_in_graph_replays(dev3):
    # the public door to the counter mode above (the bench's "torch foreach+graph" contender)
    from lrfast import schedules as S

    schedules = [S.cosine_annealing(0.1, 20), S.warmup_cosine_decay(0.0, 0.02, 3, 10)]
    lrs = [torch.tensor(1.0, device=dev3.device), torch.tensor(1.0, dtype=torch.float64, device=dev3.device)]
    counter = torch.zeros((), dtype=torch.int64, device=dev3.device)
    write = FL.graph_lr_step(lrs, schedules, counter)
    write()  # eager: step 1
    dev3.api.synchronize()
    assert int(counter) == 1 and [float(x) for x in lrs] == pytest.approx([s(1) for s in schedules], rel=1e-7)
    graph = dev3.capture(write)
    for t in range(2, 9):
        graph.replay()
        dev3.api.synchronize()
        assert [float(x) for x in lrs] == pytest.approx([s(t) for s in schedules], rel=1e-7), f"replay at step {t}"
    assert int(counter) == 8


def test_graph_lr_step_checks_its_arguments(dev):
    from lrfast import schedules as S

    lr, cosine = torch.tensor(0.1, device=dev.device), S.cosine_annealing(0.1, 20)
    counter = torch.zeros((), dtype=torch.int64, device=dev.device)
    with pytest.raises(ValueError, match="graph_lr_step: .* got 1 schedules for 2 LR tensors"):
        FL.graph_lr_step([lr, lr.clone()], [cosine], counter)
    with pytest.raises(TypeError, match=r"graph_lr_step: lrs must be torch.Tensors .* \['float'\]"):
        FL.graph_lr_step([0.1], [cosine], counter)
    with pytest.raises(TypeError, match="graph_lr_step: counter must be a one-element torch.int64 tensor .* got "
                                        "torch.float32 with 1 elements"):
        FL.graph_lr_step([lr], [cosine], torch.zeros((), device=dev.device))
    with pytest.raises(TypeError, match="counter must be .* got torch.int64 with 2 elements"):
        FL.graph_lr_step([lr], [cosine], torch.zeros(2, dtype=torch.int64, device=dev.device))
    assert float(lr) == pytest.approx(0.1)  # nothing written
