"""CPU optimizer step, lrfast vs torch (fused / foreach / for-loop), side by side in one
run (pytest-benchmark; compare the ``impl`` rows of each set). Every contender runs
``opt.step(); sched.step()`` with a CosineAnnealingLR, its gradients replaced by other
tensors between steps (outside the timing).

    LRFAST_BENCH_FULL=1 pytest benchmarks/test_bench_optim_cpu.py --benchmark-only \\
        --benchmark-group-by=param:optimizer,param:name

Without LRFAST_BENCH_FULL the sets are scaled down 16x (tensor counts kept), so that
``pytest --benchmark-disable`` (each benchmark run once, as a test) stays quick. The
paired, interleaved report with bandwidths: benchmarks/optim_cpu_report.py.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from optim_cpu_report import IMPLS, Contender, make_grad_sets, sets

FULL = os.environ.get("LRFAST_BENCH_FULL", "") not in ("", "0")
SETS = sets(full=FULL)
# Each case builds four contenders over up to a million elements in thousands of tensors:
# a quick loop (-m "not slow") leaves them out; scripts/test.sh runs them once each.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(SETS), ids=[spec["label"] for spec in SETS.values()])  # the real sizes
@pytest.mark.parametrize("optimizer", ["AdamW", "SGD"])
@pytest.mark.parametrize("impl", IMPLS)
def test_optimizer_step(benchmark, impl, optimizer, name):
    spec = SETS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        contender = Contender(impl, optimizer, spec["sizes"], spec["groups"], make_grad_sets(spec["sizes"]))
        start = [p.detach().clone() for p in contender.params[:3]]
        contender.swap_grads()
        contender.step()  # warm-up (compiles lrfast's kernel on a cold cache)
        benchmark.pedantic(contender.step, setup=contender.swap_grads, rounds=30 if FULL else 5,
                           warmup_rounds=1)
    for p, p0 in zip(contender.params[:3], start):
        assert torch.isfinite(p).all() and not torch.equal(p.detach(), p0)  # real steps were taken
