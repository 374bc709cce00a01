"""Schedule objects: immutable lists of segments that pack into one descriptor.

A :class:`Schedule` is what every factory in :mod:`lrfast.schedules` returns. It is
evaluated through the compiled core (``lrfast._C``) with the same C++ header the CUDA
kernels use, so host and device agree to the last bit or two; see
NOTE [descriptor layout] in ``csrc/include/lrfast/schedule.h``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .. import _descriptor as descriptor_layout
from .._descriptor import Kind, Segment, constant_segment

__all__ = ["Schedule", "Segment", "Packed", "pack_many", "join", "chain", "single"]


class Packed(NamedTuple):
    """Packed descriptors: ``descriptors`` is (G, DESCRIPTOR_SIZE) or (DESCRIPTOR_SIZE,)
    float64; ``table`` is the float64 table their table-reading segments index into."""

    descriptors: np.ndarray
    table: np.ndarray


def _C():
    try:
        from .. import _C as compiled
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise ImportError(
            "lrfast._C (the compiled core) is not importable; reinstall lrfast with "
            "`pip install -e .` to build it"
        ) from exc
    return compiled


class Schedule:
    """A learning-rate schedule: a pure function of the step ``t >= 0``, in float64.

    ``schedule(t)`` evaluates one step, ``schedule.values(start, stop)`` a range as a
    NumPy array, ``schedule.pack()`` gives the fixed-size descriptor the kernels read.
    ``schedule * c`` scales it. Schedules are immutable and hashable by identity.

    >>> from lrfast import schedules
    >>> s = schedules.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=110)
    >>> round(s(5), 6), round(s(10), 6), round(s(60), 6), s(110)
    (0.5, 1.0, 0.5, 0.0)
    """

    __slots__ = ("_segments", "_scale", "_description", "_packed", "_floor")

    def __init__(self, segments: Sequence[Segment], scale: float = 1.0, description: str = "Schedule()",
                 floor: float = 0.0) -> None:
        segments = tuple(sorted(segments, key=lambda s: (s.track, s.start)))
        if len(segments) > descriptor_layout.MAX_SEGMENTS:
            raise ValueError(
                f"{description.split('(')[0]}: this schedule needs {len(segments)} segments, "
                f"more than the {descriptor_layout.MAX_SEGMENTS} a descriptor holds"
            )
        self._segments = segments
        self._scale = float(scale)
        self._description = description
        self._floor = float(floor)
        self._packed: Packed | None = None

    # -- structure -------------------------------------------------------------------
    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._segments

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def floor(self) -> float:
        """The lower bound of the schedule's values (0.0: none). See :meth:`with_floor`."""
        return self._floor

    @property
    def num_tracks(self) -> int:
        return 1 + max((s.track for s in self._segments), default=-1)

    def __repr__(self) -> str:
        text = self._description if self._scale == 1.0 else f"{self._scale!r} * {self._description}"
        return text if self._floor == 0.0 else f"({text}).with_floor({self._floor!r})"

    def __mul__(self, factor: float) -> Schedule:
        factor = _real("Schedule.__mul__", "factor", factor)
        if self._floor != 0.0 and factor < 0:
            raise ValueError(f"Schedule.__mul__: a schedule with a floor ({self._floor!r}) cannot be scaled by a "
                             f"negative factor, got {factor!r}")
        return Schedule(self._segments, self._scale * factor, self._description, self._floor * factor)

    def with_floor(self, min_value: float) -> Schedule:
        """This schedule bounded below: ``max(min_value, self(t))`` at every step.

        ``min_value == 0`` means no floor (values below 0 are not clamped). A floor bounds
        a whole schedule, so it is applied last: :func:`join` and :func:`chain` refuse
        schedules that have one.

        >>> from lrfast import schedules as S
        >>> s = S.exponential_decay(1.0, transition_steps=1, decay_rate=0.5).with_floor(0.1)
        >>> s(1), s(3), s(10)
        (0.5, 0.125, 0.1)
        """
        value = _real("Schedule.with_floor", "min_value", min_value)
        return Schedule(self._segments, self._scale, self._description, value)

    __rmul__ = __mul__

    # -- packing ---------------------------------------------------------------------
    def pack(self) -> Packed:
        """The descriptor (DESCRIPTOR_SIZE float64) and the table it reads (offsets from 0)."""
        if self._packed is None:
            descriptor, table = _pack_into(self, [], 0)
            packed = Packed(descriptor, np.asarray(table, dtype=np.float64))
            packed.descriptors.setflags(write=False)
            packed.table.setflags(write=False)
            self._packed = packed
        return self._packed

    # -- evaluation ------------------------------------------------------------------
    def __call__(self, step: float) -> float:
        t = _step_value("Schedule.__call__", step)
        packed = self.pack()
        return float(_C().evaluate_at(packed.descriptors[None, :], packed.table, t)[0])

    def values(self, start: int, stop: int | None = None) -> np.ndarray:
        """``[self(t) for t in range(start, stop)]`` as a float64 array (``values(n)``: 0..n-1)."""
        if stop is None:
            start, stop = 0, start
        start = _nonneg_int("Schedule.values", "start", start)
        stop = _nonneg_int("Schedule.values", "stop", stop)
        steps = np.arange(start, max(start, stop), dtype=np.float64)
        packed = self.pack()
        return _C().evaluate(packed.descriptors[None, :], packed.table, steps)[0]

    def at(self, steps: ArrayLike) -> np.ndarray:
        """The schedule at arbitrary (possibly fractional) steps, vectorised."""
        try:
            steps = np.ascontiguousarray(steps, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Schedule.at: steps must be real numbers, got {steps!r}") from exc
        if steps.ndim != 1:
            raise ValueError(f"Schedule.at: steps must be one-dimensional, got shape {steps.shape}")
        bad = np.flatnonzero(~(np.isfinite(steps) & (steps >= 0)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"Schedule.at: steps must be finite and >= 0, "
                             f"got steps[{i}] = {float(steps[i])!r}")
        packed = self.pack()
        return _C().evaluate(packed.descriptors[None, :], packed.table, steps)[0]


def _pack_into(schedule: Schedule, table: list[float], table_base: int,
               placed: dict[bytes, int] | None = None) -> tuple[np.ndarray, list[float]]:
    """``schedule``'s descriptor, its segments' tables appended to ``table`` (offsets from
    ``table_base``). ``placed`` (float64 bytes of a segment table -> its offset) lets equal
    read-only tables share one copy, so groups of equal schedules pack to equal descriptors; a
    plateau slot is live state (rewritten per group as ReduceLROnPlateau decides): never shared."""
    d = np.zeros(descriptor_layout.DESCRIPTOR_SIZE, dtype=np.float64)
    d[descriptor_layout.SLOT_VERSION] = descriptor_layout.LAYOUT_VERSION
    d[descriptor_layout.SLOT_NUM_SEGMENTS] = len(schedule.segments)
    d[descriptor_layout.SLOT_SCALE] = schedule.scale
    d[descriptor_layout.SLOT_FLOOR] = schedule.floor
    for i, seg in enumerate(schedule.segments):
        o = descriptor_layout.HEADER_SIZE + i * descriptor_layout.SEGMENT_SIZE
        d[o + descriptor_layout.SLOT_KIND] = int(seg.kind)
        d[o + descriptor_layout.SLOT_TRACK] = seg.track
        d[o + descriptor_layout.SLOT_START] = seg.start
        params = list(seg.params)
        if seg.table:
            key = np.asarray(seg.table, dtype=np.float64).tobytes()  # bit-exact: -0.0 and NaNs kept apart
            sharing = placed if seg.kind != Kind.PLATEAU else None
            offset = sharing.get(key) if sharing is not None else None
            if offset is None:
                offset = table_base + len(table)
                table.extend(seg.table)
                if sharing is not None:
                    sharing[key] = offset
            params[descriptor_layout.TABLE_OFFSET_PARAM[seg.kind]] += offset
        d[o + descriptor_layout.SLOT_PARAMS: o + descriptor_layout.SLOT_PARAMS + len(params)] = params
    return d, table


def single(segment: Segment, description: str) -> Schedule:
    """A schedule of one segment (one kind of schedule.h), unscaled: what every primitive
    factory, transformers' curve pieces and ReduceLROnPlateau's live slot build."""
    return Schedule([segment], 1.0, description)


def pack_many(schedules: Sequence[Schedule]) -> Packed:
    """Pack one schedule per group: descriptors (G, DESCRIPTOR_SIZE) and one shared table,
    where equal segment tables (MultiStepLR's milestones in every group) are stored once."""
    table: list[float] = []
    placed: dict[bytes, int] = {}
    rows = [_pack_into(s, table, 0, placed)[0] for s in schedules]
    descriptors = np.stack(rows) if rows else np.zeros((0, descriptor_layout.DESCRIPTOR_SIZE))
    return Packed(descriptors, np.asarray(table, dtype=np.float64))


# -- composition -----------------------------------------------------------------------

def _drop_unit_tracks(segments: list[Segment]) -> list[Segment]:
    """Remove tracks that are constant 1 throughout, and merge repeated constants."""
    by_track: dict[int, list[Segment]] = {}
    for seg in sorted(segments, key=lambda s: (s.track, s.start)):
        by_track.setdefault(seg.track, []).append(seg)
    kept: list[Segment] = []
    new_track = 0
    for _, segs in sorted(by_track.items()):
        if all(s.is_unit_constant() for s in segs):
            continue
        merged: list[Segment] = []
        for s in segs:
            if merged and s.kind == Kind.CONSTANT and merged[-1].kind == Kind.CONSTANT \
                    and merged[-1].params == s.params:
                continue
            merged.append(s)
        kept.extend(replace(s, track=new_track) for s in merged)
        new_track += 1
    if not kept:
        kept = [constant_segment(1.0)]
    return kept


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` from ``boundaries[i - 1]`` (0 for the first) on, each counting
    steps from its own boundary: ``join([a, b], [m])(t) = a(t) if t < m else b(t - m)``
    (optax's ``join_schedules``; torch's ``SequentialLR``).

    >>> from lrfast import schedules as S
    >>> s = S.join([S.constant(1.0), S.linear(1.0, 0.0, 10)], [5])
    >>> s(4), s(5), s(10), s(15)
    (1.0, 1.0, 0.5, 0.0)
    """
    fn = "join"
    if isinstance(schedules, Schedule) or not isinstance(schedules, Sequence) or not schedules:
        raise TypeError(f"{fn}: schedules must be a non-empty sequence of Schedule, got {schedules!r}")
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError(f"{fn}: schedules must hold Schedule objects, got {s!r}")
    _refuse_floors(fn, schedules)
    if not isinstance(boundaries, Sequence) or len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{fn}: boundaries must be a sequence of len(schedules) - 1 = {len(schedules) - 1} "
            f"steps, got {boundaries!r}"
        )
    bounds = [_positive_int(fn, "boundaries", b) for b in boundaries]
    if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"{fn}: boundaries must be strictly increasing, got {list(boundaries)!r}")
    if len(schedules) == 1:
        return schedules[0]
    starts = [0, *bounds]
    ends = [*bounds, math.inf]
    scales = [s.scale for s in schedules]
    common_scale = scales[0] if all(x == scales[0] for x in scales) else 1.0
    segments: list[Segment] = []
    for k in range(max(s.num_tracks for s in schedules)):
        for s, begin, end in zip(schedules, starts, ends, strict=True):
            track = [seg for seg in s.segments if seg.track == k] or [constant_segment(1.0, track=k)]
            segments += [replace(seg, track=k, start=begin + seg.start)
                         for seg in track if begin + seg.start < end]
    if common_scale == 1.0 and any(x != 1.0 for x in scales):
        k = max(s.num_tracks for s in schedules)
        segments += [constant_segment(x, track=k, start=b) for x, b in zip(scales, starts, strict=True)]
    description = f"join([{', '.join(map(repr, schedules))}], boundaries={bounds!r})"
    return Schedule(_drop_unit_tracks(segments), common_scale, description)


def chain(*schedules: Schedule) -> Schedule:
    """The product of schedules: ``chain(a, b)(t) = a(t) * b(t)`` (torch's ``ChainedScheduler``
    for multiplicative schedulers: a warmup factor times a decay, say).

    >>> from lrfast import schedules as S
    >>> s = S.chain(S.constant(0.5), S.step_decay(2.0, step_size=10, gamma=0.1))
    >>> s(0), round(s(10), 12)
    (1.0, 0.1)
    """
    if len(schedules) == 1 and isinstance(schedules[0], Sequence):
        schedules = tuple(schedules[0])
    if not schedules:
        raise TypeError("chain: needs at least one Schedule")
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError(f"chain: arguments must be Schedule objects, got {s!r}")
    _refuse_floors("chain", schedules)
    segments: list[Segment] = []
    offset = 0
    scale = 1.0
    for s in schedules:
        segments += [replace(seg, track=seg.track + offset) for seg in s.segments]
        offset += s.num_tracks
        scale *= s.scale
    description = f"chain({', '.join(map(repr, schedules))})"
    return Schedule(_drop_unit_tracks(segments), scale, description)


def _refuse_floors(fn: str, schedules: Sequence[Schedule]) -> None:
    for i, s in enumerate(schedules):
        if s.floor != 0.0:
            raise ValueError(f"{fn}: schedule {i} has a floor ({s.floor!r}); a floor bounds a whole schedule, "
                             "so apply with_floor() to the composed result")


# -- argument checks shared by the factories -------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(fn: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be finite, got {value!r}")
    return value


def _positive_real(fn: str, name: str, value) -> float:
    v = _real(fn, name, value)
    if v <= 0:
        raise ValueError(f"{fn}: {name} must be > 0, got {value!r}")
    return v


def _nonneg_int(fn: str, name: str, value) -> int:
    if not _is_int(value):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {value!r}")
    return int(value)


def _positive_int(fn: str, name: str, value) -> int:
    if not _is_int(value):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
    return int(value)


def _step_value(fn: str, step) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"{fn}: step must be a real number, got {step!r}")
    t = float(step)
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"{fn}: step must be finite and >= 0, got {step!r}")
    return t
