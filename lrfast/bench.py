"""``python -m lrfast bench``: how lrfast compares with torch on this machine.

Everything is measured side by side in one run, on the same data for every contender:

1. **scheduler.step() host cost** against the number of param groups (torch vs lrfast).
2. **optimizer + scheduler step** (AdamW + cosine, SGD-momentum + cosine) against model
   size and tensor count: torch for-loop, foreach, fused (and on CUDA, foreach +
   capturable stepped in a CUDA graph) vs lrfast; ms per step and GB/s (28 bytes per
   element for AdamW, 20 for SGD with momentum).
3. **the memory-bandwidth ceiling**: copy and triad on the same device, same run.

Timing: warm-up, then the median of many steps; CUDA steps are timed with CUDA events.
Working sets smaller than ``--cache-mib`` are rotated through enough copies to overflow
the cache, so small sizes are not timed from cache. Results: a markdown table on stdout,
``--json`` (with machine, versions and command), ``--plot`` (time per step vs size, one
line per contender, log axes, the bandwidth floor drawn).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["run_bench", "main"]

BYTES_PER_ELEMENT = {"adamw": 28, "sgd": 20}


@dataclass
class Case:
    """One model layout: ``tensors`` tensors of ``numel`` elements in total."""

    name: str
    shapes: list[int]

    @property
    def numel(self) -> int:
        return sum(self.shapes)


@dataclass
class Result:
    section: str
    case: str
    contender: str
    seconds: float
    numel: int = 0
    tensors: int = 0
    extra: dict = field(default_factory=dict)


def _cases(quick: bool, device: str) -> list[Case]:
    if device == "cuda":
        sizes = [2**20, 2**24] if quick else [2**20, 2**24, 2**26, 2**28]
        many = [(2000, 2**20), (148, 124_000_000 // 148)] if not quick else [(2000, 2**20)]
    else:
        sizes = [2**16, 2**20] if quick else [2**16, 2**20, 2**24]
        many = [(2000, 2**20)] if quick else [(200, 2**24), (2000, 2**24), (2000, 2**20)]
    cases = [Case(f"1 x {n:,}", [n]) for n in sizes]
    # labelled with the elements actually built (n // t per tensor), not the nominal n
    cases += [Case(f"{t:,} x {n // t:,} = {t * (n // t):,}", [n // t] * t) for t, n in many]
    return cases


# -- timing --------------------------------------------------------------------------------

def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _time(step: Callable[[], None], device: str, repeats: int, warmup: int = 3) -> float:
    """Median seconds per call of ``step``."""
    for _ in range(warmup):
        step()
    _sync(device)
    samples = []
    if device == "cuda":
        import torch

        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _bandwidth(device: str, quick: bool) -> dict[str, float]:
    """Copy and triad GB/s (STREAM counting: 2 and 3 arrays) on 256 MiB arrays (64 MiB quick)."""
    import torch

    n = (2**24 if quick else 2**26)
    a, b, c = (torch.rand(n, device=device) for _ in range(3))
    copy = _time(lambda: a.copy_(b), device, 7 if quick else 15)
    triad = _time(lambda: torch.add(b, c, alpha=1.5, out=a), device, 7 if quick else 15)
    return {"copy_GBs": 8 * n / copy / 1e9, "triad_GBs": 12 * n / triad / 1e9}


# -- scheduler step cost -----------------------------------------------------------------

def _scheduler_rows(groups: Sequence[int], steps: int) -> list[Result]:
    import torch

    from . import lr_scheduler

    makers = {
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
        "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=10**6),
        "StepLR": lambda m, o: m.StepLR(o, step_size=30),
    }
    from .cli import time_scheduler_step

    rows = []
    for name, make in makers.items():
        for g in groups:
            for contender, module in (("torch", torch.optim.lr_scheduler), ("lrfast", lr_scheduler)):
                seconds = time_scheduler_step(module, make, g, steps=steps) / 1e6
                rows.append(Result("scheduler", f"{name}, {g} groups", contender, seconds, extra={"groups": g}))
    return rows


# -- optimizer step ------------------------------------------------------------------------

def _contenders(device: str) -> list[str]:
    names = ["torch for-loop", "torch foreach", "torch fused", "lrfast"]
    if device == "cuda":
        names.append("torch foreach+graph")
    return names


def _build(contender: str, algo: str, params, device: str):
    """An optimizer + cosine scheduler for ``params``; returns a zero-argument step."""
    import torch

    from . import lr_scheduler

    opt_kwargs = {"lr": 1e-3, "weight_decay": 0.01} if algo == "adamw" else {"lr": 1e-2, "momentum": 0.9}
    torch_cls = torch.optim.AdamW if algo == "adamw" else torch.optim.SGD
    if contender == "lrfast":
        import lrfast.optim

        opt = (lrfast.optim.AdamW if algo == "adamw" else lrfast.optim.SGD)(params, **opt_kwargs)
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10_000)
    elif contender == "torch foreach+graph":
        from . import schedules
        from ._backend.cuda import ScalarWriter

        lr = torch.tensor(opt_kwargs.pop("lr"), device=device)
        extra = {"capturable": True} if algo == "adamw" else {}
        opt = torch_cls(params, lr=lr, foreach=True, **extra, **opt_kwargs)
        writer = ScalarWriter([lr], schedules.pack_many([schedules.cosine_annealing(float(lr), 10_000)]))
        counter = torch.zeros((), dtype=torch.int64, device=device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.step()
                writer.write(0.0, counter=counter, increment=1)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
            writer.write(0.0, counter=counter, increment=1)
        return graph.replay
    else:
        flags = {"torch for-loop": {"foreach": False}, "torch foreach": {"foreach": True},
                 "torch fused": {"fused": True}}[contender]
        opt = torch_cls(params, **flags, **opt_kwargs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10_000)

    def step() -> None:
        opt.step()
        sched.step()
    return step


def _optimizer_rows(device: str, quick: bool, cache_mib: int, progress) -> list[Result]:
    import torch

    rows = []
    repeats = 5 if quick else 15
    for algo in ("adamw", "sgd"):
        for case in _cases(quick, device):
            state_bytes = case.numel * 4 * (4 if algo == "adamw" else 3)
            copies = max(1, min(8, -(-cache_mib * 2**20 // max(state_bytes, 1)))) if device == "cpu" else 1
            gen = torch.Generator().manual_seed(0)
            base = [torch.randn(n, generator=gen) for n in case.shapes]
            grads = [torch.randn(n, generator=gen) * 1e-3 for n in case.shapes]
            for contender in _contenders(device):
                sets = []
                try:
                    for _ in range(copies):
                        params = [torch.nn.Parameter(p.to(device).clone()) for p in base]
                        for p, g in zip(params, grads):
                            p.grad = g.to(device).clone()
                        sets.append(_build(contender, algo, params, device))
                except (ImportError, RuntimeError) as exc:  # a contender this machine cannot run
                    rows.append(Result(algo, case.name, contender, float("nan"), case.numel, len(case.shapes),
                                       {"skipped": str(exc).splitlines()[0]}))
                    progress.update(note=f"{algo} {case.name} {contender}")
                    continue
                turn = [0]

                def rotating(sets=sets, turn=turn):
                    sets[turn[0] % len(sets)]()
                    turn[0] += 1
                seconds = _time(rotating, device, repeats * len(sets), warmup=3 * len(sets))
                rows.append(Result(algo, case.name, contender, seconds, case.numel, len(case.shapes),
                                   {"GBs": BYTES_PER_ELEMENT[algo] * case.numel / seconds / 1e9,
                                    "copies": copies}))
                del sets
                progress.update(note=f"{algo} {case.name} {contender}")
    return rows


# -- report --------------------------------------------------------------------------------

BUSY_LOAD_PER_CPU = 0.5  # above this 1-minute load per CPU, other processes took a share of the run


def _warnings(meta: dict) -> list[str]:
    """Lines saying what makes this run's numbers less than they seem (empty when nothing does)."""
    out = []
    loads = meta.get("load_average")
    cpus = meta.get("cpus") or os.cpu_count() or 1
    if loads and max(loads) / cpus > BUSY_LOAD_PER_CPU:
        out.append(f"**Warning: load average {' -> '.join(f'{x:.1f}' for x in loads)} (start -> end) on {cpus} "
                   "CPUs: other processes competed for the CPUs during this run; times and ratios are unreliable.**")
    if meta.get("device") == "cpu" and meta.get("numba_usable") is False:
        out.append(f"**The lrfast column measures torch's fallback code, not lrfast's kernels: "
                   f"{meta.get('numba', 'Numba is unavailable')}.**")
    elif meta.get("numba_threading_layer"):
        out.append(f"lrfast CPU kernels: Numba threading layer {meta['numba_threading_layer']}.")
    return out + [""] if out else out


