"""The packed descriptor: its layout, read from the compiled core, and one builder per segment kind.

NOTE [descriptor layout] in ``csrc/include/lrfast/schedule.h`` defines the layout and NOTE
[segment parameters] the order of each kind's parameters. Python reads both one way only,
from ``lrfast._C.layout()``, here and nowhere else: ``lrfast._C`` is always built (the package
does not install without it), so there is no generated file to go stale in an editable install
and no Python copy to keep equal to the header. The other modules import these names.

The builders (``cosine_segment`` ...) are the only Python code that places parameters: each
takes the kind's parameters by name and puts them at the indices the header exports. The
module-level ``<KIND>_<PARAM>`` ints are those indices, for code that reads a packed descriptor
(the Numba twin: Numba compiles module-level ints in as constants).

>>> from lrfast import _descriptor as descriptor_layout
>>> seg = descriptor_layout.cosine_segment(init=1.0, end=0.0, steps=100, periodic=False, exponent=1.0)
>>> seg.params[descriptor_layout.COSINE_STEPS]
100.0
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _C
from ._numba_cache import digest

__all__ = [
    "LAYOUT_VERSION", "HEADER_SIZE", "MAX_SEGMENTS", "SEGMENT_PARAMS", "SEGMENT_SIZE", "DESCRIPTOR_SIZE",
    "SLOT_VERSION", "SLOT_NUM_SEGMENTS", "SLOT_SCALE", "SLOT_FLOOR", "SLOT_KIND", "SLOT_TRACK", "SLOT_START",
    "SLOT_PARAMS", "Kind", "CyclicMode", "PARAMS", "TABLE_OFFSET_PARAM", "PLATEAU_LAYOUT", "FUSED_LAYOUT",
    "SCALAR_TYPES", "fingerprint", "Segment",
    # the named parameter indices (NOTE [segment parameters])
    "CONSTANT_VALUE", "STEP_INIT", "STEP_GAMMA", "STEP_STEP_SIZE", "MULTISTEP_INIT", "MULTISTEP_GAMMA",
    "MULTISTEP_TABLE_OFFSET", "MULTISTEP_COUNT", "EXPONENTIAL_INIT", "EXPONENTIAL_RATE", "EXPONENTIAL_STEPS",
    "LINEAR_START", "LINEAR_END", "LINEAR_STEPS", "POLYNOMIAL_INIT", "POLYNOMIAL_END", "POLYNOMIAL_STEPS",
    "POLYNOMIAL_POWER", "COSINE_INIT", "COSINE_END", "COSINE_STEPS", "COSINE_PERIODIC", "COSINE_EXPONENT",
    "WARM_RESTARTS_INIT", "WARM_RESTARTS_END", "WARM_RESTARTS_T0", "WARM_RESTARTS_T_MULT", "CYCLIC_BASE",
    "CYCLIC_PEAK", "CYCLIC_TOTAL_SIZE", "CYCLIC_STEP_RATIO", "CYCLIC_MODE", "CYCLIC_GAMMA", "CYCLIC_PER_ITERATION",
    "CYCLIC_TABLE_OFFSET", "CYCLIC_COUNT", "ONE_CYCLE_NUM_PHASES", "ONE_CYCLE_ANNEAL_LINEAR",
    "ONE_CYCLE_PHASE_ENDS", "ONE_CYCLE_PHASE_VALUES", "ONE_CYCLE_MAX_PHASES", "INVERSE_SQRT_INIT",
    "INVERSE_SQRT_TIMESCALE", "SQRT_DECAY_INIT", "SQRT_DECAY_END", "SQRT_DECAY_STEPS", "TABLE_TABLE_OFFSET",
    "TABLE_COUNT", "PIECEWISE_TABLE_OFFSET", "PIECEWISE_COUNT", "PLATEAU_TABLE_OFFSET",
    "constant_segment", "step_segment", "multistep_segment", "exponential_segment", "linear_segment",
    "polynomial_segment", "cosine_segment", "warm_restarts_segment", "cyclic_segment", "one_cycle_segment",
    "inverse_sqrt_segment", "sqrt_decay_segment", "table_segment", "piecewise_segment", "plateau_segment",
]

_LAYOUT = _C.layout()


def _frozen(value: Any) -> Any:
    """A read-only view of a (nested) dict from the compiled core."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


