"""The C++ decision code of ReduceLROnPlateau (csrc/include/lrfast/plateau.h), run on the host
through lrfast._C.plateau_step_host -- the very functions the CUDA kernel runs -- against
torch's ReduceLROnPlateau on the same metric sequences: improving, flat, creeping under the
threshold, noisy, NaN and inf laden, for every mode x threshold_mode x cooldown, several
groups with per-group min_lr, and eps edge cases. Decisions, best / num_bad_epochs /
cooldown_counter and the LRs must be identical, bit for bit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lrfast import _C
from lrfast import schedules as S
from lrfast._descriptor import Kind

N = 160
PLATEAU = _C.layout()["plateau"]


def _sequences() -> dict[str, list[float]]:
    rng = np.random.default_rng(20240611)
    k = np.arange(N)
    noisy = (1.0 / (1 + 0.05 * k) + rng.normal(0, 0.02, N)).tolist()
    with_nan = list(noisy)
    for i in (0, 3, 4, 40, 41, 42, 43, 44, 90, 91):
        with_nan[i] = math.nan
    with_inf = list(noisy)
    for i, v in ((5, math.inf), (6, -math.inf), (30, math.inf), (70, -math.inf)):
        with_inf[i] = v
    return {
        "improving": (1.0 / (1 + k)).tolist(),
        "flat": [1.0] * N,
        "creeping": (1.0 * (1 - 5e-5) ** k).tolist(),
        "noisy": noisy,
        "nan": with_nan,
        "inf": with_inf,
        "plateaus": [round(1.0 - 0.1 * (i // 25), 6) for i in range(N)],
        "worsening": (1.0 + 0.01 * k).tolist(),
        "negative": (-1.0 - 0.5 * np.sin(k / 7.0)).tolist(),  # a negative best reads rel thresholds the other way
    }


SEQUENCES = _sequences()


class Twin:
    """The plain rule through _C.plateau_step_host: each group's slot holds its LR."""

    def __init__(self, lrs, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
                 min_lr=0.0, eps=1e-8):
        slot = [S.Schedule([S.Segment(Kind.PLATEAU, 0, 0, (0.0,), (float(lr),))]) for lr in lrs]
        packed = S.pack_many(slot)
        self.descriptors = packed.descriptors
        self.table = packed.table.copy()
        self.min_lrs = np.array(min_lr if isinstance(min_lr, list) else [min_lr] * len(lrs), dtype=np.float64)
        self.state = np.array([math.inf if mode == "min" else -math.inf, 0.0, 0.0])
        self.lrs = np.empty(len(lrs))
        self.rule = dict(factor=factor, threshold=threshold, eps=eps, patience=patience, cooldown=cooldown,
                         mode=PLATEAU[mode], threshold_mode=PLATEAU[threshold_mode], composed=False)
        self.t = 0

    def step(self, metric) -> bool:
        self.t += 1
        return _C.plateau_step_host(self.state, self.table, self.descriptors, self.min_lrs, metric, self.t,
                                    lrs=self.lrs, **self.rule)


def _opt(lrs):
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs])


def _run(metrics, lrs, **kwargs) -> int:
    opt = _opt(lrs)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    twin = Twin(lrs, **kwargs)
    reductions = 0
    for k, m in enumerate(metrics):
        before = [g["lr"] for g in opt.param_groups]
        counted = ref.num_bad_epochs
        ref.step(m)
        reduced = twin.step(m)
        lrs_t = [g["lr"] for g in opt.param_groups]
        assert twin.lrs.tolist() == lrs_t, f"step {k}: {twin.lrs.tolist()} vs torch {lrs_t}"
        assert twin.table.tolist() == lrs_t, f"step {k}: slots"
        best = twin.state[PLATEAU["best"]]
        assert best == ref.best or (math.isnan(best) and math.isnan(ref.best)), f"step {k}: best"
        assert twin.state[PLATEAU["num_bad_epochs"]] == ref.num_bad_epochs, f"step {k}: num_bad_epochs"
        assert twin.state[PLATEAU["cooldown_counter"]] == ref.cooldown_counter, f"step {k}: cooldown_counter"
        # torch reduces exactly when its bad-epoch count overflows patience outside cooldown
        reductions += reduced
        if lrs_t != before:
            assert reduced, f"step {k}: the LRs moved without a decision (num_bad was {counted})"
    return reductions


@pytest.mark.parametrize("mode, threshold_mode, cooldown",
                         list(itertools.product(["min", "max"], ["rel", "abs"], [0, 3])))
