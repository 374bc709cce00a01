"""CPU optimizer step, lrfast vs torch, side by side: a markdown report.

    python benchmarks/optim_cpu_report.py [--quick] [--rounds N] [--sets NAME ...]

Contenders, on the same parameters and the same gradients, each running
``opt.step(); sched.step()`` with a CosineAnnealingLR (lrfast's scheduler for lrfast,
torch's for torch):
  lrfast        lrfast.optim.AdamW / SGD (Numba kernel; the schedule evaluated in it)
  torch fused   torch.optim.AdamW / SGD (fused=True)
  torch foreach torch.optim.AdamW / SGD (foreach=True)
  torch loop    torch.optim.AdamW / SGD (foreach=False)
SGD runs with momentum=0.9. Between steps every contender's gradients are replaced by
other tensor objects (as zero_grad(set_to_none=True) + backward do), outside the timing.

Method: paired, interleaved rounds -- each round times one step of every contender in
a rotated order -- and medians over rounds; "x fused" is the median over rounds of
torch fused's time / the contender's time. GB/s counts 28 bytes per element for AdamW
(read p, g, m, v; write p, m, v) and 20 for SGD with momentum (read p, g, b; write p,
b). The machine's copy and triad bandwidth (torch, float32, STREAM-counted 8 and 12 bytes
per element) are measured in the same run, between the sets, and the 1-minute load
average after each set shows whether other work shared the machine.

This module also defines the benchmark sets for benchmarks/test_bench_optim_cpu.py.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import time
import warnings

import torch

import lrfast
import lrfast.optim
from lrfast import lr_scheduler
from lrfast.tools.bench import case_of

BYTES_PER_ELEMENT = {"AdamW": 28, "SGD": 20}
M = 2**20


def sets(full: bool) -> dict[str, dict]:
    """name -> {"sizes": [numel per tensor], "groups": n, "label": what the set holds}. ``full``:
    the sizes of the report; else the same shapes scaled down (tensor counts kept) for quick
    runs. The names (``--sets``) are the full sets'; the label states the elements built, so a
    quick run's table never shows a full set's name beside a 16x smaller set."""
    s = 1 if full else 16  # scale-down factor of the element counts
    specs = {
        "1M x 1": {"sizes": [M // s], "groups": 1},
        "16M x 1": {"sizes": [16 * M // s], "groups": 1},
        "64M x 1": {"sizes": [64 * M // s], "groups": 1},
        "16M / 200": {"sizes": [16 * M // 200 // s] * 200, "groups": 1},
        "16M / 2,000": {"sizes": [16 * M // 2000 // s] * 2000, "groups": 1},
        "1M / 2,000": {"sizes": [max(M // 2000 // s, 1)] * 2000, "groups": 1},
        "100 groups x 10": {"sizes": [4096 // s] * 1000, "groups": 100},
    }
    for spec in specs.values():
        spec["label"] = case_of(spec["sizes"], spec["groups"]).name
    return specs


IMPLS = ("lrfast", "torch fused", "torch foreach", "torch loop")


class Contender:
    """One optimizer + scheduler over its own parameters, fed shared gradients."""

    def __init__(self, impl: str, optimizer: str, sizes: list[int], groups: int, grad_sets: list) -> None:
        g = torch.Generator().manual_seed(0)
        self.params = [torch.nn.Parameter(torch.randn(n, generator=g)) for n in sizes]
        per = len(self.params) // groups
        param_groups = [{"params": self.params[i * per:(i + 1) * per], "lr": 1e-3 * (1 + i / groups)}
                        for i in range(groups)]
        options = {"momentum": 0.9} if optimizer == "SGD" else {}
        if impl == "lrfast":
            self.opt = getattr(lrfast.optim, optimizer)(param_groups, lr=1e-3, **options)
            module = lr_scheduler
        else:
            kind = {"torch fused": {"fused": True}, "torch foreach": {"foreach": True},
                    "torch loop": {"foreach": False}}[impl]
            self.opt = getattr(torch.optim, optimizer)(param_groups, lr=1e-3, **options, **kind)
            module = torch.optim.lr_scheduler
        self.sched = module.CosineAnnealingLR(self.opt, T_max=1000, eta_min=1e-5)
        self.grad_sets = grad_sets
        self.turn = 0

    def swap_grads(self) -> None:
        """Other gradient tensors, as after zero_grad(set_to_none=True) and backward."""
        grads = self.grad_sets[self.turn % len(self.grad_sets)]
        self.turn += 1
        for p, grad in zip(self.params, grads):
            p.grad = grad

    def step(self) -> None:
        self.opt.step()
        self.sched.step()


def make_grad_sets(sizes: list[int], count: int = 2) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [[torch.randn(n, generator=g) * 1e-2 for n in sizes] for _ in range(count)]


def bandwidth(n: int = 64 * M, reps: int = 9) -> tuple[float, float]:
    """(copy, triad) GB/s, STREAM-counted (8 and 12 bytes per float32 element)."""
    a, b, c = torch.empty(n), torch.rand(n), torch.rand(n)
    copies, triads = [], []
    for _ in range(reps):
        t = time.perf_counter()
        a.copy_(b)
        copies.append(time.perf_counter() - t)
        t = time.perf_counter()
        torch.add(b, c, alpha=3.0, out=a)
        triads.append(time.perf_counter() - t)
    return 8 * n / statistics.median(copies) / 1e9, 12 * n / statistics.median(triads) / 1e9


def run_set(optimizer: str, spec: dict, rounds: int, impls=IMPLS) -> dict[str, dict]:
    """Paired interleaved rounds over ``impls``; per contender: median ms and ratio to fused."""
    grad_sets = make_grad_sets(spec["sizes"])
    contenders = {impl: Contender(impl, optimizer, spec["sizes"], spec["groups"], grad_sets) for impl in impls}
    for contender in contenders.values():  # warm-up: compile, allocate state, settle the allocator
        for _ in range(3):
            contender.swap_grads()
            contender.step()
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    order = list(impls)
    gc.disable()
    try:
        for r in range(rounds):
            rotated = order[r % len(order):] + order[:r % len(order)]
            for impl in rotated:
                contender = contenders[impl]
                contender.swap_grads()
                t = time.perf_counter()
                contender.step()
                times[impl].append(time.perf_counter() - t)
    finally:
        gc.enable()
    numel = sum(spec["sizes"])
    out = {}
    for impl in impls:
        ms = statistics.median(times[impl]) * 1e3
        ratio = statistics.median(f / t for f, t in zip(times["torch fused"], times[impl])) \
            if "torch fused" in times else float("nan")
        out[impl] = {"ms": ms, "gbps": BYTES_PER_ELEMENT[optimizer] * numel / (ms * 1e-3) / 1e9, "ratio": ratio}
    del contenders
    gc.collect()
    return out


def rounds_for(numel: int, base: int) -> int:
    """Fewer rounds for the big sets (the for-loop contenders take ~0.5 s a step there)."""
    return max(7, base if numel <= 16 * M else base // 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down sets (tensor counts kept)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--sets", nargs="+", default=None, help="names of sets to run (default: all)")
    parser.add_argument("--optimizers", nargs="+", default=["AdamW", "SGD"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    chosen = sets(full=not args.quick)
    if args.sets:
        chosen = {k: v for k, v in chosen.items() if k in args.sets}
    lrfast.warmup(optimizers=[o.lower() for o in args.optimizers], dtypes=(torch.float32,))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"- machine: {cpu}, {os.cpu_count()} logical CPUs; torch threads {torch.get_num_threads()}; "
          f"Numba threads {lrfast_numba_threads()}")
    print(f"- software: Python {platform.python_version()}, torch {torch.__version__}, {numba_version()}")
    print(f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}; rounds per set: {args.rounds} "
          f"(big sets: half), paired and interleaved; medians")
    print()
    bw = []
    for optimizer in args.optimizers:
        print(f"### {optimizer}" + (" (momentum=0.9)" if optimizer == "SGD" else "")
              + f" — {BYTES_PER_ELEMENT[optimizer]} B/element")
        print()
        print("| set | " + " | ".join(f"{impl} ms" for impl in IMPLS) + " | lrfast GB/s | fused GB/s "
              "| lrfast x fused | foreach x fused | loop x fused | copy / triad GB/s | load |")
        print("|---|" + "---|" * (len(IMPLS) + 7))
        for spec in chosen.values():
            numel = sum(spec["sizes"])
            result = run_set(optimizer, spec, rounds_for(numel, args.rounds))
            copy, triad = bandwidth(min(64 * M, max(numel, 16 * M)))
            bw.append((copy, triad))
            cells = [f"{result[impl]['ms']:.3f}" for impl in IMPLS]
            print(f"| {spec['label']} | " + " | ".join(cells)
                  + f" | {result['lrfast']['gbps']:.1f} | {result['torch fused']['gbps']:.1f}"
                  + f" | **{result['lrfast']['ratio']:.2f}** | {result['torch foreach']['ratio']:.2f}"
                  + f" | {result['torch loop']['ratio']:.2f} | {copy:.1f} / {triad:.1f} | {load_average()} |",
                  flush=True)
        print()
    copies = [c for c, _ in bw]
    triads = [t for _, t in bw]
    print(f"Bandwidth over the run (torch, float32): copy {statistics.median(copies):.1f} GB/s "
          f"(range {min(copies):.1f}-{max(copies):.1f}), triad {statistics.median(triads):.1f} GB/s "
          f"(range {min(triads):.1f}-{max(triads):.1f}).")


def load_average() -> str:
    """The machine's 1-minute load average after the set (other work on the machine)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def lrfast_numba_threads() -> str:
    try:
        import numba

        return str(numba.get_num_threads())
    except ImportError:
        return "n/a (no Numba)"


def numba_version() -> str:
    try:
        import numba

        return f"numba {numba.__version__}"
    except ImportError:
        return "no numba"


if __name__ == "__main__":
    main()
