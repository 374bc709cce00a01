"""The bench's results: one :class:`Result` per (section, case, contender) cell with every
round's time, their statistics (median, quartiles, paired ratios), the bandwidth floor, and
the JSON a run is saved to and regenerated from."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from .cases import BYTES_PER_ELEMENT

__all__ = ["FLOOR_PROBE", "Result", "spread", "samples", "ratios", "relative_iqr", "valid", "floor_GBs",
           "floor_seconds", "load_json", "save_json"]

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


@dataclass
class Result:
    """One cell: ``contender``'s time on ``case`` of ``section`` ("scheduler", "adamw", "sgd",
    "target sgd", ...)."""

    section: str
    case: str
    contender: str
    seconds: float  # median over rounds
    numel: int = 0
    tensors: int = 0
    extra: dict = field(default_factory=dict)  # "samples": seconds of every round, "GBs", "skipped"


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


def samples(r: Result) -> list[float]:
    """Seconds of every round of ``r`` (a run saved before rounds were kept has one number per cell)."""
    return list(r.extra.get("samples") or [r.seconds])


def ratios(num: Result, den: Result) -> list[float]:
    """Per-round ratios num / den (paired: the same round of each; NOTE [paired rounds] in timing.py)."""
    a, b = samples(num), samples(den)
    if len(a) != len(b):
        return [num.seconds / den.seconds]
    return [x / y for x, y in zip(a, b)]


def relative_iqr(values: Sequence[float]) -> float:
    """Interquartile range over median (0 for a zero median)."""
    s = spread(values)
    return (s["q3"] - s["q1"]) / s["median"] if s["median"] else 0.0


def valid(r: Result | None) -> bool:
    """Whether ``r`` is a measured cell (not missing, not a skipped contender's NaN)."""
    return r is not None and r.seconds == r.seconds


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


def load_json(path: str) -> tuple[dict, list[Result]]:
    """A run saved with :func:`save_json` (``bench --json``), for regenerating its tables and plot."""
    with open(path) as f:
        data = json.load(f)
    return data["meta"], [Result(**row) for row in data["rows"]]


def save_json(path: str, meta: dict, rows: list[Result]) -> None:
    """Write a run (every round's time, machine, versions and command) for :func:`load_json`."""
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": [r.__dict__ for r in rows]}, f, indent=2)