def _column(contender: str, meta: dict) -> str:
    if contender == "lrfast" and meta.get("device") == "cpu" and meta.get("numba_usable") is False:
        return "lrfast (torch fallback: no Numba)"
    return contender


def _markdown(meta: dict, rows: list[Result]) -> str:
    out = [f"Machine: {meta['machine']}; device {meta['device']}; torch {meta['torch']}, lrfast {meta['lrfast']}; "
           f"{meta['date']}; `{meta['command']}`", ""]
    out += _warnings(meta)
    out += [
           f"Memory bandwidth in the same run: copy {meta['copy_GBs']:.1f} GB/s, triad {meta['triad_GBs']:.1f} GB/s "
           "(STREAM counting).", ""]
    sched = [r for r in rows if r.section == "scheduler"]
    if sched:
        out += ["### scheduler.step() host cost (µs)", "", "| case | torch | lrfast | torch / lrfast |",
                "|---|---|---|---|"]
        by_case: dict[str, dict[str, float]] = {}
        for r in sched:
            by_case.setdefault(r.case, {})[r.contender] = r.seconds * 1e6
        for case, v in by_case.items():
            out.append(f"| {case} | {v['torch']:.2f} | {v['lrfast']:.2f} | {v['torch'] / v['lrfast']:.1f}x |")
        out.append("")
    for algo in ("adamw", "sgd"):
        opt_rows = [r for r in rows if r.section == algo]
        if not opt_rows:
            continue
        contenders = list(dict.fromkeys(r.contender for r in opt_rows))
        title = "AdamW + cosine" if algo == "adamw" else "SGD(momentum) + cosine"
        out += [f"### {title}: ms per step (GB/s at {BYTES_PER_ELEMENT[algo]} B/element); ratio = "
                "torch fused / lrfast", "",
                "| layout | " + " | ".join(_column(c, meta) for c in contenders) + " | ratio vs fused |",
                "|---|" + "---|" * (len(contenders) + 1)]
        by_case = {}
        for r in opt_rows:
            by_case.setdefault(r.case, {})[r.contender] = r
        for case, v in by_case.items():
            cells = []
            for c in contenders:
                r = v.get(c)
                cells.append("n/a" if r is None or r.seconds != r.seconds else
                             f"{r.seconds * 1e3:.3f} ({r.extra.get('GBs', 0):.0f})")
            fused, ours = v.get("torch fused"), v.get("lrfast")
            ratio = (f"{fused.seconds / ours.seconds:.2f}x" if fused and ours and ours.seconds == ours.seconds
                     and fused.seconds == fused.seconds else "n/a")
            out.append(f"| {case} | " + " | ".join(cells) + f" | {ratio} |")
        out.append("")
    skipped = {(r.contender, r.extra["skipped"]) for r in rows if "skipped" in r.extra}
    for contender, why in sorted(skipped):
        out.append(f"- {contender} not run here: {why}")
    return "\n".join(out)


