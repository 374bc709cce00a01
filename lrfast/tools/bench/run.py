"""The bench's runs: the whole report (:func:`run_bench`), issue 14's targets
(:func:`run_targets`) and the pattern table alone (:func:`run_patterns`), each a list of
:class:`~.results.Result` cells and the run's ``meta`` (machine, versions, command,
bandwidth probes, load average)."""

from __future__ import annotations

import functools
import gc
import io
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

from . import cases, contenders, timing
from .cases import BYTES_PER_ELEMENT, PATTERN_GROUPS, PATTERN_OPTIMIZERS, TARGETS, Case
from .results import Result

__all__ = ["run_bench", "run_patterns", "run_targets"]

_PROBE = "in-place update probe"


def _scheduler_rows(groups: Sequence[int], steps: int, rounds: int) -> list[Result]:
    """µs per scheduler.step(): torch's and lrfast's scheduler on twin optimizers, paired rounds
    of ``steps`` calls each."""
    import torch

    from lrfast import lr_scheduler

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "scheduler.step() before optimizer.step()"
        for name in contenders.SCHEDULERS:
            for g in groups:
                steps_of = {"torch": contenders.scheduler_steps(torch.optim.lr_scheduler, name, g, steps),
                            "lrfast": contenders.scheduler_steps(lr_scheduler, name, g, steps)}
                times = timing.paired_rounds(steps_of, "cpu", rounds, warmup=1)
                for contender, ts in times.items():
                    per_call = [t / steps for t in ts]
                    rows.append(Result("scheduler", f"{name}, {g} groups", contender, statistics.median(per_call),
                                       extra={"groups": g, "samples": per_call}))
    return rows


def _pattern_rows(groups: Sequence[int], steps: int, rounds: int, sections: Sequence[str], show_progress: bool,
                  loads: list) -> list[Result]:
    """µs per loop step of every pattern (cases.pattern_cases) at each of ``groups``: torch's
    and lrfast's schedulers on twin optimizers, paired rounds of ``steps`` loop steps each, for
    each table of ``sections`` (keys of cases.PATTERN_OPTIMIZERS)."""
    from ..progress import Progress

    patterns = cases.pattern_cases()
    rows = []
    with Progress(len(sections) * len(patterns) * len(groups), "patterns", disable=not show_progress) as progress, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "scheduler.step() before optimizer.step()", the no-Numba warning
        for section in sections:
            gc.collect()  # once per table, not per cell (paired_rounds' collect)
            optimizer = PATTERN_OPTIMIZERS[section]
            timed = "scheduler calls" if optimizer == "torch.optim.SGD" else "optimizer.step() + scheduler calls"
            for pattern in patterns:
                for g in groups:
                    steps_of = {impl: contenders.pattern_steps(impl, pattern, g, steps, optimizer)
                                for impl in ("torch", "lrfast")}
                    times = timing.paired_rounds(steps_of, "cpu", rounds, warmup=1, collect=False)
                    for contender, ts in times.items():
                        per_call = [t / steps for t in ts]
                        rows.append(Result(section, f"{pattern.name}, {g} groups", contender,
                                           statistics.median(per_call),
                                           extra={"pattern": pattern.name, "groups": g, "optimizer": optimizer,
                                                  "timed": timed, "samples": per_call}))
                    del steps_of
                    progress.update(note=f"{pattern.name[:40]}, {g} groups")
            loads.append(timing.load_average())
    return rows


