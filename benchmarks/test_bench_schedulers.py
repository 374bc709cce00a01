"""scheduler.step() host cost, torch vs lrfast, every class, 1/10/100/1000 groups,
float and tensor LR; and by pattern of use (the bench's pattern table: composites, two
stacked, a resume, a hand edit, one of every class) at 1/10/100 groups, float LRs, on
torch.optim.SGD and lrfast.optim.SGD (pytest-benchmark; compare the two `impl` rows of each
case).

    pytest benchmarks/test_bench_schedulers.py --benchmark-only \
        --benchmark-group-by=param:name,param:groups,param:lr_kind
    pytest benchmarks/test_bench_schedulers.py --benchmark-only -k test_pattern_step \
        --benchmark-group-by=param:pattern,param:pattern_groups,param:optimizer

With ``--benchmark-disable`` (the test suite, ``scripts/test.sh``) each case runs once as a
test, at 1 and 10 groups only: the larger counts only matter for timing, and building 1,000
groups for every case and class cost the suite 20 s.
"""

from __future__ import annotations

import warnings

import pytest
from scheduler_cases import CASES, lrfast_module, make_scheduler, pattern_cases, pattern_step, stepper, torch_module

IMPLS = {"torch": torch_module, "lrfast": lrfast_module}
GROUPS = (1, 10, 100, 1000)
PATTERN_GROUPS = (1, 10, 100)
PATTERNS = {p.name: p for p in pattern_cases()}
PATTERN_STEPS = 10  # loop steps per benchmark round


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    timed = not metafunc.config.getoption("benchmark_disable", False)
    if "groups" in metafunc.fixturenames:
        metafunc.parametrize("groups", GROUPS if timed else GROUPS[:2])
    if "pattern_groups" in metafunc.fixturenames:
        metafunc.parametrize("pattern_groups", PATTERN_GROUPS if timed else PATTERN_GROUPS[:2])


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


@pytest.mark.parametrize("optimizer", ["torch.optim.SGD", "lrfast.optim.SGD"])
@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_pattern_step(benchmark, impl, pattern, pattern_groups, optimizer):
    """A round: PATTERN_STEPS loop steps of the pattern (on lrfast.optim.SGD each with its
    optimizer.step()); the benchmark's time / PATTERN_STEPS is the bench's µs per loop step."""
    steps_run = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt, step = pattern_step(impl, PATTERNS[pattern], pattern_groups, optimizer)

        def run() -> None:
            nonlocal steps_run
            for _ in range(PATTERN_STEPS):
                step()
            steps_run += PATTERN_STEPS
        benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=2)
        # the same loop steps with torch's schedulers on a torch.optim.SGD: the LRs the groups show agree
        twin, twin_step = pattern_step("torch", PATTERNS[pattern], pattern_groups)
        for _ in range(steps_run):
            twin_step()
    assert steps_run >= PATTERN_STEPS
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in twin.param_groups], rel=1e-9,
                                                                abs=1e-15)
