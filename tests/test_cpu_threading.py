"""CPU: the Numba threading layer lrfast picks, and its safety over threads, forks and long runs
(NOTE [threading layer] in lrfast/_backend/cpu_threads.py).

The layer is chosen once per process, so every case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # subprocesses per threading layer, minutes on 2 cores

pytest.importorskip("numba")

CHILD_PRELUDE = textwrap.dedent("""
    import json, os, sys, threading
    import torch
    import lrfast.optim, lrfast.lr_scheduler
    from lrfast import _config
    from lrfast._backend import cpu_threads as threads
    _config.CHUNK_SIZE = 64  # 1,000 elements = 16 chunks: the parallel kernels run

    def make(seed, n=1000):
        g = torch.Generator().manual_seed(seed)
        p = torch.nn.Parameter(torch.randn(n, generator=g))
        p.grad = torch.randn(n, generator=g)
        return p

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
""")


def run_child(body: str, env_extra: dict[str, str] | None = None, drop=("NUMBA_THREADING_LAYER",
              "NUMBA_THREADING_LAYER_PRIORITY")) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    result = subprocess.run([sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(body)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"child failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def layers_that_load() -> list[str]:
    found = []
    for layer, module in (("omp", "omppool"), ("tbb", "tbbpool"), ("workqueue", "workqueue")):
        result = subprocess.run([sys.executable, "-c", f"from numba.np.ufunc import {module}"], capture_output=True)
        if result.returncode == 0:
            found.append(layer)
    return found


def omp_loads() -> bool:
    return "omp" in layers_that_load()


def test_default_layer_is_openmp_where_it_loads():
    out = run_child("""
        p = make(0)
        lrfast.optim.AdamW([p]).step()
        print(json.dumps({"layer": threads.layer(), "chosen_by": threads.user_choice()}))
    """)
    assert out["chosen_by"] is None
    assert out["layer"] == ("omp" if omp_loads() else out["layer"])
    assert out["layer"] in ("omp", "tbb", "workqueue")


def test_an_explicit_layer_is_respected():
    out = run_child("""
        p = make(0)
        lrfast.optim.AdamW([p]).step()
        print(json.dumps({"layer": threads.layer(), "chosen_by": threads.user_choice()}))
    """, {"NUMBA_THREADING_LAYER": "workqueue"})
    assert out == {"layer": "workqueue", "chosen_by": "NUMBA_THREADING_LAYER=workqueue"}


TWO_THREADS = """
    def train(seed, steps, out):
        p = make(seed)
        opt = lrfast.optim.AdamW([p], lr=1e-2)
        for i in range(steps):
            p.grad = torch.full_like(p, (i % 7) - 3.0)
            opt.step()
        out[seed] = p.detach().clone()

    steps = 100
    together, alone = {}, {}
    workers = [threading.Thread(target=train, args=(seed, steps, together)) for seed in (1, 2, 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for seed in (1, 2, 3):
        train(seed, steps, alone)
    print(json.dumps({"layer": threads.layer(),
                      "equal": all(torch.equal(together[s], alone[s]) for s in (1, 2, 3))}))
"""


@pytest.mark.parametrize("layer", ["default"] + layers_that_load())
def test_python_threads_step_concurrently(layer):
    # workqueue aborts the process on concurrent parallel calls unless lrfast serialises them
    out = run_child(TWO_THREADS, {} if layer == "default" else {"NUMBA_THREADING_LAYER": layer})
    assert out["equal"]
    if layer != "default":
        assert out["layer"] == layer


@pytest.mark.parametrize("layer", ["default"] + layers_that_load())
def test_forked_child_steps(layer):
    # GNU OpenMP terminates a forked child that enters it again; lrfast runs serial kernels there
    out = run_child("""
        p = make(0)
        lrfast.optim.SGD([p], lr=0.1).step()
        layer = threads.layer()
        pid = os.fork()
        if pid == 0:
            q = make(5)
            expected = q.detach() - 0.5 * q.grad
            lrfast.optim.SGD([q], lr=0.5).step()
            os._exit(0 if torch.equal(q.detach(), expected) else 3)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"layer": layer, "status": status, "parent_parallel": threads.parallel_allowed()}))
    """, {} if layer == "default" else {"NUMBA_THREADING_LAYER": layer})
    assert out["status"] == 0
    assert out["parent_parallel"]
    assert out["layer"] == (("omp" if omp_loads() else out["layer"]) if layer == "default" else layer)


def test_memory_stays_flat_over_many_steps():
    # The growth of issue 14 (Numba on a system TBB): +27 MB of RSS over 20k steps of AdamW on
    # 100 elements, about 1.4 KB a step. Here each optimizer may add at most 6 MiB once its first
    # steps have warmed everything up: 10k steps of the serial kernels (tiny buckets), 500 of the
    # parallel ones (slow on an oversubscribed machine).
    out = run_child("""
        growth = {}
        for name, n, steps in (("AdamW", 100, 10000), ("SGD", 100, 10000), ("AdamW", 1000, 500),
                               ("SGD", 1000, 500)):
            p = make(0, n)
            opt = getattr(lrfast.optim, name)([p], lr=1e-3, **({"momentum": 0.9} if name == "SGD" else {}))
            sched = lrfast.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
            for _ in range(steps // 10):
                opt.step()
                sched.step()
            before = rss_mib()
            for _ in range(steps):
                opt.step()
                sched.step()
            growth[f"{name} x {n}"] = rss_mib() - before
        print(json.dumps({"layer": threads.layer(), "growth_mib": growth}))
    """)
    assert len(out["growth_mib"]) == 4
    assert all(g < 6.0 for g in out["growth_mib"].values()), out


def test_info_names_the_layer():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING")}
    out = subprocess.run([sys.executable, "-m", "lrfast", "info"], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    line = next(line for line in out.splitlines() if "numba_threading_layer" in line)
    expected = "omp" if omp_loads() else ""
    assert f"numba_threading_layer  {expected}" in line and "lrfast's preference omp > tbb > workqueue" in line


# NOTE [torch's thread count]: each case in a fresh interpreter, torch having run an op first
# (as in training, before the optimizer's first step), the parallel kernel then launching Numba.
THREADS_AFTER_STEP = """
    import numba
    {before}
    torch.ones(4) + 1
    opt = lrfast.optim.AdamW([make(0)], lr=1e-3)
    opt.step()
    first = {{"torch": torch.get_num_threads(), "numba": numba.get_num_threads(), "launched": threads._launched()}}
    {between}
    opt.step()
    print(json.dumps({{"first": first, "torch": torch.get_num_threads(), "numba": numba.get_num_threads(),
                      "launched_threads": numba.config.NUMBA_NUM_THREADS, "layer": threads.layer()}}))
"""
NO_USER_THREADS = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


@pytest.mark.parametrize("layer", ["default"] + layers_that_load())
def test_the_first_parallel_step_keeps_torchs_thread_count_and_numba_follows_it(layer):
    out = run_child(THREADS_AFTER_STEP.format(before="torch.set_num_threads(1)", between=""),
                    {} if layer == "default" else {"NUMBA_THREADING_LAYER": layer}, drop=NO_USER_THREADS)
    assert out["first"] == {"torch": 1, "numba": 1, "launched": True}, out
    assert (out["torch"], out["numba"]) == (1, 1), out


def test_numba_follows_a_later_change_of_torchs_count():
    out = run_child(THREADS_AFTER_STEP.format(before="torch.set_num_threads(2)", between="torch.set_num_threads(1)"),
                    drop=NO_USER_THREADS)
    assert out["first"]["torch"] == 2 and out["first"]["numba"] == min(2, out["launched_threads"]), out
    assert (out["torch"], out["numba"]) == (1, 1), out


def test_numbas_count_set_by_the_user_is_left_alone():
    # numba.set_num_threads in code, or NUMBA_NUM_THREADS in the environment: Numba keeps it
    by_call = run_child(THREADS_AFTER_STEP.format(before="numba.set_num_threads(1); torch.set_num_threads(2)",
                                                  between=""), drop=NO_USER_THREADS)
    assert (by_call["torch"], by_call["numba"]) == (2, 1), by_call
    by_env = run_child(THREADS_AFTER_STEP.format(before="torch.set_num_threads(1)", between=""),
                       {"NUMBA_NUM_THREADS": "2"}, drop=NO_USER_THREADS)
    assert (by_env["torch"], by_env["numba"]) == (1, 2), by_env
