"""``python -m lrfast bench``: how lrfast compares with torch on this machine.

Everything is measured side by side in one run, on the same data for every contender:

1. **scheduler.step() host cost** against the number of param groups (torch vs lrfast).
2. **optimizer + scheduler step** (AdamW + cosine, SGD-momentum + cosine) against model
   size and tensor count: torch for-loop, foreach, fused (and on CUDA, foreach +
   capturable stepped in a CUDA graph) vs lrfast; ms per step and GB/s (28 bytes per
   element for AdamW, 20 for SGD with momentum).
3. **the memory bandwidth** (copy, triad and an in-place update ``a += b``) on the same
   device, before and after the optimizer rows (the update also inside every row's rounds),
   and from it the **bandwidth floor** of each optimizer row: the bytes a step must move
   divided by the fastest in-place update rate measured (NOTE [bandwidth floor]).

NOTE [paired rounds]: every contender of a row, the bandwidth probes alike, is
timed once per round, in an order rotated from round to round, for ``--rounds`` rounds;
each cell is the median over rounds with its interquartile range, and a ratio is the
median of the per-round ratios (so a load burst that slows one round slows both sides of
it). Before every timed call the caches are evicted by reading a buffer twice the size of
the last-level cache (``--cache-mib``), outside the timing, so a step is timed from DRAM
as in training, where forward and backward run between two optimizer steps. CUDA calls are
timed with CUDA events. The report warns when the machine was busy (1-minute load average
above half the CPU count), when the spread over rounds is high, when a measured time beats
the bandwidth floor, and when the lrfast column runs torch's fallback code (no Numba).

Results: a markdown table on stdout, ``--json`` (every round's time, machine, versions and
command), ``--plot`` (time per step vs size, one line per contender with its interquartile
range, log axes, the bandwidth floor drawn). ``--targets``: only issue 14's three CPU
targets (lrfast vs torch ``fused=True``), with the bandwidth each side reaches.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Case", "Result", "case_of", "eviction_mib", "floor_GBs", "floor_seconds", "lrfast_backend", "main",
           "paired_rounds", "run_bench", "run_targets", "spread"]

BYTES_PER_ELEMENT = {"adamw": 28, "sgd": 20}
TITLES = {"adamw": "AdamW + cosine", "sgd": "SGD(momentum) + cosine"}

# NOTE [bandwidth floor]
# A floor is a time no step can beat: the bytes the step must move (AdamW reads p, g, m, v
# and writes p, m, v: 28 B per float32 element; SGD with momentum 20 B) at the fastest rate
# this machine's memory showed in the same run. The rate is the in-place update a += b
# (read a and b, write a: 12 B per element, the optimizers' own access pattern), taken at
# its fastest round (on 64 MiB arrays before and after the rows, with torch's threads and
# one thread, and on one tensor of each row's size in that row's rounds), read from DRAM
# (caches evicted before every timed call). Not STREAM's copy:
# it counts 8 B per element, but a copy into memory that is not in cache also reads the
# destination first (write-allocate), so its real traffic is 12 B and its STREAM figure
# understates what the memory delivers; an in-place update pays no write-allocate. The
# first floor of this report divided by copy's STREAM figure measured on 512 MiB arrays
# while the optimizer rows ran from cache (the 16M-element sets fit this VM's 300 MiB L3,
# which the 64 MiB rotation assumed to be 32 MiB): the steps "beat" that floor by up to 3x.
FLOOR_PROBE = "update"
PROBE_BYTES = {"copy": 8, "triad": 12, "update": 12}  # copy and triad: STREAM counting
PROBE_ELEMENTS = 2**24

BUSY_LOAD_PER_CPU = 0.5  # above this 1-minute load per CPU, other processes took a share of the run
HIGH_SPREAD = 0.25  # interquartile range / median above this in a compared cell: the cell is uncertain
FALLBACK_COLUMN = "lrfast (torch fallback: no Numba)"

# issue 14 item 4: (optimizer, case, target ratio torch fused / lrfast)
TARGETS = (("adamw", "16M over 200 tensors", 1.2), ("sgd", "1 x 16M", 1.0), ("sgd", "100 groups x 10 tensors", 3.0))


@dataclass
class Case:
    """One model layout: tensors of ``shapes`` elements, split evenly into ``groups`` param groups."""

    name: str
    shapes: list[int]
    groups: int = 1

    @property
    def numel(self) -> int:
        return sum(self.shapes)


@dataclass
class Result:
    section: str
    case: str
    contender: str
    seconds: float  # median over rounds
    numel: int = 0
    tensors: int = 0
    extra: dict = field(default_factory=dict)  # "samples": seconds of every round, "GBs", "skipped"


def case_of(shapes: list[int], groups: int = 1) -> Case:
    """A Case labelled with the elements it really holds (quick runs are labelled with their own sizes)."""
    t, n = len(shapes), sum(shapes)
    if groups > 1:
        name = f"{groups} groups x {t // groups} tensors x {shapes[0]:,} = {n:,}"
    elif t == 1:
        name = f"1 x {n:,}"
    else:
        name = f"{t:,} x {shapes[0]:,} = {n:,}"
    return Case(name, shapes, groups)


def _cases(quick: bool, device: str) -> list[Case]:
    """Single tensors of growing size (the curve: >= 5 sizes, >= 3 with --quick), then many tensors."""
    if device == "cuda":
        sizes = [2**20, 2**22, 2**24] if quick else [2**18, 2**20, 2**22, 2**24, 2**26, 2**28]
        many = [(2000, 2**20)] if quick else [(2000, 2**20), (148, 124_000_000)]
    else:
        sizes = [2**14, 2**17, 2**20] if quick else [2**16, 2**18, 2**20, 2**22, 2**24]
        many = [(2000, 2**20)] if quick else [(200, 2**24), (2000, 2**24), (2000, 2**20)]
    return [case_of([n]) for n in sizes] + [case_of([n // t] * t) for t, n in many]


def _target_cases() -> dict[str, Case]:
    return {"16M over 200 tensors": case_of([2**24 // 200] * 200), "1 x 16M": case_of([2**24]),
            "100 groups x 10 tensors": case_of([4096] * 1000, groups=100)}


# -- statistics ----------------------------------------------------------------------------

def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and extremes of ``samples``.

    >>> spread([1.0, 2.0, 3.0, 4.0, 100.0])["median"]
    3.0
    """
    xs = sorted(samples)
    if len(xs) == 1:
        q1 = q3 = xs[0]
    else:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return {"median": statistics.median(xs), "q1": q1, "q3": q3, "min": xs[0], "max": xs[-1]}


