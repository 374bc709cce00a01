"""scheduler.step() host cost, torch vs lrfast, every class, 1/10/100/1000 groups,
float and tensor LR (pytest-benchmark; compare the two `impl` rows of each case).

    pytest benchmarks/test_bench_schedulers.py --benchmark-only \
        --benchmark-group-by=param:name,param:groups,param:lr_kind

With ``--benchmark-disable`` (the test suite, ``scripts/test.sh``) each case runs once as a
test, at 1 and 10 groups only: the larger counts only matter for timing, and building 1,000
groups for every case and class cost the suite 20 s.
"""

from __future__ import annotations

import warnings

import pytest
from scheduler_cases import CASES, lrfast_module, make_scheduler, stepper, torch_module

IMPLS = {"torch": torch_module, "lrfast": lrfast_module}
GROUPS = (1, 10, 100, 1000)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    timed = not metafunc.config.getoption("benchmark_disable", False)
    metafunc.parametrize("groups", GROUPS if timed else GROUPS[:2])


@pytest.mark.parametrize("lr_kind", ["float", "tensor"])
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_scheduler_step(benchmark, impl, name, groups, lr_kind):
    _, sched = make_scheduler(IMPLS[impl](), name, groups, lr_kind == "tensor")
    step = stepper(sched)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.pedantic(step, rounds=200, iterations=1, warmup_rounds=5)
    # the benchmark drove real steps: the LR moved off its initial value or stayed valid
    assert all(float(v) == float(v) for v in sched.get_last_lr())
