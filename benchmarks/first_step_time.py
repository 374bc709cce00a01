"""First optimizer step of a fresh process: Numba's on-disk cache cold vs warm.

    python benchmarks/first_step_time.py [--repeats 3] [--optimizers AdamW,SGD] [--dtypes float32,bfloat16]
        [--no-warmup]
    python benchmarks/first_step_time.py --versus-torch [--repeats 5]

Each measurement is a new interpreter with NUMBA_CACHE_DIR pointing at a scratch
directory: "cold" empties it first (the kernels compile), "warm" reuses what the cold
run left (they load). The child times ``import lrfast.optim``, then on a small MLP the
first ``opt.step()`` (which compiles or loads the kernel for float32), the second, and
in a separate child ``lrfast.warmup()`` for every optimizer and dtype. The "Numba floor"
row is what any Numba program pays at its first call: ``import numba`` and a one-line
``@njit(cache=True)`` function, cold and warm. The first step
is split into loading Numba with lrfast's kernel module (``import lrfast._backend.cpu``)
and the step itself (compiling, or loading from the cache, the kernel of that dtype
only). Medians over ``--repeats`` processes; a markdown table on stdout.

``--versus-torch`` times one program in fresh processes, written once with torch's classes
and once with lrfast's: import, build a 64-256-1 MLP, construct AdamW + StepLR, one forward
and backward, one ``opt.step(); sched.step()``. Beside them the Numba floor program: torch's
program, then ``import numba`` and a call of a one-line cached ``@njit`` (what any Numba
program pays at its first call), so that lrfast's own cost is what it adds over that. Warm
Numba cache (a scratch NUMBA_CACHE_DIR filled by one discarded run of each); each process timed from its start to
its exit by the parent, and inside it from before ``import torch`` to after the step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

# Numba's floor, what any program using Numba pays at its first call: import it and call a
# one-line cached @njit (written to a file: Numba caches only file code). Both child programs
# run it where they say FLOOR_PROBE (one indent level in).
FLOOR_PROBE = r"""
import os, sys, numpy, numba
probe = os.path.join(os.environ["NUMBA_CACHE_DIR"], "floor_probe.py")
if not os.path.exists(probe):
    with open(probe, "w") as f:
        f.write("import numba\n\n@numba.njit(cache=True)\ndef first(x):\n    return x[0] + 1.0\n")
sys.path.insert(0, os.path.dirname(probe))
import floor_probe
floor_probe.first(numpy.zeros(1))
""".strip("\n")


def _with_floor_probe(program: str) -> str:
    return program.replace("    FLOOR_PROBE\n", textwrap.indent(FLOOR_PROBE, "    ") + "\n")


CHILD = _with_floor_probe(r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import lrfast, lrfast.optim
t2 = time.perf_counter()
from lrfast import lr_scheduler
t2b = time.perf_counter()
out = {"import torch": t1 - t0, "import lrfast.optim": t2 - t1, "import lrfast.lr_scheduler": t2b - t2}
t2 = t2b
if sys.argv[1] == "floor":
    # Numba's own first call: import it, then call a one-line cached function
    import os, numba, numpy
    t3 = time.perf_counter()
    FLOOR_PROBE
    out["import numba"] = t3 - t2
    out["first step"] = time.perf_counter() - t2
elif sys.argv[1] == "warmup":
    lrfast.warmup()
    out["lrfast.warmup() (all)"] = time.perf_counter() - t2
else:
    torch.manual_seed(0)
    dtype = getattr(torch, sys.argv[2])
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)).to(dtype)
    opt = getattr(lrfast.optim, sys.argv[1])(model.parameters(), lr=1e-3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    model(torch.randn(32, 64, dtype=dtype)).float().pow(2).mean().backward()
    t3 = time.perf_counter()
    import lrfast._backend.cpu
    t3b = time.perf_counter()
    out["numba + kernel module"] = t3b - t3
    opt.step()
    t4 = time.perf_counter()
    sched.step()
    opt.step()
    t5 = time.perf_counter()
    out["first step"] = t4 - t3
    out["first step kernel"] = t4 - t3b
    out["second step"] = t5 - t4
print(json.dumps(out))
""")


VERSUS = _with_floor_probe(r"""
import os, sys, time
t0 = time.perf_counter()
import torch
which = sys.argv[1]
if which == "lrfast":
    import lrfast.optim as optim
    from lrfast import lr_scheduler
else:
    from torch import optim
    from torch.optim import lr_scheduler
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
opt = optim.AdamW(model.parameters(), lr=1e-3)
sched = lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
model(torch.randn(32, 64)).pow(2).mean().backward()
opt.step()
sched.step()
if which == "floor":  # torch's program, then what any Numba program pays at its first call
    FLOOR_PROBE
print(time.perf_counter() - t0)
""")


