"""Schedule factories: each checks its arguments at once and returns a Schedule.

Primitives map one-to-one onto the kinds of ``schedule.h``; composites (warmup +
cosine, warmup-stable-decay, ...) are joins of primitives, so each curve has exactly
one implementation. Names follow optax where optax has the same curve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .. import _descriptor as descriptor_layout
from .._descriptor import (
    CyclicMode,
    Segment,
    constant_segment,
    cosine_segment,
    cyclic_segment,
    exponential_segment,
    inverse_sqrt_segment,
    linear_segment,
    multistep_segment,
    one_cycle_segment,
    piecewise_segment,
    polynomial_segment,
    sqrt_decay_segment,
    step_segment,
    table_segment,
    warm_restarts_segment,
)
from ._core import (
    Schedule,
    _nonneg_int,
    _positive_int,
    _positive_real,
    _real,
    join,
    single,
)

__all__ = [
    "constant", "linear", "polynomial", "exponential_decay", "step_decay", "multistep_decay",
    "piecewise_constant", "cosine_decay", "cosine_annealing", "warm_restarts", "cyclic",
    "one_cycle", "inverse_sqrt", "sqrt_decay", "warmup_constant", "warmup_cosine_decay",
    "warmup_stable_decay", "from_values", "baked",
]


def _args(name: str, **kwargs) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def _delayed(fn: str, schedule: Schedule, init_value: float, transition_begin, description: str) -> Schedule:
    """``schedule`` starting at ``transition_begin``, held at ``init_value`` before."""
    begin = _nonneg_int(fn, "transition_begin", transition_begin)
    s = schedule if begin == 0 else join([constant(init_value), schedule], [begin])
    if begin:
        description = f"{description[:-1]}, transition_begin={begin})"
    return Schedule(s.segments, 1.0, description)


# -- primitives ------------------------------------------------------------------------

def constant(value: float) -> Schedule:
    r"""A constant: :math:`\eta_t = v`.

    >>> constant(0.1)(12345)
    0.1
    """
    v = _real("constant", "value", value)
    return single(constant_segment(v), _args("constant", value=v))


def linear(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    r"""Linear from ``init_value`` to ``end_value`` over ``transition_steps``, then held:
    :math:`\eta_t = a + (b - a)\,\min(t - t_0, T)/T` for :math:`t \ge t_0`, ``a`` before.

    >>> s = linear(1.0, 0.0, 4)
    >>> [s(t) for t in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    fn = "linear"
    a, b = _real(fn, "init_value", init_value), _real(fn, "end_value", end_value)
    steps = _positive_int(fn, "transition_steps", transition_steps)
    desc = _args(fn, init_value=a, end_value=b, transition_steps=steps)
    return _delayed(fn, single(linear_segment(start=a, end=b, steps=steps), desc), a, transition_begin, desc)


def polynomial(init_value: float, end_value: float, power: float, transition_steps: int,
               transition_begin: int = 0) -> Schedule:
    r"""Polynomial decay: :math:`\eta_t = b + (a - b)(1 - \min(t, T)/T)^p` (optax's
    ``polynomial_schedule``; torch's ``PolynomialLR`` with ``b = 0``).

    >>> s = polynomial(1.0, 0.0, power=2.0, transition_steps=4)
    >>> [s(t) for t in range(5)]
    [1.0, 0.5625, 0.25, 0.0625, 0.0]
    """
    fn = "polynomial"
    a, b = _real(fn, "init_value", init_value), _real(fn, "end_value", end_value)
    p = _real(fn, "power", power)
    steps = _positive_int(fn, "transition_steps", transition_steps)
    desc = _args(fn, init_value=a, end_value=b, power=p, transition_steps=steps)
    curve = single(polynomial_segment(init=a, end=b, steps=steps, power=p), desc)
    return _delayed(fn, curve, a, transition_begin, desc)


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float, transition_begin: int = 0,
                      staircase: bool = False, end_value: float | None = None) -> Schedule:
    r"""Exponential decay (optax's ``exponential_decay``):
    :math:`\eta_t = a\,r^{(t - t_0)/T}` (exponent floored when ``staircase``), clipped at
    ``end_value`` (from below when ``r < 1``, from above when ``r > 1``).
    torch's ``ExponentialLR(gamma)`` is ``exponential_decay(lr, 1, gamma)``.

    >>> s = exponential_decay(1.0, transition_steps=2, decay_rate=0.25)
    >>> [s(t) for t in range(4)]
    [1.0, 0.5, 0.25, 0.125]
    """
    fn = "exponential_decay"
    a = _real(fn, "init_value", init_value)
    steps = _positive_int(fn, "transition_steps", transition_steps)
    rate = _real(fn, "decay_rate", decay_rate)
    if rate <= 0:
        raise ValueError(f"{fn}: decay_rate must be > 0, got {decay_rate!r}")
    if not isinstance(staircase, bool):
        raise TypeError(f"{fn}: staircase must be a bool, got {staircase!r}")
    end = None if end_value is None else _real(fn, "end_value", end_value)
    desc = _args(fn, init_value=a, transition_steps=steps, decay_rate=rate, staircase=staircase,
                 end_value=end)
    s = single(_exponential_curve(staircase, a, rate, steps), desc)
    if end is None:
        return _delayed(fn, s, a, transition_begin, desc)
    clip = max if rate < 1.0 else min  # optax: end_value bounds from below when decaying
    clipped = _clip_exponential(staircase, a, rate, steps, end, clip)
    return _delayed(fn, clipped, clip(a, end), transition_begin, desc)


