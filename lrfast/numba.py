"""Schedules inside your own Numba kernels.

``lr_at(descriptor, table, step)`` is an ``@njit`` function: call it from any Numba
kernel to evaluate a packed schedule (``Schedule.pack()``, or a scheduler's
``packed_lr()``) at a step, exactly as lrfast's compiled core does (to 1e-15 relative).

>>> import numba
>>> from lrfast import schedules
>>> from lrfast.numba import lr_at
>>> desc, table = schedules.cosine_decay(1.0, 100).pack()
>>> @numba.njit
... def half_way(d, t):
...     return lr_at(d, t, 50.0)
>>> round(half_way(desc, table), 12)
0.5
"""

from __future__ import annotations

from ._numba.schedule import evaluate as lr_at
from ._numba.schedule import evaluate_many as lr_at_many

__all__ = ["lr_at", "lr_at_many"]