# -- sizes and slots (NOTE [descriptor layout]) ---------------------------------------------------------
LAYOUT_VERSION: int = _LAYOUT["version"]
HEADER_SIZE: int = _LAYOUT["header_size"]
MAX_SEGMENTS: int = _LAYOUT["max_segments"]
SEGMENT_PARAMS: int = _LAYOUT["segment_params"]
SEGMENT_SIZE: int = _LAYOUT["segment_size"]
DESCRIPTOR_SIZE: int = _LAYOUT["descriptor_size"]

# header slots (SLOT_FLOOR: lr = max(floor, ...), 0 = no floor)
SLOT_VERSION: int = _LAYOUT["header"]["version"]
SLOT_NUM_SEGMENTS: int = _LAYOUT["header"]["num_segments"]
SLOT_SCALE: int = _LAYOUT["header"]["scale"]
SLOT_FLOOR: int = _LAYOUT["header"]["floor"]
# segment slots, from the segment's first double
SLOT_KIND: int = _LAYOUT["segment"]["kind"]
SLOT_TRACK: int = _LAYOUT["segment"]["track"]
SLOT_START: int = _LAYOUT["segment"]["start"]
SLOT_PARAMS: int = _LAYOUT["segment"]["params"]

_KINDS = _LAYOUT["kinds"]
_MODES = _LAYOUT["cyclic_modes"]


class Kind(enum.IntEnum):
    """The segment kinds of schedule.h (``enum Kind``); members named as there, valued from there."""

    CONSTANT = _KINDS["constant"]
    STEP = _KINDS["step"]
    MULTISTEP = _KINDS["multistep"]
    EXPONENTIAL = _KINDS["exponential"]
    LINEAR = _KINDS["linear"]
    POLYNOMIAL = _KINDS["polynomial"]
    COSINE = _KINDS["cosine"]
    WARM_RESTARTS = _KINDS["warm_restarts"]
    CYCLIC = _KINDS["cyclic"]
    ONE_CYCLE = _KINDS["one_cycle"]
    INVERSE_SQRT = _KINDS["inverse_sqrt"]
    SQRT_DECAY = _KINDS["sqrt_decay"]
    TABLE = _KINDS["table"]
    PIECEWISE = _KINDS["piecewise"]
    PLATEAU = _KINDS["plateau"]  # a live table entry (ReduceLROnPlateau's LR or factor, rewritten as it decides)


class CyclicMode(enum.IntEnum):
    """schedule.h's ``enum CyclicMode``: how a cyclic segment scales its amplitude."""

    TRIANGULAR = _MODES["triangular"]
    TRIANGULAR2 = _MODES["triangular2"]
    EXP_RANGE = _MODES["exp_range"]
    TABLE = _MODES["table"]


# -- parameters (NOTE [segment parameters]) -------------------------------------------------------------
PARAMS: Mapping[Kind, Mapping[str, int]] = MappingProxyType(
    {kind: MappingProxyType(dict(_LAYOUT["params"][kind.name.lower()])) for kind in Kind})
"""PARAMS[kind][name]: the index of a parameter in a segment's params (the first of a run for
one_cycle's ``phase_ends`` and ``phase_values``)."""

_PARAM_COUNTS: Mapping[Kind, int] = {kind: _LAYOUT["param_counts"][kind.name.lower()] for kind in Kind}

# For each kind that reads the shared table: the index of its offset, rebased when packing.
TABLE_OFFSET_PARAM: Mapping[Kind, int] = MappingProxyType(
    {kind: names["table_offset"] for kind, names in PARAMS.items() if "table_offset" in names})

