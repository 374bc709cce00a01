"""``python -m lrfast bench``: how lrfast compares with torch on this machine.

Everything is measured side by side in one run, on the same data for every contender:

1. **scheduler.step() host cost** against the number of param groups (torch vs lrfast), and
   **by pattern** (:func:`run_patterns`, ``bench --only patterns``): one scheduler of every
   class, SequentialLR / ChainedScheduler, two schedulers stacked, a resume with
   ``last_epoch`` and a hand edit of the groups' LR, at 1, 10 and 100 groups, on
   torch.optim.SGD (the scheduler calls) and on lrfast.optim.SGD (optimizer.step() and the
   scheduler calls).
2. **optimizer + scheduler step** (AdamW + cosine, SGD-momentum + cosine) against model
   size and tensor count: torch for-loop, foreach, fused (and on CUDA, foreach +
   capturable stepped in a CUDA graph) vs lrfast; ms per step and GB/s (28 bytes per
   element for AdamW, 20 for SGD with momentum).
3. **the memory bandwidth** (copy, triad and an in-place update ``a += b``) on the same
   device, before and after the optimizer rows (the update also inside every row's rounds),
   and from it the **bandwidth floor** of each optimizer row: the bytes a step must move
   divided by the fastest in-place update rate measured (NOTE [bandwidth floor] in results.py).

Every cell is timed in paired rounds (NOTE [paired rounds] in timing.py). The report warns
when the machine was busy (1-minute load average above half the CPU count), when the spread
over rounds is high, when a measured time beats the bandwidth floor, and when the lrfast
column runs torch's fallback code (no Numba).

Results: a markdown table (:func:`markdown`), JSON (:func:`save_json`: every round's time,
machine, versions and command), a plot (:func:`plot`: time per step vs size, one line per
contender with its interquartile range, log axes, the bandwidth floor drawn).
:func:`run_targets`: only issue 14's three CPU targets (lrfast vs torch ``fused=True``), with
the bandwidth each side reaches; :func:`run_patterns`: only the pattern tables.

One module per job, each importing only those above it in this list:
``cases`` (what is measured), ``results`` (cells, their statistics, the floor, JSON),
``timing`` (paired rounds, eviction, bandwidth probes), ``contenders`` (the steps timed),
``run`` (the runs), ``report`` (markdown), ``plot`` (the figure).
"""

from __future__ import annotations

from .cases import Case, case_of
from .plot import plot
from .report import markdown
from .results import Result, floor_GBs, floor_seconds, load_json, save_json, spread
from .run import run_bench, run_patterns, run_targets
from .timing import eviction_mib, paired_rounds

__all__ = ["Case", "Result", "case_of", "eviction_mib", "floor_GBs", "floor_seconds", "load_json", "markdown",
           "paired_rounds", "plot", "run_bench", "run_patterns", "run_targets", "save_json", "spread"]
