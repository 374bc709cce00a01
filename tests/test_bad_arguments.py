"""Bad arguments raise at once, naming the function, the argument and the value."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lrfast import _C
from lrfast import _descriptor as layout
from lrfast import schedules as S

# (id, call, exception, the whole message or an unambiguous part of it)
BAD_CALLS = [
    ("constant_str", lambda: S.constant("0.1"), TypeError,
     "constant: value must be a real number, got '0.1'"),
    ("constant_bool", lambda: S.constant(True), TypeError, "constant: value must be a real number, got True"),
    ("constant_nan", lambda: S.constant(math.nan), ValueError, "constant: value must be finite, got nan"),
    ("linear_init_none", lambda: S.linear(None, 0.0, 5), TypeError,
     "linear: init_value must be a real number, got None"),
    ("linear_end_inf", lambda: S.linear(1.0, math.inf, 5), ValueError,
     "linear: end_value must be finite, got inf"),
    ("linear_steps_zero", lambda: S.linear(1.0, 0.0, 0), ValueError,
     "linear: transition_steps must be a positive int, got 0"),
    ("linear_steps_float", lambda: S.linear(1.0, 0.0, 2.5), TypeError,
     "linear: transition_steps must be an int, got 2.5"),
    ("linear_begin_negative", lambda: S.linear(1.0, 0.0, 5, transition_begin=-1), ValueError,
     "linear: transition_begin must be >= 0, got -1"),
    ("polynomial_power_inf", lambda: S.polynomial(1.0, 0.0, math.inf, 5), ValueError,
     "polynomial: power must be finite, got inf"),
    ("polynomial_steps_negative", lambda: S.polynomial(1.0, 0.0, 2.0, -3), ValueError,
     "polynomial: transition_steps must be a positive int, got -3"),
    ("polynomial_begin_float", lambda: S.polynomial(1.0, 0.0, 2.0, 3, transition_begin=1.0), TypeError,
     "polynomial: transition_begin must be an int, got 1.0"),
    ("exponential_rate_zero", lambda: S.exponential_decay(1.0, 10, 0.0), ValueError,
     "exponential_decay: decay_rate must be > 0, got 0.0"),
    ("exponential_rate_negative", lambda: S.exponential_decay(1.0, 10, -0.5), ValueError,
     "exponential_decay: decay_rate must be > 0, got -0.5"),
    ("exponential_steps_zero", lambda: S.exponential_decay(1.0, 0, 0.5), ValueError,
     "exponential_decay: transition_steps must be a positive int, got 0"),
    ("exponential_staircase_str", lambda: S.exponential_decay(1.0, 10, 0.5, staircase="yes"), TypeError,
     "exponential_decay: staircase must be a bool, got 'yes'"),
    ("exponential_end_nan", lambda: S.exponential_decay(1.0, 10, 0.5, end_value=math.nan), ValueError,
     "exponential_decay: end_value must be finite, got nan"),
    ("exponential_begin_negative", lambda: S.exponential_decay(1.0, 10, 0.5, transition_begin=-2), ValueError,
     "exponential_decay: transition_begin must be >= 0, got -2"),
    ("step_size_zero", lambda: S.step_decay(1.0, 0), ValueError,
     "step_decay: step_size must be a positive int, got 0"),
    ("step_gamma_str", lambda: S.step_decay(1.0, 3, "0.1"), TypeError,
     "step_decay: gamma must be a real number, got '0.1'"),
    ("multistep_str", lambda: S.multistep_decay(1.0, "30,60"), TypeError,
     "multistep_decay: milestones must be a sequence of ints, got '30,60'"),
    ("multistep_int", lambda: S.multistep_decay(1.0, 30), TypeError,
     "multistep_decay: milestones must be a sequence of ints, got 30"),
    ("multistep_negative", lambda: S.multistep_decay(1.0, [10, -2]), ValueError,
     "multistep_decay: milestones must be >= 0, got -2"),
    ("multistep_float", lambda: S.multistep_decay(1.0, [10, 2.5]), TypeError,
     "multistep_decay: milestones must be an int, got 2.5"),
    ("multistep_gamma_nan", lambda: S.multistep_decay(1.0, [10], math.nan), ValueError,
     "multistep_decay: gamma must be finite, got nan"),
    ("piecewise_list", lambda: S.piecewise_constant(1.0, [(10, 0.5)]), TypeError,
     "piecewise_constant: boundaries_and_scales must be a dict {step: scale}, got [(10, 0.5)]"),
    ("piecewise_negative_key", lambda: S.piecewise_constant(1.0, {-1: 0.5}), ValueError,
     "piecewise_constant: boundaries_and_scales key must be >= 0, got -1"),
    ("piecewise_str_scale", lambda: S.piecewise_constant(1.0, {10: "half"}), TypeError,
     "piecewise_constant: boundaries_and_scales value must be a real number, got 'half'"),
    ("piecewise_negative_scale", lambda: S.piecewise_constant(1.0, {10: 0.5, 20: -0.1}), ValueError,
     "piecewise_constant: boundaries_and_scales value must be >= 0, got -0.1"),
    ("piecewise_str_key", lambda: S.piecewise_constant(1.0, {10: 0.5, "20": 0.1}), TypeError,
     "piecewise_constant: boundaries_and_scales key must be an int, got '20'"),
    ("cosine_decay_steps_zero", lambda: S.cosine_decay(1.0, 0), ValueError,
     "cosine_decay: decay_steps must be a positive int, got 0"),
    ("cosine_decay_exponent_zero", lambda: S.cosine_decay(1.0, 10, exponent=0), ValueError,
     "cosine_decay: exponent must be > 0, got 0"),
    ("cosine_decay_alpha_nan", lambda: S.cosine_decay(1.0, 10, alpha=math.nan), ValueError,
     "cosine_decay: alpha must be finite, got nan"),
    ("cosine_annealing_tmax", lambda: S.cosine_annealing(1.0, 0), ValueError,
     "cosine_annealing: T_max must be a positive int, got 0"),
    ("cosine_annealing_eta_str", lambda: S.cosine_annealing(1.0, 10, eta_min="0"), TypeError,
     "cosine_annealing: eta_min must be a real number, got '0'"),
    ("warm_restarts_t0", lambda: S.warm_restarts(1.0, 0), ValueError,
     "warm_restarts: T_0 must be a positive int, got 0"),
    ("warm_restarts_tmult_zero", lambda: S.warm_restarts(1.0, 10, 0), ValueError,
     "warm_restarts: T_mult must be a positive int, got 0"),
    ("warm_restarts_tmult_float", lambda: S.warm_restarts(1.0, 10, 1.5), TypeError,
     "warm_restarts: T_mult must be an int, got 1.5"),
    ("cyclic_mode", lambda: S.cyclic(0.1, 1.0, mode="sawtooth"), ValueError,
     "cyclic: mode must be one of ['exp_range', 'triangular', 'triangular2'], got 'sawtooth'"),
    ("cyclic_up_zero", lambda: S.cyclic(0.1, 1.0, 0), ValueError, "cyclic: step_size_up must be > 0, got 0"),
    ("cyclic_down_negative", lambda: S.cyclic(0.1, 1.0, 5, step_size_down=-1), ValueError,
     "cyclic: step_size_down must be > 0, got -1"),
    ("cyclic_gamma_inf", lambda: S.cyclic(0.1, 1.0, 5, gamma=math.inf), ValueError,
     "cyclic: gamma must be finite, got inf"),
    ("cyclic_scale_fn_not_callable", lambda: S.cyclic(0.1, 1.0, 5, scale_fn=3, horizon=4), TypeError,
     "cyclic: scale_fn must be callable, got 3"),
    ("cyclic_scale_mode", lambda: S.cyclic(0.1, 1.0, 5, scale_fn=abs, scale_mode="epoch", horizon=4),
     ValueError,
     "cyclic: scale_mode must be 'cycle' or 'iterations', got 'epoch'"),
    ("cyclic_no_horizon", lambda: S.cyclic(0.1, 1.0, 5, scale_fn=abs), ValueError,
     "cyclic: a custom scale_fn needs horizon (entries to bake), got None"),
    ("cyclic_horizon_zero", lambda: S.cyclic(0.1, 1.0, 5, scale_fn=abs, horizon=0), ValueError,
     "cyclic: horizon must be a positive int, got 0"),
    ("cyclic_scale_fn_nan", lambda: S.cyclic(0.1, 1.0, 5, scale_fn=lambda x: math.nan, horizon=2), ValueError,
     "cyclic: scale_fn(1) must be finite, got nan"),
    ("one_cycle_total_zero", lambda: S.one_cycle(1.0, 0), ValueError,
     "one_cycle: total_steps must be a positive int, got 0"),
    ("one_cycle_pct", lambda: S.one_cycle(1.0, 100, pct_start=1.5), ValueError,
     "one_cycle: pct_start must be a float between 0 and 1, got 1.5"),
    ("one_cycle_strategy", lambda: S.one_cycle(1.0, 100, anneal_strategy="exp"), ValueError,
     "one_cycle: anneal_strategy must be 'cos' or 'linear', got 'exp'"),
    ("one_cycle_div", lambda: S.one_cycle(1.0, 100, div_factor=0), ValueError,
     "one_cycle: div_factor must be > 0, got 0"),
    ("one_cycle_final_div", lambda: S.one_cycle(1.0, 100, final_div_factor=-1.0), ValueError,
     "one_cycle: final_div_factor must be > 0, got -1.0"),
    ("one_cycle_three_phase", lambda: S.one_cycle(1.0, 100, three_phase=1), TypeError,
     "one_cycle: three_phase must be a bool, got 1"),
    ("one_cycle_empty_warmup", lambda: S.one_cycle(1.0, 10, pct_start=0.1), ValueError,
     "one_cycle: pct_start * total_steps must not be 1 (an empty warmup phase), "
     "got pct_start=0.1, total_steps=10"),
    ("one_cycle_phases_four", lambda: S.one_cycle_phases([1, 2, 3, 4], [0, 1, 2, 3, 4], True), ValueError,
     "one_cycle_phases: needs 1 to 3 phase ends and one more value, got [1, 2, 3, 4] and [0, 1, 2, 3, 4]"),
    ("inverse_sqrt_timescale", lambda: S.inverse_sqrt(1.0, timescale=0), ValueError,
     "inverse_sqrt: timescale must be a positive int, got 0"),
    ("inverse_sqrt_warmup", lambda: S.inverse_sqrt(1.0, warmup_steps=-5), ValueError,
     "inverse_sqrt: warmup_steps must be >= 0, got -5"),
    ("sqrt_decay_steps", lambda: S.sqrt_decay(1.0, 0.0, 0), ValueError,
     "sqrt_decay: decay_steps must be a positive int, got 0"),
    ("warmup_constant_steps", lambda: S.warmup_constant(0.0, 1.0, -1), ValueError,
     "warmup_constant: warmup_steps must be >= 0, got -1"),
    ("warmup_constant_peak", lambda: S.warmup_constant(0.0, math.nan, 5), ValueError,
     "warmup_constant: peak_value must be finite, got nan"),
    ("warmup_cosine_decay_short", lambda: S.warmup_cosine_decay(0.0, 1.0, 10, 10), ValueError,
     "warmup_cosine_decay: decay_steps must exceed warmup_steps (10), got 10"),
    ("warmup_cosine_decay_exponent", lambda: S.warmup_cosine_decay(0.0, 1.0, 1, 10, exponent=-1.0),
     ValueError,
     "warmup_cosine_decay: exponent must be > 0, got -1.0"),
    ("warmup_cosine_decay_steps", lambda: S.warmup_cosine_decay(0.0, 1.0, 0, 0), ValueError,
     "warmup_cosine_decay: decay_steps must be a positive int, got 0"),
    ("wsd_decay_type", lambda: S.warmup_stable_decay(1.0, 1, 1, 1, decay_type="exp"), ValueError,
     "warmup_stable_decay: decay_type must be one of ['linear', 'cosine', '1-sqrt'], got 'exp'"),
    ("wsd_stable", lambda: S.warmup_stable_decay(1.0, 1, -1, 1), ValueError,
     "warmup_stable_decay: stable_steps must be >= 0, got -1"),
    ("wsd_decay_float", lambda: S.warmup_stable_decay(1.0, 1, 1, 1.5), TypeError,
     "warmup_stable_decay: decay_steps must be an int, got 1.5"),
    ("from_values_empty", lambda: S.from_values([]), ValueError,
     "from_values: values must be a non-empty 1-d sequence, got shape (0,)"),
    ("from_values_2d", lambda: S.from_values([[1.0, 2.0]]), ValueError,
     "from_values: values must be a non-empty 1-d sequence, got shape (1, 2)"),
    ("from_values_nan", lambda: S.from_values([1.0, math.nan]), ValueError,
     "from_values: values must be finite, got values[1] = nan"),
    ("from_values_str", lambda: S.from_values(["a"]), TypeError,
     "from_values: values must be real numbers, got ['a']"),
    ("baked_not_callable", lambda: S.baked(3, 5), TypeError, "baked: fn must be callable, got 3"),
    ("baked_horizon", lambda: S.baked(abs, 0), ValueError, "baked: horizon must be a positive int, got 0"),
    ("baked_returns_str", lambda: S.baked(lambda t: "x", 3), TypeError,
     "baked: fn(0) must be a real number, got 'x'"),
    ("baked_returns_inf", lambda: S.baked(lambda t: math.inf if t == 2 else 1.0, 3), ValueError,
     "baked: fn(2) must be finite, got inf"),
    ("join_not_sequence", lambda: S.join(S.constant(1.0), []), TypeError,
     "join: schedules must be a non-empty sequence of Schedule, got constant(value=1.0)"),
    ("join_empty", lambda: S.join([], []), TypeError,
     "join: schedules must be a non-empty sequence of Schedule, got []"),
    ("join_not_schedule", lambda: S.join([S.constant(1.0), 0.5], [3]), TypeError,
     "join: schedules must hold Schedule objects, got 0.5"),
    ("join_boundaries_len", lambda: S.join([S.constant(1.0), S.constant(2.0)], [3, 4]), ValueError,
     "join: boundaries must be a sequence of len(schedules) - 1 = 1 steps, got [3, 4]"),
    ("join_boundary_zero", lambda: S.join([S.constant(1.0), S.constant(2.0)], [0]), ValueError,
     "join: boundaries must be a positive int, got 0"),
    ("join_unsorted", lambda: S.join([S.constant(1.0)] * 3, [5, 5]), ValueError,
     "join: boundaries must be strictly increasing, got [5, 5]"),
    ("chain_empty", lambda: S.chain(), TypeError, "chain: needs at least one Schedule"),
    ("chain_not_schedule", lambda: S.chain(S.constant(1.0), "x"), TypeError,
     "chain: arguments must be Schedule objects, got 'x'"),
    ("mul_str", lambda: S.constant(1.0) * "2", TypeError,
     "Schedule.__mul__: factor must be a real number, got '2'"),
    ("mul_nan", lambda: S.constant(1.0) * math.nan, ValueError,
     "Schedule.__mul__: factor must be finite, got nan"),
]


@pytest.mark.parametrize(("call", "exc", "message"), [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_argument_is_refused(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()


@pytest.mark.parametrize(("step", "exc", "message"), [
    (-1, ValueError, "Schedule.__call__: step must be finite and >= 0, got -1"),
    (-0.5, ValueError, "Schedule.__call__: step must be finite and >= 0, got -0.5"),
    (math.nan, ValueError, "Schedule.__call__: step must be finite and >= 0, got nan"),
    (math.inf, ValueError, "Schedule.__call__: step must be finite and >= 0, got inf"),
    ("3", TypeError, "Schedule.__call__: step must be a real number, got '3'"),
    (None, TypeError, "Schedule.__call__: step must be a real number, got None"),
    (True, TypeError, "Schedule.__call__: step must be a real number, got True"),
    (1 + 2j, TypeError, "Schedule.__call__: step must be a real number, got (1+2j)"),
])
def test_schedule_call_refuses_bad_steps(step, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        S.cosine_decay(1.0, 10)(step)


def test_schedule_call_takes_numpy_scalars():
    s = S.linear(1.0, 0.0, 4)
    assert s(np.int64(2)) == 0.5 and s(np.float32(1.0)) == 0.75


@pytest.mark.parametrize(("call", "exc", "message"), [
    (lambda s: s.values(-1, 3), ValueError, "Schedule.values: start must be >= 0, got -1"),
    (lambda s: s.values(0, 2.5), TypeError, "Schedule.values: stop must be an int, got 2.5"),
    (lambda s: s.at([0.0, -1.0]), ValueError,
     "Schedule.at: steps must be finite and >= 0, got steps[1] = -1.0"),
    (lambda s: s.at([math.nan]), ValueError,
     "Schedule.at: steps must be finite and >= 0, got steps[0] = nan"),
    (lambda s: s.at([[1.0]]), ValueError, "Schedule.at: steps must be one-dimensional, got shape (1, 1)"),
    (lambda s: s.at(["a"]), TypeError, "Schedule.at: steps must be real numbers, got ['a']"),
])
def test_values_and_at_refuse_bad_steps(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call(S.constant(1.0))


# -- malformed descriptors reaching the compiled core ----------------------------------------

def _seg(d: np.ndarray, i: int) -> int:
    return layout.HEADER_SIZE + i * layout.SEGMENT_SIZE


def _good() -> tuple[np.ndarray, np.ndarray]:
    """Two tracks: a multistep (table-reading) join, times a cosine."""
    s = S.chain(S.join([S.multistep_decay(1.0, [2, 4]), S.constant(0.5)], [10]), S.cosine_decay(1.0, 7))
    packed = s.pack()
    return packed.descriptors.copy(), packed.table.copy()


def _set(index: int, value: float):
    def edit(d, table):
        d[index] = value
        return d, table
    return edit


def _swap_tracks(d, table):
    # segments 0, 1 are track 0 and segment 2 is track 1: put track 1 first
    a, c = _seg(d, 0), _seg(d, 2)
    first = d[a:a + layout.SEGMENT_SIZE].copy()
    d[a:a + layout.SEGMENT_SIZE] = d[c:c + layout.SEGMENT_SIZE]
    d[c:c + layout.SEGMENT_SIZE] = first
    return d, table


def _short_table(d, table):
    return d, table[:1]


S0 = layout.HEADER_SIZE
MALFORMED = [
    ("version", _set(layout.SLOT_VERSION, 2.0), "unsupported descriptor layout version"),
    ("version_fraction", _set(layout.SLOT_VERSION, 1.5), "unsupported descriptor layout version"),
    ("too_many_segments", _set(layout.SLOT_NUM_SEGMENTS, layout.MAX_SEGMENTS + 1), "bad segment count"),
    ("negative_segments", _set(layout.SLOT_NUM_SEGMENTS, -1), "bad segment count"),
    ("nan_segments", _set(layout.SLOT_NUM_SEGMENTS, math.nan), "bad segment count"),
    ("unknown_kind", _set(S0 + layout.SLOT_KIND, 99.0), "unknown segment kind"),
    ("fractional_kind", _set(S0 + layout.SLOT_KIND, 1.5), "unknown segment kind"),
    ("nan_kind", _set(S0 + layout.SLOT_KIND, math.nan), "unknown segment kind"),
    ("table_offset_out_of_range", _set(S0 + layout.SLOT_PARAMS + 2, 5.0), "table reference out of range"),
    ("table_offset_negative", _set(S0 + layout.SLOT_PARAMS + 2, -1.0), "table reference out of range"),
    ("table_offset_nan", _set(S0 + layout.SLOT_PARAMS + 2, math.nan), "table reference out of range"),
    ("table_count_too_big", _set(S0 + layout.SLOT_PARAMS + 3, 3.0), "table reference out of range"),
    ("table_too_short", _short_table, "table reference out of range"),
    ("unsorted_tracks", _swap_tracks, "segments not sorted by track"),
    ("negative_track", _set(S0 + layout.SLOT_TRACK, -1.0), "bad track"),
    ("first_start_not_zero", _set(S0 + layout.SLOT_START, 3.0),
     "the first segment of a track must start at step 0"),
    ("starts_not_increasing", _set(S0 + layout.SEGMENT_SIZE + layout.SLOT_START, 0.0),
     "segment starts must increase within a track"),
]


@pytest.mark.parametrize(("edit", "why"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_descriptor_is_refused(edit, why):
    d, table = _good()
    _C.validate(d, table.size)  # well formed before the edit
    d, table = edit(d, table)
    with pytest.raises(ValueError, match=re.escape(f"descriptor 0 is malformed: {why}")):
        _C.validate(d, table.size)
    with pytest.raises(ValueError, match=re.escape(why)):
        _C.evaluate(d, table, np.array([0.0, 5.0]))
    with pytest.raises(ValueError, match=re.escape(why)):
        _C.evaluate_at(d[None, :], table, 3.0)


def test_the_bad_group_is_named():
    d, table = _good()
    bad = d.copy()
    bad[S0 + layout.SLOT_KIND] = 42.0
    with pytest.raises(ValueError, match=r"descriptor 2 is malformed: unknown segment kind"):
        _C.evaluate(np.stack([d, d, bad]), table, np.zeros(1))


@pytest.mark.parametrize(("kind_edit", "why"), [
    (lambda p: p.__setitem__(4, 7.0), "unknown cyclic mode"),
    (lambda p: p.__setitem__(4, 3.0), "a table segment needs at least one value"),  # table mode, count 0
])
def test_malformed_cyclic_segment(kind_edit, why):
    d = S.cyclic(0.1, 1.0, 4).pack().descriptors.copy()
    kind_edit(d[S0 + layout.SLOT_PARAMS:])
    with pytest.raises(ValueError, match=re.escape(why)):
        _C.validate(d, 0)


def test_one_cycle_phase_count_is_checked():
    d = S.one_cycle(1.0, 100).pack().descriptors.copy()
    d[S0 + layout.SLOT_PARAMS] = 4.0
    with pytest.raises(ValueError, match="one-cycle needs 1 to 3 phases"):
        _C.validate(d, 0)


@pytest.mark.parametrize(("args", "message"), [
    ((np.zeros((2, 131)), np.zeros(0), np.zeros(1)), "descriptors must have shape (G, 132) or (132,)"),
    ((np.zeros((1, 2, 132)), np.zeros(0), np.zeros(1)), "descriptors must have shape (G, 132) or (132,)"),
    ((S.constant(1.0).pack().descriptors, np.zeros((1, 1)), np.zeros(1)), "table must be one-dimensional"),
    ((S.constant(1.0).pack().descriptors, np.zeros(0), np.zeros((1, 1))), "steps must be one-dimensional"),
])
def test_evaluate_refuses_bad_shapes(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _C.evaluate(*args)
