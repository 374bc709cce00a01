"""Host cost of one lrfast CPU step over many small tensors in many groups.

    python benchmarks/host_cost_cpu.py [--groups 100] [--tensors 10] [--elements 16] [--profile]

``opt.step(); sched.step()`` (lrfast.optim.SGD with momentum, a bound CosineAnnealingLR) over
``groups`` param groups of ``tensors`` tensors of ``elements`` elements each. With tiny
tensors the kernel's share is negligible, so the time per step is the host work a step of
the same layout pays at any size: the per-group rows, the planner's per-parameter checks,
the scheduler. Prints µs per step for 3 repeats of ``--steps`` steps and ``sched.step()``
alone; ``--profile`` prints the top of a cProfile of the same steps instead (what to cut).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import warnings

import torch

import lrfast.optim
from lrfast import lr_scheduler


def build(groups: int, tensors: int, elements: int):
    """The step function and its scheduler, on ``groups`` x ``tensors`` tensors of ``elements``."""
    params = [torch.nn.Parameter(torch.randn(elements)) for _ in range(groups * tensors)]
    for p in params:
        p.grad = torch.randn(elements) * 1e-3
    param_groups = [{"params": params[i * tensors:(i + 1) * tensors], "lr": 1e-3 * (1 + i / groups)}
                    for i in range(groups)]
    opt = lrfast.optim.SGD(param_groups, lr=1e-3, momentum=0.9)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=1000, eta_min=1e-5)

    def step() -> None:
        opt.step()
        sched.step()
    return step, sched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--tensors", type=int, default=10, help="tensors per group")
    parser.add_argument("--elements", type=int, default=16, help="elements per tensor")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="cProfile the steps instead of timing them")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    step, sched = build(args.groups, args.tensors, args.elements)
    for _ in range(5):  # compile (cached) and settle the planner
        step()
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.steps):
            step()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)
        return
    print(f"{args.groups} groups x {args.tensors} tensors x {args.elements} elements, torch threads "
          f"{torch.get_num_threads()}")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        print(f"opt.step(); sched.step(): {(time.perf_counter() - t) / args.steps * 1e6:.1f} µs/step")
    t = time.perf_counter()
    for _ in range(args.steps):
        sched.step()
    print(f"sched.step() alone: {(time.perf_counter() - t) / args.steps * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
