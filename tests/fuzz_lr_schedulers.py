"""Random differential runs of lrfast.lr_scheduler against torch.optim.lr_scheduler.

A run is drawn by :func:`run_strategy` (hypothesis): 1-5 param groups with float,
float64-tensor or float32-tensor LRs; one scheduler of any of torch's classes, or two
stacked on the same optimizer; then steps with events between them (a hand edit of the
LRs, a param group added, a state-dict round trip into fresh objects, a deepcopy).
:func:`check_random_run` plays it on torch and on lrfast and compares every group's LR
after every step. Where torch raises, lrfast must have raised too, at that step or before
(lrfast refuses some arguments at construction that torch fails on later).

Used by tests/test_lr_scheduler_dropin.py (bounded) and scripts/fuzz_lr_schedulers.py (long).
"""

from __future__ import annotations

import copy
import math

import torch
from hypothesis import strategies as st
from lr_scheduler_harness import FAST, TORCH

KINDS = ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
         "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR", "CyclicLR", "OneCycleLR", "SWALR",
         "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"]
EVENTS = ["none", "edit", "add_group", "state_dict", "deepcopy"]


def _build(ns, opt, kind: str, a: dict):
    """One scheduler of ``kind`` with drawn arguments ``a`` (the same for both twins)."""
    if kind == "StepLR":
        return ns.StepLR(opt, a["size"], a["gamma"])
    if kind == "MultiStepLR":
        return ns.MultiStepLR(opt, a["milestones"], a["gamma"])
    if kind == "ConstantLR":
        return ns.ConstantLR(opt, a["factor"], a["size"])
    if kind == "LinearLR":
        return ns.LinearLR(opt, a["factor"], a["end"], a["size"])
    if kind == "ExponentialLR":
        return ns.ExponentialLR(opt, a["gamma"])
    if kind == "PolynomialLR":
        return ns.PolynomialLR(opt, a["size"], a["power"])
    if kind == "CosineAnnealingLR":
        return ns.CosineAnnealingLR(opt, a["size"], a["eta_min"])
    if kind == "CosineAnnealingWarmRestarts":
        return ns.CosineAnnealingWarmRestarts(opt, a["size"], a["mult"], a["eta_min"])
    if kind == "LambdaLR":
        return ns.LambdaLR(opt, lambda e, g=a["gamma"]: g ** (e % 7))
    if kind == "MultiplicativeLR":
        return ns.MultiplicativeLR(opt, lambda e, g=a["gamma"]: g)
    if kind == "CyclicLR":
        return ns.CyclicLR(opt, 0.01, 0.2, a["size"], mode=a["mode"], gamma=a["gamma"], cycle_momentum=False)
    if kind == "OneCycleLR":
        return ns.OneCycleLR(opt, 0.3, total_steps=200, pct_start=a["pct"], cycle_momentum=False,
                             anneal_strategy=a["anneal"], three_phase=a["three"])
    if kind == "SWALR":
        return ns.SWALR(opt, a["eta_min"] + 0.001, a["size"], a["anneal"])
    if kind == "SequentialLR":
        return ns.SequentialLR(opt, [ns.LinearLR(opt, a["factor"], total_iters=a["size"]),
                                     ns.ExponentialLR(opt, a["gamma"])], [a["size"]])
    if kind == "ChainedScheduler":
        return ns.ChainedScheduler([ns.StepLR(opt, a["size"], a["gamma"]), ns.ExponentialLR(opt, 0.97)])
    if kind == "ReduceLROnPlateau":
        return ns.ReduceLROnPlateau(opt, patience=a["size"] % 3, factor=0.5)
    raise AssertionError(kind)


@st.composite
def _arguments(draw) -> dict:
    return {
        "size": draw(st.integers(1, 9)),
        "gamma": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0, 1.05])),
        "milestones": draw(st.lists(st.integers(0, 12), max_size=4)),
        "factor": draw(st.sampled_from([0.1, 1 / 3, 0.5, 1.0])),
        "end": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "power": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
        "eta_min": draw(st.sampled_from([0.0, 1e-4, 0.01])),
        "mult": draw(st.integers(1, 3)),
        "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        "pct": draw(st.sampled_from([0.0, 0.25, 0.3, 0.5, 0.9])),
        "anneal": draw(st.sampled_from(["cos", "linear"])),
        "three": draw(st.booleans()),
    }


