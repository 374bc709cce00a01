"""Schedules inside Numba kernels: the Numba twin of csrc/include/lrfast/schedule.h.

``lr_at(descriptor, table, step)`` is an ``@njit`` function: call it from any Numba
kernel to evaluate a packed schedule (``Schedule.pack()``, or a scheduler's
``packed_lr()``) at a step, exactly as lrfast's compiled core does (to 1e-15 relative);
``lr_at_many(descriptors, table, steps)`` evaluates one row per group.

>>> import numba
>>> from lrfast import schedules
>>> from lrfast.numba import lr_at
>>> desc, table = schedules.cosine_decay(1.0, 100).pack()
>>> @numba.njit
... def half_way(d, t):
...     return lr_at(d, t, 50.0)
>>> round(half_way(desc, table), 12)
0.5

The functions below follow the header line for line (``evaluate`` is ``lr_at``); keep
them in step with it: tests/test_numba_schedule.py compares the two at 10,000 random
steps per kind. lrfast's own CPU optimizers evaluate schedules with the compiled header
instead (NOTE [group values] in lrfast/_backend/cpu.py), so this module is for user kernels
(docs/extending.md).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import _descriptor as layout  # the twin reads nothing else: the short name keeps it line for line
from ._numba_cache import compiled_functions, drop_stale_cache

__all__ = ["lr_at", "lr_at_many"]  # the twin's own names (evaluate, ...) are for tests/test_numba_schedule.py

# Numba compiles layout.* in as constants (module-level ints and enum members), which
# lrfast._descriptor reads from the compiled core: NOTE [segment parameters].
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
    base = d[p + layout.CYCLIC_BASE]
    peak = d[p + layout.CYCLIC_PEAK]
    total_size = d[p + layout.CYCLIC_TOTAL_SIZE]
    step_ratio = d[p + layout.CYCLIC_STEP_RATIO]
    mode = int(d[p + layout.CYCLIC_MODE])
    gamma = d[p + layout.CYCLIC_GAMMA]
    per_iteration = d[p + layout.CYCLIC_PER_ITERATION] != 0.0
    cycle = np.floor(1.0 + u / total_size)
    x = 1.0 + u / total_size - cycle
    if x <= step_ratio:
        scale_factor = x / step_ratio
    else:
        scale_factor = (x - 1.0) / (step_ratio - 1.0)
    scale_arg = u if per_iteration else cycle
    if mode == layout.CyclicMode.TRIANGULAR:
        scale = 1.0
    elif mode == layout.CyclicMode.TRIANGULAR2:
        scale = 1.0 / math.pow(2.0, scale_arg - 1.0)
    elif mode == layout.CyclicMode.EXP_RANGE:
        scale = math.pow(gamma, scale_arg)
    elif mode == layout.CyclicMode.TABLE:
        # torch counts cycles from 1 and iterations from 0; the table starts at the first.
        i = _clamped_index(scale_arg - (0.0 if per_iteration else 1.0), int(d[p + layout.CYCLIC_COUNT]))
        scale = table[int(d[p + layout.CYCLIC_TABLE_OFFSET]) + i]
    else:
        return np.nan
    return base + (peak - base) * scale_factor * scale


@_jit
def _anneal(start, end, w):
    """``end + (start - end) * w``, exactly ``start`` where ``w == 1`` (anneal in schedule.h)."""
    return start if w == 1.0 else end + (start - end) * w


@_jit
def _one_cycle(d, p, u):
    n_phases = int(d[p + layout.ONE_CYCLE_NUM_PHASES])
    linear = d[p + layout.ONE_CYCLE_ANNEAL_LINEAR] != 0.0
    if n_phases < 1 or n_phases > layout.ONE_CYCLE_MAX_PHASES:
        return np.nan
    phase_start = 0.0
    for i in range(n_phases):
        phase_end = d[p + layout.ONE_CYCLE_PHASE_ENDS + i]
        if u <= phase_end or i == n_phases - 1:
            v = phase_end + 1.0 if u > phase_end + 1.0 else u
            pct = (v - phase_start) / (phase_end - phase_start)
            start = d[p + layout.ONE_CYCLE_PHASE_VALUES + i]
            end = d[p + layout.ONE_CYCLE_PHASE_VALUES + i + 1]
            if linear:
                return (end - start) * pct + start
            return end + (start - end) / 2.0 * (math.cos(_PI * pct) + 1.0)
        phase_start = phase_end
    return np.nan


@_jit
def _warm_restarts(d, p, u):
    init = d[p + layout.WARM_RESTARTS_INIT]
    end = d[p + layout.WARM_RESTARTS_END]
    t0 = d[p + layout.WARM_RESTARTS_T0]
    t_mult = d[p + layout.WARM_RESTARTS_T_MULT]
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
    p = s + layout.SLOT_PARAMS
    kind = int(d[s + layout.SLOT_KIND])
    if kind == layout.Kind.CONSTANT:
        return d[p + layout.CONSTANT_VALUE]
    if kind == layout.Kind.STEP:
        init, gamma, step_size = d[p + layout.STEP_INIT], d[p + layout.STEP_GAMMA], d[p + layout.STEP_STEP_SIZE]
        return init * math.pow(gamma, np.floor(u / step_size))
    if kind == layout.Kind.MULTISTEP:
        offset, count = int(d[p + layout.MULTISTEP_TABLE_OFFSET]), int(d[p + layout.MULTISTEP_COUNT])
        passed = _count_at_most(table, offset, count, u)
        return d[p + layout.MULTISTEP_INIT] * math.pow(d[p + layout.MULTISTEP_GAMMA], float(passed))
    if kind == layout.Kind.EXPONENTIAL:
        init, rate = d[p + layout.EXPONENTIAL_INIT], d[p + layout.EXPONENTIAL_RATE]
        return init * math.pow(rate, u / d[p + layout.EXPONENTIAL_STEPS])
    if kind == layout.Kind.LINEAR:
        start, end, steps = d[p + layout.LINEAR_START], d[p + layout.LINEAR_END], d[p + layout.LINEAR_STEPS]
        v = u if u < steps else steps
        if steps > 0.0:
            return start + (end - start) * v / steps
        return end
    if kind == layout.Kind.POLYNOMIAL:
        init, end, steps = d[p + layout.POLYNOMIAL_INIT], d[p + layout.POLYNOMIAL_END], d[p + layout.POLYNOMIAL_STEPS]
        v = u if u < steps else steps
        return end + (init - end) * math.pow(1.0 - v / steps, d[p + layout.POLYNOMIAL_POWER])
    if kind == layout.Kind.COSINE:
        init, end, steps = d[p + layout.COSINE_INIT], d[p + layout.COSINE_END], d[p + layout.COSINE_STEPS]
        exponent = d[p + layout.COSINE_EXPONENT]
        v = u if (d[p + layout.COSINE_PERIODIC] != 0.0 or u < steps) else steps
        w = (1.0 + math.cos(_PI * v / steps)) / 2.0
        return _anneal(init, end, w if exponent == 1.0 else math.pow(w, exponent))
    if kind == layout.Kind.WARM_RESTARTS:
        return _warm_restarts(d, p, u)
    if kind == layout.Kind.CYCLIC:
        return _cyclic(d, p, table, u)
    if kind == layout.Kind.ONE_CYCLE:
        return _one_cycle(d, p, u)
    if kind == layout.Kind.INVERSE_SQRT:
        timescale = d[p + layout.INVERSE_SQRT_TIMESCALE]
        return d[p + layout.INVERSE_SQRT_INIT] * (1.0 / math.sqrt((u + timescale) / timescale))
    if kind == layout.Kind.SQRT_DECAY:
        init, end, steps = d[p + layout.SQRT_DECAY_INIT], d[p + layout.SQRT_DECAY_END], d[p + layout.SQRT_DECAY_STEPS]
        v = u if u < steps else steps
        return end + (init - end) * (1.0 - math.sqrt(v / steps))
    if kind == layout.Kind.TABLE:
        return table[int(d[p + layout.TABLE_TABLE_OFFSET]) + _clamped_index(u, int(d[p + layout.TABLE_COUNT]))]
    if kind == layout.Kind.PIECEWISE:
        offset = int(d[p + layout.PIECEWISE_TABLE_OFFSET])
        count = int(d[p + layout.PIECEWISE_COUNT])
        return table[offset + count + _count_at_most(table, offset, count, u)]
    if kind == layout.Kind.PLATEAU:
        return table[int(d[p + layout.PLATEAU_TABLE_OFFSET])]
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
    if int(descriptor[layout.SLOT_VERSION]) != layout.LAYOUT_VERSION:
        return np.nan
    n = int(descriptor[layout.SLOT_NUM_SEGMENTS])
    if n < 0 or n > layout.MAX_SEGMENTS:
        return np.nan
    result = descriptor[layout.SLOT_SCALE]
    for s in range(n):
        o = layout.HEADER_SIZE + s * layout.SEGMENT_SIZE
        nxt = o + layout.SEGMENT_SIZE
        # Only the last segment of a track that has started is evaluated.
        superseded = (s + 1 < n and descriptor[nxt + layout.SLOT_TRACK] == descriptor[o + layout.SLOT_TRACK]
                      and t >= descriptor[nxt + layout.SLOT_START])
        if t >= descriptor[o + layout.SLOT_START] and not superseded:
            result *= _segment_value(descriptor, o, table, t - descriptor[o + layout.SLOT_START])
    return result


@_jit
def evaluate(descriptor, table, t):
    """LR of one packed descriptor (1-d float64 array) at step ``t`` (float)."""
    return apply_floor(descriptor[layout.SLOT_FLOOR], evaluate_product(descriptor, table, t))


@_jit
def evaluate_many(descriptors, table, steps):
    """values[g, s] = evaluate(descriptors[g], table, steps[s])."""
    out = np.empty((descriptors.shape[0], steps.shape[0]), dtype=np.float64)
    for g in range(descriptors.shape[0]):
        for s in range(steps.shape[0]):
            out[g, s] = evaluate(descriptors[g], table, steps[s])
    return out


drop_stale_cache(compiled_functions(globals()), "schedule", layout.fingerprint())

lr_at = evaluate
lr_at_many = evaluate_many
