"""AdamW step time per Numba threading layer, and with the serial twin (NOTE [threading layer]).

    python benchmarks/threading_layers.py [--sizes 65536,1048576] [--rounds 5] [--steps 50]

Each (layer, size) runs in a fresh interpreter (the layer is chosen once per process):
``serial`` forces the serial kernel (``_config.PARALLEL_MIN_CHUNKS`` raised), the others
set ``NUMBA_THREADING_LAYER``; a layer that does not load here is reported as such.
Prints the µs per step of every round, so the spread shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch, lrfast.optim
from lrfast import _config
from lrfast._backend import cpu_threads as threads
mode, n, rounds, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if mode == "serial":
    _config.PARALLEL_MIN_CHUNKS = 2**62
p = torch.nn.Parameter(torch.randn(n))
p.grad = torch.randn(n)
opt = lrfast.optim.AdamW([p], lr=1e-3)
for _ in range(5):
    opt.step()
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    times.append((time.perf_counter() - t0) / steps * 1e6)
print(json.dumps({"layer": threads.layer(), "us": times}))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="65536,1048576")
    parser.add_argument("--modes", default="serial,omp,tbb,workqueue")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    print(f"# AdamW µs per step, {args.rounds} rounds of {args.steps} steps; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| elements | " + " | ".join(modes) + " |")
    print("|---:|" + "---:|" * len(modes))
    table = {}
    for n in args.sizes.split(","):
        cells = []
        for mode in modes:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
            if mode != "serial":
                env["NUMBA_THREADING_LAYER"] = mode
            result = subprocess.run([sys.executable, "-c", CHILD, mode, n, str(args.rounds), str(args.steps)],
                                    env=env, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                cells.append("does not load" if "No threading layer" in result.stderr else "failed")
                continue
            out = json.loads(result.stdout.strip().splitlines()[-1])
            table[(n, mode)] = out
            cells.append(" ".join(f"{t:.0f}" for t in out["us"]) + ("" if mode == "serial" else f" ({out['layer']})"))
        print(f"| {int(n):,} | " + " | ".join(cells) + " |", flush=True)
    return table


if __name__ == "__main__":
    main()
