"""Every schedule factory against a float64 closed form written out here with ``math``.

The references below never call lrfast. Each follows the library the curve is named
after (torch's closed forms for StepLR, MultiStepLR, CosineAnnealingLR,
CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR; optax's for its schedules;
transformers' for the inverse square root) and is checked at step 0, at each
milestone -1/0/+1, at the end, past the end and at 2**31 + 5.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pytest

from lrfast import schedules as S

BIG = 2**31 + 5
REL = 1e-12


def _pow(base: float, exponent: float) -> float:
    """``base ** exponent`` that overflows to inf as C's pow does, instead of raising."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def assert_close(actual: float, expected: float, scale: float, where: str) -> None:
    """Relative 1e-12, or absolute 1e-15 * scale near zero."""
    if expected == actual:
        return
    tol = max(REL * abs(expected), 1e-15 * scale)
    assert abs(actual - expected) <= tol, f"{where}: got {actual!r}, expected {expected!r}"


# -- references, written from the libraries' formulas -----------------------------------

def ref_constant(v):
    return lambda t: v


def ref_optax_polynomial(init, end, power, steps, begin=0):
    def f(t):
        count = min(max(t - begin, 0), steps)
        frac = 1 - count / steps
        return (init - end) * frac**power + end
    return f


def ref_optax_linear(init, end, steps, begin=0):
    return ref_optax_polynomial(init, end, 1, steps, begin)


def ref_optax_exponential(init, steps, rate, begin=0, staircase=False, end=None):
    def f(t):
        decreased = t - begin
        p = decreased / steps
        if staircase:
            p = math.floor(p)
        v = init if decreased <= 0 else init * _pow(rate, p)
        if end is not None:
            v = max(v, end) if rate < 1.0 else min(v, end)
        return v
    return f


def ref_torch_step(base, step_size, gamma):
    return lambda t: base * gamma ** math.floor(t / step_size)


def ref_torch_multistep(base, milestones, gamma):
    ms = sorted(milestones)  # torch: sorted(Counter(milestones).elements())
    return lambda t: base * gamma ** bisect.bisect_right(ms, t)


def ref_optax_piecewise(init, boundaries_and_scales):
    def f(t):
        v = init
        for threshold, scale in sorted((boundaries_and_scales or {}).items()):
            indicator = max(0.0, math.copysign(1.0, threshold - t) if threshold != t else 0.0)
            v = v * indicator + (1 - indicator) * scale * v
        return v
    return f


def ref_optax_cosine_decay(init, steps, alpha=0.0, exponent=1.0):
    def f(t):
        count = min(t, steps)
        cosine = 0.5 * (1 + math.cos(math.pi * count / steps))
        return init * ((1 - alpha) * cosine**exponent + alpha)
    return f


def ref_torch_cosine_annealing(base, t_max, eta_min=0.0):
    # CosineAnnealingLR._get_closed_form_lr: periodic, no clamp at T_max
    return lambda t: eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def ref_torch_warm_restarts(base, t0, t_mult=1, eta_min=0.0):
    """CosineAnnealingWarmRestarts.step(epoch). torch finds the period with
    ``int(math.log(epoch / T_0 * (T_mult - 1) + 1, T_mult))``, which lands one period
    short at some restarts (log(243, 3) = 4.999999999999999); its step() recursion, the
    one training loops use, is exact. The period is found here by integer counting."""
    def f(t):
        if t < t0:
            t_cur, t_i = t, t0
        elif t_mult == 1:
            t_cur, t_i = t % t0, t0
        else:
            n, begin, period = 0, 0, t0
            while begin + period <= t:
                begin += period
                period *= t_mult
                n += 1
            t_cur = t - t0 * (t_mult**n - 1) / (t_mult - 1)
            t_i = t0 * t_mult**n
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
    return f


