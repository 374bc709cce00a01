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