def _plot(rows: list[Result], meta: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, algo in zip(axes, ("adamw", "sgd")):
        opt_rows = [r for r in rows if r.section == algo and r.seconds == r.seconds and r.tensors == 1]
        for contender in dict.fromkeys(r.contender for r in opt_rows):
            pts = sorted((r.numel, r.seconds * 1e3) for r in opt_rows if r.contender == contender)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=contender)
        if opt_rows:
            xs = sorted({r.numel for r in opt_rows})
            floor = [BYTES_PER_ELEMENT[algo] * n / (meta["copy_GBs"] * 1e9) * 1e3 for n in xs]
            ax.plot(xs, floor, "k--", label="bandwidth floor (copy GB/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements (one tensor)")
        ax.set_ylabel("ms per step")
        ax.set_title(("AdamW" if algo == "adamw" else "SGD momentum") + " + cosine")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(f"{meta['device']} — {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_bench(device: str = "cpu", quick: bool = False, groups: Sequence[int] = (1, 10, 100, 1000),
              cache_mib: int = 64, show_progress: bool = True) -> tuple[dict, list[Result]]:
    import torch

    import lrfast

    from ._progress import Progress

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("bench: --device cuda needs a CUDA build of torch and a GPU")
    cases = _cases(quick, device)
    total = 2 * len(cases) * len(_contenders(device))
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} cores, "
                       f"{torch.get_num_threads()} torch threads)".strip(),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__, "lrfast": lrfast.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python -m lrfast", *sys.argv[1:]]),
            "quick": quick}
    numba_ok, numba_why = lrfast.numba_status()
    meta.update(cpus=os.cpu_count(), numba_usable=numba_ok, numba=numba_why, load_average=[os.getloadavg()[0]])
    if numba_ok and device == "cpu":
        from ._backend import cpu  # noqa: F401 - sets the threading layer preference
        from ._numba import threads

        meta["numba_threading_layer"] = threads.describe()
    meta.update(_bandwidth(device, quick))
    rows = _scheduler_rows(groups if not quick else [g for g in groups if g <= 100], 100 if quick else 300)
    with Progress(total, "bench", disable=not show_progress) as progress:
        rows += _optimizer_rows(device, quick, cache_mib, progress)
    meta["load_average"].append(os.getloadavg()[0])
    return meta, rows


def load_json(path: str) -> tuple[dict, list[Result]]:
    """A run saved with ``--json``, for regenerating its tables and plot."""
    with open(path) as f:
        data = json.load(f)
    return data["meta"], [Result(**row) for row in data["rows"]]


def main(args) -> int:
    if args.from_json:
        meta, rows = load_json(args.from_json)
    else:
        meta, rows = run_bench(args.device, args.quick, cache_mib=args.cache_mib, show_progress=not args.no_progress)
    table = _markdown(meta, rows)
    print(table)
    if args.json and not args.from_json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": [r.__dict__ for r in rows]}, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.plot:
        _plot(rows, meta, args.plot)
    return 0