def ref_torch_cyclic(base, peak, up, down=None, mode="triangular", gamma=1.0, scale_fn=None,
                     scale_mode="cycle", horizon=None):
    up = float(up)
    down = up if down is None else float(down)
    total = up + down
    ratio = up / total
    if scale_fn is None:
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
        scale_fn = {
            "triangular": lambda x: 1.0,
            "triangular2": lambda x: 1 / _pow(2.0, x - 1),
            "exp_range": lambda x: _pow(gamma, x),
        }[mode]
    elif horizon is not None:  # lrfast bakes `horizon` entries and holds the last one
        custom = scale_fn
        last = horizon if scale_mode == "cycle" else horizon - 1
        scale_fn = lambda x: custom(min(x, last))  # noqa: E731

    def f(t):
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        factor = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        height = (peak - base) * factor
        return base + height * scale_fn(cycle if scale_mode == "cycle" else t)
    return f


def _torch_one_cycle_phases(max_lr, total, pct, div, final_div, three_phase):
    initial = max_lr / div
    minimum = initial / final_div
    if three_phase:
        return [(float(pct * total) - 1, initial, max_lr), (float(2 * pct * total) - 2, max_lr, initial),
                (total - 1, initial, minimum)]
    return [(float(pct * total) - 1, initial, max_lr), (total - 1, max_lr, minimum)]


def _torch_one_cycle_at(phases, linear, step):
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            pct = (step - start) / (end - start)
            if linear:
                return (b - a) * pct + a
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
        start = end
    raise AssertionError("unreachable")


def ref_torch_one_cycle(max_lr, total, pct=0.3, strategy="cos", div=25.0, final_div=1e4, three_phase=False):
    """OneCycleLR.get_lr; torch raises past total_steps, lrfast holds the final LR from there."""
    phases = _torch_one_cycle_phases(max_lr, total, pct, div, final_div, three_phase)
    minimum = max_lr / div / final_div
    return lambda t: minimum if t >= total else _torch_one_cycle_at(phases, strategy == "linear", t)


def ref_transformers_inverse_sqrt(base, warmup=0, timescale=None):
    if timescale is None:
        timescale = warmup or 10_000

    def f(t):
        if t < warmup:
            return base * (float(t) / float(max(1, warmup)))
        shift = timescale - warmup
        return base * (1.0 / math.sqrt((t + shift) / timescale))
    return f


def ref_sqrt_decay(init, end, steps):
    return lambda t: end + (init - end) * (1 - math.sqrt(min(t, steps) / steps))


def ref_warmup_constant(init, peak, warmup):
    return lambda t: ref_optax_linear(init, peak, warmup)(t) if t < warmup else peak


def ref_optax_warmup_cosine_decay(init, peak, warmup, decay_steps, end=0.0, exponent=1.0):
    alpha = 0.0 if peak == 0.0 else end / peak
    cosine = ref_optax_cosine_decay(peak, decay_steps - warmup, alpha, exponent)
    warm = ref_optax_linear(init, peak, warmup) if warmup > 0 else ref_constant(init)
    return lambda t: warm(t) if t < warmup else cosine(t - warmup)  # optax.join_schedules


def ref_wsd(peak, warmup, stable, decay, init=0.0, end=0.0, decay_type="linear"):
    def f(t):
        if t < warmup:
            return init + (peak - init) * t / warmup
        if t < warmup + stable:
            return peak
        if decay == 0:
            return end
        p = min(t - warmup - stable, decay) / decay
        shape = {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "1-sqrt": 1 - math.sqrt(p)}
        return end + (peak - end) * shape[decay_type]
    return f


def ref_table(values):
    return lambda t: values[min(math.floor(t), len(values) - 1)]


# -- the cases ---------------------------------------------------------------------------

class Case(NamedTuple):
    id: str
    build: Callable[[], S.Schedule]
    ref: Callable[[float], float]
    marks: Sequence[int] = ()
    dense: int = 0  # also check every step below this
    scale: float = 1.0  # magnitude of the values, for the absolute tolerance near zero
    repr_parts: Sequence[str] = ()
    fractional: bool = True  # the reference holds at fractional steps too


