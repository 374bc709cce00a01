"""The Numba twin of csrc/include/lrfast/schedule.h, line for line.

``evaluate(descriptor, table, t)`` is ``@njit``-callable from any Numba kernel
(lrfast's fused CPU optimizers, or a user's own; see docs/extending.md). Keep it in
step with the header: tests/test_numba_schedule.py compares the two at 10,000
random steps per kind.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .. import _descriptor as descriptor_layout
from .._descriptor import (
    CONSTANT_VALUE,
    COSINE_END,
    COSINE_EXPONENT,
    COSINE_INIT,
    COSINE_PERIODIC,
    COSINE_STEPS,
    CYCLIC_BASE,
    CYCLIC_COUNT,
    CYCLIC_GAMMA,
    CYCLIC_MODE,
    CYCLIC_PEAK,
    CYCLIC_PER_ITERATION,
    CYCLIC_STEP_RATIO,
    CYCLIC_TABLE_OFFSET,
    CYCLIC_TOTAL_SIZE,
    EXPONENTIAL_INIT,
    EXPONENTIAL_RATE,
    EXPONENTIAL_STEPS,
    HEADER_SIZE,
    INVERSE_SQRT_INIT,
    INVERSE_SQRT_TIMESCALE,
    LAYOUT_VERSION,
    LINEAR_END,
    LINEAR_START,
    LINEAR_STEPS,
    MAX_SEGMENTS,
    MULTISTEP_COUNT,
    MULTISTEP_GAMMA,
    MULTISTEP_INIT,
    MULTISTEP_TABLE_OFFSET,
    ONE_CYCLE_ANNEAL_LINEAR,
    ONE_CYCLE_MAX_PHASES,
    ONE_CYCLE_NUM_PHASES,
    ONE_CYCLE_PHASE_ENDS,
    ONE_CYCLE_PHASE_VALUES,
    PIECEWISE_COUNT,
    PIECEWISE_TABLE_OFFSET,
    PLATEAU_TABLE_OFFSET,
    POLYNOMIAL_END,
    POLYNOMIAL_INIT,
    POLYNOMIAL_POWER,
    POLYNOMIAL_STEPS,
    SEGMENT_SIZE,
    SLOT_FLOOR,
    SLOT_KIND,
    SLOT_NUM_SEGMENTS,
    SLOT_PARAMS,
    SLOT_SCALE,
    SLOT_START,
    SLOT_TRACK,
    SLOT_VERSION,
    SQRT_DECAY_END,
    SQRT_DECAY_INIT,
    SQRT_DECAY_STEPS,
    STEP_GAMMA,
    STEP_INIT,
    STEP_STEP_SIZE,
    TABLE_COUNT,
    TABLE_TABLE_OFFSET,
    WARM_RESTARTS_END,
    WARM_RESTARTS_INIT,
    WARM_RESTARTS_T0,
    WARM_RESTARTS_T_MULT,
    CyclicMode,
    Kind,
)
from .cache import drop_stale_cache

__all__ = ["evaluate", "evaluate_many", "evaluate_product", "apply_floor"]

# The layout is compiled in as constants (module-level ints and enum members), read from the
# compiled core by lrfast._descriptor: NOTE [segment parameters].
_PI = 3.14159265358979323846

_jit = numba.njit(cache=True, nogil=True, fastmath=False)

# Where the header calls floor(), the twin calls np.floor: Numba's math.floor returns an
# int, and math.pow(x, int) is exponentiation by squaring, ulps away from C's pow.


@_jit
def _count_at_most(table, offset, count, u):
    lo = 0
    hi = count
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if table[offset + mid] <= u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _clamped_index(x, count):
    # clamped as a float: converting a step past 2**63 to an integer is undefined
    f = np.floor(x)
    if not (f > 0.0):
        return 0
    if f >= count - 1:
        return count - 1
    return int(f)


@_jit
def _cyclic(d, p, table, u):
    base = d[p + CYCLIC_BASE]
    peak = d[p + CYCLIC_PEAK]
    total_size = d[p + CYCLIC_TOTAL_SIZE]
    step_ratio = d[p + CYCLIC_STEP_RATIO]
    mode = int(d[p + CYCLIC_MODE])
    gamma = d[p + CYCLIC_GAMMA]
    per_iteration = d[p + CYCLIC_PER_ITERATION] != 0.0
    cycle = np.floor(1.0 + u / total_size)
    x = 1.0 + u / total_size - cycle
    if x <= step_ratio:
        scale_factor = x / step_ratio
    else:
        scale_factor = (x - 1.0) / (step_ratio - 1.0)
    scale_arg = u if per_iteration else cycle
    if mode == CyclicMode.TRIANGULAR:
        scale = 1.0
    elif mode == CyclicMode.TRIANGULAR2:
        scale = 1.0 / math.pow(2.0, scale_arg - 1.0)
    elif mode == CyclicMode.EXP_RANGE:
        scale = math.pow(gamma, scale_arg)
    elif mode == CyclicMode.TABLE:
        # torch counts cycles from 1 and iterations from 0; the table starts at the first.
        i = _clamped_index(scale_arg - (0.0 if per_iteration else 1.0), int(d[p + CYCLIC_COUNT]))
        scale = table[int(d[p + CYCLIC_TABLE_OFFSET]) + i]
    else:
        return np.nan
    return base + (peak - base) * scale_factor * scale


@_jit
def _one_cycle(d, p, u):
    n_phases = int(d[p + ONE_CYCLE_NUM_PHASES])
    linear = d[p + ONE_CYCLE_ANNEAL_LINEAR] != 0.0
    if n_phases < 1 or n_phases > ONE_CYCLE_MAX_PHASES:
        return np.nan
    phase_start = 0.0
    for i in range(n_phases):
        phase_end = d[p + ONE_CYCLE_PHASE_ENDS + i]
        if u <= phase_end or i == n_phases - 1:
            v = phase_end + 1.0 if u > phase_end + 1.0 else u
            pct = (v - phase_start) / (phase_end - phase_start)
            start = d[p + ONE_CYCLE_PHASE_VALUES + i]
            end = d[p + ONE_CYCLE_PHASE_VALUES + i + 1]
            if linear:
                return (end - start) * pct + start
            return end + (start - end) / 2.0 * (math.cos(_PI * pct) + 1.0)
        phase_start = phase_end
    return np.nan


@_jit
def _warm_restarts(d, p, u):
    init = d[p + WARM_RESTARTS_INIT]
    end = d[p + WARM_RESTARTS_END]
    t0 = d[p + WARM_RESTARTS_T0]
    t_mult = d[p + WARM_RESTARTS_T_MULT]
    if u < t0:
        t_cur = u
        t_i = t0
    elif t_mult == 1.0:
        t_cur = np.fmod(u, t0)
        t_i = t0
    else:
        n = np.floor(math.log(u / t0 * (t_mult - 1.0) + 1.0) / math.log(t_mult))
        if n < 0.0:
            n = 0.0
        for _ in range(4):
            start_n = t0 * (math.pow(t_mult, n) - 1.0) / (t_mult - 1.0)
            start_next = t0 * (math.pow(t_mult, n + 1.0) - 1.0) / (t_mult - 1.0)
            if u < start_n and n > 0.0:
                n -= 1.0
            elif u >= start_next:
                n += 1.0
            else:
                break
        t_cur = u - t0 * (math.pow(t_mult, n) - 1.0) / (t_mult - 1.0)
        t_i = t0 * math.pow(t_mult, n)
    return end + (init - end) * (1.0 + math.cos(_PI * t_cur / t_i)) / 2.0


@_jit
def _segment_value(d, s, table, u):
    p = s + SLOT_PARAMS
    kind = int(d[s + SLOT_KIND])
    if kind == Kind.CONSTANT:
        return d[p + CONSTANT_VALUE]
    if kind == Kind.STEP:
        return d[p + STEP_INIT] * math.pow(d[p + STEP_GAMMA], np.floor(u / d[p + STEP_STEP_SIZE]))
    if kind == Kind.MULTISTEP:
        passed = _count_at_most(table, int(d[p + MULTISTEP_TABLE_OFFSET]), int(d[p + MULTISTEP_COUNT]), u)
        return d[p + MULTISTEP_INIT] * math.pow(d[p + MULTISTEP_GAMMA], float(passed))
    if kind == Kind.EXPONENTIAL:
        return d[p + EXPONENTIAL_INIT] * math.pow(d[p + EXPONENTIAL_RATE], u / d[p + EXPONENTIAL_STEPS])
    if kind == Kind.LINEAR:
        start, end, steps = d[p + LINEAR_START], d[p + LINEAR_END], d[p + LINEAR_STEPS]
        v = u if u < steps else steps
        if steps > 0.0:
            return start + (end - start) * v / steps
        return end
    if kind == Kind.POLYNOMIAL:
        init, end, steps = d[p + POLYNOMIAL_INIT], d[p + POLYNOMIAL_END], d[p + POLYNOMIAL_STEPS]
        v = u if u < steps else steps
        return end + (init - end) * math.pow(1.0 - v / steps, d[p + POLYNOMIAL_POWER])
    if kind == Kind.COSINE:
        init, end, steps = d[p + COSINE_INIT], d[p + COSINE_END], d[p + COSINE_STEPS]
        exponent = d[p + COSINE_EXPONENT]
        v = u if (d[p + COSINE_PERIODIC] != 0.0 or u < steps) else steps
        if exponent == 1.0:
            return end + (init - end) * (1.0 + math.cos(_PI * v / steps)) / 2.0
        return end + (init - end) * math.pow((1.0 + math.cos(_PI * v / steps)) / 2.0, exponent)
    if kind == Kind.WARM_RESTARTS:
        return _warm_restarts(d, p, u)
    if kind == Kind.CYCLIC:
        return _cyclic(d, p, table, u)
    if kind == Kind.ONE_CYCLE:
        return _one_cycle(d, p, u)
    if kind == Kind.INVERSE_SQRT:
        timescale = d[p + INVERSE_SQRT_TIMESCALE]
        return d[p + INVERSE_SQRT_INIT] * (1.0 / math.sqrt((u + timescale) / timescale))
    if kind == Kind.SQRT_DECAY:
        init, end, steps = d[p + SQRT_DECAY_INIT], d[p + SQRT_DECAY_END], d[p + SQRT_DECAY_STEPS]
        v = u if u < steps else steps
        return end + (init - end) * (1.0 - math.sqrt(v / steps))
    if kind == Kind.TABLE:
        return table[int(d[p + TABLE_TABLE_OFFSET]) + _clamped_index(u, int(d[p + TABLE_COUNT]))]
    if kind == Kind.PIECEWISE:
        offset = int(d[p + PIECEWISE_TABLE_OFFSET])
        count = int(d[p + PIECEWISE_COUNT])
        return table[offset + count + _count_at_most(table, offset, count, u)]
    if kind == Kind.PLATEAU:
        return table[int(d[p + PLATEAU_TABLE_OFFSET])]
    return np.nan


@_jit
def apply_floor(floor, value):
    """max(floor, value), where a floor of 0 means none; NaN stays NaN."""
    if floor != 0.0 and value < floor:
        return floor
    return value


@_jit
def evaluate_product(descriptor, table, t):
    """scale * prod of the tracks at step ``t``, before the floor."""
    if int(descriptor[SLOT_VERSION]) != LAYOUT_VERSION:
        return np.nan
    n = int(descriptor[SLOT_NUM_SEGMENTS])
    if n < 0 or n > MAX_SEGMENTS:
        return np.nan
    result = descriptor[SLOT_SCALE]
    for s in range(n):
        o = HEADER_SIZE + s * SEGMENT_SIZE
        nxt = o + SEGMENT_SIZE
        # Only the last segment of a track that has started is evaluated.
        superseded = (s + 1 < n and descriptor[nxt + SLOT_TRACK] == descriptor[o + SLOT_TRACK]
                      and t >= descriptor[nxt + SLOT_START])
        if t >= descriptor[o + SLOT_START] and not superseded:
            result *= _segment_value(descriptor, o, table, t - descriptor[o + SLOT_START])
    return result


@_jit
def evaluate(descriptor, table, t):
    """LR of one packed descriptor (1-d float64 array) at step ``t`` (float)."""
    return apply_floor(descriptor[SLOT_FLOOR], evaluate_product(descriptor, table, t))


@_jit
def evaluate_many(descriptors, table, steps):
    """values[g, s] = evaluate(descriptors[g], table, steps[s])."""
    out = np.empty((descriptors.shape[0], steps.shape[0]), dtype=np.float64)
    for g in range(descriptors.shape[0]):
        for s in range(steps.shape[0]):
            out[g, s] = evaluate(descriptors[g], table, steps[s])
    return out


drop_stale_cache([_count_at_most, _clamped_index, _cyclic, _one_cycle, _warm_restarts, _segment_value, apply_floor,
                  evaluate_product, evaluate, evaluate_many], "schedule", descriptor_layout.fingerprint())