@st.composite
def run_strategy(draw) -> dict:
    n_groups = draw(st.integers(1, 5))
    return {
        "lrs": [draw(st.sampled_from([0.1, 0.05, 0.3, 1.0, 0.0])) for _ in range(n_groups)],
        "lr_kind": draw(st.sampled_from([None, torch.float64, torch.float32])),
        "kinds": draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=2)),
        "args": [draw(_arguments()), draw(_arguments())],
        "events": [draw(st.sampled_from(EVENTS)) for _ in range(draw(st.integers(1, 30)))],
        "metric": draw(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=5)),
    }


def _optimizer(lrs, lr_kind):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))],
               "lr": lr if lr_kind is None else torch.tensor(lr, dtype=lr_kind)} for lr in lrs]
    return torch.optim.SGD(groups, momentum=0.9)


class _Twin:
    """One side of a run: an optimizer and its schedulers, rebuilt by the events."""

    def __init__(self, ns, run) -> None:
        self.ns, self.run = ns, run
        self.opt = _optimizer(run["lrs"], run["lr_kind"])
        self.scheds = [_build(ns, self.opt, k, a) for k, a in zip(run["kinds"], run["args"])]

    def step(self, t: int) -> None:
        self.opt.step()
        for s in self.scheds:
            if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                s.step(self.run["metric"][t % len(self.run["metric"])])
            else:
                s.step()

    def event(self, what: str) -> None:
        if what == "edit":
            for g in self.opt.param_groups:
                if isinstance(g["lr"], torch.Tensor):
                    g["lr"].mul_(0.5)
                else:
                    g["lr"] *= 0.5
        elif what == "add_group":
            lr = 0.2 if self.run["lr_kind"] is None else torch.tensor(0.2, dtype=self.run["lr_kind"])
            self.opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr})
        elif what == "deepcopy":
            self.opt, self.scheds = copy.deepcopy((self.opt, self.scheds))
        elif what == "state_dict":
            opt_state = copy.deepcopy(self.opt.state_dict())
            states = [copy.deepcopy(s.state_dict()) for s in self.scheds]
            fresh = _Twin(self.ns, self.run)
            for _ in range(len(self.opt.param_groups) - len(fresh.opt.param_groups)):
                fresh.event("add_group")
            fresh.opt.load_state_dict(opt_state)
            for s, state in zip(fresh.scheds, states):
                s.load_state_dict(state)
            self.opt, self.scheds = fresh.opt, fresh.scheds

    def lrs(self) -> list[float]:
        return [float(g["lr"]) for g in self.opt.param_groups]


def _play(twin: _Twin, t: int, what: str) -> None:
    twin.step(t)
    twin.event(what)


def _attempt(fn, *args):
    try:
        return fn(*args), None
    except (ValueError, ZeroDivisionError, OverflowError, IndexError, KeyError, TypeError, RuntimeError) as exc:
        return None, exc


def check_random_run(run: dict) -> None:
    """Play ``run`` on torch and lrfast; every group's LR agrees after every step."""
    rel = 1e-9 if run["lr_kind"] is not torch.float32 else 2e-6
    torch_twin, torch_error = _attempt(_Twin, TORCH, run)
    fast_twin, fast_error = _attempt(_Twin, FAST, run)
    if torch_error is not None:
        assert fast_error is not None, f"torch raised {torch_error!r} at construction, lrfast did not"
        return
    if fast_error is not None:
        return _torch_fails_later(torch_twin, run, fast_error)
    for t, what in enumerate(run["events"]):
        _, torch_error = _attempt(_play, torch_twin, t, what)
        if torch_error is not None:
            _, fast_error = _attempt(_play, fast_twin, t, what)
            assert fast_error is not None, f"step {t}: torch raised {torch_error!r}, lrfast did not"
            return
        _play(fast_twin, t, what)
        want, got = torch_twin.lrs(), fast_twin.lrs()
        assert len(want) == len(got)
        if not all(math.isfinite(w) for w in want):
            return  # torch wrote a non-finite LR; lrfast raises there (checked below by the next step)
        for w, g in zip(want, got):
            assert math.isfinite(g), f"step {t} ({what}): lrfast wrote {g}"
            assert abs(g - w) <= rel * max(abs(w), abs(g)) + 1e-12, f"step {t} ({what}): lrfast {got} torch {want}"


def _torch_fails_later(torch_twin, run: dict, fast_error: Exception) -> None:
    """lrfast refused arguments at construction: torch must fail on them within the run's
    horizon or write a non-finite LR (refusing a working configuration is a bug)."""
    for t in range(300):
        _, error = _attempt(torch_twin.step, t)
        if error is not None or not all(math.isfinite(x) for x in torch_twin.lrs()):
            return
    raise AssertionError(f"lrfast refused {run['kinds']} ({fast_error!r}) but torch ran 300 steps fine")