def _cubic(t):
    return 1.0 / (1.0 + t) ** 3


CASES = [
    Case("constant", lambda: S.constant(0.1), ref_constant(0.1), (), 3, 0.1, ["constant(value=0.1)"]),
    Case("linear", lambda: S.linear(1.0, 0.1, 100), ref_optax_linear(1.0, 0.1, 100), (1, 50, 100),
         repr_parts=["linear(init_value=1.0, end_value=0.1, transition_steps=100)"]),
    Case("linear_up_begin", lambda: S.linear(0.0, 2.0, 7, transition_begin=5),
         ref_optax_linear(0.0, 2.0, 7, 5), (5, 12), 20, 2.0, ["linear(", "transition_begin=5"]),
    Case("polynomial", lambda: S.polynomial(1.0, 0.01, 2.0, 50), ref_optax_polynomial(1.0, 0.01, 2.0, 50),
         (25, 50), repr_parts=["polynomial(", "power=2.0"]),
    Case("polynomial_sqrt_begin", lambda: S.polynomial(1.0, 0.0, 0.5, 30, transition_begin=10),
         ref_optax_polynomial(1.0, 0.0, 0.5, 30, 10), (10, 40), 45, repr_parts=["transition_begin=10"]),
    Case("exponential", lambda: S.exponential_decay(1.0, 10, 0.5), ref_optax_exponential(1.0, 10, 0.5),
         (10, 20), 25, repr_parts=["exponential_decay(", "decay_rate=0.5"]),
    Case("exponential_staircase", lambda: S.exponential_decay(2.0, 10, 0.5, staircase=True),
         ref_optax_exponential(2.0, 10, 0.5, staircase=True), (10, 20, 30), 35, 2.0, ["staircase=True"]),
    Case("exponential_clip_below", lambda: S.exponential_decay(1.0, 10, 0.5, end_value=0.1),
         ref_optax_exponential(1.0, 10, 0.5, end=0.1), (33, 34), 60, repr_parts=["end_value=0.1"],
         fractional=False),
    Case("exponential_clip_above", lambda: S.exponential_decay(0.1, 10, 2.0, end_value=1.0),
         ref_optax_exponential(0.1, 10, 2.0, end=1.0), (33, 34), 60, fractional=False),
    Case("exponential_clip_staircase_begin",
         lambda: S.exponential_decay(1.0, 10, 0.9, transition_begin=20, staircase=True, end_value=0.5),
         ref_optax_exponential(1.0, 10, 0.9, 20, True, 0.5), (20, 30, 80, 90), 120,
         repr_parts=["transition_begin=20"], fractional=False),
    Case("exponential_clip_binds_at_once", lambda: S.exponential_decay(1.0, 10, 0.5, end_value=2.0,
                                                                       transition_begin=5),
         ref_optax_exponential(1.0, 10, 0.5, 5, end=2.0), (5,), 30, 2.0, fractional=False),
    Case("exponential_clip_negative_init", lambda: S.exponential_decay(-1.0, 10, 0.5, end_value=-0.25),
         ref_optax_exponential(-1.0, 10, 0.5, end=-0.25), (20,), 40, fractional=False),
    Case("exponential_clip_negative_staircase",
         lambda: S.exponential_decay(-1.0, 4, 2.0, staircase=True, end_value=-3.0),
         ref_optax_exponential(-1.0, 4, 2.0, staircase=True, end=-3.0), (8,), 20, 3.0, fractional=False),
    Case("step_decay", lambda: S.step_decay(1.0, 30, 0.1), ref_torch_step(1.0, 30, 0.1), (30, 60, 90),
         repr_parts=["step_decay(init_value=1.0, step_size=30, gamma=0.1)"]),
    Case("multistep_repeated", lambda: S.multistep_decay(1.0, [80, 30, 80, 120], 0.5),
         ref_torch_multistep(1.0, [30, 80, 80, 120], 0.5), (30, 80, 120),
         repr_parts=["multistep_decay(", "milestones=[30, 80, 80, 120]"]),
    Case("multistep_at_zero", lambda: S.multistep_decay(0.3, [0, 5], 0.1),
         ref_torch_multistep(0.3, [0, 5], 0.1), (5,), 8, 0.3),
    Case("piecewise_constant", lambda: S.piecewise_constant(1.0, {20: 0.1, 10: 0.5, 35: 2.0}),
         ref_optax_piecewise(1.0, {10: 0.5, 20: 0.1, 35: 2.0}), (10, 20, 35),
         repr_parts=["piecewise_constant(", "{10: 0.5, 20: 0.1, 35: 2.0}"]),
    Case("piecewise_constant_empty", lambda: S.piecewise_constant(0.3), ref_optax_piecewise(0.3, None),
         (), 3, 0.3),
    Case("cosine_decay", lambda: S.cosine_decay(1.0, 100), ref_optax_cosine_decay(1.0, 100), (50, 100),
         repr_parts=["cosine_decay(init_value=1.0, decay_steps=100"]),
    Case("cosine_decay_alpha", lambda: S.cosine_decay(2.0, 100, alpha=0.1),
         ref_optax_cosine_decay(2.0, 100, 0.1), (50, 100), 0, 2.0, ["alpha=0.1"]),
    Case("cosine_decay_exponent", lambda: S.cosine_decay(1.0, 100, alpha=0.05, exponent=2.0),
         ref_optax_cosine_decay(1.0, 100, 0.05, 2.0), (50, 100), repr_parts=["exponent=2.0"]),
    Case("cosine_annealing_periodic", lambda: S.cosine_annealing(0.1, 50, eta_min=0.001),
         ref_torch_cosine_annealing(0.1, 50, 0.001), (50, 100, 150, 200), 210, 0.1,
         ["cosine_annealing(init_value=0.1, T_max=50, eta_min=0.001)"]),
    Case("warm_restarts_mult1", lambda: S.warm_restarts(0.1, 10, 1, 0.001),
         ref_torch_warm_restarts(0.1, 10, 1, 0.001), (10, 20, 30), 45, 0.1, ["warm_restarts(", "T_0=10"]),
    Case("warm_restarts_mult2", lambda: S.warm_restarts(1.0, 5, 2), ref_torch_warm_restarts(1.0, 5, 2),
         (5, 15, 35, 75, 155), 160, repr_parts=["T_mult=2"]),
    Case("warm_restarts_mult3", lambda: S.warm_restarts(1.0, 1, 3, 0.01),
         ref_torch_warm_restarts(1.0, 1, 3, 0.01), (1, 4, 13, 40, 121, 364, 1093, 3280, 9841), 130),
    Case("cyclic_triangular", lambda: S.cyclic(0.1, 1.0, 10), ref_torch_cyclic(0.1, 1.0, 10), (10, 20, 30),
         45, repr_parts=["cyclic(base_lr=0.1, max_lr=1.0", "mode='triangular'"]),
    Case("cyclic_triangular2_asymmetric",
         lambda: S.cyclic(0.0, 1.0, 5, step_size_down=15, mode="triangular2"),
         ref_torch_cyclic(0.0, 1.0, 5, 15, "triangular2"), (5, 20, 25, 40, 45), 90,
         repr_parts=["step_size_down=15.0", "triangular2"]),
    Case("cyclic_exp_range", lambda: S.cyclic(0.1, 1.0, 4, mode="exp_range", gamma=0.99),
         ref_torch_cyclic(0.1, 1.0, 4, mode="exp_range", gamma=0.99), (4, 8, 12), 40,
         repr_parts=["exp_range", "gamma=0.99"]),
    Case("cyclic_downward", lambda: S.cyclic(1.0, 0.1, 4, step_size_down=6),
         ref_torch_cyclic(1.0, 0.1, 4, 6), (4, 10, 14), 30),
    # 1/x would divide by zero at x = 0: torch calls a per-cycle scale_fn from cycle 1.
    Case("cyclic_scale_fn_cycle", lambda: S.cyclic(0.1, 1.0, 3, scale_fn=lambda x: 1.0 / x, horizon=4),
         ref_torch_cyclic(0.1, 1.0, 3, scale_fn=lambda x: 1.0 / x, horizon=4), (6, 12, 18, 24, 30), 40,
         repr_parts=["scale_fn=", "scale_mode='cycle'", "horizon=4"]),
    Case("cyclic_scale_fn_iterations",
         lambda: S.cyclic(0.1, 1.0, 3, step_size_down=5, scale_fn=lambda x: 0.9**x, scale_mode="iterations",
                          horizon=20),
         ref_torch_cyclic(0.1, 1.0, 3, 5, scale_fn=lambda x: 0.9**x, scale_mode="iterations", horizon=20),
         (3, 8, 11, 19, 20), 40, repr_parts=["scale_mode='iterations'"], fractional=False),
    Case("one_cycle_cos", lambda: S.one_cycle(1.0, 100), ref_torch_one_cycle(1.0, 100), (29, 30, 99, 100),
         repr_parts=["one_cycle(max_lr=1.0, total_steps=100", "anneal_strategy='cos'"]),
    Case("one_cycle_linear", lambda: S.one_cycle(1.0, 100, anneal_strategy="linear"),
         ref_torch_one_cycle(1.0, 100, strategy="linear"), (29, 30, 99, 100), 105,
         repr_parts=["anneal_strategy='linear'"]),
    Case("one_cycle_three_phase_cos", lambda: S.one_cycle(0.5, 50, pct_start=0.25, three_phase=True),
         ref_torch_one_cycle(0.5, 50, 0.25, three_phase=True), (11, 12, 23, 24, 49, 50), 55, 0.5,
         ["three_phase=True"]),
    Case("one_cycle_three_phase_linear",
         lambda: S.one_cycle(0.5, 53, 0.4, "linear", div_factor=10.0, final_div_factor=100.0,
                             three_phase=True),
         ref_torch_one_cycle(0.5, 53, 0.4, "linear", 10.0, 100.0, True), (20, 21, 40, 41, 52, 53), 60, 0.5),
    Case("one_cycle_short_warmup", lambda: S.one_cycle(1.0, 3, pct_start=0.1),
         ref_torch_one_cycle(1.0, 3, 0.1), (2, 3), 6),
    Case("inverse_sqrt", lambda: S.inverse_sqrt(1.0, timescale=100),
         ref_transformers_inverse_sqrt(1.0, 0, 100), (100,), 10,
         repr_parts=["inverse_sqrt(init_value=1.0, timescale=100, warmup_steps=0)"]),
    Case("inverse_sqrt_default_timescale", lambda: S.inverse_sqrt(0.5), ref_transformers_inverse_sqrt(0.5),
         (10_000,), 3, 0.5, ["timescale=10000"]),
    Case("inverse_sqrt_warmup", lambda: S.inverse_sqrt(1.0, warmup_steps=50),
         ref_transformers_inverse_sqrt(1.0, 50), (50, 100), 60, repr_parts=["timescale=50, warmup_steps=50"]),
    Case("inverse_sqrt_warmup_timescale", lambda: S.inverse_sqrt(0.5, timescale=200, warmup_steps=20),
         ref_transformers_inverse_sqrt(0.5, 20, 200), (20, 220), 25, 0.5),
    Case("sqrt_decay", lambda: S.sqrt_decay(1.0, 0.1, 40), ref_sqrt_decay(1.0, 0.1, 40), (10, 40), 45,
         repr_parts=["sqrt_decay(init_value=1.0, end_value=0.1, decay_steps=40)"]),
    Case("warmup_constant", lambda: S.warmup_constant(0.0, 1.0, 10), ref_warmup_constant(0.0, 1.0, 10), (10,),
         15, repr_parts=["warmup_constant(init_value=0.0, peak_value=1.0, warmup_steps=10)"]),
    Case("warmup_constant_no_warmup", lambda: S.warmup_constant(0.5, 1.0, 0),
         ref_warmup_constant(0.5, 1.0, 0), (), 3),
    Case("warmup_cosine_decay", lambda: S.warmup_cosine_decay(0.0, 1.0, 10, 110, end_value=0.1),
         ref_optax_warmup_cosine_decay(0.0, 1.0, 10, 110, 0.1), (10, 60, 110), 15,
         repr_parts=["warmup_cosine_decay(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=110"]),
    Case("warmup_cosine_decay_exponent", lambda: S.warmup_cosine_decay(0.1, 2.0, 7, 50, 0.2, exponent=3.0),
         ref_optax_warmup_cosine_decay(0.1, 2.0, 7, 50, 0.2, 3.0), (7, 50), 10, 2.0),
    Case("warmup_cosine_decay_no_warmup", lambda: S.warmup_cosine_decay(0.0, 1.0, 0, 30),
         ref_optax_warmup_cosine_decay(0.0, 1.0, 0, 30), (15, 30), 3),
    Case("wsd_linear", lambda: S.warmup_stable_decay(1.0, 10, 20, 30, init_value=0.1, end_value=0.01),
         ref_wsd(1.0, 10, 20, 30, 0.1, 0.01), (10, 30, 60), 0,
         repr_parts=["warmup_stable_decay(peak_value=1.0, warmup_steps=10, stable_steps=20, decay_steps=30",
                     "decay_type='linear'"]),
    Case("wsd_cosine", lambda: S.warmup_stable_decay(1.0, 10, 20, 30, decay_type="cosine"),
         ref_wsd(1.0, 10, 20, 30, decay_type="cosine"), (10, 30, 45, 60), repr_parts=["decay_type='cosine'"]),
    Case("wsd_1sqrt", lambda: S.warmup_stable_decay(1.0, 10, 20, 30, end_value=0.1, decay_type="1-sqrt"),
         ref_wsd(1.0, 10, 20, 30, 0.0, 0.1, "1-sqrt"), (10, 30, 60), repr_parts=["decay_type='1-sqrt'"]),
    Case("wsd_no_stable", lambda: S.warmup_stable_decay(1.0, 5, 0, 10, decay_type="cosine"),
         ref_wsd(1.0, 5, 0, 10, decay_type="cosine"), (5, 15), 20),
    Case("wsd_no_warmup", lambda: S.warmup_stable_decay(1.0, 0, 5, 10, decay_type="1-sqrt"),
         ref_wsd(1.0, 0, 5, 10, decay_type="1-sqrt"), (5, 15), 20),
    Case("wsd_no_decay", lambda: S.warmup_stable_decay(1.0, 5, 5, 0, end_value=0.2),
         ref_wsd(1.0, 5, 5, 0, end=0.2), (5, 10), 15),
    Case("wsd_all_zero", lambda: S.warmup_stable_decay(1.0, 0, 0, 0, end_value=0.3),
         ref_wsd(1.0, 0, 0, 0, end=0.3), (), 3),
    Case("from_values", lambda: S.from_values([3.0, 2.0, 1.5, 0.25]), ref_table([3.0, 2.0, 1.5, 0.25]),
         (3, 4), scale=3.0, repr_parts=["from_values(<4 values>)"]),
    Case("baked", lambda: S.baked(_cubic, 25), ref_table([_cubic(t) for t in range(25)]), (24, 25), 30,
         repr_parts=["baked(_cubic, horizon=25)"]),
]

