"""The Numba twin of schedule.h agrees with the compiled host evaluation (lrfast._C)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from lrfast import _C
from lrfast import numba as numba_schedule
from lrfast import schedules as S
from lrfast._descriptor import Kind

N_STEPS = 10_000


def _schedules() -> dict[str, S.Schedule]:
    return {
        "constant": S.constant(0.3),
        "linear": S.linear(1.0, 0.1, 1000, transition_begin=50),
        "polynomial": S.polynomial(1.0, 0.01, 1.7, 5_000_000),
        "exponential": S.exponential_decay(1.0, 1000, 0.97),
        "exponential_clipped": S.exponential_decay(1.0, 100, 0.5, staircase=True, end_value=1e-3),
        "step": S.step_decay(0.1, 3333, 0.7),
        "multistep": S.multistep_decay(0.1, [10, 1000, 1000, 250_000, 9_000_000], 0.5),
        "multistep_many": S.multistep_decay(0.1, list(range(0, 10_000_000, 4999)), 0.999),
        "piecewise": S.piecewise_constant(1.0, {100: 0.5, 1_000_000: 0.1, 5_000_000: 0.3}),
        "cosine_decay": S.cosine_decay(1.0, 7_000_000, alpha=0.01, exponent=1.5),
        "cosine_annealing": S.cosine_annealing(0.1, 1_234_567, eta_min=1e-4),
        "warm_restarts_1": S.warm_restarts(0.1, 9_999, 1, 1e-5),
        "warm_restarts_2": S.warm_restarts(0.1, 7, 2, 1e-5),
        "warm_restarts_3": S.warm_restarts(0.1, 13, 3),
        "cyclic_triangular": S.cyclic(0.01, 0.1, 2000, step_size_down=3001),
        "cyclic_triangular2": S.cyclic(0.01, 0.1, 500, mode="triangular2"),
        "cyclic_exp_range": S.cyclic(0.01, 0.1, 500, mode="exp_range", gamma=0.99999),
        "cyclic_table_cycle": S.cyclic(0.01, 0.1, 500, scale_fn=lambda x: 1 / x, horizon=1000),
        "cyclic_table_iterations": S.cyclic(0.01, 0.1, 500, scale_fn=lambda x: 0.5 + 0.5 / (1 + x),
                                            scale_mode="iterations", horizon=20_000),
        "one_cycle": S.one_cycle(0.1, 8_000_000),
        "one_cycle_three_linear": S.one_cycle(0.1, 3_000_000, 0.2, "linear", three_phase=True),
        "one_cycle_phases": S.one_cycle_phases([999.0, 4_999_999.0], [0.004, 0.1, 4e-7], False),
        "inverse_sqrt": S.inverse_sqrt(1.0, timescale=3000, warmup_steps=1000),
        "sqrt_decay": S.sqrt_decay(1.0, 0.01, 6_000_000),
        "table": S.from_values(np.linspace(1.0, 0.0, 777)),
        "warmup_cosine_decay": S.warmup_cosine_decay(0.0, 1.0, 10_000, 9_000_000, end_value=0.01),
        "wsd": S.warmup_stable_decay(1.0, 1000, 3_000_000, 2_000_000, decay_type="1-sqrt"),
        "join_nested": S.join([S.join([S.linear(0.0, 1.0, 100), S.constant(1.0)], [100]),
                               S.cosine_decay(1.0, 1_000_000) * 0.5, S.multistep_decay(0.2, [10, 20000])],
                              [5_000, 2_000_000]),
        "chain": S.chain(S.warmup_constant(0.0, 1.0, 500), S.step_decay(0.1, 100_000, 0.9),
                         S.cyclic(0.5, 1.5, 1000)),
        "join_of_chains": S.join([S.chain(S.linear(0.1, 1.0, 50), S.exponential_decay(1.0, 7, 0.999)),
                                  S.chain(S.from_values([2.0, 1.0, 0.5]), S.cosine_annealing(1.0, 977))],
                                 [4321]) * 0.01,
        "floored": S.cosine_decay(1.0, 7_000_000).with_floor(0.05),
        "plateau_chain": S.chain(S.warmup_cosine_decay(0.0, 1.0, 1000, 9_000_000),
                                 S.Schedule([S.Segment(Kind.PLATEAU, 0, 0, (0.0,), (0.25,))])).with_floor(1e-3),
    }


SCHEDULES = _schedules()


def _steps(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    integers = rng.integers(0, 10_000_000, size=N_STEPS - 2_000).astype(np.float64)
    fractional = rng.uniform(0.0, 1e7, size=1_000)
    small = rng.uniform(0.0, 3000.0, size=1_000)
    fixed = np.array([0.0, 1.0, 2.0**31 + 5, 2.0**40, 2.0**63, 1e300])  # integer casts must not wrap
    return np.concatenate([fixed, integers, fractional, small])[:N_STEPS]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_numba_twin_matches_host(name):
    schedule = SCHEDULES[name]
    packed = schedule.pack()
    steps = _steps(zlib.crc32(name.encode()))
    host = schedule.at(steps)
    twin = numba_schedule.evaluate_many(packed.descriptors[None, :], packed.table, steps)[0]
    assert twin.shape == host.shape == (N_STEPS,)
    assert np.all(np.isfinite(host))
    np.testing.assert_allclose(twin, host, rtol=1e-15, atol=1e-300)


def test_numba_twin_matches_host_for_many_groups_at_once():
    packed = S.pack_many(list(SCHEDULES.values()))
    steps = _steps(7)[:2000]
    host = _C.evaluate(packed.descriptors, packed.table, steps)
    twin = numba_schedule.evaluate_many(packed.descriptors, packed.table, steps)
    np.testing.assert_allclose(twin, host, rtol=1e-15, atol=1e-300)


def test_numba_twin_returns_nan_for_a_malformed_descriptor():
    packed = S.constant(1.0).pack()
    bad = packed.descriptors.copy()
    bad[0] = 99.0  # layout version
    out = numba_schedule.evaluate_many(bad[None, :], packed.table, np.array([0.0, 5.0]))
    assert np.isnan(out).all()
