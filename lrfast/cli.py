"""``python -m lrfast``: demo, info, plot.

    python -m lrfast demo                      # the StepLR example, then step() costs vs torch
    python -m lrfast info                      # what was built and what is usable here
    python -m lrfast bench --quick --json b.json --plot b.png   # lrfast vs torch on this machine
    python -m lrfast plot "cosine_decay(1.0, 1000)" "warmup_constant(0.0, 1.0, 100)" -o lr.png
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence

__all__ = ["main", "parse_schedule"]


# -- demo ------------------------------------------------------------------------------

def demo_training(print_fn: Callable[[str], None] = print) -> list[float]:
    """The README example: nn.Linear(10, 1), SGD(lr=0.1), StepLR(step_size=10, gamma=0.9), 30 epochs."""
    import torch
    from torch import nn, optim

    from . import lr_scheduler

    torch.manual_seed(0)
    model = nn.Linear(10, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.9)
    inputs, targets = torch.randn(64, 10), torch.randn(64, 1)
    lrs = []
    for epoch in range(30):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
        print_fn(f"Epoch {epoch + 1}: Learning Rate = {scheduler.get_last_lr()[0]:.5f}")
    return lrs


_DEMO_SCHEDULERS: dict[str, Callable] = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=30, gamma=0.5),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=100_000),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda t: 0.999**t),
}


def time_scheduler_step(module, make, groups: int, steps: int = 300, repeats: int = 5) -> float:
    """Median µs per ``scheduler.step()`` over ``repeats`` runs of ``steps`` steps."""
    import torch

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": 0.01 * (1 + i % 7)} for i, p in enumerate(params)],
                          lr=0.01, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(module, opt)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                sched.step()
            samples.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(samples)


def demo_costs(group_counts: Sequence[int] = (1, 10, 100), print_fn: Callable[[str], None] = print) -> list[dict]:
    import torch.optim.lr_scheduler as torch_sched

    from . import lr_scheduler

    rows = []
    print_fn("")
    print_fn("scheduler.step() host cost, µs per call (median of 5 x 300 calls; torch and lrfast in one run)")
    print_fn(f"{'scheduler':<20} {'groups':>6} {'torch':>9} {'lrfast':>9} {'speedup':>8}")
    for name, make in _DEMO_SCHEDULERS.items():
        for groups in group_counts:
            t_torch = time_scheduler_step(torch_sched, make, groups)
            t_fast = time_scheduler_step(lr_scheduler, make, groups)
            rows.append({"scheduler": name, "groups": groups, "torch_us": t_torch, "lrfast_us": t_fast})
            print_fn(f"{name:<20} {groups:>6} {t_torch:>9.2f} {t_fast:>9.2f} {t_torch / t_fast:>7.1f}x")
    return rows


# -- plot ------------------------------------------------------------------------------

def parse_schedule(spec: str):
    """A schedule from a factory-call expression such as ``"cosine_decay(1.0, 1000)"`` or
    ``"join([constant(1.0), linear(1.0, 0.0, 10)], [5])"``: only lrfast.schedules
    factories and literal arguments are allowed (nothing is evaluated otherwise)."""
    from . import schedules

    try:
        tree = ast.parse(spec, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"plot: cannot parse schedule spec {spec!r}: {exc.msg}") from None

    def build(node):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in schedules.__all__ or \
                    not callable(getattr(schedules, node.func.id)) or node.func.id[0].isupper():
                raise ValueError(f"plot: {ast.unparse(node.func)!r} is not an lrfast.schedules factory")
            args = [build(a) for a in node.args]
            kwargs = {k.arg: build(k.value) for k in node.keywords}
            return getattr(schedules, node.func.id)(*args, **kwargs)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [build(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {build(k): build(v) for k, v in zip(node.keys, node.values)}
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise ValueError(f"plot: only literals and schedule factories are allowed, got "
                             f"{ast.unparse(node)!r}") from None

    return build(tree.body)


# -- entry point -----------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrfast",
                                     description="lrfast: learning-rate schedules that cost nothing")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the StepLR example, then compare scheduler.step() costs with torch")
    p_demo.add_argument("--groups", type=int, nargs="+", default=[1, 10, 100], help="param-group counts to time")
    sub.add_parser("info", help="print what was built and what is usable here")
    p_bench = sub.add_parser("bench", help="compare lrfast with torch on this machine (side by side, one run)")
    p_bench.add_argument("--quick", action="store_true", help="small sizes, few repeats (under a minute on 2 cores)")
    p_bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p_bench.add_argument("--json", default=None, help="write results, machine, versions and command as JSON")
    p_bench.add_argument("--markdown", default=None, help="write the tables as markdown")
    p_bench.add_argument("--plot", default=None, help="write time per step vs size as a PNG")
    p_bench.add_argument("--cache-mib", type=int, default=64, help="rotate working sets smaller than this")
    p_bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_bench.add_argument("--from-json", default=None, help="regenerate the tables (and --plot) from a saved --json run")
    p_plot = sub.add_parser("plot", help="draw schedules to a PNG")
    p_plot.add_argument("specs", nargs="+", help='schedule factory calls, e.g. "cosine_decay(1.0, 1000)"')
    p_plot.add_argument("-o", "--output", required=True, help="output image path (.png)")
    p_plot.add_argument("--steps", type=int, default=1000, help="steps to draw (default 1000)")
    p_plot.add_argument("--log", action="store_true", help="logarithmic LR axis")
    args = parser.parse_args(argv)

    if args.command == "demo":
        demo_training()
        demo_costs(args.groups)
        return 0
    if args.command == "bench":
        from .bench import main as bench_main

        return bench_main(args)
    if args.command == "info":
        from . import info

        info()
        return 0
    if args.command == "plot":
        from .plotting import plot

        try:
            schedules = [parse_schedule(s) for s in args.specs]
        except (ValueError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        plot(schedules, args.steps, args.output, labels=args.specs, log_y=args.log)
        print(f"wrote {args.output}")
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands
