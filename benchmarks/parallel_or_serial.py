"""AdamW + a bound cosine on one tensor: the serial kernel, the parallel one, or the chooser.

    python benchmarks/parallel_or_serial.py serial|parallel|chooser ELEMENTS

``serial`` raises ``_config.PARALLEL_MIN_CHUNKS`` so the serial twin always runs,
``parallel`` makes ``ModeChooser`` always answer parallel, ``chooser`` is the default
(NOTE [parallel or serial] in lrfast/_backend/cpu.py). Prints µs per step for 5 rounds of
200 steps after 20 warm-up steps. Run it beside ``python -c "while True: pass"`` to see a
busy machine.
"""

from __future__ import annotations

import sys
import time

import torch

import lrfast.lr_scheduler
import lrfast.optim
from lrfast import _config
from lrfast._backend import cpu


def main(mode: str, n: int) -> None:
    if mode == "serial":
        _config.PARALLEL_MIN_CHUNKS = 2**62
    elif mode == "parallel":
        cpu.ModeChooser.parallel = lambda self: True  # type: ignore[method-assign]
    elif mode != "chooser":
        raise SystemExit(f"parallel_or_serial.py: mode must be serial, parallel or chooser, got {mode!r}")
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    opt = lrfast.optim.AdamW([p], lr=1e-3)
    sched = lrfast.lr_scheduler.CosineAnnealingLR(opt, 1000)
    for _ in range(20):
        opt.step()
        sched.step()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            opt.step()
            sched.step()
        rounds.append((time.perf_counter() - start) / 200 * 1e6)
    print(mode, n, " ".join(f"{r:.0f}" for r in rounds))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
