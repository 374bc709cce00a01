"""The packed descriptor layout, mirrored from csrc/include/lrfast/schedule.h.

NOTE [descriptor layout] in schedule.h is the definition; this module repeats its
constants in Python so that the package imports (and the Numba twin works) without
the compiled module. ``tests/test_layout.py`` checks both sides agree.
"""

from __future__ import annotations

__all__ = [
    "LAYOUT_VERSION", "HEADER_SIZE", "MAX_SEGMENTS", "SEGMENT_PARAMS", "SEGMENT_SIZE",
    "DESCRIPTOR_SIZE", "Kind", "CyclicMode",
]

import enum

LAYOUT_VERSION = 1
HEADER_SIZE = 4
MAX_SEGMENTS = 8
SEGMENT_PARAMS = 13
SEGMENT_SIZE = 3 + SEGMENT_PARAMS
DESCRIPTOR_SIZE = HEADER_SIZE + MAX_SEGMENTS * SEGMENT_SIZE

# header slots (SLOT_FLOOR: lr = max(floor, ...), 0 = no floor)
SLOT_VERSION, SLOT_NUM_SEGMENTS, SLOT_SCALE, SLOT_FLOOR = 0, 1, 2, 3
# segment slots
SLOT_KIND, SLOT_TRACK, SLOT_START, SLOT_PARAMS = 0, 1, 2, 3


class Kind(enum.IntEnum):
    CONSTANT = 0
    STEP = 1
    MULTISTEP = 2
    EXPONENTIAL = 3
    LINEAR = 4
    POLYNOMIAL = 5
    COSINE = 6
    WARM_RESTARTS = 7
    CYCLIC = 8
    ONE_CYCLE = 9
    INVERSE_SQRT = 10
    SQRT_DECAY = 11
    TABLE = 12
    PIECEWISE = 13
    PLATEAU = 14  # a live table entry (ReduceLROnPlateau's LR or factor, rewritten as it decides)


class CyclicMode(enum.IntEnum):
    TRIANGULAR = 0
    TRIANGULAR2 = 1
    EXP_RANGE = 2
    TABLE = 3


# For each kind that reads the shared table: the param index of its offset.
TABLE_OFFSET_PARAM = {Kind.MULTISTEP: 2, Kind.TABLE: 0, Kind.PIECEWISE: 0, Kind.CYCLIC: 7, Kind.PLATEAU: 0}
