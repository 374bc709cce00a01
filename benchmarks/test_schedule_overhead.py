"""benchmarks/schedule_overhead.py in a bounded form: both sets and optimizers run, and the
scheduled contender really follows its schedule while the constant one does not."""

from __future__ import annotations

import pytest
from schedule_overhead import main, pair

pytest.importorskip("numba")


def test_bounded_run_reports_every_case(capsys):
    results = main(["--rounds", "2", "--steps-per-round", "2", "--scale", "0.001"])
    assert [(r["optimizer"], r["tensors"]) for r in results] == [("AdamW", 1), ("AdamW", 200), ("SGD", 1),
                                                                  ("SGD", 200)]
    for r in results:
        assert r["constant_us"] > 0 and r["scheduled_us"] > 0 and r["sched_step_us"] > 0
        lo, hi = r["overhead_iqr_pct"]
        assert lo <= r["overhead_pct"] <= hi
    assert capsys.readouterr().out.count("| AdamW |") == 2


def test_only_the_scheduled_optimizer_changes_its_lr():
    constant, scheduled, sched = pair("AdamW", [10, 3], t_max=4)
    for _ in range(2):  # half-way down the cosine
        constant.step()
        scheduled.step()
        sched.step()
    assert constant.param_groups[0]["lr"] == 1e-4
    assert scheduled.param_groups[0]["lr"] == pytest.approx(5e-5, rel=1e-6)
