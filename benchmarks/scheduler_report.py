"""Side-by-side report of scheduler.step() host cost, torch vs lrfast, as a markdown table.

    python benchmarks/scheduler_report.py [--groups 1 10 100 1000] [--steps 200] [--repeats 7]

Both contenders run in the same process, interleaved per repeat; each cell is the
median over repeats of the mean µs per step over `--steps` steps.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
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
    args = parser.parse_args()
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