def versus_torch(repeats: int) -> None:
    cache = tempfile.mkdtemp(prefix="lrfast-numba-cache-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    samples: dict[str, dict[str, list[float]]] = {w: {"process": [], "program": []} for w in ("torch", "lrfast",
                                                                                                "floor")}
    try:
        for which in samples:  # fill the cache (and the OS's file cache): discarded
            subprocess.run([sys.executable, "-c", VERSUS, which], env=env, check=True, capture_output=True, timeout=900)
        for _ in range(repeats):
            for which, cell in samples.items():  # interleaved: a load change hits all three alike
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", VERSUS, which], env=env, check=True, capture_output=True,
                                     text=True, timeout=900).stdout
                cell["process"].append(time.perf_counter() - t0)
                cell["program"].append(float(out.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    med = {w: {k: statistics.median(v) for k, v in cell.items()} for w, cell in samples.items()}
    print(f"- {repeats} fresh processes each, interleaved (medians, seconds); warm NUMBA_CACHE_DIR; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print()
    print("| program | whole process | import torch .. first step done | over torch's classes (whole process) |")
    print("|---|---:|---:|---:|")
    labels = {"torch": "torch.optim.AdamW + torch StepLR", "lrfast": "lrfast.optim.AdamW + lrfast StepLR",
              "floor": "torch's program + Numba's floor (import numba, one cached @njit call)"}
    for which, m in med.items():
        over = m["process"] - med["torch"]["process"]
        print(f"| {labels[which]} | {m['process']:.3f} | {m['program']:.3f} | "
              f"{'-' if which == 'torch' else f'{over:+.3f}'} |")
    print()
    print(f"lrfast over torch's program + Numba's floor: {med['lrfast']['process'] - med['floor']['process']:+.3f} s "
          f"(whole process), {med['lrfast']['program'] - med['floor']['program']:+.3f} s (import torch .. first step)")


def run_child(what: str, cache_dir: str, dtype: str = "float32") -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    result = subprocess.run([sys.executable, "-c", CHILD, what, dtype], env=env, capture_output=True, text=True,
                            timeout=900, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizers", default="AdamW,SGD")
    parser.add_argument("--dtypes", default="float32,float64,bfloat16,float16")
    parser.add_argument("--no-warmup", action="store_true", help="skip the lrfast.warmup() rows")
    parser.add_argument("--versus-torch", action="store_true",
                        help="the same program with torch's classes and lrfast's, beside Numba's floor")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.versus_torch:
        versus_torch(args.repeats)
        return
    runs = [(o, d) for o in args.optimizers.split(",") for d in args.dtypes.split(",")]
    runs = [("floor", "-")] + runs + ([] if args.no_warmup else [("warmup", "-")])
    rows: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for what, dtype in runs:
        for _ in range(args.repeats):
            cache = tempfile.mkdtemp(prefix="lrfast-numba-cache-")
            try:
                for state in ("cold", "warm"):
                    sample = run_child(what, cache, dtype)
                    cell = rows.setdefault((what, dtype, state), {})
                    for key, value in sample.items():
                        cell.setdefault(key, []).append(value)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    print(f"- {args.repeats} fresh processes per row (medians, seconds); NUMBA_CACHE_DIR a scratch directory; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| run | Numba cache | import torch | import lrfast.optim | import lrfast.lr_scheduler "
          "| first step / lrfast.warmup() | of which Numba + kernel module | second step |")
    print("|---|---|---|---|---|---|---|---|")
    for (what, dtype, state), cell in rows.items():
        med = {k: statistics.median(v) for k, v in cell.items()}
        first = med.get("first step", med.get("lrfast.warmup() (all)"))
        second = f"{med['second step'] * 1e3:.3f} ms" if "second step" in med else "-"
        module = next((f"{med[k]:.3f}" for k in ("numba + kernel module", "import numba") if k in med), "-")
        label = {"warmup": "lrfast.warmup() (all kernels and dtypes)",
                 "floor": "Numba floor: import numba + a one-line cached @njit"}.get(what, f"{what}, {dtype} MLP")
        print(f"| {label} | {state} | {med['import torch']:.3f} | {med['import lrfast.optim']:.3f} | "
              f"{med['import lrfast.lr_scheduler']:.3f} | {first:.3f} | {module} | {second} |")


if __name__ == "__main__":
    main()
