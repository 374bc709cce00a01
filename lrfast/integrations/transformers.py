"""Twins of Hugging Face transformers' schedule helpers, as lrfast schedulers.

Each ``get_*_schedule*`` here takes the arguments of the transformers function of the same
name (optimizer first, ``last_epoch=-1`` last) and returns a
:class:`~lrfast.lr_scheduler.FunctionalLR` whose factor is the same curve, built from
:mod:`lrfast.schedules` primitives and evaluated in closed form, instead of a ``LambdaLR``
that calls Python at every step. transformers itself is not imported.

>>> import torch
>>> from lrfast.integrations.transformers import get_cosine_schedule_with_warmup
>>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
>>> sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=6)
>>> [round(f, 6) for f in sched.factors[0].values(8).tolist()]
[0.0, 0.5, 1.0, 0.853553, 0.5, 0.146447, 0.0, 0.146447]

Where transformers' curve is periodic past ``num_training_steps`` (cosine), so is the twin;
tests/test_integration_transformers.py checks every helper against transformers' own
function over the whole span and past it (relative 1e-9).

NOTE [hard restarts] transformers computes the phase of a restart cycle as
``(num_cycles * progress) % 1`` in floats; where a restart falls on an integer step,
rounding decides on which side of it that step lands. The closed form (warm restarts with
period ``D / num_cycles``) is used when it lands every restart-adjacent step on the same
side as transformers' formula; otherwise the cycles are baked into a table of ``D`` steps.
"""

from __future__ import annotations

import math
import numbers
import warnings
from itertools import accumulate

import torch

from .. import schedules as S
from .._descriptor import cosine_segment, polynomial_segment, warm_restarts_segment
from .._scheduling_protocol import host_float
from ..lr_scheduler import FunctionalLR
from ..schedules import Schedule
from ..schedules._core import single

__all__ = [
    "get_constant_schedule", "get_constant_schedule_with_warmup", "get_linear_schedule_with_warmup",
    "get_cosine_schedule_with_warmup", "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup", "get_polynomial_decay_schedule_with_warmup",
    "get_inverse_sqrt_schedule", "get_wsd_schedule",
]

_PHASE_TYPES = ("linear", "cosine", "1-sqrt")
_RESTART_CHECK_LIMIT = 4096  # restarts checked one by one for the closed form; more are baked


# -- argument checks ------------------------------------------------------------------

