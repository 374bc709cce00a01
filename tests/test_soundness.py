"""The soundness invariant: an optimizer applies exactly the LR its group shows.

SGD without momentum, grad 1 and a parameter zeroed before each ``optimizer.step()``: the
parameter's decrease is the LR applied, exact in float64. Every test plays its pattern on
torch (torch.optim.SGD with torch's schedulers) and on lrfast (lrfast.optim.SGD, or the
stock torch.optim.SGD, with lrfast's schedulers) and asserts at every step, on both sides,
that the LR applied is the group's LR as shown just before the step, and that lrfast shows
torch's LRs (1e-9 relative; 2e-6 for float32 tensor LRs). The torch side checks the
measurement itself. Patterns: every class alone, two stacked in both orders, composites
and a nested composite, hand edits (scale in place, fill, replace), groups added, resumes
with ``last_epoch=k``, state-dict round trips, deepcopies and attribute edits mid-run;
float, float64-tensor and float32-tensor LRs. The property test at the end draws random
mixes; ``scripts/fuzz_lr_schedulers.py --property soundness`` runs it longer.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from fuzz_lr_schedulers import RESUMABLE, SOUND_EVENTS, SOUND_KINDS, check_sound_run, sound_run_strategy
from lr_scheduler_harness import FAST, TORCH

import lrfast.optim

LR_KINDS = pytest.mark.parametrize("lr_kind", [None, torch.float64, torch.float32], ids=["float", "f64", "f32"])
ARGS = {"size": 3, "gamma": 0.9, "milestones": [2, 5], "factor": 0.5, "end": 1.0, "power": 2.0, "eta_min": 1e-4,
        "mult": 2, "mode": "triangular", "pct": 0.3, "anneal": "cos", "three": False}
SIMPLE = ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
          "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR", "CyclicLR", "OneCycleLR", "SWALR"]


def _run(kinds, events, lr_kind, optimizer="lrfast", resume_at=None, lrs=(0.1, 0.05), reverse_steps=False) -> dict:
    return {"lrs": list(lrs), "lr_kind": lr_kind, "optimizer": optimizer, "kinds": list(kinds),
            "args": [ARGS, dict(ARGS, size=4, gamma=0.5)], "resume_at": resume_at, "events": list(events),
            "metric": [1.0, 0.9, 1.2], "reverse_steps": reverse_steps}


# -- the three examples of the issue ----------------------------------------------------------------

def _decrease(opt, p) -> tuple[float, float]:
    """(shown, applied) of one optimizer.step(): p zeroed, grad 1."""
    shown = float(opt.param_groups[0]["lr"])
    with torch.no_grad():
        p.zero_()
    p.grad = torch.ones_like(p)
    opt.step()
    return shown, -float(p.detach()[0])


def _assert_pairs(got, want, rel):
    for k, ((s, a), (ts, ta)) in enumerate(zip(got, want)):
        assert ts == pytest.approx(ta, rel=rel)  # torch applies what it shows
        assert s == pytest.approx(ts, rel=rel), f"optimizer step {k}: lrfast shows {s}, torch {ts}"
        assert a == pytest.approx(s, rel=rel), f"optimizer step {k}: shows {s}, applies {a} (torch {ts}, {ta})"


def test_issue_example_fill_of_a_tensor_lr_under_exponential_lr():
    out = {}
    for ns, optim in ((TORCH, torch.optim.SGD), (FAST, lrfast.optim.SGD)):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = optim([p], lr=torch.tensor(0.01))
        s = ns.ExponentialLR(opt, 0.9)
        pairs = [_decrease(opt, p)]
        s.step()
        pairs.append(_decrease(opt, p))
        s.step()
        opt.param_groups[0]["lr"].fill_(0.3)
        pairs.append(_decrease(opt, p))
        s.step()
        pairs.append(_decrease(opt, p))
        out[ns.name] = pairs
    assert [s for s, _ in out["torch"]] == pytest.approx([0.01, 0.009, 0.3, 0.27], rel=1e-6)
    _assert_pairs(out["lrfast"], out["torch"], rel=1e-6)  # float32 parameter and LR


def _shown_and_applied(lr, build, steps: int) -> dict:
    """(shown, applied) at each optimizer step on torch and on lrfast SGD (float64 parameter):
    ``build(ns, opt)`` makes the schedulers and returns what the loop steps after each
    optimizer step."""
    out = {}
    for ns, optim in ((TORCH, torch.optim.SGD), (FAST, lrfast.optim.SGD)):
        p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = optim([p], lr=lr())
        step = build(ns, opt)
        pairs = []
        for _ in range(steps):
            pairs.append(_decrease(opt, p))
            step()
        out[ns.name] = pairs
    return out


def test_issue_example_second_lambda_lr_stepped_after_the_bound_one():
    def build(ns, opt):
        a = ns.LambdaLR(opt, lambda t: 1 + t)
        b = ns.LambdaLR(opt, lambda t: 0.5)
        return lambda: (b.step(), a.step())

    out = _shown_and_applied(lambda: torch.tensor(0.01, dtype=torch.float64), build, 4)
    assert [s for s, _ in out["torch"]][1:] == pytest.approx([0.02, 0.03, 0.04], rel=1e-12)
    _assert_pairs(out["lrfast"], out["torch"], rel=1e-15)


def test_issue_example_cyclic_lr_built_after_another_scheduler():
    def build(ns, opt):
        first = ns.StepLR(opt, 3, 0.5)
        cyclic = ns.CyclicLR(opt, 0.01, 0.2, step_size_up=4, cycle_momentum=False)
        return lambda: (first.step(), cyclic.step())

    out = _shown_and_applied(lambda: 0.1, build, 6)
    assert out["torch"][0] == (0.1, 0.1)
    _assert_pairs(out["lrfast"], out["torch"], rel=1e-15)


# -- every class alone, each event, float / float64 / float32 LRs -----------------------------------

@LR_KINDS
@pytest.mark.parametrize("optimizer", ["lrfast", "torch"])
@pytest.mark.parametrize("event", SOUND_EVENTS)
@pytest.mark.parametrize("kind", SOUND_KINDS)
def test_every_class_alone(kind, event, optimizer, lr_kind):
    check_sound_run(_run([kind], ["none", "none", event, "none", "none", "none", "none"], lr_kind, optimizer))


@LR_KINDS
@pytest.mark.parametrize("optimizer", ["lrfast", "torch"])
@pytest.mark.parametrize("pattern", [("ExponentialLR",), ("StepLR",), ("CosineAnnealingLR",), ("CyclicLR",),
                                     ("ExponentialLR", "MultiStepLR")], ids="+".join)
def test_the_list_get_last_lr_returns_is_the_users(pattern, optimizer, lr_kind):
    # the list is edited after a hand edit (some groups then follow torch's recursion from what
    # they hold), and again after each group's LR was set and logged there: what lrfast proves
    # or remembers about the groups is its own, never that list
    events = ["none", "scale", "none", "last_lr_edited", "none", "none", "last_lr_synced", "none", "none",
              "last_lr_edited", "none", "none"]
    check_sound_run(_run(pattern, events, lr_kind, optimizer))
    # the lists of the Python step (torch's first-step check, an attribute edit's rebuild)
    events = ["last_lr_synced", "none", "attribute", "last_lr_synced", "none", "last_lr_edited", "none", "none"]
    check_sound_run(_run(pattern, events, lr_kind, optimizer))


# -- two stacked, built in both orders and stepped in both orders ------------------------------------

@LR_KINDS
@pytest.mark.parametrize("pair", list(itertools.combinations(SIMPLE, 2)), ids="-".join)
def test_two_stacked_in_both_orders(pair, lr_kind):
    """Built A then B, and B then A; each stepped in the order built and in the other."""
    for kinds in (pair, pair[::-1]):
        for reverse_steps in (False, True):
            check_sound_run(_run(kinds, ["none"] * 8, lr_kind, reverse_steps=reverse_steps))


@pytest.mark.parametrize("event", ["scale", "replace", "state_dict", "deepcopy"])
@pytest.mark.parametrize("pair", [("ExponentialLR", "MultiStepLR"), ("LambdaLR", "LambdaLR"),
                                  ("StepLR", "CyclicLR"), ("CosineAnnealingLR", "SequentialLR"),
                                  ("ChainedScheduler", "SWALR")], ids="-".join)
def test_two_stacked_with_an_event(pair, event):
    for kinds in (pair, pair[::-1]):
        for lr_kind in (None, torch.float64):
                check_sound_run(_run(kinds, ["none", event, "none", "none", "none"], lr_kind))


# -- resumed with last_epoch=k: the groups hold another LR than the closed form ----------------------

@LR_KINDS
@pytest.mark.parametrize("k", [0, 3, 7])
@pytest.mark.parametrize("kind", RESUMABLE)
def test_resumed_with_last_epoch(kind, k, lr_kind):
    check_sound_run(_run([kind], ["none"] * 6, lr_kind, resume_at=k))


# -- the property, drawn at random ---------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(sound_run_strategy())
def test_random_runs_apply_what_they_show(run):
    check_sound_run(run)