CASE_IDS = [c.id for c in CASES]


def steps_for(case: Case) -> list[int]:
    steps = {0, 1, BIG}
    for m in case.marks:
        steps |= {m - 1, m, m + 1}
    end = max(case.marks, default=0)
    steps |= {end + 1, 2 * end + 7, 10 * end + 1234}  # past the end
    steps |= set(range(case.dense))
    return sorted(s for s in steps if s >= 0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_reference_at_boundaries(case):
    schedule = case.build()
    for t in steps_for(case):
        assert_close(schedule(t), case.ref(t), case.scale, f"{case.id} at step {t}")


FRACTIONAL = [c for c in CASES if c.fractional]


@pytest.mark.parametrize("case", FRACTIONAL, ids=[c.id for c in FRACTIONAL])
def test_at_fractional_steps(case):
    schedule = case.build()
    steps = sorted({0.25, 0.5, 2.5, 7.75, BIG + 0.5} | {m + d for m in case.marks for d in (-0.5, 0.25)}
                   | {m + 0.5 for m in range(case.dense)})
    steps = [t for t in steps if t >= 0]
    got = schedule.at(steps)
    for t, v in zip(steps, got, strict=True):
        assert_close(float(v), case.ref(t), case.scale, f"{case.id} at step {t}")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_equals_per_step_calls(case):
    schedule = case.build()
    end = max(case.marks, default=0)
    for start, stop in [(0, 40), (max(0, end - 3), end + 4), (BIG - 3, BIG + 3)]:
        values = schedule.values(start, stop)
        assert values.dtype == np.float64 and values.shape == (stop - start,)
        assert values.tolist() == [schedule(t) for t in range(start, stop)]
    assert schedule.values(7).tolist() == schedule.values(0, 7).tolist()
    assert schedule.values(5, 3).shape == (0,)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_repr_names_the_factory_and_its_arguments(case):
    # the factory a case calls, read from the names its build lambda uses
    factory = next(name for name in case.build.__code__.co_names if name in S.__all__)
    text = repr(case.build())
    assert text.startswith(f"{factory}("), text
    for part in case.repr_parts:
        assert part in text, f"{part!r} not in {text!r}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_scaling(case):
    schedule = case.build()
    for factor in (2.5, 1e-3):
        scaled = schedule * factor
        assert scaled.scale == schedule.scale * factor
        assert repr(scaled).startswith(f"{factor!r} * ")
        for t in steps_for(case)[:12] + [BIG]:
            expected = factor * schedule(t)
            assert_close(scaled(t), expected, case.scale * factor, f"{case.id} * {factor} at {t}")
    twice = 3.0 * (schedule * 2.0)
    assert twice.scale == 6.0 * schedule.scale
    assert_close(twice(5), 6.0 * schedule(5), 6.0 * case.scale, case.id)


# -- specific behaviours ---------------------------------------------------------------------

def test_one_cycle_phases_follow_torch_at_total_steps_then_hold():
    """The primitive OneCycleLR's scheduler class uses: step == total_steps is legal in
    torch (the last phase extrapolates one step); lrfast holds that value after."""
    for linear in (False, True):
        for three_phase in (False, True):
            total = 40
            phases = _torch_one_cycle_phases(1.0, total, 0.3, 25.0, 1e4, three_phase)
            ends = [e for e, _, _ in phases]
            s = S.one_cycle_phases(ends, [phases[0][1]] + [b for _, _, b in phases], linear)
            for t in [0, 5, 11, 12, 23, 24, 38, 39, total]:
                assert_close(s(t), _torch_one_cycle_at(phases, linear, t), 1.0, f"phase step {t}")
            at_total = _torch_one_cycle_at(phases, linear, total)
            assert s(total + 1) == s(total + 7) == s(BIG) == pytest.approx(at_total, rel=1e-12)


def test_one_cycle_holds_its_final_value_past_total_steps():
    s = S.one_cycle(1.0, 100, anneal_strategy="linear", div_factor=10.0, final_div_factor=5.0)
    assert s(99) == pytest.approx(0.02, rel=1e-12)
    assert s(100) == s(101) == s(BIG) == pytest.approx(0.02, rel=1e-15)


def test_warm_restarts_fractional_epochs_follow_torch_step_epoch():
    torch = pytest.importorskip("torch")
    for t0, t_mult, eta_min in [(10, 1, 0.001), (5, 2, 0.0), (2, 3, 0.01)]:
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=0.1)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t0, T_mult=t_mult,
                                                                     eta_min=eta_min)
        s = S.warm_restarts(0.1, t0, t_mult, eta_min)
        for epoch in [0.0, 0.5, 2.5, 4.75, 5.0, 9.5, 14.999, 15.5, 26.25, 100.125, 1234.5]:
            sched.step(epoch)
            assert_close(s(epoch), opt.param_groups[0]["lr"], 0.1, f"T_0={t0} T_mult={t_mult} epoch {epoch}")