def _steps(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {value!r}")
    return int(value)


def _number(fn: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be a finite number, got {value!r}")
    return float(value)


# -- curve pieces (factors of the base LR) --------------------------------------------------

def _periodic_cosine(period: float, end: float = 0.0) -> Schedule:
    """``end + (1 - end) * (1 + cos(pi * u / period)) / 2``, periodic: transformers' cosine
    ``0.5 * (1 + cos(2 pi c u / D))`` with ``period = D / (2 c)`` (any real c != 0)."""
    return single(cosine_segment(init=1.0, end=end, steps=period, periodic=True, exponent=1.0),
                  f"cosine(period={period!r}, end={end!r})")


def _cosine_rise(init: float, steps: int) -> Schedule:
    """``init -> 1`` along ``init + (1 - init) * (1 - cos(pi * u / steps)) / 2`` (WSD's cosine warmup)."""
    return single(cosine_segment(init=init, end=1.0, steps=steps, periodic=False, exponent=1.0),
                  f"cosine_rise({init!r}, {steps})")


def _sqrt_rise(init: float, steps: int) -> Schedule:
    """``init -> 1`` along ``1 - (1 - init) * sqrt(1 - u / steps)`` (WSD's 1-sqrt warmup)."""
    return single(polynomial_segment(init=init, end=1.0, steps=steps, power=0.5), f"sqrt_rise({init!r}, {steps})")


def _sequence(parts: list[tuple[int, Schedule]], description: str) -> Schedule:
    """Run each ``(length, schedule)`` in turn (the last one forever); empty phases are skipped."""
    kept = [(n, s) for n, s in parts[:-1] if n > 0] + [parts[-1]]
    bounds = list(accumulate(n for n, _ in kept[:-1]))
    s = S.join([s for _, s in kept], bounds)
    return Schedule(s.segments, s.scale, description)


def _warmup(num_warmup_steps: int) -> tuple[int, Schedule]:
    """transformers' warmup: ``t / max(1, W)`` for ``t < W``."""
    return num_warmup_steps, S.linear(0.0, 1.0, max(1, num_warmup_steps))


def _args(fn: str, **kwargs) -> str:
    return f"transformers.{fn}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


# -- the helpers ---------------------------------------------------------------------------

def get_constant_schedule(optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> FunctionalLR:
    """A constant LR: the optimizer's own.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_constant_schedule
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_constant_schedule(opt)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    return FunctionalLR(optimizer, S.constant(1.0), last_epoch)


def get_constant_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                      last_epoch: int = -1) -> FunctionalLR:
    r"""Linear warmup from 0 over ``num_warmup_steps``, then the optimizer's LR:
    :math:`f_t = t/W` for :math:`t < W`, 1 after.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_constant_schedule_with_warmup
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=4)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    """
    fn = "get_constant_schedule_with_warmup"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    factor = _sequence([_warmup(w), (0, S.constant(1.0))], _args(fn, num_warmup_steps=w))
    return FunctionalLR(optimizer, factor, last_epoch)


def get_linear_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                    num_training_steps: int, last_epoch: int = -1) -> FunctionalLR:
    r"""Linear warmup from 0 to the optimizer's LR over ``num_warmup_steps``, then linear
    decay to 0 at ``num_training_steps``, held at 0 after:
    :math:`f_t = \max(0, (N - t) / \max(1, N - W))` for :math:`t \ge W`.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_linear_schedule_with_warmup
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=6)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    fn = "get_linear_schedule_with_warmup"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    n = _steps(fn, "num_training_steps", num_training_steps)
    decay = S.linear(1.0, 0.0, n - w) if n > w else S.constant(0.0)
    factor = _sequence([_warmup(w), (0, decay)], _args(fn, num_warmup_steps=w, num_training_steps=n))
    return FunctionalLR(optimizer, factor, last_epoch)


def get_cosine_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                    num_training_steps: int, num_cycles: float = 0.5,
                                    last_epoch: int = -1) -> FunctionalLR:
    r"""Linear warmup, then :math:`f_t = \tfrac12(1 + \cos(2\pi c\,(t - W) / \max(1, N - W)))`
    (``c = num_cycles``; 0.5 is a half cosine from 1 to 0 at ``num_training_steps``),
    periodic past the end as transformers' is.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_cosine_schedule_with_warmup
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=6)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.1464]
    """
    fn = "get_cosine_schedule_with_warmup"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    n = _steps(fn, "num_training_steps", num_training_steps)
    c = _number(fn, "num_cycles", num_cycles)
    span = max(1, n - w)
    decay = S.constant(1.0) if c == 0 else _periodic_cosine(span / (2.0 * abs(c)))
    factor = _sequence([_warmup(w), (0, decay)],
                       _args(fn, num_warmup_steps=w, num_training_steps=n, num_cycles=c))
    return FunctionalLR(optimizer, factor, last_epoch)


def get_cosine_with_min_lr_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                                num_training_steps: int, num_cycles: float = 0.5,
                                                last_epoch: int = -1, min_lr: float | None = None,
                                                min_lr_rate: float | None = None) -> FunctionalLR:
    r"""As :func:`get_cosine_schedule_with_warmup`, with the cosine between 1 and
    ``min_lr_rate`` (or ``min_lr`` over the optimizer's default LR) instead of 0.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_cosine_with_min_lr_schedule_with_warmup
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_cosine_with_min_lr_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=6,
    ...     min_lr_rate=0.1)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 0.8682, 0.55, 0.2318, 0.1, 0.2318]
    """
    fn = "get_cosine_with_min_lr_schedule_with_warmup"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    n = _steps(fn, "num_training_steps", num_training_steps)
    c = _number(fn, "num_cycles", num_cycles)
    if min_lr is not None and min_lr_rate is not None:
        raise ValueError(f"{fn}: only one of min_lr or min_lr_rate should be set")
    if min_lr is not None:
        rate = _number(fn, "min_lr", min_lr) / host_float(optimizer.defaults["lr"], sync=True)
    elif min_lr_rate is not None:
        rate = _number(fn, "min_lr_rate", min_lr_rate)
    else:
        raise ValueError(f"{fn}: one of min_lr or min_lr_rate should be set")
    if rate < 0:
        raise ValueError(f"{fn}: the minimum LR must be >= 0, got a rate of {rate!r}")
    span = max(1, n - w)
    decay = S.constant(1.0) if c == 0 else _periodic_cosine(span / (2.0 * abs(c)), rate)
    factor = _sequence([_warmup(w), (0, decay)], _args(fn, num_warmup_steps=w, num_training_steps=n,
                                                       num_cycles=c, min_lr_rate=rate))
    return FunctionalLR(optimizer, factor, last_epoch)


