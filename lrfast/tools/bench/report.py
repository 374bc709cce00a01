"""The bench's report: markdown tables of a run (scheduler cost, scheduler cost by pattern,
the optimizer size curves against the bandwidth floor, issue 14's targets), headed by the
warnings that say what makes its numbers less than they seem."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from . import results, timing
from .cases import BYTES_PER_ELEMENT, PATTERN_OPTIMIZERS, TITLES
from .results import Result, floor_GBs, floor_seconds, spread

__all__ = ["BUSY_LOAD_PER_CPU", "FALLBACK_COLUMN", "HIGH_SPREAD", "column", "markdown", "pattern_cell"]

BUSY_LOAD_PER_CPU = 0.5  # above this 1-minute load per CPU, other processes took a share of the run
HIGH_SPREAD = 0.25  # interquartile range / median above this in a compared cell: the cell is uncertain
FALLBACK_COLUMN = "lrfast (torch fallback: no Numba)"


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
        if section == "scheduler" or section in PATTERN_OPTIMIZERS:
            pairs = [("torch", "lrfast")]
        else:
            pairs = [("torch fused", "lrfast")]
        for a, b in pairs:
            if results.valid(cell.get(a)) and results.valid(cell.get(b)):
                for name, samples in ((a, results.samples(cell[a])), (b, results.samples(cell[b])),
                                      (f"{a} / {b}", results.ratios(cell[a], cell[b]))):
                    noisy.append((results.relative_iqr(samples), f"{section} {case}, {name}"))
    high = sorted((x for x in noisy if x[0] > HIGH_SPREAD), reverse=True)
    if high:
        out.append(f"**Warning: high spread over rounds in {len(high)} of {len(noisy)} compared cells "
                   f"(interquartile range above {HIGH_SPREAD:.0%} of the median; worst: {high[0][1]}, "
                   f"{high[0][0]:.0%}): those times and ratios are uncertain; rerun on a quieter machine "
                   "or with more --rounds.**")
    if "bandwidth" in meta or "copy_GBs" in meta:
        def floor(r: Result) -> float:
            return floor_seconds(meta, _algo(r.section), r.numel)
        beaten = [r for r in rows if _algo(r.section) and results.valid(r) and min(results.samples(r)) < floor(r)]
        if beaten:
            worst = min(beaten, key=lambda r: min(results.samples(r)) / floor(r))
            out.append(f"**Warning: {len(beaten)} measured times beat the bandwidth floor (e.g. {worst.section} "
                       f"{worst.case}, {worst.contender}: {min(results.samples(worst)) * 1e3:.3f} ms < "
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


def column(contender: str, meta: dict) -> str:
    """The heading of ``contender``'s column: the lrfast column says when it ran torch's fallback code."""
    if contender == "lrfast" and meta.get("device") == "cpu" and (
            meta.get("numba_usable") is False or meta.get("lrfast_kernels") is False):
        return FALLBACK_COLUMN
    return contender


def _bandwidth_line(meta: dict) -> list[str]:
    bw = meta.get("bandwidth")
    if not bw and "copy_GBs" not in meta:  # a run without optimizer rows (bench --only patterns)
        return []
    if not bw:  # a run saved before the probes were kept
        return [f"Memory bandwidth in the same run: copy {meta['copy_GBs']:.1f} GB/s, triad {meta['triad_GBs']:.1f} "
                "GB/s (STREAM counting); bandwidth floor = bytes per step / copy GB/s.", ""]

    def cell(name: str) -> str:
        s = spread(bw[name])
        return f"{s['median']:.1f} GB/s [{s['q1']:.1f}–{s['q3']:.1f}, best {s['max']:.1f}]"
    return [f"Memory bandwidth in the same run ({len(bw['copy'])} paired rounds on {timing.PROBE_ELEMENTS:,}-"
            f"element float32 arrays, before and after the optimizer rows, caches evicted): copy {cell('copy')}, triad "
            f"{cell('triad')} (STREAM counting, 8 and 12 B/element); in-place update a += b {cell('update')} "
            f"(12 B/element; {len(bw['update'])} rounds: also with one thread, and at each optimizer row's "
            "size in its rounds).", "",
            f"**Bandwidth floor** = bytes per step / {floor_GBs(meta):.1f} GB/s (the fastest in-place update round; "
            "a time no step can beat). Cells: median [interquartile range] over "
            f"{meta.get('rounds', '?')} paired rounds; ratios: median [IQR] of the per-round ratios.", ""]


def markdown(meta: dict, rows: list[Result]) -> str:
    """The report of a run as markdown: header, warnings, bandwidth, then one table per section."""
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
            us = [spread(results.samples(x)) for x in (t, f)]
            out.append(f"| {case} | " + " | ".join(f"{s['median'] * 1e6:.2f} [{s['q1'] * 1e6:.2f}–{s['q3'] * 1e6:.2f}]"
                                                   for s in us) + f" | {_ratio_cell(results.ratios(t, f))} |")
        out.append("")
    for section in PATTERN_OPTIMIZERS:
        pattern_rows = [r for r in rows if r.section == section]
        if pattern_rows:
            out += _patterns_table(meta, pattern_rows)
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
                "| layout | bandwidth floor | " + " | ".join(column(c, meta) for c in contenders)
                + " | ratio vs fused |",
                "|---|---|" + "---|" * (len(contenders) + 1)]
        for (section, case), v in cells.items():
            if section != algo:
                continue
            numel = next(iter(v.values())).numel
            row = [f"{floor_seconds(meta, algo, numel) * 1e3:.3f}"]
            for c in contenders:
                r = v.get(c)
                row.append(f"{_ms(results.samples(r))} ({r.extra.get('GBs', 0):.0f})" if results.valid(r) else "n/a")
            fused, ours = v.get("torch fused"), v.get("lrfast")
            ratio = _ratio_cell(results.ratios(fused, ours)) if results.valid(fused) and results.valid(ours) else "n/a"
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
           "| optimizer | set | torch fused ms | " + column("lrfast", meta) + " ms | ratio | target | met | "
           "fused GB/s (% of update) | lrfast GB/s (% of update) | update GB/s, median [best] | floor ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (section, case), v in _cells(rows).items():
        if not section.startswith("target "):
            continue
        algo = section.split()[1]
        fused, ours = v["torch fused"], v["lrfast"]
        ratios = results.ratios(fused, ours)
        target = fused.extra["target"]
        met = "yes" if statistics.median(ratios) >= target else "**no**"
        probe = fused.extra.get("update_GBs") or [floor_GBs(meta)]
        update = statistics.median(probe)

        def gbs(r: Result, update: float = update) -> str:
            return f"{r.extra['GBs']:.1f} ({r.extra['GBs'] / update:.0%})"
        out.append(f"| {'AdamW' if algo == 'adamw' else 'SGD momentum'} | {case} | {_ms(results.samples(fused))} | "
                   f"{_ms(results.samples(ours))} | {_ratio_cell(ratios)} | ≥ {target:.1f}x | {met} | {gbs(fused)} | "
                   f"{gbs(ours)} | {update:.1f} [{max(probe):.1f}] | "
                   f"{floor_seconds(meta, algo, fused.numel) * 1e3:.3f} |")
    return out + [""]


def pattern_cell(torch_row: Result, lrfast_row: Result) -> str:
    """One cell of the pattern table: torch / lrfast µs (medians over rounds) and the median of
    the per-round ratios torch / lrfast, in bold where lrfast is slower than torch.

    >>> t = Result("patterns", "c", "torch", 4e-6, extra={"samples": [4e-6, 5e-6, 4e-6]})
    >>> f = Result("patterns", "c", "lrfast", 8e-6, extra={"samples": [8e-6, 10e-6, 9e-6]})
    >>> pattern_cell(t, f)
    '4.0 / 9.0 (**0.50x**)'
    """
    ratio = statistics.median(results.ratios(torch_row, lrfast_row))
    shown = f"{ratio:.2f}x" if ratio >= 1 else f"**{ratio:.2f}x**"
    return (f"{statistics.median(results.samples(torch_row)) * 1e6:.1f} / "
            f"{statistics.median(results.samples(lrfast_row)) * 1e6:.1f} ({shown})")


def _patterns_table(meta: dict, rows: list[Result]) -> list[str]:
    """One pattern table: a row per pattern, a column per group count."""
    first = rows[0].extra
    optimizer = first.get("optimizer", "torch.optim.SGD")
    timed = first.get("timed", "scheduler calls")
    groups = sorted({r.extra["groups"] for r in rows})
    cells: dict[str, dict[int, dict[str, Result]]] = {}
    for r in rows:
        cells.setdefault(r.extra["pattern"], {}).setdefault(r.extra["groups"], {})[r.contender] = r
    steps = meta.get("pattern_steps")
    how = f"{steps} loop steps per round" if steps else "loop steps per round"
    out = [f"### Scheduler step by pattern, {optimizer}(momentum=0.9): µs per loop step of {timed}, "
           "torch's / lrfast's schedulers (ratio torch / lrfast)", "",
           f"Float LRs, one 1-element parameter per group; median over {meta.get('rounds', '?')} paired rounds "
           f"({how}, torch and lrfast alternating); the ratio is the median of the per-round ratios, in bold where "
           "lrfast is slower than torch.", "",
           "| pattern | " + " | ".join(f"{g} group{'s' if g != 1 else ''}" for g in groups) + " |",
           "|---|" + "---|" * len(groups)]
    for pattern, by_groups in cells.items():
        row = []
        for g in groups:
            v = by_groups.get(g, {})
            row.append(pattern_cell(v["torch"], v["lrfast"]) if results.valid(v.get("torch"))
                       and results.valid(v.get("lrfast")) else "n/a")
        out.append(f"| {pattern} | " + " | ".join(row) + " |")
    return out + [""]