def _samples(r: Result) -> list[float]:
    # a run saved before rounds were kept has one number per cell
    return list(r.extra.get("samples") or [r.seconds])


def _ratios(num: Result, den: Result) -> list[float]:
    """Per-round ratios num / den (paired: the same round of each)."""
    a, b = _samples(num), _samples(den)
    if len(a) != len(b):
        return [num.seconds / den.seconds]
    return [x / y for x, y in zip(a, b)]


def _relative_iqr(samples: Sequence[float]) -> float:
    s = spread(samples)
    return (s["q3"] - s["q1"]) / s["median"] if s["median"] else 0.0


def _valid(r: Result | None) -> bool:
    return r is not None and r.seconds == r.seconds


# -- timing --------------------------------------------------------------------------------

def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def eviction_mib(device: str = "cpu") -> int:
    """MiB read before every timed call to evict the caches: twice the last-level cache.

    >>> eviction_mib("cpu") >= 64
    True
    """
    if device == "cuda":
        import torch

        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0)
        return max(64, 2 * l2 // 2**20)
    largest = 0
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in os.listdir(root):
            try:
                with open(os.path.join(root, index, "size")) as f:
                    text = f.read().strip()
            except OSError:
                continue
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
            largest = max(largest, int(text.rstrip("KMG")) * scale)
    except (OSError, ValueError):
        pass
    return max(64, 2 * largest // 2**20)


class _Evictor:
    """Reads a buffer larger than the last-level cache (outside the timing)."""

    def __init__(self, device: str, mib: int) -> None:
        import torch

        self.device = device
        self.buffer = torch.ones(mib * 2**20 // 4, device=device) if mib > 0 else None

    def __call__(self) -> None:
        if self.buffer is not None:
            self.buffer.sum()
            _sync(self.device)


def _time_once(step: Callable[[], object], device: str) -> float:
    if device == "cuda":
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def paired_rounds(steps: dict[str, Callable[[], object]], device: str, rounds: int,
                  evict: Callable[[], None] = lambda: None, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds of every round for each of ``steps`` (NOTE [paired rounds]): each round times
    every step once, in an order rotated by one each round, ``evict`` run before each call.

    >>> times = paired_rounds({"a": lambda: None, "b": lambda: None}, "cpu", rounds=3)
    >>> [len(v) for v in times.values()]
    [3, 3]
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    names = list(steps)
    out: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()  # a collection inside one contender's call would charge it with everyone's garbage
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                evict()
                out[name].append(_time_once(steps[name], device))
    finally:
        gc.enable()
    return out


def _bandwidth(device: str, rounds: int, evict: Callable[[], None]) -> dict[str, list[float]]:
    """GB/s of every round: copy, triad (STREAM counting) and the in-place update a += b."""
    import torch

    n = PROBE_ELEMENTS
    a, b, c = (torch.rand(n, device=device) for _ in range(3))
    steps = {"copy": lambda: a.copy_(b), "triad": lambda: torch.add(b, c, alpha=1e-3, out=a),
             "update": lambda: a.add_(b, alpha=1e-3)}
    times = paired_rounds(steps, device, rounds, evict, warmup=1)
    if device == "cpu" and torch.get_num_threads() > 1:
        # one thread too: on a busy machine a parallel region waits for a descheduled thread
        # (OpenMP's collapse under oversubscription), which would lift the floor above steps
        # that run serially (lrfast's small buckets)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            times["update"] += paired_rounds({"update": steps["update"]}, device, rounds, evict, warmup=1)["update"]
        finally:
            torch.set_num_threads(threads)
    return {name: [PROBE_BYTES[name] * n / t / 1e9 for t in ts] for name, ts in times.items()}


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# -- scheduler step cost -----------------------------------------------------------------

_SCHEDULERS = {
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=10**6),
    "StepLR": lambda m, o: m.StepLR(o, step_size=30),
}


def _scheduler_rows(groups: Sequence[int], steps: int, rounds: int) -> list[Result]:
    """µs per scheduler.step(): torch's and lrfast's scheduler on twin optimizers, paired rounds
    of ``steps`` calls each."""
    import torch

    from . import lr_scheduler

    def make(module, name: str, g: int):
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(g)]
        opt = torch.optim.SGD([{"params": [p], "lr": 0.01 * (1 + i % 7)} for i, p in enumerate(params)],
                              lr=0.01, momentum=0.9)
        sched = _SCHEDULERS[name](module, opt)

        def run() -> None:
            for _ in range(steps):
                sched.step()
        return run

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "scheduler.step() before optimizer.step()"
        for name in _SCHEDULERS:
            for g in groups:
                contenders = {"torch": make(torch.optim.lr_scheduler, name, g), "lrfast": make(lr_scheduler, name, g)}
                times = paired_rounds(contenders, "cpu", rounds, warmup=1)
                for contender, ts in times.items():
                    per_call = [t / steps for t in ts]
                    rows.append(Result("scheduler", f"{name}, {g} groups", contender, statistics.median(per_call),
                                       extra={"groups": g, "samples": per_call}))
    return rows


# -- optimizer step ------------------------------------------------------------------------

def _contenders(device: str) -> list[str]:
    names = ["torch for-loop", "torch foreach", "torch fused", "lrfast"]
    if device == "cuda":
        names.append("torch foreach+graph")
    return names


def lrfast_backend(device: str = "cpu") -> tuple[bool, str]:
    """(kernels, why not): whether lrfast's optimizers run lrfast's kernels on ``device``, or
    torch's fallback code (Numba missing on CPU).

    >>> lrfast_backend("cpu")
    (True, 'lrfast kernels')
    """
    import torch

    from .optim import _dispatch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            backend = _dispatch.backend_for(torch.device(device))
        except RuntimeError as exc:  # a build without lrfast's CUDA kernels
            return False, str(exc)
    if getattr(backend, "__module__", "").endswith("._fallback"):
        why = next((str(w.message) for w in caught), "lrfast.optim runs torch's optimizer code on this device")
        return False, why
    return True, "lrfast kernels"


def _build(contender: str, algo: str, params, device: str, groups: int = 1):
    """An optimizer + cosine scheduler for ``params``; returns a zero-argument step."""
    import torch

    from . import lr_scheduler

    opt_kwargs = {"lr": 1e-3, "weight_decay": 0.01} if algo == "adamw" else {"lr": 1e-2, "momentum": 0.9}
    torch_cls = torch.optim.AdamW if algo == "adamw" else torch.optim.SGD
    per = len(params) // groups
    param_groups = [{"params": params[i * per:(i + 1) * per], "lr": opt_kwargs["lr"] * (1 + i / groups)}
                    for i in range(groups)] if groups > 1 else params
    if contender == "lrfast":
        import lrfast.optim

        opt = (lrfast.optim.AdamW if algo == "adamw" else lrfast.optim.SGD)(param_groups, **opt_kwargs)
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
        opt = torch_cls(param_groups, **flags, **opt_kwargs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10_000)

    def step() -> None:
        opt.step()
        sched.step()
    return step


_PROBE = "in-place update probe"


def _optimizer_rows(device: str, plan: list[tuple[str, Case]], contenders: list[str], rounds: int,
                    evict: Callable[[], None], progress, loads: list, update_rates: list[float]) -> list[Result]:
    """Paired rounds of ``contenders`` for every (algo, case) of ``plan``; one Result per cell.
    The in-place update probe runs in every row's rounds too, on one tensor of the row's
    size (its GB/s appended to ``update_rates``): on a busy machine a probe timed only
    before and after the rows, on 64 MiB arrays, missed the short quiet windows a step of a
    few ms caught, and set the floor above that step."""
    import torch

    rows = []
    for algo, case in plan:
        n = case.numel
        a, b = torch.rand(n, device=device), torch.rand(n, device=device)
        gen = torch.Generator().manual_seed(0)
        base = [torch.randn(n, generator=gen).to(device) for n in case.shapes]
        grads = [(torch.randn(n, generator=gen) * 1e-3).to(device) for n in case.shapes]  # shared, read-only
        steps = {}
        for contender in contenders:
            try:
                params = [torch.nn.Parameter(p.clone()) for p in base]
                for p, g in zip(params, grads):
                    p.grad = g
                steps[contender] = _build(contender, algo, params, device, case.groups)
            except (ImportError, RuntimeError) as exc:  # a contender this machine cannot run
                rows.append(Result(algo, case.name, contender, float("nan"), case.numel, len(case.shapes),
                                   {"skipped": str(exc).splitlines()[0]}))
        steps[_PROBE] = functools.partial(torch.Tensor.add_, a, b, alpha=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the no-Numba warning is the report's, once, in its header
            times = paired_rounds(steps, device, rounds, evict)
        probe = [PROBE_BYTES["update"] * n / t / 1e9 for t in times.pop(_PROBE)]
        update_rates += probe
        for contender, ts in times.items():
            median = statistics.median(ts)
            rows.append(Result(algo, case.name, contender, median, case.numel, len(case.shapes),
                               {"samples": ts, "GBs": BYTES_PER_ELEMENT[algo] * case.numel / median / 1e9,
                                "groups": case.groups, "update_GBs": probe}))
        del steps, base, grads
        gc.collect()
        loads.append(_load_average())
        progress.update(note=f"{algo} {case.name}")
    return rows


# -- report --------------------------------------------------------------------------------

def floor_GBs(meta: dict) -> float:
    """The rate the bandwidth floor divides by (NOTE [bandwidth floor])."""
    rates = meta.get("bandwidth", {}).get(FLOOR_PROBE)
    return max(rates) if rates else meta["copy_GBs"]


def floor_seconds(meta: dict, algo: str, numel: int) -> float:
    """The time no ``algo`` step over ``numel`` float32 elements can beat on this machine.

    >>> floor_seconds({"bandwidth": {"update": [20.0, 28.0]}}, "adamw", 10**9)
    1.0
    """
    return BYTES_PER_ELEMENT[algo] * numel / (floor_GBs(meta) * 1e9)


def _ms(samples: Sequence[float]) -> str:
    s = spread(samples)
    return f"{s['median'] * 1e3:.3f} [{s['q1'] * 1e3:.3f}–{s['q3'] * 1e3:.3f}]"


def _ratio_cell(ratios: Sequence[float]) -> str:
    s = spread(ratios)
    return f"{s['median']:.2f}x [{s['q1']:.2f}–{s['q3']:.2f}]"


def _warnings(meta: dict, rows: list[Result]) -> list[str]:
    """Lines saying what makes this run's numbers less than they seem (empty when nothing does)."""
    out = []
    loads = [x for x in meta.get("load_average") or [] if x is not None]
    cpus = meta.get("cpus") or os.cpu_count() or 1
    if loads and max(loads) / cpus > BUSY_LOAD_PER_CPU:
        out.append(f"**Warning: load average {loads[0]:.1f} -> {loads[-1]:.1f} (start -> end, highest "
                   f"{max(loads):.1f}) on {cpus} CPUs, above {BUSY_LOAD_PER_CPU} per CPU: other processes "
                   "competed for the CPUs during this run; times and ratios are unreliable.**")
    noisy = []
    by_cell = _cells(rows)
    for (section, case), cell in by_cell.items():
        if section == "scheduler":
            pairs = [("torch", "lrfast")]
        else:
            pairs = [("torch fused", "lrfast")]
        for a, b in pairs:
            if _valid(cell.get(a)) and _valid(cell.get(b)):
                for name, samples in ((a, _samples(cell[a])), (b, _samples(cell[b])),
                                      (f"{a} / {b}", _ratios(cell[a], cell[b]))):
                    noisy.append((_relative_iqr(samples), f"{section} {case}, {name}"))
    high = sorted((x for x in noisy if x[0] > HIGH_SPREAD), reverse=True)
    if high:
        out.append(f"**Warning: high spread over rounds in {len(high)} of {len(noisy)} compared cells "
                   f"(interquartile range above {HIGH_SPREAD:.0%} of the median; worst: {high[0][1]}, "
                   f"{high[0][0]:.0%}): those times and ratios are uncertain; rerun on a quieter machine "
                   "or with more --rounds.**")
    if "bandwidth" in meta or "copy_GBs" in meta:
        def floor(r: Result) -> float:
            return floor_seconds(meta, _algo(r.section), r.numel)
        beaten = [r for r in rows if _algo(r.section) and _valid(r) and min(_samples(r)) < floor(r)]
        if beaten:
            worst = min(beaten, key=lambda r: min(_samples(r)) / floor(r))
            out.append(f"**Warning: {len(beaten)} measured times beat the bandwidth floor (e.g. {worst.section} "
                       f"{worst.case}, {worst.contender}: {min(_samples(worst)) * 1e3:.3f} ms < "
                       f"{floor(worst) * 1e3:.3f} ms): the floor's bandwidth "
                       "measurement or its bytes model is wrong on this machine (data left in cache?).**")
    if meta.get("device") == "cpu" and (meta.get("numba_usable") is False or meta.get("lrfast_kernels") is False):
        why = meta.get("lrfast_backend") or meta.get("numba", "Numba is unavailable")
        out.append(f"**Warning: the lrfast column measures torch's fallback code, not lrfast's kernels: {why}.**")
    elif meta.get("numba_threading_layer"):
        out.append(f"lrfast CPU kernels: Numba threading layer {meta['numba_threading_layer']}.")
    return out + [""] if out else out


def _algo(section: str) -> str | None:
    """The optimizer of an optimizer row's section ("adamw", "target sgd"); None for the others."""
    algo = section.split()[-1]
    return algo if algo in BYTES_PER_ELEMENT else None


def _cells(rows: list[Result]) -> dict[tuple[str, str], dict[str, Result]]:
    cells: dict[tuple[str, str], dict[str, Result]] = {}
    for r in rows:
        cells.setdefault((r.section, r.case), {})[r.contender] = r
    return cells


def _column(contender: str, meta: dict) -> str:
    if contender == "lrfast" and meta.get("device") == "cpu" and (
            meta.get("numba_usable") is False or meta.get("lrfast_kernels") is False):
        return FALLBACK_COLUMN
    return contender


def _bandwidth_line(meta: dict) -> list[str]:
    bw = meta.get("bandwidth")
    if not bw:  # a run saved before the probes were kept
        return [f"Memory bandwidth in the same run: copy {meta['copy_GBs']:.1f} GB/s, triad {meta['triad_GBs']:.1f} "
                "GB/s (STREAM counting); bandwidth floor = bytes per step / copy GB/s.", ""]

    def cell(name: str) -> str:
        s = spread(bw[name])
        return f"{s['median']:.1f} GB/s [{s['q1']:.1f}–{s['q3']:.1f}, best {s['max']:.1f}]"
    return [f"Memory bandwidth in the same run ({len(bw['copy'])} paired rounds on {PROBE_ELEMENTS:,}-element "
            f"float32 arrays, before and after the optimizer rows, caches evicted): copy {cell('copy')}, triad "
            f"{cell('triad')} (STREAM counting, 8 and 12 B/element); in-place update a += b {cell('update')} "
            f"(12 B/element; {len(bw['update'])} rounds: also with one thread, and at each optimizer row's "
            "size in its rounds).", "",
            f"**Bandwidth floor** = bytes per step / {floor_GBs(meta):.1f} GB/s (the fastest in-place update round; "
            "a time no step can beat). Cells: median [interquartile range] over "
            f"{meta.get('rounds', '?')} paired rounds; ratios: median [IQR] of the per-round ratios.", ""]


def _markdown(meta: dict, rows: list[Result]) -> str:
    out = [f"Machine: {meta['machine']}; device {meta['device']}; torch {meta['torch']}, lrfast {meta['lrfast']}; "
           f"{meta['date']}; `{meta['command']}`", ""]
    out += _warnings(meta, rows)
    out += _bandwidth_line(meta)
    cells = _cells(rows)
    sched = {case: v for (section, case), v in cells.items() if section == "scheduler"}
    if sched:
        out += ["### scheduler.step() host cost (µs, median [IQR])", "", "| case | torch | lrfast | torch / lrfast |",
                "|---|---|---|---|"]
        for case, v in sched.items():
            t, f = v["torch"], v["lrfast"]
            us = [spread(_samples(x)) for x in (t, f)]
            out.append(f"| {case} | " + " | ".join(f"{s['median'] * 1e6:.2f} [{s['q1'] * 1e6:.2f}–{s['q3'] * 1e6:.2f}]"
                                                   for s in us) + f" | {_ratio_cell(_ratios(t, f))} |")
        out.append("")
    targets = [r for r in rows if r.section.startswith("target ")]
    if targets:
        out += _targets_table(meta, rows)
    for algo in BYTES_PER_ELEMENT:
        opt_rows = [r for r in rows if r.section == algo]
        if not opt_rows:
            continue
        contenders = list(dict.fromkeys(r.contender for r in opt_rows))
        out += [f"### {TITLES[algo]}: ms per step, median [IQR] (GB/s at {BYTES_PER_ELEMENT[algo]} B/element); "
                "ratio = torch fused / lrfast", "",
                "| layout | bandwidth floor | " + " | ".join(_column(c, meta) for c in contenders)
                + " | ratio vs fused |",
                "|---|---|" + "---|" * (len(contenders) + 1)]
        for (section, case), v in cells.items():
            if section != algo:
                continue
            numel = next(iter(v.values())).numel
            row = [f"{floor_seconds(meta, algo, numel) * 1e3:.3f}"]
            for c in contenders:
                r = v.get(c)
                row.append(f"{_ms(_samples(r))} ({r.extra.get('GBs', 0):.0f})" if _valid(r) else "n/a")
            fused, ours = v.get("torch fused"), v.get("lrfast")
            ratio = _ratio_cell(_ratios(fused, ours)) if _valid(fused) and _valid(ours) else "n/a"
            out.append(f"| {case} | " + " | ".join(row) + f" | {ratio} |")
        out.append("")
    skipped = {(r.contender, r.extra["skipped"]) for r in rows if "skipped" in r.extra}
    for contender, why in sorted(skipped):
        out.append(f"- {contender} not run here: {why}")
    return "\n".join(out)


def _targets_table(meta: dict, rows: list[Result]) -> list[str]:
    out = ["### Issue 14's CPU targets: lrfast vs torch fused=True (opt.step() + scheduler.step()), "
           "median [IQR] over paired rounds", "",
           f"GB/s counts {BYTES_PER_ELEMENT['adamw']} B/element for AdamW and {BYTES_PER_ELEMENT['sgd']} for SGD; "
           "% of the bandwidth the in-place update probe reached in the same rounds, at the same size (median); "
           f"copy's median over the run: {meta['copy_GBs']:.1f} GB/s (STREAM counting).", "",
           "| optimizer | set | torch fused ms | " + _column("lrfast", meta) + " ms | ratio | target | met | "
           "fused GB/s (% of update) | lrfast GB/s (% of update) | update GB/s, median [best] | floor ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (section, case), v in _cells(rows).items():
        if not section.startswith("target "):
            continue
        algo = section.split()[1]
        fused, ours = v["torch fused"], v["lrfast"]
        ratios = _ratios(fused, ours)
        target = fused.extra["target"]
        met = "yes" if statistics.median(ratios) >= target else "**no**"
        probe = fused.extra.get("update_GBs") or [floor_GBs(meta)]
        update = statistics.median(probe)

        def gbs(r: Result, update: float = update) -> str:
            return f"{r.extra['GBs']:.1f} ({r.extra['GBs'] / update:.0%})"
        out.append(f"| {'AdamW' if algo == 'adamw' else 'SGD momentum'} | {case} | {_ms(_samples(fused))} | "
                   f"{_ms(_samples(ours))} | {_ratio_cell(ratios)} | ≥ {target:.1f}x | {met} | {gbs(fused)} | "
                   f"{gbs(ours)} | {update:.1f} [{max(probe):.1f}] | "
                   f"{floor_seconds(meta, algo, fused.numel) * 1e3:.3f} |")
    return out + [""]


def _plot(rows: list[Result], meta: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, algo in zip(axes, BYTES_PER_ELEMENT):
        opt_rows = [r for r in rows if r.section == algo and _valid(r) and r.tensors == 1]
        for contender in dict.fromkeys(r.contender for r in opt_rows):
            pts = sorted((r.numel, spread(_samples(r))) for r in opt_rows if r.contender == contender)
            xs = [n for n, _ in pts]
            med = [s["median"] * 1e3 for _, s in pts]
            err = [[(s["median"] - s["q1"]) * 1e3 for _, s in pts], [(s["q3"] - s["median"]) * 1e3 for _, s in pts]]
            ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=_column(contender, meta))
        if opt_rows:
            xs = sorted({r.numel for r in opt_rows})
            floor = [floor_seconds(meta, algo, n) * 1e3 for n in xs]
            ax.plot(xs, floor, "k--", label=f"bandwidth floor ({floor_GBs(meta):.1f} GB/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements (one tensor)")
        ax.set_ylabel("ms per step (median, IQR bars)")
        ax.set_title(TITLES[algo])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(f"{meta['device']} — {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- runs ----------------------------------------------------------------------------------

def _meta(device: str, quick: bool, rounds: int, evict_mib: int) -> dict:
    import torch

    import lrfast

    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} cores, "
                       f"{torch.get_num_threads()} torch threads)".strip(),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__, "lrfast": lrfast.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python -m lrfast", *sys.argv[1:]]),
            "quick": quick, "rounds": rounds, "evict_MiB": evict_mib, "cpus": os.cpu_count(),
            "load_average": [_load_average()]}
    numba_ok, numba_why = lrfast.numba_status()
    kernels, backend_why = lrfast_backend(device)
    meta.update(numba_usable=numba_ok, numba=numba_why, lrfast_kernels=kernels, lrfast_backend=backend_why)
    if numba_ok and device == "cpu":
        import numba

        from ._numba import threads

        meta["numba_threading_layer"] = f"{threads.describe()}, {numba.get_num_threads()} threads"
    return meta


def _measure(meta: dict, device: str, plan: list[tuple[str, Case]], contenders: list[str], rounds: int,
             evict_mib: int, show_progress: bool, scheduler_groups: Sequence[int] = (), scheduler_steps: int = 0
             ) -> list[Result]:
    from ._progress import Progress

    evict = _Evictor(device, evict_mib)
    bandwidth = _bandwidth(device, rounds, evict)
    rows = _scheduler_rows(scheduler_groups, scheduler_steps, rounds) if scheduler_groups else []
    with Progress(len(plan), "bench", disable=not show_progress) as progress:
        rows += _optimizer_rows(device, plan, contenders, rounds, evict, progress, meta["load_average"],
                                bandwidth["update"])
    for name, rates in _bandwidth(device, rounds, evict).items():
        bandwidth[name] += rates
    meta["bandwidth"] = bandwidth
    meta["copy_GBs"] = statistics.median(bandwidth["copy"])
    meta["triad_GBs"] = statistics.median(bandwidth["triad"])
    meta["load_average"].append(_load_average())
    return rows


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("bench: --device cuda needs a CUDA build of torch and a GPU")


def run_bench(device: str = "cpu", quick: bool = False, groups: Sequence[int] = (1, 10, 100, 1000),
              cache_mib: int | None = None, show_progress: bool = True, rounds: int | None = None
              ) -> tuple[dict, list[Result]]:
    """Measure everything (see the module docstring); returns (meta, rows) for :func:`main`'s tables."""
    _check_device(device)
    rounds = rounds or (7 if quick else 15)
    evict_mib = eviction_mib(device) if cache_mib is None else cache_mib
    meta = _meta(device, quick, rounds, evict_mib)
    plan = [(algo, case) for algo in BYTES_PER_ELEMENT for case in _cases(quick, device)]
    rows = _measure(meta, device, plan, _contenders(device), rounds, evict_mib, show_progress,
                    [g for g in groups if g <= 100] if quick else groups, 100 if quick else 300)
    return meta, rows


def run_targets(cache_mib: int | None = None, show_progress: bool = True, rounds: int | None = None
                ) -> tuple[dict, list[Result]]:
    """Issue 14's three CPU targets, lrfast vs torch fused=True, with the bandwidth of the same run."""
    rounds = rounds or 21
    evict_mib = eviction_mib("cpu") if cache_mib is None else cache_mib
    meta = _meta("cpu", False, rounds, evict_mib)
    cases = _target_cases()
    plan = [(algo, cases[name]) for algo, name, _ in TARGETS]
    rows = _measure(meta, "cpu", plan, ["torch fused", "lrfast"], rounds, evict_mib, show_progress)
    for r in rows:  # the target rows are their own section: not points of the size curves
        algo, name, target = next(t for t in TARGETS if t[0] == r.section and cases[t[1]].name == r.case)
        r.section, r.case = f"target {algo}", name
        r.extra["target"] = target
        r.extra["layout"] = cases[name].name
    return meta, rows


def load_json(path: str) -> tuple[dict, list[Result]]:
    """A run saved with ``--json``, for regenerating its tables and plot."""
    with open(path) as f:
        data = json.load(f)
    return data["meta"], [Result(**row) for row in data["rows"]]


def main(args) -> int:
    if args.from_json:
        meta, rows = load_json(args.from_json)
    elif getattr(args, "targets", False):
        meta, rows = run_targets(args.cache_mib, show_progress=not args.no_progress, rounds=args.rounds)
    else:
        meta, rows = run_bench(args.device, args.quick, cache_mib=args.cache_mib, show_progress=not args.no_progress,
                               rounds=args.rounds)
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