CONSTANT_VALUE = PARAMS[Kind.CONSTANT]["value"]
STEP_INIT = PARAMS[Kind.STEP]["init"]
STEP_GAMMA = PARAMS[Kind.STEP]["gamma"]
STEP_STEP_SIZE = PARAMS[Kind.STEP]["step_size"]
MULTISTEP_INIT = PARAMS[Kind.MULTISTEP]["init"]
MULTISTEP_GAMMA = PARAMS[Kind.MULTISTEP]["gamma"]
MULTISTEP_TABLE_OFFSET = PARAMS[Kind.MULTISTEP]["table_offset"]
MULTISTEP_COUNT = PARAMS[Kind.MULTISTEP]["count"]
EXPONENTIAL_INIT = PARAMS[Kind.EXPONENTIAL]["init"]
EXPONENTIAL_RATE = PARAMS[Kind.EXPONENTIAL]["rate"]
EXPONENTIAL_STEPS = PARAMS[Kind.EXPONENTIAL]["steps"]
LINEAR_START = PARAMS[Kind.LINEAR]["start"]
LINEAR_END = PARAMS[Kind.LINEAR]["end"]
LINEAR_STEPS = PARAMS[Kind.LINEAR]["steps"]
POLYNOMIAL_INIT = PARAMS[Kind.POLYNOMIAL]["init"]
POLYNOMIAL_END = PARAMS[Kind.POLYNOMIAL]["end"]
POLYNOMIAL_STEPS = PARAMS[Kind.POLYNOMIAL]["steps"]
POLYNOMIAL_POWER = PARAMS[Kind.POLYNOMIAL]["power"]
COSINE_INIT = PARAMS[Kind.COSINE]["init"]
COSINE_END = PARAMS[Kind.COSINE]["end"]
COSINE_STEPS = PARAMS[Kind.COSINE]["steps"]
COSINE_PERIODIC = PARAMS[Kind.COSINE]["periodic"]
COSINE_EXPONENT = PARAMS[Kind.COSINE]["exponent"]
WARM_RESTARTS_INIT = PARAMS[Kind.WARM_RESTARTS]["init"]
WARM_RESTARTS_END = PARAMS[Kind.WARM_RESTARTS]["end"]
WARM_RESTARTS_T0 = PARAMS[Kind.WARM_RESTARTS]["t0"]
WARM_RESTARTS_T_MULT = PARAMS[Kind.WARM_RESTARTS]["t_mult"]
CYCLIC_BASE = PARAMS[Kind.CYCLIC]["base"]
CYCLIC_PEAK = PARAMS[Kind.CYCLIC]["peak"]
CYCLIC_TOTAL_SIZE = PARAMS[Kind.CYCLIC]["total_size"]
CYCLIC_STEP_RATIO = PARAMS[Kind.CYCLIC]["step_ratio"]
CYCLIC_MODE = PARAMS[Kind.CYCLIC]["mode"]
CYCLIC_GAMMA = PARAMS[Kind.CYCLIC]["gamma"]
CYCLIC_PER_ITERATION = PARAMS[Kind.CYCLIC]["per_iteration"]
CYCLIC_TABLE_OFFSET = PARAMS[Kind.CYCLIC]["table_offset"]
CYCLIC_COUNT = PARAMS[Kind.CYCLIC]["count"]
ONE_CYCLE_NUM_PHASES = PARAMS[Kind.ONE_CYCLE]["num_phases"]
ONE_CYCLE_ANNEAL_LINEAR = PARAMS[Kind.ONE_CYCLE]["anneal_linear"]
ONE_CYCLE_PHASE_ENDS = PARAMS[Kind.ONE_CYCLE]["phase_ends"]
ONE_CYCLE_PHASE_VALUES = PARAMS[Kind.ONE_CYCLE]["phase_values"]
ONE_CYCLE_MAX_PHASES = ONE_CYCLE_PHASE_VALUES - ONE_CYCLE_PHASE_ENDS
INVERSE_SQRT_INIT = PARAMS[Kind.INVERSE_SQRT]["init"]
INVERSE_SQRT_TIMESCALE = PARAMS[Kind.INVERSE_SQRT]["timescale"]
SQRT_DECAY_INIT = PARAMS[Kind.SQRT_DECAY]["init"]
SQRT_DECAY_END = PARAMS[Kind.SQRT_DECAY]["end"]
SQRT_DECAY_STEPS = PARAMS[Kind.SQRT_DECAY]["steps"]
TABLE_TABLE_OFFSET = PARAMS[Kind.TABLE]["table_offset"]
TABLE_COUNT = PARAMS[Kind.TABLE]["count"]
PIECEWISE_TABLE_OFFSET = PARAMS[Kind.PIECEWISE]["table_offset"]
PIECEWISE_COUNT = PARAMS[Kind.PIECEWISE]["count"]
PLATEAU_TABLE_OFFSET = PARAMS[Kind.PLATEAU]["table_offset"]

