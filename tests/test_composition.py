"""join, chain, scaling and pack_many: composites evaluate as their parts say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrfast import _C
from lrfast import _descriptor as layout
from lrfast import schedules as S
from lrfast.schedules._core import single

BIG = 2**31 + 5


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-15, abs_tol=1e-300)


def test_join_counts_each_part_from_its_boundary():
    warm, decay = S.linear(0.0, 1.0, 10), S.cosine_decay(1.0, 100)
    s = S.join([warm, decay], [10])
    for t in [0, 5, 9]:
        assert s(t) == warm(t)
    for t in [10, 11, 60, 109, 110, 111, BIG]:
        assert s(t) == decay(t - 10)
    assert s(60) == pytest.approx(0.5, rel=1e-15)


def test_join_of_three_and_nested_joins_agree():
    a, b, c = S.constant(0.5), S.step_decay(1.0, 3, 0.5), S.linear(2.0, 0.0, 8)
    flat = S.join([a, b, c], [4, 11])
    nested_left = S.join([S.join([a, b], [4]), c], [11])
    nested_right = S.join([a, S.join([b, c], [7])], [4])
    for t in range(0, 30):
        expected = a(t) if t < 4 else (b(t - 4) if t < 11 else c(t - 11))
        assert flat(t) == nested_left(t) == nested_right(t) == expected, t
    assert flat(BIG) == nested_left(BIG) == nested_right(BIG) == 0.0


def test_join_drops_parts_of_a_schedule_cut_short():
    # the inner join's second part (from step 20) never runs: the outer boundary is 8
    inner = S.join([S.constant(3.0), S.constant(5.0)], [20])
    s = S.join([inner, S.constant(7.0)], [8])
    assert [s(t) for t in (0, 7, 8, 25)] == [3.0, 3.0, 7.0, 7.0]
    assert len(s.segments) == 2


def test_join_of_chains():
    first = S.chain(S.linear(0.1, 1.0, 5), S.step_decay(1.0, 2, 0.5))
    second = S.chain(S.cosine_annealing(1.0, 6), S.constant(0.25))
    s = S.join([first, second], [9])
    for t in list(range(0, 30)) + [BIG]:
        expected = first(t) if t < 9 else second(t - 9)
        assert _close(s(t), expected), t
    assert first.num_tracks == 2
    assert second.num_tracks == 2  # constant(0.25) is not a unit track


def test_chain_of_joins_multiplies_pointwise():
    a = S.join([S.linear(0.0, 1.0, 4), S.constant(1.0)], [4])
    b = S.join([S.constant(1.0), S.exponential_decay(1.0, 3, 0.5)], [6])
    s = S.chain(a, b)
    for t in list(range(0, 20)) + [BIG]:
        assert _close(s(t), a(t) * b(t)), t


def test_join_with_different_scales_per_part():
    a, b = S.linear(0.0, 1.0, 10) * 2.0, S.cosine_decay(1.0, 20) * 0.5
    s = S.join([a, b], [10])
    assert s.scale == 1.0
    for t in [0, 3, 9, 10, 15, 30, 31, BIG]:
        expected = a(t) if t < 10 else b(t - 10)
        assert _close(s(t), expected), t
    assert s(9) == pytest.approx(1.8, rel=1e-15) and s(10) == 0.5


def test_join_with_a_common_scale_keeps_it_in_the_header():
    s = S.join([S.constant(1.0) * 3.0, S.linear(1.0, 0.0, 4) * 3.0], [2])
    assert s.scale == 3.0
    assert s.num_tracks == 1
    assert [s(t) for t in (0, 1, 2, 4, 6, 9)] == [3.0, 3.0, 3.0, 1.5, 0.0, 0.0]


def test_chain_multiplies_values_and_scales():
    a, b, c = S.cosine_annealing(1.0, 17), S.step_decay(2.0, 5, 0.3), S.cyclic(0.5, 1.5, 3)
    s = S.chain(a * 2.0, b, c * 0.1)
    assert s.scale == pytest.approx(0.2)
    assert s.num_tracks == 3
    for t in list(range(0, 40)) + [BIG]:
        assert math.isclose(s(t), 0.2 * a(t) * b(t) * c(t), rel_tol=1e-14, abs_tol=1e-300), t
    assert S.chain([a, b])(7) == S.chain(a, b)(7)  # a list works too


def test_unit_tracks_are_dropped():
    a = S.exponential_decay(1.0, 10, 0.5)
    s = S.chain(a, S.constant(1.0), S.join([S.constant(1.0), S.constant(1.0)], [5]))
    assert s.num_tracks == 1 and len(s.segments) == 1
    assert all(s(t) == a(t) for t in (0, 5, 13, BIG))
    ones = S.chain(S.constant(1.0), S.constant(1.0))
    assert len(ones.segments) == 1 and ones(3) == 1.0


def test_repeated_constants_are_merged():
    s = S.join([S.constant(2.0), S.constant(2.0), S.linear(2.0, 0.0, 4), S.constant(0.0)], [3, 6, 10])
    assert len(s.segments) == 3
    assert [s(t) for t in (0, 2, 3, 5, 6, 8, 10, 12)] == [2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0, 0.0]


def test_too_many_segments_is_refused():
    parts = [S.constant(float(i + 1)) for i in range(layout.MAX_SEGMENTS + 1)]
    with pytest.raises(ValueError, match=r"join: this schedule needs 9 segments, more than the 8"):
        S.join(parts, list(range(1, layout.MAX_SEGMENTS + 1)))
    with pytest.raises(ValueError, match=r"chain: this schedule needs 9 segments"):
        S.chain(*[p * 1.0 for p in parts[1:]], S.linear(1.0, 0.5, 3))  # constant(1.0) would be dropped
    # eight fit exactly
    s = S.join(parts[:8], list(range(1, 8)))
    assert [s(t) for t in range(9)] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 8.0]


def _table_schedules():
    return [
        S.multistep_decay(1.0, [3, 7, 7], 0.5),
        S.cosine_annealing(1.0, 10),
        S.piecewise_constant(2.0, {4: 0.5, 9: 0.1}),
        S.from_values([5.0, 4.0, 3.0]),
        S.cyclic(0.1, 1.0, 2, scale_fn=lambda x: 1.0 / x, horizon=5),
        S.join([S.multistep_decay(1.0, [2], 0.1), S.from_values([9.0, 8.0]), S.multistep_decay(3.0, [1, 2])],
               [5, 7]),
        S.chain(S.from_values([1.0, 0.5]), S.piecewise_constant(1.0, {3: 3.0})),
    ]


def test_pack_many_rebases_table_offsets():
    schedules = _table_schedules()
    packed = S.pack_many(schedules)
    assert packed.descriptors.shape == (len(schedules), layout.DESCRIPTOR_SIZE)
    assert packed.table.tolist() == [v for s in schedules for v in s.pack().table.tolist()]
    base = 0
    for g, s in enumerate(schedules):
        own = s.pack()
        row = packed.descriptors[g]
        for i, seg in enumerate(s.segments):
            o = layout.HEADER_SIZE + i * layout.SEGMENT_SIZE + layout.SLOT_PARAMS
            if seg.table:
                slot = layout.TABLE_OFFSET_PARAM[seg.kind]
                assert row[o + slot] == own.descriptors[o + slot] + base
        mask = np.ones(layout.DESCRIPTOR_SIZE, bool)  # everything but the table offsets is unchanged
        for i, seg in enumerate(s.segments):
            if seg.table:
                o = layout.HEADER_SIZE + i * layout.SEGMENT_SIZE + layout.SLOT_PARAMS
                mask[o + layout.TABLE_OFFSET_PARAM[seg.kind]] = False
        assert np.array_equal(row[mask], own.descriptors[mask])
        base += own.table.size


def test_pack_many_groups_evaluate_as_alone():
    schedules = _table_schedules()
    packed = S.pack_many(schedules)
    steps = np.concatenate([np.arange(0.0, 25.0), [0.5, 6.75, BIG]])
    together = _C.evaluate(packed.descriptors, packed.table, steps)
    for g, s in enumerate(schedules):
        assert np.array_equal(together[g], s.at(steps)), g


def test_pack_many_stores_equal_tables_once():
    # MultiStepLR's milestones in every group: one copy, so the groups' descriptors are equal
    # (the scheduler's step evaluates each distinct row once)
    schedules = [S.multistep_decay(lr, [100, 200, 300], 0.5) for lr in (0.1, 0.2, 0.1, 0.2)]
    packed = S.pack_many(schedules)
    assert packed.table.size == schedules[0].pack().table.size
    assert np.array_equal(packed.descriptors[0], packed.descriptors[2])
    assert np.array_equal(packed.descriptors[1], packed.descriptors[3])
    steps = np.array([0.0, 99.0, 100.0, 101.0, 299.0, 300.0, 301.0, BIG])
    together = _C.evaluate(packed.descriptors, packed.table, steps)
    for g, s in enumerate(schedules):
        assert np.array_equal(together[g], s.at(steps)), g


def test_pack_many_shares_tables_only_when_bit_equal():
    # 0.0 == -0.0, but their tables are not the same table: each keeps its own copy
    plus = S.from_values([1.0, 0.0, 2.0])
    minus = S.from_values([1.0, -0.0, 2.0])
    packed = S.pack_many([plus, minus])
    assert packed.table.size == 2 * plus.pack().table.size
    values = _C.evaluate(packed.descriptors, packed.table, np.array([1.0]))
    assert not math.copysign(1.0, values[0][0]) == math.copysign(1.0, values[1][0])


def test_pack_many_never_shares_a_plateau_slot():
    # ReduceLROnPlateau rewrites each group's slot as it decides: equal start values, own slots
    live = [single(layout.plateau_segment(0.1), "plateau") for _ in range(3)]
    packed = S.pack_many(live)
    assert packed.table.size == 3
    offsets = {row[layout.HEADER_SIZE + layout.SLOT_PARAMS + layout.PLATEAU_TABLE_OFFSET] for row in packed.descriptors}
    assert offsets == {0.0, 1.0, 2.0}


def test_pack_many_of_nothing():
    packed = S.pack_many([])
    assert packed.descriptors.shape == (0, layout.DESCRIPTOR_SIZE) and packed.table.shape == (0,)


def test_pack_is_read_only_and_cached():
    s = S.from_values([1.0, 2.0])
    packed = s.pack()
    assert s.pack() is packed
    with pytest.raises(ValueError):
        packed.descriptors[0] = 2.0
    with pytest.raises(ValueError):
        packed.table[0] = 2.0
