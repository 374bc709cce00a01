"""Host cost of lrfast's CUDA path per training step, without a GPU (issue 13, item 5).

Times ``opt.step(); sched.step()`` for lrfast.optim.AdamW + CosineAnnealingLR on the
emulated device (NOTE [emulated device] in lrfast/_backend/device_api.py) with every kernel
launch replaced by a call that does nothing: what is left is the Python and table work a
GPU run pays on the host per step -- the launch-bound regime's ceiling. Steady state (after
warm-up steps), against the number of tensors and of param groups, with the grads

- ``kept``: the same grad tensors every step (``zero_grad(set_to_none=False)``);
- ``new``: new grad tensors every step (``zero_grad(set_to_none=True)``, torch's default):
  the planner reads the new pointers and the tensor table is re-uploaded.

The grads are swapped in from two pre-allocated sets, and that swapping is timed alone and
subtracted, so torch's allocation is not counted. The clock is the calling thread's CPU
time, so other processes on a shared machine do not inflate the numbers. Target (the
fused-CUDA issue): under 10 µs + 0.2 µs per tensor. Beside them, torch's fused AdamW and
CosineAnnealingLR on CPU tensors of 16 elements (``measure_torch``: its kernels cannot be
replaced by no-ops, so that column is host cost plus tiny kernels, an upper bound).

What the emulated device cannot show: on a GPU each upload is a pinned copy
(``pin_memory()`` plus ``copy_(non_blocking=True)``, a few µs) where the emulated device
clones, and ``torch.cuda.is_current_stream_capturing()`` is a call into the runtime; the
``new`` column is therefore a lower bound for the real one.

    python benchmarks/cuda_host_cost.py [--steps 2000] [--repeats 5] [--markdown FILE]
    python benchmarks/cuda_host_cost.py --breakdown --tensors 1 1000
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import torch

import lrfast.optim
from lrfast import lr_scheduler
from lrfast._backend import device_api


class NoLaunch:
    """``lrfast._C``'s launchers as calls that do nothing (the kernels' time excluded)."""

    def has_cuda(self) -> bool:
        return True

    def build_info(self) -> dict:
        return {"cuda_reason": ""}

    def __getattr__(self, name: str):
        if not name.startswith("cuda_"):
            raise AttributeError(name)
        return _no_launch


def _no_launch(*args, **kwargs) -> None:
    return None


def measure(n_tensors: int, n_groups: int, new_grads: bool, steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the host time (µs) of one opt.step(); sched.step(): the
    calling thread's CPU time (other processes on a shared machine do not count), the loop
    that only swaps the grads in measured alike and subtracted."""
    params = [torch.nn.Parameter(torch.zeros(16)) for _ in range(n_tensors)]
    groups = [{"params": params[g::n_groups], "lr": 1e-3 * (g + 1)} for g in range(n_groups)]
    opt = lrfast.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10**9)
    grad_sets = [[torch.ones(16) for _ in params] for _ in range(2)]
    for p, g in zip(params, grad_sets[0]):
        p.grad = g
    for _ in range(20):  # warm-up: buckets built, tables uploaded, the schedule counter in step
        opt.step()
        sched.step()

    def loop(step: bool) -> float:
        clock = time.thread_time
        t0 = clock()
        for i in range(steps):
            if new_grads:
                for p, g in zip(params, grad_sets[i & 1]):
                    p.grad = g
            if step:
                opt.step()
                sched.step()
        return clock() - t0

    results = []
    for _ in range(repeats):
        total = loop(True)
        if new_grads:
            total -= loop(False)
        results.append(total / steps * 1e6)
    return statistics.median(results)


def measure_torch(n_tensors: int, n_groups: int, steps: int, repeats: int) -> float:
    """The same loop for torch.optim.AdamW(fused=True) + torch's CosineAnnealingLR on CPU
    tensors of 16 elements (grads kept): torch's host cost per step *plus* its CPU kernels
    on 16 elements per tensor, which torch offers no way to skip -- an upper bound of the
    host work its fused GPU step pays."""
    params = [torch.nn.Parameter(torch.zeros(16)) for _ in range(n_tensors)]
    groups = [{"params": params[g::n_groups], "lr": 1e-3 * (g + 1)} for g in range(n_groups)]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10**9)
    for p in params:
        p.grad = torch.ones(16)
    for _ in range(20):
        opt.step()
        sched.step()
    results = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(steps):
            opt.step()
            sched.step()
        results.append((time.thread_time() - t0) / steps * 1e6)
    return statistics.median(results)


def breakdown(n_tensors: int, steps: int, repeats: int) -> dict[str, float]:
    """Where one step's host time goes (one group, grads kept): the loop whole, with the CUDA
    backend's ``step_bucket`` replaced by a no-op, and ``sched.step()`` alone."""
    from lrfast._backend import registry

    params = [torch.nn.Parameter(torch.zeros(16)) for _ in range(n_tensors)]
    opt = lrfast.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10**9)
    for p in params:
        p.grad = torch.ones(16)
    for _ in range(20):
        opt.step()
        sched.step()

    def timed(body) -> float:
        results = []
        for _ in range(repeats):
            t0 = time.thread_time()
            for _ in range(steps):
                body()
            results.append((time.thread_time() - t0) / steps * 1e6)
        return statistics.median(results)

    def both() -> None:
        opt.step()
        sched.step()

    whole = timed(both)
    saved = dict(registry._backends)
    registry._backends["cuda"] = lambda bucket: None
    try:
        without = timed(both)
    finally:
        registry._backends.clear()
        registry._backends.update(saved)
    alone = timed(sched.step)
    return {"opt.step(); sched.step()": whole, "cuda_optim.step_bucket": whole - without,
            "rest of opt.step()": without - alone, "sched.step()": alone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tensors", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--breakdown", action="store_true",
                        help="only split one step's time between the backend, the optimizer and the scheduler")
    args = parser.parse_args()
    if args.breakdown:
        with device_api.use(device_api.EmulatedDevice(kernels=NoLaunch())):
            for tensors in args.tensors:
                parts = breakdown(tensors, args.steps, args.repeats)
                print(f"tensors {tensors:5d}: " + "; ".join(f"{k} {v:.2f} µs" for k, v in parts.items()))
        return
    rows = []
    with device_api.use(device_api.EmulatedDevice(kernels=NoLaunch())):
        for groups in args.groups:
            for tensors in args.tensors:
                kept = measure(tensors, groups, False, args.steps, args.repeats)
                new = measure(tensors, groups, True, args.steps, args.repeats)
                theirs = measure_torch(tensors, groups, args.steps, args.repeats)
                target = 10 + 0.2 * tensors
                rows.append((tensors, groups, kept, new, theirs, target))
                print(f"tensors {tensors:5d} groups {groups}: kept {kept:8.2f} µs  new {new:8.2f} µs  "
                      f"torch fused AdamW (CPU) {theirs:8.2f} µs  target {target:7.1f} µs", flush=True)
    lines = [
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.steps} steps x {args.repeats} repeats "
        "(median of the repeats; CPU time of the calling thread)",
        "",
        "| tensors | groups | grads kept (µs/step) | new grads (µs/step) | torch fused AdamW, CPU, 16 elements "
        "(µs/step) | target 10 + 0.2·T (µs) | kept / target | new / target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tensors, groups, kept, new, theirs, target in rows:
        lines.append(f"| {tensors} | {groups} | {kept:.2f} | {new:.2f} | {theirs:.2f} | {target:.1f} | "
                     f"{kept / target:.2f} | {new / target:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
