"""Functional learning-rate schedules: pure functions of the step, in closed form.

Every factory returns a :class:`Schedule`; call it on a step, ``.values(n)`` for a
range, ``.pack()`` for the descriptor the kernels read; compose with :func:`join`
(one after another, each counting from its boundary) and :func:`chain` (product).

>>> from lrfast import schedules as S
>>> lr = S.warmup_cosine_decay(0.0, 3e-4, warmup_steps=100, decay_steps=10_000, end_value=3e-5)
>>> lr(0), lr(100)
(0.0, 0.0003)
"""

from ._core import Packed, Schedule, Segment, chain, join, pack_many
from ._factories import (
    baked,
    constant,
    cosine_annealing,
    cosine_decay,
    cyclic,
    exponential_decay,
    from_values,
    inverse_sqrt,
    linear,
    multistep_decay,
    one_cycle,
    one_cycle_phase_ends,
    one_cycle_phases,
    piecewise_constant,
    polynomial,
    sqrt_decay,
    step_decay,
    warm_restarts,
    warmup_constant,
    warmup_cosine_decay,
    warmup_stable_decay,
)

__all__ = [
    "Schedule", "Segment", "Packed", "pack_many", "join", "chain",
    "constant", "linear", "polynomial", "exponential_decay", "step_decay", "multistep_decay",
    "piecewise_constant", "cosine_decay", "cosine_annealing", "warm_restarts", "cyclic", "one_cycle",
    "one_cycle_phase_ends", "one_cycle_phases", "inverse_sqrt", "sqrt_decay", "warmup_constant", "warmup_cosine_decay",
    "warmup_stable_decay", "from_values", "baked",
]
