"""How the bench times: paired rounds with the caches evicted before every call, CUDA
events on the GPU, the memory-bandwidth probes, the machine's load.

NOTE [paired rounds]: every contender of a row, the bandwidth probes alike, is
timed once per round, in an order rotated from round to round, for ``--rounds`` rounds;
each cell is the median over rounds with its interquartile range, and a ratio is the
median of the per-round ratios (so a load burst that slows one round slows both sides of
it). Before every timed call the caches are evicted by reading a buffer twice the size of
the last-level cache (``--cache-mib``), outside the timing, so a step is timed from DRAM
as in training, where forward and backward run between two optimizer steps. CUDA calls are
timed with CUDA events.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable

__all__ = ["PROBE_BYTES", "PROBE_ELEMENTS", "Evictor", "bandwidth", "eviction_mib", "load_average",
           "paired_rounds", "sync"]

PROBE_BYTES = {"copy": 8, "triad": 12, "update": 12}  # copy and triad: STREAM counting
PROBE_ELEMENTS = 2**24


def sync(device: str) -> None:
    """Wait for ``device``'s queued work (nothing to wait for on the CPU)."""
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


class Evictor:
    """Reads a buffer of ``mib`` MiB, larger than the last-level cache (outside the timing); 0: nothing."""

    def __init__(self, device: str, mib: int) -> None:
        import torch

        self.device = device
        self.buffer = torch.ones(mib * 2**20 // 4, device=device) if mib > 0 else None

    def __call__(self) -> None:
        if self.buffer is not None:
            self.buffer.sum()
            sync(self.device)


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
                  evict: Callable[[], None] = lambda: None, warmup: int = 3, collect: bool = True
                  ) -> dict[str, list[float]]:
    """Seconds of every round for each of ``steps`` (NOTE [paired rounds]): each round times
    every step once, in an order rotated by one each round, ``evict`` run before each call.
    The garbage collector is off during the rounds; ``collect``: a full collection first
    (the caller may collect once for many small rows instead: with torch and Numba loaded a
    full collection walks some 300,000 objects, longer than a row of scheduler steps).

    >>> times = paired_rounds({"a": lambda: None, "b": lambda: None}, "cpu", rounds=3)
    >>> [len(v) for v in times.values()]
    [3, 3]
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync(device)
    names = list(steps)
    out: dict[str, list[float]] = {name: [] for name in names}
    if collect:
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


def bandwidth(device: str, rounds: int, evict: Callable[[], None]) -> dict[str, list[float]]:
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


def load_average() -> float | None:
    """The 1-minute load average (None where the system does not say)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
