"""Side-by-side report of scheduler.step() host cost, torch vs lrfast, as a markdown table.

    python benchmarks/scheduler_report.py [--groups 1 10 100 1000] [--steps 200] [--repeats 7]
    python benchmarks/scheduler_report.py --patterns [--groups 1 10 100] [--steps 300] [--repeats 15]

Both contenders run in the same process, interleaved per repeat; each cell is the
median over repeats of the mean µs per step over `--steps` steps. ``--patterns``: the
bench's pattern tables instead (``python -m lrfast bench --only patterns``, at these group
counts, steps and repeats): composites, two schedulers stacked, a resume, a hand edit and
one scheduler of every class, on torch.optim.SGD and lrfast.optim.SGD, float LRs.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
import warnings

import torch
from scheduler_cases import CASES, lrfast_module, make_scheduler, stepper, torch_module


def time_steps(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--patterns", action="store_true", help="the bench's pattern tables instead")
    args = parser.parse_args()
    if args.patterns:
        from lrfast.tools import bench

        meta, rows = bench.run_patterns(groups=args.groups, rounds=args.repeats, steps=args.steps,
                                        show_progress=False, command="python " + " ".join(sys.argv))
        print(bench.markdown(meta, rows))
        return
    impls = {"torch": torch_module(), "lrfast": lrfast_module()}
    warnings.simplefilter("ignore")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch threads; "
          f"torch {torch.__version__}; {datetime.date.today()}")
    print()
    print("| scheduler | lr | " + " | ".join(f"{g} groups: torch / lrfast µs (ratio)" for g in args.groups) + " |")
    print("|---|---|" + "---|" * len(args.groups))
    for name in CASES:
        for lr_kind in ("float", "tensor"):
            cells = []
            for groups in args.groups:
                stepped = {k: stepper(make_scheduler(m, name, groups, lr_kind == "tensor")[1])
                           for k, m in impls.items()}
                samples = {k: [] for k in impls}
                for _ in range(args.repeats):
                    for k, step in stepped.items():
                        samples[k].append(time_steps(step, args.steps))
                t_torch, t_fast = (statistics.median(samples[k]) for k in ("torch", "lrfast"))
                cells.append(f"{t_torch:.1f} / {t_fast:.1f} ({t_torch / t_fast:.1f}x)")
            print(f"| {name} | {lr_kind} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