def _optimizer_rows(device: str, plan: list[tuple[str, Case]], names: list[str], rounds: int,
                    evict: Callable[[], None], progress, loads: list, update_rates: list[float]) -> list[Result]:
    """Paired rounds of the ``names`` contenders for every (algo, case) of ``plan``; one Result
    per cell. The in-place update probe runs in every row's rounds too, on one tensor of the
    row's size (its GB/s appended to ``update_rates``): on a busy machine a probe timed only
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
        for contender in names:
            try:
                params = [torch.nn.Parameter(p.clone()) for p in base]
                for p, g in zip(params, grads):
                    p.grad = g
                steps[contender] = contenders.optimizer_step(contender, algo, params, device, case.groups)
            except (ImportError, RuntimeError) as exc:  # a contender this machine cannot run
                rows.append(Result(algo, case.name, contender, float("nan"), case.numel, len(case.shapes),
                                   {"skipped": str(exc).splitlines()[0]}))
        steps[_PROBE] = functools.partial(torch.Tensor.add_, a, b, alpha=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the no-Numba warning is the report's, once, in its header
            times = timing.paired_rounds(steps, device, rounds, evict)
        probe = [timing.PROBE_BYTES["update"] * n / t / 1e9 for t in times.pop(_PROBE)]
        update_rates += probe
        for contender, ts in times.items():
            median = statistics.median(ts)
            rows.append(Result(algo, case.name, contender, median, case.numel, len(case.shapes),
                               {"samples": ts, "GBs": BYTES_PER_ELEMENT[algo] * case.numel / median / 1e9,
                                "groups": case.groups, "update_GBs": probe}))
        del steps, base, grads
        gc.collect()
        loads.append(timing.load_average())
        progress.update(note=f"{algo} {case.name}")
    return rows


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _meta(device: str, quick: bool, rounds: int, evict_mib: int, command: str) -> dict:
    import torch

    import lrfast
    import lrfast.optim

    meta = {"machine": f"{platform.machine()} {platform.processor() or _cpu_model()} ({os.cpu_count()} cores, "
                       f"{torch.get_num_threads()} torch threads)".strip(),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__, "lrfast": lrfast.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "command": command,
            "quick": quick, "rounds": rounds, "evict_MiB": evict_mib, "cpus": os.cpu_count(),
            "load_average": [timing.load_average()]}
    numba_ok, numba_why = lrfast.numba_status()
    kernels, backend_why = lrfast.optim.backend_status(device)
    meta.update(numba_usable=numba_ok, numba=numba_why, lrfast_kernels=kernels, lrfast_backend=backend_why)
    if numba_ok and device == "cpu":
        import numba

        layer = lrfast.info(io.StringIO())["numba_threading_layer"]  # the report's line, not info()'s print
        meta["numba_threading_layer"] = f"{layer}, {numba.get_num_threads()} threads"
    return meta


def _measure(meta: dict, device: str, plan: list[tuple[str, Case]], names: list[str], rounds: int,
             evict_mib: int, show_progress: bool, scheduler_groups: Sequence[int] = (), scheduler_steps: int = 0
             ) -> list[Result]:
    from ..progress import Progress

    evict = timing.Evictor(device, evict_mib)
    bandwidth = timing.bandwidth(device, rounds, evict)
    rows = _scheduler_rows(scheduler_groups, scheduler_steps, rounds) if scheduler_groups else []
    pattern_groups = [g for g in scheduler_groups if g in PATTERN_GROUPS]
    if pattern_groups:
        rows += _pattern_rows(pattern_groups, scheduler_steps, rounds, list(PATTERN_OPTIMIZERS), show_progress,
                              meta["load_average"])
    with Progress(len(plan), "bench", disable=not show_progress) as progress:
        rows += _optimizer_rows(device, plan, names, rounds, evict, progress, meta["load_average"],
                                bandwidth["update"])
    for name, rates in timing.bandwidth(device, rounds, evict).items():
        bandwidth[name] += rates
    meta["bandwidth"] = bandwidth
    meta["copy_GBs"] = statistics.median(bandwidth["copy"])
    meta["triad_GBs"] = statistics.median(bandwidth["triad"])
    meta["load_average"].append(timing.load_average())
    return rows


def run_bench(device: str = "cpu", quick: bool = False, groups: Sequence[int] = (1, 10, 100, 1000),
              cache_mib: int | None = None, show_progress: bool = True, rounds: int | None = None,
              command: str = "") -> tuple[dict, list[Result]]:
    """Measure everything (see the package docstring); returns (meta, rows) for the report.
    ``groups``: the scheduler rows' group counts (the pattern table takes those of them in
    :data:`~.cases.PATTERN_GROUPS`); ``command``: the command line that asked for the run,
    kept in ``meta``."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("bench: --device cuda needs a CUDA build of torch and a GPU")
    rounds = rounds or (7 if quick else 15)
    evict_mib = timing.eviction_mib(device) if cache_mib is None else cache_mib
    meta = _meta(device, quick, rounds, evict_mib, command)
    plan = [(algo, case) for algo in BYTES_PER_ELEMENT for case in cases.curve_cases(quick, device)]
    meta["pattern_steps"] = steps = 100 if quick else 300
    rows = _measure(meta, device, plan, contenders.optimizer_contenders(device), rounds, evict_mib, show_progress,
                    [g for g in groups if g <= 100] if quick else groups, steps)
    return meta, rows


def run_patterns(quick: bool = False, groups: Sequence[int] | None = None, show_progress: bool = True,
                 rounds: int | None = None, steps: int | None = None, sections: Sequence[str] | None = None,
                 command: str = "") -> tuple[dict, list[Result]]:
    """Only the pattern table (``bench --only patterns``): every pattern of
    :func:`~.cases.pattern_cases` at each of ``groups`` (default :data:`~.cases.PATTERN_GROUPS`),
    torch vs lrfast in ``rounds`` paired rounds of ``steps`` loop steps, for each table of
    ``sections`` (default: every key of :data:`~.cases.PATTERN_OPTIMIZERS`)."""
    groups = PATTERN_GROUPS if groups is None else groups
    sections = list(PATTERN_OPTIMIZERS) if sections is None else sections
    for section in sections:
        if section not in PATTERN_OPTIMIZERS:
            raise ValueError(f"run_patterns: sections must be among {list(PATTERN_OPTIMIZERS)}, got {section!r}")
    # many short rounds: on a shared machine a round of a few ms is often slowed whole (a
    # descheduled thread, a busy sibling core), and the median of 31 rounds passes over more of them
    rounds = rounds or (7 if quick else 31)
    steps = steps or 100
    meta = _meta("cpu", quick, rounds, 0, command)
    meta["pattern_steps"] = steps
    rows = _pattern_rows(groups, steps, rounds, sections, show_progress, meta["load_average"])
    return meta, rows


def run_targets(cache_mib: int | None = None, show_progress: bool = True, rounds: int | None = None,
                command: str = "") -> tuple[dict, list[Result]]:
    """Issue 14's three CPU targets, lrfast vs torch fused=True, with the bandwidth of the same run."""
    rounds = rounds or 21
    evict_mib = timing.eviction_mib("cpu") if cache_mib is None else cache_mib
    meta = _meta("cpu", False, rounds, evict_mib, command)
    by_name = cases.target_cases()
    plan = [(algo, by_name[name]) for algo, name, _ in TARGETS]
    rows = _measure(meta, "cpu", plan, ["torch fused", "lrfast"], rounds, evict_mib, show_progress)
    for r in rows:  # the target rows are their own section: not points of the size curves
        algo, name, target = next(t for t in TARGETS if t[0] == r.section and by_name[t[1]].name == r.case)
        r.section, r.case = f"target {algo}", name
        r.extra["target"] = target
        r.extra["layout"] = by_name[name].name
    return meta, rows