def test_warm_restarts_restart_lands_on_the_exact_step():
    # torch's step(epoch) puts this restart one period early (log(243, 3) < 5); the
    # recursion step() and lrfast restart at 121 = 1 + 3 + 9 + 27 + 81.
    s = S.warm_restarts(1.0, T_0=1, T_mult=3)
    assert s(121) == 1.0
    assert s(120) == pytest.approx(ref_torch_warm_restarts(1.0, 1, 3)(120), rel=1e-12)
    assert s(120) < 1e-3


def test_warm_restarts_integer_steps_follow_torch_step_recursion():
    """CosineAnnealingWarmRestarts.step() with no epoch: T_cur += 1, restart when T_cur >= T_i."""
    for t0, t_mult in [(3, 1), (2, 2), (1, 3), (4, 3)]:
        s = S.warm_restarts(0.5, t0, t_mult, 0.05)
        t_cur, t_i = 0, t0
        values = s.values(400)
        for t in range(400):
            expected = 0.05 + (0.5 - 0.05) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
            assert_close(float(values[t]), expected, 0.5, f"T_0={t0} T_mult={t_mult} step {t}")
            t_cur += 1
            if t_cur >= t_i:
                t_cur -= t_i
                t_i *= t_mult


def test_cyclic_custom_scale_fn_is_sampled_from_cycle_one():
    calls = []

    def scale(x):
        calls.append(x)
        return 1.0 / x

    S.cyclic(0.0, 1.0, 2, scale_fn=scale, horizon=3)
    assert calls == [1.0, 2.0, 3.0]
    calls.clear()
    S.cyclic(0.0, 1.0, 2, scale_fn=lambda x: calls.append(x) or 1.0, scale_mode="iterations", horizon=3)
    assert calls == [0.0, 1.0, 2.0]