_CLIP_HORIZON = 2**62  # steps; far past any run, and every pow has under/overflowed by then


def _exponential_curve(staircase: bool, init: float, rate: float, steps: int) -> Segment:
    """``init * rate**(t / steps)``, the exponent floored when ``staircase`` (a step decay)."""
    if staircase:
        return step_segment(init=init, gamma=rate, step_size=steps)
    return exponential_segment(init=init, rate=rate, steps=steps)


def _clip_exponential(staircase: bool, a: float, rate: float, steps: int, end: float, clip) -> Schedule:
    """``clip(a * rate**p(t), end)`` as a join. The curve is monotone, so the steps where the
    clip binds are a prefix or a suffix of all steps; the switch is found by bisection on
    integer steps (a staircase only changes at multiples of ``steps``, so it switches there)."""
    s = single(_exponential_curve(staircase, a, rate, steps), "curve")

    def binds(t: int) -> bool:
        v = s(t)
        return clip(v, end) != v

    first, last = binds(0), binds(_CLIP_HORIZON)
    if first == last:
        return constant(end) if first else s
    lo, hi = 0, _CLIP_HORIZON
    while hi - lo > 1:  # invariant: binds(lo) == first != binds(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if binds(mid) == first else (lo, mid)
    if not first:
        return join([s, constant(end)], [hi])
    # Clipped first (a < 0 only): the curve resumes at hi where it would have been.
    shifted = single(_exponential_curve(staircase, a * rate ** (hi / steps), rate, steps), "curve")
    return join([constant(end), shifted], [hi])


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    r"""Step decay (torch's ``StepLR``): :math:`\eta_t = a\,\gamma^{\lfloor t / s \rfloor}`.

    >>> s = step_decay(1.0, step_size=2, gamma=0.5)
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    fn = "step_decay"
    a = _real(fn, "init_value", init_value)
    size = _positive_int(fn, "step_size", step_size)
    g = _real(fn, "gamma", gamma)
    return single(step_segment(init=a, gamma=g, step_size=size), _args(fn, init_value=a, step_size=size, gamma=g))


def multistep_decay(init_value: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    r"""Multi-step decay (torch's ``MultiStepLR``): :math:`\eta_t = a\,\gamma^{\#\{m_i \le t\}}`.
    Repeated milestones decay once per repetition, as torch's Counter does.

    >>> s = multistep_decay(1.0, [2, 4, 4], gamma=0.5)
    >>> [s(t) for t in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.125, 0.125]
    """
    fn = "multistep_decay"
    a = _real(fn, "init_value", init_value)
    g = _real(fn, "gamma", gamma)
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
        raise TypeError(f"{fn}: milestones must be a sequence of ints, got {milestones!r}")
    ms = sorted(_nonneg_int(fn, "milestones", m) for m in milestones)
    return single(multistep_segment(init=a, gamma=g, milestones=ms), _args(fn, init_value=a, milestones=ms, gamma=g))


def piecewise_constant(init_value: float, boundaries_and_scales: dict[int, float] | None = None) -> Schedule:
    r"""Piecewise constant (optax's ``piecewise_constant_schedule``): starts at ``init_value``
    and is multiplied by ``scale`` at each ``boundary`` (the scales, all >= 0, accumulate).

    >>> s = piecewise_constant(1.0, {2: 0.5, 4: 0.1})
    >>> [round(s(t), 12) for t in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.05, 0.05]
    """
    fn = "piecewise_constant"
    a = _real(fn, "init_value", init_value)
    if boundaries_and_scales is not None and not isinstance(boundaries_and_scales, Mapping):
        raise TypeError(f"{fn}: boundaries_and_scales must be a dict {{step: scale}}, "
                        f"got {boundaries_and_scales!r}")
    items = sorted((_nonneg_int(fn, "boundaries_and_scales key", b),
                    _real(fn, "boundaries_and_scales value", v))
                   for b, v in (boundaries_and_scales or {}).items())
    bounds = [b for b, _ in items]
    values = [a]
    for _, scale in items:
        if scale < 0:  # optax refuses these too: a negative scale flips the sign of the LR
            raise ValueError(f"{fn}: boundaries_and_scales value must be >= 0, got {scale!r}")
        values.append(values[-1] * scale)
    return single(piecewise_segment(boundaries=bounds, values=values),
                   _args(fn, init_value=a, boundaries_and_scales=dict(items)))


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Schedule:
    r"""Cosine decay to ``alpha * init_value``, then held (optax's ``cosine_decay_schedule``):
    :math:`\eta_t = a\,(\alpha + (1-\alpha)\,c_t)`, :math:`c_t = (\tfrac12(1 + \cos(\pi\min(t,T)/T)))^{e}`.

    >>> s = cosine_decay(1.0, decay_steps=4)
    >>> [round(s(t), 12) for t in range(6)]
    [1.0, 0.853553390593, 0.5, 0.146446609407, 0.0, 0.0]
    """
    fn = "cosine_decay"
    a = _real(fn, "init_value", init_value)
    steps = _positive_int(fn, "decay_steps", decay_steps)
    al, e = _real(fn, "alpha", alpha), _positive_real(fn, "exponent", exponent)
    return single(cosine_segment(init=a, end=al * a, steps=steps, periodic=False, exponent=e),
                   _args(fn, init_value=a, decay_steps=steps, alpha=al, exponent=e))


def cosine_annealing(init_value: float, T_max: int, eta_min: float = 0.0) -> Schedule:
    r"""torch's ``CosineAnnealingLR`` in closed form, periodic past ``T_max`` as torch's is:
    :math:`\eta_t = \eta_{min} + \tfrac12(a - \eta_{min})(1 + \cos(\pi t / T_{max}))`.

    >>> s = cosine_annealing(1.0, T_max=2)
    >>> [round(s(t), 12) for t in range(5)]
    [1.0, 0.5, 0.0, 0.5, 1.0]
    """
    fn = "cosine_annealing"
    a = _real(fn, "init_value", init_value)
    t_max = _positive_int(fn, "T_max", T_max)
    eta = _real(fn, "eta_min", eta_min)
    return single(cosine_segment(init=a, end=eta, steps=t_max, periodic=True, exponent=1.0),
                   _args(fn, init_value=a, T_max=t_max, eta_min=eta))


def warm_restarts(init_value: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> Schedule:
    r"""Cosine annealing with warm restarts (SGDR; torch's ``CosineAnnealingWarmRestarts``):
    period ``i`` lasts :math:`T_0 T_{mult}^i` steps, and within it
    :math:`\eta = \eta_{min} + \tfrac12(a - \eta_{min})(1 + \cos(\pi T_{cur}/T_i))`.
    Fractional steps are allowed (``s(2.5)``), as torch's ``step(epoch)`` allows.

    >>> s = warm_restarts(1.0, T_0=2, T_mult=2)
    >>> [round(s(t), 12) for t in range(7)]
    [1.0, 0.5, 1.0, 0.853553390593, 0.5, 0.146446609407, 1.0]
    """
    fn = "warm_restarts"
    a = _real(fn, "init_value", init_value)
    t0 = _positive_int(fn, "T_0", T_0)
    tm = _positive_int(fn, "T_mult", T_mult)
    eta = _real(fn, "eta_min", eta_min)
    return single(warm_restarts_segment(init=a, end=eta, t0=t0, t_mult=tm),
                   _args(fn, init_value=a, T_0=t0, T_mult=tm, eta_min=eta))


_CYCLIC_MODES = {"triangular": CyclicMode.TRIANGULAR, "triangular2": CyclicMode.TRIANGULAR2,
                 "exp_range": CyclicMode.EXP_RANGE}


def cyclic(base_lr: float, max_lr: float, step_size_up: float = 2000, step_size_down: float | None = None,
           mode: str = "triangular", gamma: float = 1.0, scale_fn: Callable[[float], float] | None = None,
           scale_mode: str = "cycle", horizon: int | None = None) -> Schedule:
    r"""Cyclical learning rate (torch's ``CyclicLR``): triangles between ``base_lr`` and
    ``max_lr`` with amplitude scaled per cycle (``triangular2``: halved each cycle) or per
    step (``exp_range``: :math:`\gamma^t`). A custom ``scale_fn`` is baked into a table of
    ``horizon`` entries (cycles or steps, by ``scale_mode``), held at its last value after.
    With ``base_lr > max_lr`` it cycles downwards (CyclicLR's momentum).

    >>> s = cyclic(0.0, 1.0, step_size_up=2)
    >>> [s(t) for t in range(6)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.5]
    """
    fn = "cyclic"
    base, peak = _real(fn, "base_lr", base_lr), _real(fn, "max_lr", max_lr)
    up = _positive_real(fn, "step_size_up", step_size_up)
    down = up if step_size_down is None else _positive_real(fn, "step_size_down", step_size_down)
    g = _real(fn, "gamma", gamma)
    total_size = float(up) + down
    step_ratio = up / total_size
    table: list[float] = []
    if scale_fn is None:
        if mode not in _CYCLIC_MODES:
            raise ValueError(f"{fn}: mode must be one of {sorted(_CYCLIC_MODES)}, got {mode!r}")
        m = _CYCLIC_MODES[mode]
        per_iteration = m == CyclicMode.EXP_RANGE
        desc = _args(fn, base_lr=base, max_lr=peak, step_size_up=up, step_size_down=down, mode=mode, gamma=g)
    else:
        if not callable(scale_fn):
            raise TypeError(f"{fn}: scale_fn must be callable, got {scale_fn!r}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"{fn}: scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        n = _positive_int(fn, "horizon", horizon) if horizon is not None else None
        if n is None:
            raise ValueError(f"{fn}: a custom scale_fn needs horizon (entries to bake), got None")
        m = CyclicMode.TABLE
        per_iteration = scale_mode == "iterations"
        first = 0 if per_iteration else 1  # torch counts cycles from 1, iterations from 0
        table = [_real(fn, f"scale_fn({i + first})", scale_fn(float(i + first))) for i in range(n)]
        desc = _args(fn, base_lr=base, max_lr=peak, step_size_up=up, step_size_down=down, scale_fn=scale_fn,
                     scale_mode=scale_mode, horizon=n)
    return single(cyclic_segment(base=base, peak=peak, total_size=total_size, step_ratio=step_ratio, mode=m,
                                  gamma=g, per_iteration=per_iteration, scale_table=table), desc)


def one_cycle(max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
              div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> Schedule:
    r"""The 1cycle policy (torch's ``OneCycleLR``): from ``max_lr / div_factor`` up to
    ``max_lr`` over ``pct_start`` of the steps, then down to
    ``max_lr / div_factor / final_div_factor`` (``three_phase``: back to the initial LR
    first, as in the paper), cosine or linear; held at the end value past ``total_steps``.

    >>> s = one_cycle(1.0, total_steps=10, anneal_strategy="linear", div_factor=10.0, final_div_factor=1.0)
    >>> [round(s(t), 12) for t in (0, 2, 5, 9, 10)]
    [0.1, 1.0, 0.614285714286, 0.1, 0.1]
    """
    fn = "one_cycle"
    peak = _real(fn, "max_lr", max_lr)
    total = _positive_int(fn, "total_steps", total_steps)
    pct = _real(fn, "pct_start", pct_start)
    if not 0 <= pct <= 1:
        raise ValueError(f"{fn}: pct_start must be a float between 0 and 1, got {pct_start!r}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"{fn}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    div = _positive_real(fn, "div_factor", div_factor)
    final_div = _positive_real(fn, "final_div_factor", final_div_factor)
    if not isinstance(three_phase, bool):
        raise TypeError(f"{fn}: three_phase must be a bool, got {three_phase!r}")
    initial = peak / div
    minimum = initial / final_div
    ends = one_cycle_phase_ends(total, pct, three_phase)
    if ends[0] == 0.0:
        # The warmup would run from step 0 to step 0: torch divides by zero at construction.
        raise ValueError(f"{fn}: pct_start * total_steps must not be 1 (an empty warmup phase), got "
                         f"pct_start={pct_start!r}, total_steps={total}")
    values = [initial, peak, initial, minimum] if three_phase else [initial, peak, minimum]
    desc = _args(fn, max_lr=peak, total_steps=total, pct_start=pct, anneal_strategy=anneal_strategy,
                 div_factor=div, final_div_factor=final_div, three_phase=three_phase)
    # torch raises past total_steps; as a function of the step, hold the final value.
    s = join([one_cycle_phases(ends, values, anneal_strategy == "linear"), constant(minimum)], [total])
    return Schedule(s.segments, 1.0, desc)


def one_cycle_phase_ends(total_steps: int, pct_start: float, three_phase: bool) -> list[float]:
    """The phase end steps OneCycleLR uses (floats, as torch computes them)."""
    if three_phase:
        return [float(pct_start * total_steps) - 1, float(2 * pct_start * total_steps) - 2, total_steps - 1]
    return [float(pct_start * total_steps) - 1, total_steps - 1]


def one_cycle_phases(phase_ends: Sequence[float], phase_values: Sequence[float], linear: bool,
                     description: str = "one_cycle_phases(...)") -> Schedule:
    """Phase ``i`` anneals ``phase_values[i] -> phase_values[i + 1]`` until ``phase_ends[i]``.
    The building block of :func:`one_cycle` and of OneCycleLR's momentum cycle."""
    n = len(phase_ends)
    most = descriptor_layout.ONE_CYCLE_MAX_PHASES
    if not 1 <= n <= most or len(phase_values) != n + 1:
        raise ValueError(f"one_cycle_phases: needs 1 to {most} phase ends and one more value, got "
                         f"{list(phase_ends)!r} and {list(phase_values)!r}")
    return single(one_cycle_segment(phase_ends=phase_ends, phase_values=phase_values, linear=linear), description)


def inverse_sqrt(init_value: float, timescale: int | None = None, warmup_steps: int = 0) -> Schedule:
    r"""Inverse square root decay (transformers' ``get_inverse_sqrt_schedule``): linear
    warmup from 0 over ``warmup_steps``, then :math:`\eta = a / \sqrt{(u + \tau)/\tau}` with
    ``u`` the steps since warmup. ``timescale`` defaults as transformers' does: to
    ``warmup_steps``, or 10,000 without warmup.

    >>> s = inverse_sqrt(1.0, timescale=1)
    >>> [s(t) for t in (0, 3, 8)]
    [1.0, 0.5, 0.3333333333333333]
    """
    fn = "inverse_sqrt"
    a = _real(fn, "init_value", init_value)
    w = _nonneg_int(fn, "warmup_steps", warmup_steps)
    tau = (w or 10_000) if timescale is None else _positive_int(fn, "timescale", timescale)
    s = single(inverse_sqrt_segment(init=a, timescale=tau), _args(fn, init_value=a, timescale=tau, warmup_steps=w))
    if w == 0:
        return s
    return Schedule(join([linear(0.0, a, w), s], [w]).segments, 1.0, repr(s))


def sqrt_decay(init_value: float, end_value: float, decay_steps: int) -> Schedule:
    r"""The "1 - sqrt" cooldown: :math:`\eta_t = b + (a - b)(1 - \sqrt{\min(t, T)/T})`.

    >>> s = sqrt_decay(1.0, 0.0, decay_steps=4)
    >>> [s(t) for t in (0, 1, 4, 9)]
    [1.0, 0.5, 0.0, 0.0]
    """
    fn = "sqrt_decay"
    a, b = _real(fn, "init_value", init_value), _real(fn, "end_value", end_value)
    steps = _positive_int(fn, "decay_steps", decay_steps)
    return single(sqrt_decay_segment(init=a, end=b, steps=steps),
                   _args(fn, init_value=a, end_value=b, decay_steps=steps))


# -- composites ------------------------------------------------------------------------

def _with_warmup(fn: str, init_value: float, peak: float, warmup_steps: int, rest: Schedule,
                 description: str) -> Schedule:
    w = _nonneg_int(fn, "warmup_steps", warmup_steps)
    s = rest if w == 0 else join([linear(init_value, peak, w), rest], [w])
    return Schedule(s.segments, s.scale, description)


def warmup_constant(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value``, then constant.

    >>> s = warmup_constant(0.0, 1.0, warmup_steps=4)
    >>> [s(t) for t in (0, 2, 4, 100)]
    [0.0, 0.5, 1.0, 1.0]
    """
    fn = "warmup_constant"
    a, p = _real(fn, "init_value", init_value), _real(fn, "peak_value", peak_value)
    return _with_warmup(fn, a, p, warmup_steps, constant(p),
                        _args(fn, init_value=a, peak_value=p, warmup_steps=warmup_steps))


def warmup_cosine_decay(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                        end_value: float = 0.0, exponent: float = 1.0) -> Schedule:
    r"""Linear warmup to ``peak_value`` then cosine decay to ``end_value`` at step
    ``decay_steps`` (counted from 0, warmup included, as optax's
    ``warmup_cosine_decay_schedule``), held after.

    >>> s = warmup_cosine_decay(0.0, 1.0, warmup_steps=2, decay_steps=6, end_value=0.1)
    >>> [round(s(t), 12) for t in (0, 1, 2, 4, 6, 9)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    """
    fn = "warmup_cosine_decay"
    a, p = _real(fn, "init_value", init_value), _real(fn, "peak_value", peak_value)
    w = _nonneg_int(fn, "warmup_steps", warmup_steps)
    total = _positive_int(fn, "decay_steps", decay_steps)
    if total <= w:
        raise ValueError(f"{fn}: decay_steps must exceed warmup_steps ({w}), got {decay_steps!r}")
    end = _real(fn, "end_value", end_value)
    e = _positive_real(fn, "exponent", exponent)
    decay = single(cosine_segment(init=p, end=end, steps=total - w, periodic=False, exponent=e), "cosine")
    return _with_warmup(fn, a, p, w, decay, _args(fn, init_value=a, peak_value=p, warmup_steps=w,
                                                  decay_steps=total, end_value=end, exponent=e))


_DECAY_TYPES = ("linear", "cosine", "1-sqrt")


def warmup_stable_decay(peak_value: float, warmup_steps: int, stable_steps: int, decay_steps: int,
                        init_value: float = 0.0, end_value: float = 0.0,
                        decay_type: str = "linear") -> Schedule:
    r"""Warmup-stable-decay (WSD): linear warmup from ``init_value`` to ``peak_value``,
    ``stable_steps`` at the peak, then a ``decay_type`` cooldown (``linear``, ``cosine`` or
    ``1-sqrt``) to ``end_value`` over ``decay_steps``, held after.

    >>> s = warmup_stable_decay(1.0, warmup_steps=2, stable_steps=2, decay_steps=4, decay_type="1-sqrt")
    >>> [s(t) for t in (0, 1, 2, 3, 4, 5, 8)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    fn = "warmup_stable_decay"
    p = _real(fn, "peak_value", peak_value)
    a, end = _real(fn, "init_value", init_value), _real(fn, "end_value", end_value)
    w = _nonneg_int(fn, "warmup_steps", warmup_steps)
    stable = _nonneg_int(fn, "stable_steps", stable_steps)
    d = _nonneg_int(fn, "decay_steps", decay_steps)
    if decay_type not in _DECAY_TYPES:
        raise ValueError(f"{fn}: decay_type must be one of {list(_DECAY_TYPES)}, got {decay_type!r}")
    desc = _args(fn, peak_value=p, warmup_steps=w, stable_steps=stable, decay_steps=d, init_value=a,
                 end_value=end, decay_type=decay_type)
    if d == 0:
        cooldown = constant(end)
    elif decay_type == "linear":
        cooldown = linear(p, end, d)
    elif decay_type == "cosine":
        cooldown = single(cosine_segment(init=p, end=end, steps=d, periodic=False, exponent=1.0), "cosine")
    else:
        cooldown = sqrt_decay(p, end, d)
    parts, bounds = [], []
    if w:
        parts.append(linear(a, p, w))
        bounds.append(w)
    if stable:
        parts.append(constant(p))
        bounds.append(w + stable)
    parts.append(cooldown)
    s = join(parts, bounds[: len(parts) - 1])
    return Schedule(s.segments, s.scale, desc)


# -- baked tables ----------------------------------------------------------------------

def from_values(values: Sequence[float]) -> Schedule:
    """A table: ``values[t]``, held at the last value past the end.

    >>> s = from_values([3.0, 2.0, 1.0])
    >>> [s(t) for t in range(5)]
    [3.0, 2.0, 1.0, 1.0, 1.0]
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"from_values: values must be real numbers, got {values!r}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"from_values: values must be a non-empty 1-d sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"from_values: values must be finite, got values[{i}] = {float(arr[i])!r}")
    return single(table_segment(arr.tolist()), f"from_values(<{arr.size} values>)")


def baked(fn: Callable[[int], float], horizon: int) -> Schedule:
    """Any callable sampled at steps ``0 .. horizon - 1`` (held at the last value after).

    >>> s = baked(lambda t: 0.5 ** t, horizon=3)
    >>> [s(t) for t in range(4)]
    [1.0, 0.5, 0.25, 0.25]
    """
    if not callable(fn):
        raise TypeError(f"baked: fn must be callable, got {fn!r}")
    n = _positive_int("baked", "horizon", horizon)
    values = [_real("baked", f"fn({t})", fn(t)) for t in range(n)]
    s = from_values(values)
    return Schedule(s.segments, 1.0, f"baked({getattr(fn, '__name__', repr(fn))}, horizon={n})")


