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

from .. import _layout as L

__all__ = ["evaluate", "evaluate_many", "evaluate_product", "apply_floor"]

_HEADER = L.HEADER_SIZE
_SEG = L.SEGMENT_SIZE
_P = L.SLOT_PARAMS
_FLOOR = L.SLOT_FLOOR
_MAX_SEGMENTS = L.MAX_SEGMENTS
_VERSION = L.LAYOUT_VERSION
_PI = 3.14159265358979323846

K_CONSTANT, K_STEP, K_MULTISTEP, K_EXPONENTIAL = 0, 1, 2, 3
K_LINEAR, K_POLYNOMIAL, K_COSINE, K_WARM_RESTARTS = 4, 5, 6, 7
K_CYCLIC, K_ONE_CYCLE, K_INVERSE_SQRT, K_SQRT_DECAY, K_TABLE, K_PIECEWISE = 8, 9, 10, 11, 12, 13
K_PLATEAU = 14
M_TRIANGULAR, M_TRIANGULAR2, M_EXP_RANGE, M_TABLE = 0, 1, 2, 3

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
    base = d[p]
    peak = d[p + 1]
    total_size = d[p + 2]
    step_ratio = d[p + 3]
    mode = int(d[p + 4])
    gamma = d[p + 5]
    per_iteration = d[p + 6] != 0.0
    cycle = np.floor(1.0 + u / total_size)
    x = 1.0 + u / total_size - cycle
    if x <= step_ratio:
        scale_factor = x / step_ratio
    else:
        scale_factor = (x - 1.0) / (step_ratio - 1.0)
    scale_arg = u if per_iteration else cycle
    if mode == M_TRIANGULAR:
        scale = 1.0
    elif mode == M_TRIANGULAR2:
        scale = 1.0 / math.pow(2.0, scale_arg - 1.0)
    elif mode == M_EXP_RANGE:
        scale = math.pow(gamma, scale_arg)
    elif mode == M_TABLE:
        # torch counts cycles from 1 and iterations from 0; the table starts at the first.
        i = _clamped_index(scale_arg - (0.0 if per_iteration else 1.0), int(d[p + 8]))
        scale = table[int(d[p + 7]) + i]
    else:
        return np.nan
    return base + (peak - base) * scale_factor * scale


@_jit
def _one_cycle(d, p, u):
    n_phases = int(d[p])
    linear = d[p + 1] != 0.0
    if n_phases < 1 or n_phases > 3:
        return np.nan
    phase_start = 0.0
    for i in range(n_phases):
        phase_end = d[p + 2 + i]
        if u <= phase_end or i == n_phases - 1:
            v = phase_end + 1.0 if u > phase_end + 1.0 else u
            pct = (v - phase_start) / (phase_end - phase_start)
            start = d[p + 5 + i]
            end = d[p + 6 + i]
            if linear:
                return (end - start) * pct + start
            return end + (start - end) / 2.0 * (math.cos(_PI * pct) + 1.0)
        phase_start = phase_end
    return np.nan


@_jit
def _warm_restarts(d, p, u):
    init = d[p]
    end = d[p + 1]
    t0 = d[p + 2]
    t_mult = d[p + 3]
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
    p = s + _P
    kind = int(d[s])
    if kind == K_CONSTANT:
        return d[p]
    if kind == K_STEP:
        return d[p] * math.pow(d[p + 1], np.floor(u / d[p + 2]))
    if kind == K_MULTISTEP:
        passed = _count_at_most(table, int(d[p + 2]), int(d[p + 3]), u)
        return d[p] * math.pow(d[p + 1], float(passed))
    if kind == K_EXPONENTIAL:
        return d[p] * math.pow(d[p + 1], u / d[p + 2])
    if kind == K_LINEAR:
        v = u if u < d[p + 2] else d[p + 2]
        if d[p + 2] > 0.0:
            return d[p] + (d[p + 1] - d[p]) * v / d[p + 2]
        return d[p + 1]
    if kind == K_POLYNOMIAL:
        v = u if u < d[p + 2] else d[p + 2]
        return d[p + 1] + (d[p] - d[p + 1]) * math.pow(1.0 - v / d[p + 2], d[p + 3])
    if kind == K_COSINE:
        v = u if (d[p + 3] != 0.0 or u < d[p + 2]) else d[p + 2]
        if d[p + 4] == 1.0:
            return d[p + 1] + (d[p] - d[p + 1]) * (1.0 + math.cos(_PI * v / d[p + 2])) / 2.0
        return d[p + 1] + (d[p] - d[p + 1]) * math.pow((1.0 + math.cos(_PI * v / d[p + 2])) / 2.0, d[p + 4])
    if kind == K_WARM_RESTARTS:
        return _warm_restarts(d, p, u)
    if kind == K_CYCLIC:
        return _cyclic(d, p, table, u)
    if kind == K_ONE_CYCLE:
        return _one_cycle(d, p, u)
    if kind == K_INVERSE_SQRT:
        return d[p] * (1.0 / math.sqrt((u + d[p + 1]) / d[p + 1]))
    if kind == K_SQRT_DECAY:
        v = u if u < d[p + 2] else d[p + 2]
        return d[p + 1] + (d[p] - d[p + 1]) * (1.0 - math.sqrt(v / d[p + 2]))
    if kind == K_TABLE:
        return table[int(d[p]) + _clamped_index(u, int(d[p + 1]))]
    if kind == K_PIECEWISE:
        offset = int(d[p])
        count = int(d[p + 1])
        return table[offset + count + _count_at_most(table, offset, count, u)]
    if kind == K_PLATEAU:
        return table[int(d[p])]
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
    if int(descriptor[0]) != _VERSION:
        return np.nan
    n = int(descriptor[1])
    if n < 0 or n > _MAX_SEGMENTS:
        return np.nan
    result = descriptor[2]
    for s in range(n):
        o = _HEADER + s * _SEG
        nxt = o + _SEG
        superseded = s + 1 < n and descriptor[nxt + 1] == descriptor[o + 1] and t >= descriptor[nxt + 2]
        if t >= descriptor[o + 2] and not superseded:
            result *= _segment_value(descriptor, o, table, t - descriptor[o + 2])
    return result


@_jit
def evaluate(descriptor, table, t):
    """LR of one packed descriptor (1-d float64 array) at step ``t`` (float)."""
    return apply_floor(descriptor[_FLOOR], evaluate_product(descriptor, table, t))


@_jit
def evaluate_many(descriptors, table, steps):
    """values[g, s] = evaluate(descriptors[g], table, steps[s])."""
    out = np.empty((descriptors.shape[0], steps.shape[0]), dtype=np.float64)
    for g in range(descriptors.shape[0]):
        for s in range(steps.shape[0]):
            out[g, s] = evaluate(descriptors[g], table, steps[s])
    return out