@pytest.mark.parametrize("sequence", list(SEQUENCES))
def test_plain_rule_matches_torch(mode, threshold_mode, cooldown, sequence):
    metrics = SEQUENCES[sequence] if mode == "min" else [3.0 - v for v in SEQUENCES[sequence]]
    reductions = _run(metrics, [0.1, 0.05, 0.3, 3e-8], mode=mode, factor=0.5, patience=3, threshold=1e-3,
                      threshold_mode=threshold_mode, cooldown=cooldown, min_lr=[1e-3, 0.0, 0.05, 0.0])
    if sequence in ("flat", "worsening") or (sequence == "creeping" and threshold_mode == "rel"):
        assert reductions > 3
    if sequence == "improving" and mode == "min" and threshold_mode == "rel":
        assert reductions == 0


def test_eps_edge_cases():
    # 1.5e-8 - 3e-9: a reduction by eps exactly is not taken (strictly greater than eps needed)
    lrs = [1e-8, 3e-8, 2e-8, 0.1, 1e-300]
    _run([1.0] * 40, lrs, patience=0, factor=0.5, eps=1e-8)
    _run([1.0] * 40, lrs, patience=0, factor=0.5, eps=0.0)
    _run([1.0] * 40, lrs, patience=0, factor=0.5, eps=-1.0)  # negative eps: every decision reduces
    _run([1.0] * 40, [0.1, 0.2], patience=0, factor=0.5, eps=1e-8, min_lr=[0.2, 0.0])  # lr below min_lr: kept


def test_degenerate_thresholds_and_counts():
    noisy = SEQUENCES["noisy"]
    for threshold in (0.0, 1.0, 2.0, -0.5):  # 1.0: best * 0 -> inf * 0 = nan at first, as in torch
        for mode in ("min", "max"):
            _run(noisy, [0.1, 0.3], mode=mode, threshold=threshold, patience=2, cooldown=1)
    _run(noisy, [0.1], patience=2.5, cooldown=1.5)  # torch compares them as numbers
    _run(noisy, [0.1], patience=0, cooldown=0, factor=0.0)


def test_random_configurations():
    rng = np.random.default_rng(7)
    names = list(SEQUENCES)
    for _ in range(150):
        kwargs = dict(mode=str(rng.choice(["min", "max"])), factor=float(rng.choice([0.1, 0.5, 0.9, 0.3333])),
                      patience=int(rng.integers(0, 6)), threshold=float(rng.choice([0.0, 1e-4, 1e-2, 0.2])),
                      threshold_mode=str(rng.choice(["rel", "abs"])), cooldown=int(rng.integers(0, 4)),
                      eps=float(rng.choice([1e-8, 0.0, 1e-3])))
        lrs = rng.choice([1e-1, 1e-3, 1e-7, 5e-9, 2.0], size=3).tolist()
        kwargs["min_lr"] = rng.choice([0.0, 1e-4, 1e-2], size=3).tolist()
        metrics = SEQUENCES[names[int(rng.integers(len(names)))]]
        _run(metrics, lrs, **kwargs)


def test_host_entry_checks_its_arguments():
    twin = Twin([0.1, 0.2])
    with pytest.raises(ValueError, match="bad mode"):
        _C.plateau_step_host(twin.state, twin.table, twin.descriptors, twin.min_lrs, 1.0, 1.0,
                             lrs=twin.lrs, **{**twin.rule, "mode": 5})
    with pytest.raises(ValueError, match="no plateau slot"):
        plain = S.pack_many([S.constant(1.0), S.constant(2.0)])
        _C.plateau_step_host(twin.state, twin.table, plain.descriptors, twin.min_lrs, 1.0, 1.0, lrs=twin.lrs,
                             **twin.rule)
    shared = twin.descriptors.copy()
    shared[1] = shared[0]
    with pytest.raises(ValueError, match="share a plateau slot"):
        _C.plateau_step_host(twin.state, twin.table, shared, twin.min_lrs, 1.0, 1.0, lrs=twin.lrs, **twin.rule)
    with pytest.raises(ValueError, match="one min_lr per descriptor"):
        _C.plateau_step_host(twin.state, twin.table, twin.descriptors, twin.min_lrs[:1], 1.0, 1.0, lrs=twin.lrs,
                             **twin.rule)
    frozen = twin.state.copy()
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        _C.plateau_step_host(frozen, twin.table, twin.descriptors, twin.min_lrs, 1.0, 1.0, lrs=twin.lrs, **twin.rule)


def test_no_metric_changes_nothing_but_evaluates():
    twin = Twin([0.1, 0.2], patience=0)
    before = twin.state.copy()
    assert not _C.plateau_step_host(twin.state, twin.table, twin.descriptors, twin.min_lrs, None, 5.0,
                                    lrs=twin.lrs, **twin.rule)
    assert twin.state.tolist() == before.tolist() and twin.lrs.tolist() == [0.1, 0.2]
