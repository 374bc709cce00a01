"""The descriptor layout reaches Python one way, lrfast._C.layout() read by lrfast/_descriptor.py;
each kind's builder places its parameters where schedule.h reads them (NOTE [segment parameters])."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import lrfast
from lrfast import _C
from lrfast import _descriptor as layout
from lrfast import _numba_cache as cache
from lrfast import schedules as S

PACKAGE = Path(lrfast.__file__).resolve().parent


def test_sizes_and_version():
    assert layout.LAYOUT_VERSION == lrfast.LAYOUT_VERSION == 1
    assert layout.SEGMENT_SIZE == 3 + layout.SEGMENT_PARAMS == 16
    assert layout.DESCRIPTOR_SIZE == layout.HEADER_SIZE + layout.MAX_SEGMENTS * layout.SEGMENT_SIZE == 132
    assert "LAYOUT_VERSION" in dir(lrfast)


def test_every_kind_and_cyclic_mode_of_the_header_has_a_member():
    compiled = _C.layout()
    assert {name.upper(): value for name, value in compiled["kinds"].items()} == {k.name: int(k) for k in layout.Kind}
    assert ({name.upper(): value for name, value in compiled["cyclic_modes"].items()}
            == {m.name: int(m) for m in layout.CyclicMode})


def test_every_parameter_of_the_header_has_a_named_index():
    compiled = _C.layout()["params"]
    assert set(compiled) == {k.name.lower() for k in layout.Kind}
    for kind in layout.Kind:
        names = compiled[kind.name.lower()]
        assert dict(layout.PARAMS[kind]) == names
        for name, index in names.items():
            assert getattr(layout, f"{kind.name}_{name.upper()}") == index  # the Numba twin's constants
        assert sorted(names.values())[0] == 0 and len(set(names.values())) == len(names)
        assert _C.layout()["param_counts"][kind.name.lower()] <= layout.SEGMENT_PARAMS
    named = {n for n in dir(layout) if re.fullmatch(r"[A-Z0-9_]+", n) and any(
        n.startswith(k.name + "_") for k in layout.Kind)}
    want = {f"{k.name}_{p.upper()}" for k in layout.Kind for p in compiled[k.name.lower()]}
    assert named - {"ONE_CYCLE_MAX_PHASES", "TABLE_OFFSET_PARAM", "PLATEAU_LAYOUT"} == want


def test_only_the_descriptor_module_reads_the_compiled_layout():
    readers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if re.search(r"\b_C\.layout\(\)", re.sub(r'"""[\s\S]*?"""', "", path.read_text())))
    assert readers == ["_descriptor.py"]
    assert not (PACKAGE / "_layout.py").exists() and not (PACKAGE / "optim" / "_layout.py").exists()


def test_version_1_descriptor_is_unchanged():
    # The packed form is an interface (out-of-tree kernels read it, docs/extending.md): within
    # layout version 1 a segment's parameters keep their places.
    d = S.cosine_decay(2.0, 100, alpha=0.25, exponent=1.5).pack().descriptors
    np.testing.assert_array_equal(d[:4], [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(d[4:12], [6.0, 0.0, 0.0, 2.0, 0.5, 100.0, 0.0, 1.5])
    packed = S.cyclic(0.1, 1.0, 3, step_size_down=5, mode="exp_range", gamma=0.5).pack()
    np.testing.assert_array_equal(packed.descriptors[4:16],
                                  [8.0, 0.0, 0.0, 0.1, 1.0, 8.0, 3 / 8, 2.0, 0.5, 1.0, 0.0, 0.0])
    packed = S.multistep_decay(1.0, [3, 7], 0.5).pack()
    np.testing.assert_array_equal(packed.descriptors[4:11], [2.0, 0.0, 0.0, 1.0, 0.5, 0.0, 2.0])
    packed = S.one_cycle_phases([4.0, 9.0], [0.1, 1.0, 0.01], linear=True).pack()
    np.testing.assert_array_equal(packed.descriptors[7:16], [2.0, 1.0, 4.0, 9.0, 0.0, 0.1, 1.0, 0.01, 0.0])


# Each builder at a few steps, against the closed form written out by hand: a parameter in the
# wrong place changes these values.
BUILDERS = {
    "constant": (layout.constant_segment(0.5), [0, 9], [0.5, 0.5]),
    "step": (layout.step_segment(init=1.0, gamma=0.5, step_size=2), [0, 1, 2, 5], [1.0, 1.0, 0.5, 0.25]),
    "multistep": (layout.multistep_segment(init=1.0, gamma=0.1, milestones=[2, 5]), [1, 2, 5],
                  [1.0, 0.1, 0.1 ** 2]),
    "exponential": (layout.exponential_segment(init=2.0, rate=0.25, steps=2), [0, 1, 4], [2.0, 1.0, 0.125]),
    "linear": (layout.linear_segment(start=1.0, end=3.0, steps=4), [0, 1, 4, 9], [1.0, 1.5, 3.0, 3.0]),
    "polynomial": (layout.polynomial_segment(init=1.0, end=0.0, steps=4, power=2.0), [1, 2, 8], [0.5625, 0.25, 0.0]),
    "cosine": (layout.cosine_segment(init=1.0, end=0.0, steps=2, periodic=False, exponent=1.0), [1, 2, 3],
               [0.5, 0.0, 0.0]),
    "cosine_periodic": (layout.cosine_segment(init=1.0, end=0.0, steps=2, periodic=True, exponent=2.0), [1, 3, 4],
                        [0.25, 0.25, 1.0]),
    "warm_restarts": (layout.warm_restarts_segment(init=1.0, end=0.0, t0=2, t_mult=2), [1, 2, 4, 6],
                      [0.5, 1.0, 0.5, 1.0]),
    "cyclic": (layout.cyclic_segment(base=0.0, peak=1.0, total_size=4, step_ratio=0.5,
                                     mode=layout.CyclicMode.TRIANGULAR2, gamma=1.0, per_iteration=False),
               [1, 2, 4, 6], [0.5, 1.0, 0.0, 0.5]),
    "cyclic_table": (layout.cyclic_segment(base=0.0, peak=1.0, total_size=2, step_ratio=0.5,
                                           mode=layout.CyclicMode.TABLE, gamma=1.0, per_iteration=False,
                                           scale_table=[1.0, 0.25]), [1, 3, 9], [1.0, 0.25, 0.25]),
    "one_cycle": (layout.one_cycle_segment(phase_ends=[2.0, 6.0], phase_values=[0.0, 1.0, 0.5], linear=True),
                  [1, 2, 4, 6, 9], [0.5, 1.0, 0.75, 0.5, 0.375]),  # one step past the end, then held
    "inverse_sqrt": (layout.inverse_sqrt_segment(init=1.0, timescale=1), [0, 3, 8], [1.0, 0.5, 1 / 3]),
    "sqrt_decay": (layout.sqrt_decay_segment(init=1.0, end=0.0, steps=4), [0, 1, 9], [1.0, 0.5, 0.0]),
    "table": (layout.table_segment([3.0, 2.0]), [0, 1, 5], [3.0, 2.0, 2.0]),
    "piecewise": (layout.piecewise_segment(boundaries=[2, 4], values=[1.0, 0.5, 0.25]), [1, 2, 4],
                  [1.0, 0.5, 0.25]),
    "plateau": (layout.plateau_segment(0.125), [0, 99], [0.125, 0.125]),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builder_places_each_parameter_where_the_header_reads_it(name):
    segment, steps, want = BUILDERS[name]
    assert len(segment.params) <= layout.SEGMENT_PARAMS
    got = S.Schedule([segment]).at(steps)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-16)
    # shifted by a preceding segment's table, the table offsets are rebased
    chained = S.chain(S.multistep_decay(1.0, [1000, 2000], 1.0), S.Schedule([segment]))
    np.testing.assert_allclose(chained.at(steps), want, rtol=1e-15, atol=1e-16)


def test_builders_refuse_what_does_not_fit():
    with pytest.raises(ValueError, match=r"phase_ends holds at most 3 value\(s\)"):
        layout.one_cycle_segment(phase_ends=[1.0, 2.0, 3.0, 4.0], phase_values=[0.0] * 5, linear=False)
    with pytest.raises(ValueError, match="one value more than boundaries"):
        layout.piecewise_segment(boundaries=[1, 2], values=[1.0, 2.0])
    with pytest.raises(TypeError, match=r"cosine segment: parameters .* expected"):
        layout._segment(layout.Kind.COSINE, 0, 0, init=1.0)
    with pytest.raises(ValueError, match=r"init holds at most 1 value\(s\), got \(1.0,\)"):
        layout.cosine_segment(init=(1.0,), end=0.0, steps=10, periodic=True, exponent=1.0)


def test_runs_take_any_sequence_numpy_arrays_included():
    # one_cycle_phases took NumPy arrays before the builders existed; it still does
    from_lists = S.one_cycle_phases([10.0, 20.0], [0.1, 1.0, 0.01], True)
    from_arrays = S.one_cycle_phases(np.array([10.0, 20.0]), np.array([0.1, 1.0, 0.01]), True)
    assert from_arrays.segments == from_lists.segments
    assert [from_arrays(t) for t in (0, 10, 15, 20, 25)] == [from_lists(t) for t in (0, 10, 15, 20, 25)]


def test_packed_descriptor_follows_the_layout():
    s = S.chain(S.multistep_decay(2.0, [3, 5], 0.5), S.cosine_annealing(1.0, 10)) * 0.1
    desc = s.pack().descriptors
    assert desc.shape == (layout.DESCRIPTOR_SIZE,)
    assert desc[layout.SLOT_VERSION] == layout.LAYOUT_VERSION
    assert desc[layout.SLOT_NUM_SEGMENTS] == 2
    assert desc[layout.SLOT_SCALE] == 0.1
    second = layout.HEADER_SIZE + layout.SEGMENT_SIZE
    assert desc[layout.HEADER_SIZE + layout.SLOT_KIND] == layout.Kind.MULTISTEP
    assert desc[second + layout.SLOT_KIND] == layout.Kind.COSINE
    assert desc[second + layout.SLOT_PARAMS + layout.COSINE_STEPS] == 10
    assert desc[second + layout.SLOT_TRACK] == 1 and desc[second + layout.SLOT_START] == 0
    assert not desc[layout.HEADER_SIZE + 2 * layout.SEGMENT_SIZE:].any()  # unused segments stay zero
    assert desc[layout.SLOT_FLOOR] == 0.0  # no floor: the slot stays 0, as in every older descriptor
    floored = s.with_floor(1e-3).pack().descriptors
    assert floored[layout.SLOT_FLOOR] == 1e-3
    assert (floored[layout.HEADER_SIZE:] == desc[layout.HEADER_SIZE:]).all()


def test_floor_and_plateau_kind_in_the_host_evaluation():
    base = S.cosine_annealing(1.0, 10)
    steps = np.arange(0, 21, dtype=np.float64)
    want = np.maximum(0.25, base.at(steps))
    np.testing.assert_array_equal(base.with_floor(0.25).at(steps), want)
    # a plateau segment reads its (live) table entry; chained, it multiplies
    live = S.chain(base, S.Schedule([layout.plateau_segment(0.125)], description="plateau"))
    packed = live.pack()
    assert packed.table[-1] == 0.125
    np.testing.assert_array_equal(live.at(steps), base.at(steps) * 0.125)
    table = packed.table.copy()
    table[-1] = 0.5  # what ReduceLROnPlateau's kernel does on the device
    np.testing.assert_array_equal(_C.evaluate(packed.descriptors[None, :], table, steps)[0], base.at(steps) * 0.5)


def test_plateau_slots_finds_each_descriptors_plateau_segment():
    plateau = S.Schedule([layout.plateau_segment(1.0)])
    packed = S.pack_many([S.chain(S.multistep_decay(1.0, [3, 5]), plateau), S.constant(2.0), plateau])
    slots = _C.plateau_slots(packed.descriptors, packed.table.shape[0])
    assert slots.dtype == np.int64
    assert slots.tolist() == [2, -1, 3]  # after the two milestones; none; after the first slot
    assert packed.table[slots[0]] == packed.table[slots[2]] == 1.0
    with pytest.raises(ValueError, match="table reference out of range"):
        _C.plateau_slots(packed.descriptors, 3)


def test_validation_of_the_new_slots():
    packed = S.constant(1.0).with_floor(0.5).pack()
    for bad in (np.inf, np.nan):
        d = packed.descriptors.copy()
        d[layout.SLOT_FLOOR] = bad
        with pytest.raises(ValueError, match="floor must be finite"):
            _C.validate(d, 0)
    plateau = S.Schedule([layout.plateau_segment(1.0)]).pack()
    _C.validate(plateau.descriptors, 1)
    with pytest.raises(ValueError, match="table reference out of range"):
        _C.validate(plateau.descriptors, 0)


class _FakeCache:
    def __init__(self, path: Path) -> None:
        self._cache_path = str(path)
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


class _FakeDispatcher:
    def __init__(self, path: Path) -> None:
        self._cache = _FakeCache(path)


def test_numba_cache_is_flushed_when_the_compiled_in_constants_change(tmp_path):
    dispatchers = [_FakeDispatcher(tmp_path), _FakeDispatcher(tmp_path)]
    cache.drop_stale_cache(dispatchers, "twin", "digest-a")  # no stamp yet: flush, then stamp
    assert [d._cache.flushes for d in dispatchers] == [1, 1]
    assert (tmp_path / "twin.dependencies").read_text() == "digest-a"
    cache.drop_stale_cache(dispatchers, "twin", "digest-a")
    assert [d._cache.flushes for d in dispatchers] == [1, 1]
    cache.drop_stale_cache(dispatchers, "twin", "digest-b")  # a rebuilt core with other constants
    assert [d._cache.flushes for d in dispatchers] == [2, 2]
    assert (tmp_path / "twin.dependencies").read_text() == "digest-b"


def test_layout_fingerprint_changes_with_any_exported_constant(monkeypatch):
    before = layout.fingerprint()
    edited = _C.layout()
    edited["params"]["cosine"]["steps"], edited["params"]["cosine"]["end"] = 1, 2
    monkeypatch.setattr(layout, "_LAYOUT", edited)
    assert layout.fingerprint() != before
    monkeypatch.setattr(layout, "_LAYOUT", _C.layout())
    assert layout.fingerprint() == before