def test_exponential_clip_switches_at_the_first_step_past_end_value():
    s = S.exponential_decay(1.0, 10, 0.5, end_value=0.1)
    crossing = math.ceil(10 * math.log(0.1) / math.log(0.5))  # 34
    assert s(crossing - 1) > 0.1
    assert s(crossing) == 0.1 == s(BIG)


def test_inverse_sqrt_default_timescale_is_transformers():
    assert S.inverse_sqrt(1.0, warmup_steps=400)(800) == pytest.approx(1 / math.sqrt(2), rel=1e-15)
    assert S.inverse_sqrt(1.0)(30_000) == pytest.approx(0.5, rel=1e-15)


def test_tables_hold_their_last_value_at_any_step():
    # a step past 2**63 must not wrap around when it becomes a table index
    s = S.from_values([3.0, 2.0, 1.0])
    c = S.cyclic(0.0, 1.0, 2, scale_fn=lambda x: 1.0 / x, horizon=3)
    for t in (3, BIG, 2.0**62, 2.0**63, 2.0**64, 1e300):
        assert s(t) == 1.0, t
    assert c(4 * 20 + 2) == pytest.approx(1.0 / 3.0, rel=1e-15)  # cycle 21 holds cycle 3's scale


def test_join_boundary_is_exact_for_giant_steps():
    s = S.join([S.constant(1.0), S.linear(1.0, 0.0, 10)], [BIG])
    assert s(BIG - 1) == 1.0 and s(BIG) == 1.0 and s(BIG + 5) == 0.5 and s(BIG + 10) == 0.0