def _hard_restart_factor(num_cycles: float, progress: float) -> float:
    """transformers' hard-restart factor at ``progress`` in [0, 1), term for term."""
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))


def _hard_restart_cycles(span: int, c: float) -> Schedule:
    """The cycles over ``[0, span)``: closed form when it agrees with transformers at every
    restart, else a table (NOTE [hard restarts] in this module)."""
    if c > 0 and math.ceil(c) - 1 <= _RESTART_CHECK_LIMIT:
        closed = single(warm_restarts_segment(init=1.0, end=0.0, t0=span / c, t_mult=1.0),
                        f"warm_restarts(T_0={span / c!r})")
        near = sorted({s for k in range(1, math.ceil(c)) for s in range(math.floor(k * span / c) - 1,
                                                                          math.floor(k * span / c) + 3)
                       if 0 <= s < span})
        if not near:
            return closed
        got = closed.at(near)
        want = [_hard_restart_factor(c, s / span) for s in near]
        if all(abs(g - v) <= 1e-12 * abs(v) + 1e-15 for g, v in zip(got, want)):
            return closed
    return S.from_values([_hard_restart_factor(c, s / span) for s in range(span)])


def get_cosine_with_hard_restarts_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                                       num_training_steps: int, num_cycles: int = 1,
                                                       last_epoch: int = -1) -> FunctionalLR:
    r"""Linear warmup, then ``num_cycles`` half cosines from 1 to 0, each restarting at 1,
    ending at ``num_training_steps`` and 0 after.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_cosine_with_hard_restarts_schedule_with_warmup
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_cosine_with_hard_restarts_schedule_with_warmup(opt, num_warmup_steps=2,
    ...     num_training_steps=10, num_cycles=2)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0, 0.8536]
    """
    fn = "get_cosine_with_hard_restarts_schedule_with_warmup"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    n = _steps(fn, "num_training_steps", num_training_steps)
    c = _number(fn, "num_cycles", num_cycles)
    span = max(1, n - w)
    factor = _sequence([_warmup(w), (span, _hard_restart_cycles(span, c)), (0, S.constant(0.0))],
                       _args(fn, num_warmup_steps=w, num_training_steps=n, num_cycles=num_cycles))
    return FunctionalLR(optimizer, factor, last_epoch)


def get_polynomial_decay_schedule_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                                              num_training_steps: int, lr_end: float = 1e-7,
                                              power: float = 1.0, last_epoch: int = -1) -> FunctionalLR:
    r"""Linear warmup, then polynomial decay from the optimizer's default LR ``a`` to
    ``lr_end`` at ``num_training_steps``, held after (every group takes the same factor,
    as transformers computes it from ``optimizer.defaults["lr"]``):
    :math:`f_t = (e + (a - e)(1 - (t - W)/(N - W))^p) / a`. transformers divides by zero at
    ``t = W = N``; here the factor is ``lr_end / a`` from ``W`` on when ``N <= W``.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_polynomial_decay_schedule_with_warmup
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_polynomial_decay_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=6,
    ...     lr_end=0.0, power=2.0)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    """
    fn = "get_polynomial_decay_schedule_with_warmup"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    n = _steps(fn, "num_training_steps", num_training_steps)
    end = _number(fn, "lr_end", lr_end)
    p = _number(fn, "power", power)
    lr_init = host_float(optimizer.defaults["lr"], sync=True)
    if not lr_init > end:
        raise ValueError(f"{fn}: lr_end ({lr_end}) must be smaller than initial lr ({lr_init})")
    ratio = end / lr_init
    decay = (single(polynomial_segment(init=1.0, end=ratio, steps=n - w, power=p), "polynomial") if n > w
             else S.constant(ratio))
    factor = _sequence([_warmup(w), (0, decay)],
                       _args(fn, num_warmup_steps=w, num_training_steps=n, lr_end=end, power=p))
    return FunctionalLR(optimizer, factor, last_epoch)