# -- other layouts of the compiled core -----------------------------------------------------------------
PLATEAU_LAYOUT: Mapping[str, int] = _frozen(_LAYOUT["plateau"])
"""NOTE [plateau state] in plateau.h: the decision state's size and slots, and the mode codes."""
FUSED_LAYOUT: Mapping[str, Any] = _frozen(_LAYOUT["fused"])
"""fused_tables.h: the CUDA optimizer's per-tensor and per-group table slots, its launch shape and
its codes (``lr_sources``, ``algorithms``, ``counter_modes``, ``first_step_flag``)."""
SCALAR_TYPES: Mapping[str, int] = _frozen(_LAYOUT["scalar_types"])
"""cuda/cuda_api.h: the dtype code of each torch dtype a kernel reads or writes, by name."""


def fingerprint() -> str:
    """A digest of every constant the compiled core exports, for caches of code that compiled them in
    (Numba keys its on-disk cache on the source file alone)."""
    return digest(_LAYOUT)


# -- segments and their builders ------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """One primitive curve: active on its track from ``start`` until the next segment.

    ``params`` are the kind's parameters, at the indices of NOTE [segment parameters] (build
    one with the kind's ``*_segment`` function); a kind that reads the shared table holds its
    own values in ``table`` and an offset of 0 into it, rebased when packed.
    """

    kind: Kind
    track: int
    start: int
    params: tuple[float, ...]
    table: tuple[float, ...] = ()

    def is_unit_constant(self) -> bool:
        return self.kind == Kind.CONSTANT and self.params[CONSTANT_VALUE] == 1.0


def _segment(kind: Kind, track: int, start: int, table: Sequence[float] = (), /,
             **values: float | Sequence[float]) -> Segment:
    """A segment of ``kind`` with every parameter given by name (positional-only arguments before,
    so a parameter may be called ``start``); a run (one_cycle's phase ends and values) takes a
    sequence, padded with zeros to its length."""
    names = PARAMS[kind]
    if set(values) != set(names):
        raise TypeError(f"{kind.name.lower()} segment: parameters {sorted(names)} expected, got {sorted(values)}")
    params = [0.0] * _PARAM_COUNTS[kind]
    starts = sorted(names.values()) + [len(params)]
    for name, value in values.items():
        at = names[name]
        # a parameter's width reaches to the next one's index: more than 1 only for a run
        width = starts[starts.index(at) + 1] - at
        if np.ndim(value) > 0:  # a list, tuple or NumPy array: the values of a run
            run = [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]
            if width == 1 or len(run) > width:
                raise ValueError(f"{kind.name.lower()} segment: {name} holds at most {width} value(s), got {value!r}")
            params[at:at + len(run)] = run
        else:
            params[at] = float(value)  # type: ignore[arg-type]
    return Segment(kind, track, start, tuple(params), tuple(float(v) for v in table))


def constant_segment(value: float, *, track: int = 0, start: int = 0) -> Segment:
    """``value`` at every step."""
    return _segment(Kind.CONSTANT, track, start, value=value)


def step_segment(*, init: float, gamma: float, step_size: float) -> Segment:
    """``init * gamma^floor(u / step_size)``."""
    return _segment(Kind.STEP, 0, 0, init=init, gamma=gamma, step_size=step_size)


def multistep_segment(*, init: float, gamma: float, milestones: Sequence[float]) -> Segment:
    """``init * gamma^#(milestones <= u)``; ``milestones`` sorted, kept in the shared table."""
    return _segment(Kind.MULTISTEP, 0, 0, milestones, init=init, gamma=gamma, table_offset=0, count=len(milestones))


def exponential_segment(*, init: float, rate: float, steps: float) -> Segment:
    """``init * rate^(u / steps)``."""
    return _segment(Kind.EXPONENTIAL, 0, 0, init=init, rate=rate, steps=steps)


def linear_segment(*, start: float, end: float, steps: float) -> Segment:
    """``start + (end - start) * min(u, steps) / steps``."""
    return _segment(Kind.LINEAR, 0, 0, start=start, end=end, steps=steps)


def polynomial_segment(*, init: float, end: float, steps: float, power: float) -> Segment:
    """``end + (init - end) * (1 - min(u, steps) / steps)^power``."""
    return _segment(Kind.POLYNOMIAL, 0, 0, init=init, end=end, steps=steps, power=power)


def cosine_segment(*, init: float, end: float, steps: float, periodic: bool, exponent: float) -> Segment:
    """``end + (init - end) * ((1 + cos(pi * v / steps)) / 2)^exponent``, ``v = u`` when ``periodic``
    (torch's CosineAnnealingLR), else ``min(u, steps)``."""
    return _segment(Kind.COSINE, 0, 0, init=init, end=end, steps=steps, periodic=1.0 if periodic else 0.0,
                    exponent=exponent)


def warm_restarts_segment(*, init: float, end: float, t0: float, t_mult: float) -> Segment:
    """A cosine from ``init`` to ``end`` over periods of ``t0``, ``t0 * t_mult``, ... steps."""
    return _segment(Kind.WARM_RESTARTS, 0, 0, init=init, end=end, t0=t0, t_mult=t_mult)


def cyclic_segment(*, base: float, peak: float, total_size: float, step_ratio: float, mode: CyclicMode,
                   gamma: float, per_iteration: bool, scale_table: Sequence[float] = ()) -> Segment:
    """torch's CyclicLR; mode ``CyclicMode.TABLE`` scales by ``scale_table`` (kept in the shared table)."""
    return _segment(Kind.CYCLIC, 0, 0, scale_table, base=base, peak=peak, total_size=total_size,
                    step_ratio=step_ratio, mode=int(mode), gamma=gamma, per_iteration=1.0 if per_iteration else 0.0,
                    table_offset=0, count=len(scale_table))


def one_cycle_segment(*, phase_ends: Sequence[float], phase_values: Sequence[float], linear: bool) -> Segment:
    """Phase ``i`` anneals ``phase_values[i] -> phase_values[i + 1]`` (linearly or along a cosine)
    until step ``phase_ends[i]``."""
    return _segment(Kind.ONE_CYCLE, 0, 0, num_phases=len(phase_ends), anneal_linear=1.0 if linear else 0.0,
                    phase_ends=phase_ends, phase_values=phase_values)


def inverse_sqrt_segment(*, init: float, timescale: float) -> Segment:
    """``init / sqrt((u + timescale) / timescale)``."""
    return _segment(Kind.INVERSE_SQRT, 0, 0, init=init, timescale=timescale)


def sqrt_decay_segment(*, init: float, end: float, steps: float) -> Segment:
    """``end + (init - end) * (1 - sqrt(min(u, steps) / steps))``."""
    return _segment(Kind.SQRT_DECAY, 0, 0, init=init, end=end, steps=steps)


def table_segment(values: Sequence[float]) -> Segment:
    """``values[clamp(floor(u), 0, len - 1)]``, kept in the shared table."""
    return _segment(Kind.TABLE, 0, 0, values, table_offset=0, count=len(values))


def piecewise_segment(*, boundaries: Sequence[float], values: Sequence[float]) -> Segment:
    """``values[#(boundaries <= u)]``: sorted ``boundaries`` and one value more, kept in the shared table."""
    if len(values) != len(boundaries) + 1:
        raise ValueError(f"piecewise segment: needs one value more than boundaries, got {len(boundaries)} "
                         f"boundaries and {len(values)} values")
    return _segment(Kind.PIECEWISE, 0, 0, [*boundaries, *values], table_offset=0, count=len(boundaries))


def plateau_segment(value: float) -> Segment:
    """A live table entry holding ``value`` at first: ReduceLROnPlateau's slot (NOTE [plateau state])."""
    return _segment(Kind.PLATEAU, 0, 0, (value,), table_offset=0)
