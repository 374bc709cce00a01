"""Is the schedule free? ``opt.step(); sched.step()`` against ``opt.step()`` at a constant LR.

    python benchmarks/schedule_overhead.py [--rounds 30] [--steps-per-round 20] [--json out.json]

Two lrfast optimizers of the same class over the *same* parameter tensors (and the same
gradients): one with a constant LR, one with a bound CosineAnnealingLR stepped after
every step. Rounds alternate (A B A B ..., the order flipped every other pair) and each
pair gives one ratio, so a slow spell of the machine lands on both sides of a pair. Sets:
one tensor of 4M elements, and 200 tensors of 20,000 (4M in all). Reported: the median
overhead in percent with its interquartile range, and the host cost of a bound
``sched.step()`` alone in µs (median over many calls).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import torch

import lrfast.lr_scheduler
import lrfast.optim

SETS = ([4_194_304], [20_000] * 200)  # one big tensor; 200 tensors, 4M in all


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def pair(optimizer: str, sizes: list[int], t_max: int = 10**9):
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n, generator=g)) for n in sizes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    options = {"momentum": 0.9} if optimizer == "SGD" else {}
    constant = getattr(lrfast.optim, optimizer)(params, lr=1e-4, **options)
    scheduled = getattr(lrfast.optim, optimizer)(params, lr=1e-4, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = lrfast.lr_scheduler.CosineAnnealingLR(scheduled, T_max=t_max)
    return constant, scheduled, sched


def measure(optimizer: str, sizes: list[int], rounds: int, steps: int) -> dict:
    constant, scheduled, sched = pair(optimizer, sizes)

    def run_constant():
        for _ in range(steps):
            constant.step()

    def run_scheduled():
        for _ in range(steps):
            scheduled.step()
            sched.step()

    for fn in (run_constant, run_scheduled):  # compile / load, fill caches
        fn()
    ratios, a_times, b_times = [], [], []
    for r in range(rounds):
        order = (run_constant, run_scheduled) if r % 2 == 0 else (run_scheduled, run_constant)
        took = {}
        for fn in order:
            t0 = time.perf_counter()
            fn()
            took[fn] = (time.perf_counter() - t0) / steps
        a_times.append(took[run_constant])
        b_times.append(took[run_scheduled])
        ratios.append(took[run_scheduled] / took[run_constant])
    calls = 2000
    sched_only = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            sched.step()
        sched_only.append((time.perf_counter() - t0) / calls)
    lo, mid, hi = quartiles(ratios)
    return {"optimizer": optimizer, "numel": sum(sizes), "tensors": len(sizes),
            "constant_us": statistics.median(a_times) * 1e6, "scheduled_us": statistics.median(b_times) * 1e6,
            "overhead_pct": (mid - 1) * 100, "overhead_iqr_pct": ((lo - 1) * 100, (hi - 1) * 100),
            "sched_step_us": statistics.median(sched_only) * 1e6, "rounds": rounds, "steps_per_round": steps}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps-per-round", type=int, default=20)
    parser.add_argument("--optimizers", default="AdamW,SGD")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every tensor's size (tests: small)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.steps_per_round < 1 or args.scale <= 0:
        parser.error(f"--rounds must be >= 2, --steps-per-round >= 1 and --scale > 0, got {args.rounds}, "
                     f"{args.steps_per_round}, {args.scale}")
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.rounds} paired rounds of "
          f"{args.steps_per_round} steps; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| optimizer | set | constant LR µs/step | + bound cosine µs/step | overhead (median, IQR) "
          "| sched.step() alone µs |")
    print("|---|---|---:|---:|---:|---:|")
    results = []
    for optimizer in args.optimizers.split(","):
        for base in SETS:
            sizes = [max(1, int(n * args.scale)) for n in base]
            label = f"{len(sizes)} x {sizes[0]:,}"
            r = measure(optimizer, sizes, args.rounds, args.steps_per_round)
            results.append(r)
            lo, hi = r["overhead_iqr_pct"]
            print(f"| {optimizer} | {label} | {r['constant_us']:.1f} | {r['scheduled_us']:.1f} "
                  f"| {r['overhead_pct']:+.2f} % [{lo:+.2f}, {hi:+.2f}] | {r['sched_step_us']:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
