"""lrfast/_layout.py repeats NOTE [descriptor layout] of schedule.h; both sides agree."""

from __future__ import annotations

from lrfast import _C
from lrfast import _layout as L
from lrfast import schedules as S
from lrfast._numba import schedule as twin


def test_sizes_and_version_match_the_header():
    compiled = _C.layout()
    assert compiled["version"] == L.LAYOUT_VERSION == 1
    assert compiled["header_size"] == L.HEADER_SIZE
    assert compiled["max_segments"] == L.MAX_SEGMENTS
    assert compiled["segment_params"] == L.SEGMENT_PARAMS
    assert compiled["segment_size"] == L.SEGMENT_SIZE == 3 + L.SEGMENT_PARAMS
    assert compiled["descriptor_size"] == L.DESCRIPTOR_SIZE == L.HEADER_SIZE + L.MAX_SEGMENTS * L.SEGMENT_SIZE


def test_every_kind_matches_the_header():
    kinds = _C.layout()["kinds"]
    assert {name.upper(): value for name, value in kinds.items()} == {k.name: int(k) for k in L.Kind}


def test_header_and_segment_slots_match_the_header():
    compiled = _C.layout()
    assert compiled["header"] == {"version": L.SLOT_VERSION, "num_segments": L.SLOT_NUM_SEGMENTS,
                                  "scale": L.SLOT_SCALE, "floor": L.SLOT_FLOOR}
    assert compiled["segment"] == {"kind": L.SLOT_KIND, "track": L.SLOT_TRACK, "start": L.SLOT_START,
                                   "params": L.SLOT_PARAMS}
    assert twin._FLOOR == L.SLOT_FLOOR == 3


def test_numba_twin_uses_the_same_kinds_and_modes():
    for kind in L.Kind:
        assert getattr(twin, f"K_{kind.name}") == int(kind)
    for mode in L.CyclicMode:
        assert getattr(twin, f"M_{mode.name}") == int(mode)
    assert (twin._HEADER, twin._SEG, twin._P, twin._MAX_SEGMENTS, twin._VERSION) == (
        L.HEADER_SIZE, L.SEGMENT_SIZE, L.SLOT_PARAMS, L.MAX_SEGMENTS, L.LAYOUT_VERSION)


def test_packed_descriptor_follows_the_layout():
    s = S.chain(S.multistep_decay(2.0, [3, 5], 0.5), S.cosine_annealing(1.0, 10)) * 0.1
    desc = s.pack().descriptors
    assert desc.shape == (L.DESCRIPTOR_SIZE,)
    assert desc[L.SLOT_VERSION] == L.LAYOUT_VERSION
    assert desc[L.SLOT_NUM_SEGMENTS] == 2
    assert desc[L.SLOT_SCALE] == 0.1
    second = L.HEADER_SIZE + L.SEGMENT_SIZE
    assert desc[L.HEADER_SIZE + L.SLOT_KIND] == L.Kind.MULTISTEP
    assert desc[second + L.SLOT_KIND] == L.Kind.COSINE
    assert desc[second + L.SLOT_TRACK] == 1 and desc[second + L.SLOT_START] == 0
    assert not desc[L.HEADER_SIZE + 2 * L.SEGMENT_SIZE:].any()  # unused segments stay zero
    assert desc[L.SLOT_FLOOR] == 0.0  # no floor: the slot stays 0, as in every older descriptor
    floored = s.with_floor(1e-3).pack().descriptors
    assert floored[L.SLOT_FLOOR] == 1e-3
    assert (floored[L.HEADER_SIZE:] == desc[L.HEADER_SIZE:]).all()


def test_floor_and_plateau_kind_in_the_host_evaluation():
    import numpy as np

    base = S.cosine_annealing(1.0, 10)
    steps = np.arange(0, 21, dtype=np.float64)
    want = np.maximum(0.25, base.at(steps))
    np.testing.assert_array_equal(base.with_floor(0.25).at(steps), want)
    # a plateau segment reads its (live) table entry; chained, it multiplies
    seg = S.Segment(L.Kind.PLATEAU, 0, 0, (0.0,), (0.125,))
    live = S.chain(base, S.Schedule([seg], description="plateau"))
    packed = live.pack()
    assert packed.table[-1] == 0.125
    np.testing.assert_array_equal(live.at(steps), base.at(steps) * 0.125)
    table = packed.table.copy()
    table[-1] = 0.5  # what ReduceLROnPlateau's kernel does on the device
    np.testing.assert_array_equal(_C.evaluate(packed.descriptors[None, :], table, steps)[0], base.at(steps) * 0.5)


def test_validation_of_the_new_slots():
    import numpy as np
    import pytest

    packed = S.constant(1.0).with_floor(0.5).pack()
    for bad in (np.inf, np.nan):
        d = packed.descriptors.copy()
        d[L.SLOT_FLOOR] = bad
        with pytest.raises(ValueError, match="floor must be finite"):
            _C.validate(d, 0)
    seg = S.Segment(L.Kind.PLATEAU, 0, 0, (0.0,), (1.0,))
    plateau = S.Schedule([seg]).pack()
    _C.validate(plateau.descriptors, 1)
    with pytest.raises(ValueError, match="table reference out of range"):
        _C.validate(plateau.descriptors, 0)
