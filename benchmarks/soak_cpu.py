"""Soak: does a CPU optimizer step stay flat over a whole training run? (issue 14)

    python benchmarks/soak_cpu.py                                  # 1e6 steps, every set
    python benchmarks/soak_cpu.py --sets tiny --steps 1000000 --optimizers adamw --schedules cosine \\
        --contenders lrfast --json soak.json

For each set (tiny: 1 x 100 elements; medium: 1 x 262,144; many: 2,000 tensors of 64),
optimizer (AdamW; SGD with momentum 0.9), schedule (none: a constant LR; cosine: a bound
CosineAnnealingLR stepped after every step) and contender (lrfast; torch ``fused=True``),
run ``--steps`` steps on fixed gradients and report, per ``--block`` steps, the mean step
time and the process RSS. One line per run on stdout: the first and last block, the
slowest block and the RSS growth after the first block; ``--json`` keeps every block.
Runs are sequential in one process (one RSS, so growth is read per run); contenders of
one configuration run one after the other on identical data. ``--max-seconds`` stops a
run early (reported as such) so the shared development machine is not held for long.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import torch

import lrfast
import lrfast.lr_scheduler
import lrfast.optim

SETS = {"tiny": [100], "medium": [262_144], "many": [64] * 2000}
OPTIMIZERS = {"adamw": ("AdamW", {}), "sgd": ("SGD", {"momentum": 0.9})}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(contender: str, optimizer: str, sizes: list[int], schedule: str, total_steps: int):
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n, generator=g)) for n in sizes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    name, options = OPTIMIZERS[optimizer]
    if contender == "lrfast":
        opt = getattr(lrfast.optim, name)(params, lr=1e-3, **options)
        sched_module = lrfast.lr_scheduler
    else:
        opt = getattr(torch.optim, name)(params, lr=1e-3, fused=True, **options)
        sched_module = torch.optim.lr_scheduler
    sched = None
    if schedule == "cosine":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = sched_module.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return opt, sched


def soak(contender: str, optimizer: str, set_name: str, schedule: str, steps: int, block: int,
         max_seconds: float) -> dict:
    opt, sched = build(contender, optimizer, SETS[set_name], schedule, steps)
    opt.step()  # compile / load lrfast's kernel outside the blocks
    blocks = []
    began = time.perf_counter()
    done = 0
    while done < steps:
        n = min(block, steps - done)
        t0 = time.perf_counter()
        if sched is None:
            for _ in range(n):
                opt.step()
        else:
            for _ in range(n):
                opt.step()
                sched.step()
        elapsed = time.perf_counter() - t0
        done += n
        blocks.append({"steps": done, "us_per_step": elapsed / n * 1e6, "rss_mib": rss_mib()})
        if time.perf_counter() - began > max_seconds:
            break
    times = [b["us_per_step"] for b in blocks]
    return {"contender": contender, "optimizer": optimizer, "set": set_name, "schedule": schedule,
            "steps_run": done, "steps_asked": steps, "blocks": blocks, "first_us": times[0], "last_us": times[-1],
            "max_us": max(times), "min_us": min(times),
            "rss_growth_mib": blocks[-1]["rss_mib"] - blocks[0]["rss_mib"]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=10_000)
    parser.add_argument("--sets", default="tiny,medium,many")
    parser.add_argument("--optimizers", default="adamw,sgd")
    parser.add_argument("--schedules", default="none,cosine")
    parser.add_argument("--contenders", default="lrfast,torch")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="per run")
    parser.add_argument("--json", help="write every block here")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.block <= 0:
        parser.error(f"--steps and --block must be positive, got {args.steps} and {args.block}")
    pick = {"sets": SETS, "optimizers": OPTIMIZERS, "schedules": ("none", "cosine"),
            "contenders": ("lrfast", "torch")}
    chosen = {}
    for key, allowed in pick.items():
        chosen[key] = getattr(args, key).split(",")
        bad = [v for v in chosen[key] if v not in allowed]
        if bad:
            parser.error(f"--{key}: {bad} not among {list(allowed)}")
    from lrfast._backend import cpu_threads as threads

    header = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch": torch.__version__, "lrfast": lrfast.__version__, "threading_layer": threads.describe(),
              "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
    print("# " + "; ".join(f"{k}: {v}" for k, v in header.items()))
    print("| set | optimizer | schedule | contender | steps | first block µs | last block µs | slowest block µs "
          "| RSS growth MiB |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    results = []
    for set_name in chosen["sets"]:
        for optimizer in chosen["optimizers"]:
            for schedule in chosen["schedules"]:
                for contender in chosen["contenders"]:
                    r = soak(contender, optimizer, set_name, schedule, args.steps, args.block, args.max_seconds)
                    results.append(r)
                    steps = f"{r['steps_run']:,}" + ("" if r["steps_run"] == r["steps_asked"] else " (stopped)")
                    print(f"| {set_name} | {optimizer} | {schedule} | {contender} | {steps} | {r['first_us']:.1f} "
                          f"| {r['last_us']:.1f} | {r['max_us']:.1f} | {r['rss_growth_mib']:+.1f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "runs": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