def get_inverse_sqrt_schedule(optimizer: torch.optim.Optimizer, num_warmup_steps: int,
                              timescale: int | None = None, last_epoch: int = -1) -> FunctionalLR:
    r"""Linear warmup, then :math:`f_t = 1/\sqrt{(t - W + \tau)/\tau}`; ``timescale``
    :math:`\tau` defaults to ``num_warmup_steps``, or 10,000 without warmup.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_inverse_sqrt_schedule
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_inverse_sqrt_schedule(opt, num_warmup_steps=2)
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 0.8165, 0.7071, 0.6325, 0.5774, 0.5345]
    """
    fn = "get_inverse_sqrt_schedule"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    if timescale is not None and _steps(fn, "timescale", timescale) == 0:
        raise ValueError(f"{fn}: timescale must be a positive int, got {timescale!r}")
    s = S.inverse_sqrt(1.0, timescale, w)
    return FunctionalLR(optimizer, Schedule(s.segments, s.scale, _args(fn, num_warmup_steps=w, timescale=timescale)),
                        last_epoch)


def get_wsd_schedule(optimizer: torch.optim.Optimizer, num_warmup_steps: int, num_decay_steps: int,
                     num_training_steps: int | None = None, num_stable_steps: int | None = None,
                     warmup_type: str = "linear", decay_type: str = "cosine", min_lr_ratio: float = 0,
                     num_cycles: float = 0.5, last_epoch: int = -1) -> FunctionalLR:
    r"""Warmup-stable-decay: a ``warmup_type`` rise from ``min_lr_ratio`` to 1 over
    ``num_warmup_steps``, 1 for the stable steps (``num_stable_steps``, or what
    ``num_training_steps`` leaves), a ``decay_type`` fall to ``min_lr_ratio`` over
    ``num_decay_steps`` (cosine: ``num_cycles`` as in :func:`get_cosine_schedule_with_warmup`),
    then ``min_lr_ratio``. Types: ``linear``, ``cosine``, ``1-sqrt``.

    >>> import torch
    >>> from lrfast.integrations.transformers import get_wsd_schedule
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = get_wsd_schedule(opt, num_warmup_steps=2, num_decay_steps=2, num_stable_steps=2, decay_type="linear")
    >>> [round(float(f), 4) for f in sched.schedules[0].values(8)]  # the factor at steps 0..7
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    """
    fn = "get_wsd_schedule"
    w = _steps(fn, "num_warmup_steps", num_warmup_steps)
    d = _steps(fn, "num_decay_steps", num_decay_steps)
    if num_training_steps is None and num_stable_steps is None:
        raise ValueError(f"{fn}: either num_training_steps or num_stable_steps must be specified")
    if warmup_type not in _PHASE_TYPES:
        raise ValueError(f"{fn}: warmup_type must be one of {list(_PHASE_TYPES)}, got {warmup_type!r}")
    if decay_type not in _PHASE_TYPES:
        raise ValueError(f"{fn}: decay_type must be one of {list(_PHASE_TYPES)}, got {decay_type!r}")
    m = _number(fn, "min_lr_ratio", min_lr_ratio)
    if m < 0:
        raise ValueError(f"{fn}: min_lr_ratio must be >= 0, got {min_lr_ratio!r}")
    c = _number(fn, "num_cycles", num_cycles)
    if num_stable_steps is not None:
        if num_training_steps is not None:
            warnings.warn("Both num_training_steps and num_stable_steps are specified. num_stable_steps will be used.",
                          UserWarning, stacklevel=2)
        stable = _steps(fn, "num_stable_steps", num_stable_steps)
    else:
        total = _steps(fn, "num_training_steps", num_training_steps)
        stable = total - w - d
        if stable < 0:
            raise ValueError(f"{fn}: num_training_steps ({total}) must be at least num_warmup_steps + "
                             f"num_decay_steps ({w + d})")
    rise = {"linear": lambda: S.linear(m, 1.0, w), "cosine": lambda: _cosine_rise(m, w),
            "1-sqrt": lambda: _sqrt_rise(m, w)}[warmup_type]() if w else S.constant(1.0)
    if d == 0 or (decay_type == "cosine" and c == 0):
        fall = S.constant(1.0)
    elif decay_type == "linear":
        fall = S.linear(1.0, m, d)
    elif decay_type == "cosine":
        fall = _periodic_cosine(d / (2.0 * abs(c)), m)
    else:
        fall = S.sqrt_decay(1.0, m, d)
    factor = _sequence([(w, rise), (stable, S.constant(1.0)), (d, fall), (0, S.constant(m))],
                       _args(fn, num_warmup_steps=w, num_stable_steps=stable, num_decay_steps=d,
                             warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=m, num_cycles=c))
    return FunctionalLR(optimizer, factor, last_epoch)
