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


def _build(ns, opt, kind: str, a: dict, last_epoch: int = -1):
    """One scheduler of ``kind`` with drawn arguments ``a`` (the same for both twins);
    ``last_epoch`` >= 0 resumes the kinds in :data:`RESUMABLE` (torch reads ``initial_lr``)."""
    if last_epoch != -1:
        return _resume(ns, opt, kind, a, last_epoch)
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
        return ns.LambdaLR(opt, _lambda(a, "{g} ** (t % 7)"))
    if kind == "MultiplicativeLR":
        return ns.MultiplicativeLR(opt, _lambda(a, "{g}"))
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
    if kind == "Nested":  # a SequentialLR inside a ChainedScheduler, beside a StepLR
        inner = ns.SequentialLR(opt, [ns.ConstantLR(opt, a["factor"], a["size"]), ns.ExponentialLR(opt, a["gamma"])],
                                [a["size"]])
        return ns.ChainedScheduler([inner, ns.StepLR(opt, a["size"] + 1, 0.5)])
    raise AssertionError(kind)


def _lambda(a: dict, body: str):
    """An lr_lambda computing ``body`` (in t and g, the drawn gamma): pure code, the gamma a
    constant (NOTE [pure lambdas] in lrfast/lr_scheduler/_pure.py: one call serves all the
    groups), or the gamma a default argument (each group's lambda called)."""
    if a["pure"]:
        return eval(f"lambda t: {body.format(g=repr(a['gamma']))}")  # noqa: S307 - a test's own text
    return eval(f"lambda t, g={a['gamma']!r}: {body.format(g='g')}")  # noqa: S307


RESUMABLE = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
             "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR", "CyclicLR", "SWALR")


def _resume(ns, opt, kind: str, a: dict, last_epoch: int):
    """``kind`` built with ``last_epoch=`` (a resume); the kinds outside RESUMABLE are built fresh."""
    e = {"last_epoch": last_epoch}
    if kind == "StepLR":
        return ns.StepLR(opt, a["size"], a["gamma"], **e)
    if kind == "MultiStepLR":
        return ns.MultiStepLR(opt, a["milestones"], a["gamma"], **e)
    if kind == "ConstantLR":
        return ns.ConstantLR(opt, a["factor"], a["size"], **e)
    if kind == "LinearLR":
        return ns.LinearLR(opt, a["factor"], a["end"], a["size"], **e)
    if kind == "ExponentialLR":
        return ns.ExponentialLR(opt, a["gamma"], **e)
    if kind == "PolynomialLR":
        return ns.PolynomialLR(opt, a["size"], a["power"], **e)
    if kind == "CosineAnnealingLR":
        return ns.CosineAnnealingLR(opt, a["size"], a["eta_min"], **e)
    if kind == "CosineAnnealingWarmRestarts":
        return ns.CosineAnnealingWarmRestarts(opt, a["size"], a["mult"], a["eta_min"], **e)
    if kind == "LambdaLR":
        return ns.LambdaLR(opt, _lambda(a, "{g} ** (t % 7)"), **e)
    if kind == "MultiplicativeLR":
        return ns.MultiplicativeLR(opt, _lambda(a, "{g}"), **e)
    if kind == "CyclicLR":
        return ns.CyclicLR(opt, 0.01, 0.2, a["size"], mode=a["mode"], gamma=a["gamma"], cycle_momentum=False, **e)
    if kind == "SWALR":
        return ns.SWALR(opt, a["eta_min"] + 0.001, a["size"], a["anneal"], **e)
    return _build(ns, opt, kind, a)


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
        "pure": draw(st.booleans()),
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


def _tolerance(run: dict) -> tuple[float, float]:
    """(relative, absolute) agreement of lrfast's LRs with torch's. torch's float32-tensor
    recursion rounds every term to float32: where terms cancel (cosine annealing toward
    eta_min from an LR of 0) it lands on 0.0 where the exact value (lrfast's float64 form) is
    ~1e-12, so its error is relative to the terms (LRs <= 0.2), not to the result."""
    if run["lr_kind"] is torch.float32:
        return 2e-6, 2.0**-23 * 0.2
    return 1e-9, 1e-12


def check_random_run(run: dict) -> None:
    """Play ``run`` on torch and lrfast; every group's LR agrees after every step."""
    rel, floor = _tolerance(run)
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
        if not all(math.isfinite(w) for w in want):
            return  # torch wrote a non-finite LR; lrfast raises there (checked below by the next step)
        _compare(want, got, rel, f"step {t} ({what})", floor)


def _torch_fails_later(torch_twin, run: dict, fast_error: Exception) -> None:
    """lrfast refused arguments at construction: torch must fail on them within the run's
    horizon or write a non-finite LR (refusing a working configuration is a bug)."""
    for t in range(300):
        _, error = _attempt(torch_twin.step, t)
        if error is not None or not all(math.isfinite(x) for x in torch_twin.lrs()):
            return
    raise AssertionError(f"lrfast refused {run['kinds']} ({fast_error!r}) but torch ran 300 steps fine")


# -- the soundness invariant: the optimizer applies the LR its group shows ---------------------------
#
# A sound run is played on torch (torch.optim.SGD and torch's schedulers) and on lrfast
# (lrfast.optim.SGD, or torch.optim.SGD, with lrfast's schedulers). Every group holds one
# float64 parameter and no momentum; before each optimizer.step() the parameters are zeroed
# and given grad 1, so after it the parameter is -(the LR applied), exactly in float64.
# At every step, on both twins: applied == the group's lr as shown just before that step,
# and lrfast's shown LRs == torch's.

SOUND_KINDS = [*KINDS, "Nested"]
SOUND_EVENTS = ["none", "scale", "fill", "replace", "add_group", "state_dict", "deepcopy", "resume", "attribute",
                "last_lr_edited", "last_lr_synced"]
APPLIED_REL = 1e-15


def _edit_attributes(sched, opt, kind: str) -> None:
    """Change, mid-run, state torch re-reads at every step (the same edit on both twins)."""
    if kind == "StepLR":
        sched.gamma, sched.step_size = sched.gamma * 0.5, sched.step_size + 1
    elif kind == "MultiStepLR":
        sched.milestones[sched.last_epoch + 2] += 1
    elif kind == "ConstantLR":
        sched.factor, sched.total_iters = 0.25, sched.total_iters + 2
    elif kind == "LinearLR":
        sched.end_factor, sched.total_iters = 0.75, sched.total_iters + 2
    elif kind == "ExponentialLR":
        sched.gamma = 0.8
    elif kind == "PolynomialLR":
        sched.total_iters, sched.power = sched.total_iters + 3, 1.5
    elif kind == "CosineAnnealingLR":
        sched.T_max, sched.eta_min = sched.T_max + 2, 0.002
    elif kind == "CosineAnnealingWarmRestarts":
        sched.eta_min, sched.base_lrs = 0.002, [b * 0.5 for b in sched.base_lrs]
    elif kind == "LambdaLR":
        sched.lr_lambdas = [lambda t: 0.5 ** (t % 3)] * len(sched.lr_lambdas)
    elif kind == "MultiplicativeLR":
        sched.lr_lambdas = [lambda t: 0.9] * len(sched.lr_lambdas)
    elif kind == "CyclicLR":
        sched.max_lrs = [m * 0.5 for m in sched.max_lrs]
    elif kind == "OneCycleLR":
        for g in opt.param_groups:
            g["max_lr"] = g["max_lr"] * 0.5
    elif kind == "SWALR":
        for g in opt.param_groups:
            g["swa_lr"] = 0.02
    elif kind == "SequentialLR":
        _edit_attributes(sched._schedulers[1], opt, "ExponentialLR")
    elif kind == "ChainedScheduler":
        _edit_attributes(sched._schedulers[0], opt, "StepLR")
    elif kind == "ReduceLROnPlateau":
        sched.factor = 0.25
    elif kind == "Nested":
        _edit_attributes(sched._schedulers[0]._schedulers[1], opt, "ExponentialLR")
    else:
        raise AssertionError(kind)


@st.composite
def sound_run_strategy(draw) -> dict:
    n_groups = draw(st.integers(1, 4))
    return {
        "lrs": [draw(st.sampled_from([0.1, 0.05, 0.3, 1.0, 0.0])) for _ in range(n_groups)],
        "lr_kind": draw(st.sampled_from([None, torch.float64, torch.float32])),
        "optimizer": draw(st.sampled_from(["lrfast", "lrfast", "lrfast", "torch"])),
        "kinds": draw(st.lists(st.sampled_from(SOUND_KINDS), min_size=1, max_size=2)),
        "args": [draw(_arguments()), draw(_arguments())],
        "resume_at": draw(st.one_of(st.none(), st.none(), st.integers(0, 12))),
        "reverse_steps": draw(st.booleans()),  # stacked schedulers stepped in the other order than built
        "events": [draw(st.sampled_from(["none", "none", *SOUND_EVENTS])) for _ in range(draw(st.integers(1, 30)))],
        "metric": draw(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=5)),
    }


def _lr_value(v: float, lr_kind):
    return v if lr_kind is None else torch.tensor(v, dtype=lr_kind)


def _one_param_group(lr) -> dict:
    return {"params": [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], "lr": lr}


class SoundTwin:
    """One side of a sound run: float64 one-element parameters, SGD without momentum."""

    def __init__(self, ns, run: dict, optimizer: str) -> None:
        import lrfast.optim

        self.ns, self.run, self.optimizer = ns, run, optimizer
        cls = lrfast.optim.SGD if optimizer == "lrfast" else torch.optim.SGD
        self.opt = cls([_one_param_group(_lr_value(v, run["lr_kind"])) for v in run["lrs"]])
        last_epoch = -1 if run.get("resume_at") is None else run["resume_at"]
        if last_epoch != -1:
            for g in self.opt.param_groups:
                g["initial_lr"] = _lr_value(float(g["lr"]), run["lr_kind"])
        self.scheds = [_build(ns, self.opt, k, a, last_epoch) for k, a in zip(run["kinds"], run["args"])]
        self.steps: list[tuple[list[float], list[float]]] = []  # (shown, applied) per optimizer.step()

    def lrs(self) -> list[float]:
        return [float(g["lr"]) for g in self.opt.param_groups]

    def optimizer_step(self) -> None:
        shown = self.lrs()
        with torch.no_grad():
            for g in self.opt.param_groups:
                for p in g["params"]:
                    p.zero_()
                    p.grad = torch.ones_like(p)
        self.opt.step()
        applied = [-float(g["params"][0].detach()[0]) for g in self.opt.param_groups]
        self.steps.append((shown, applied))

    def step(self, t: int) -> None:
        self.optimizer_step()
        for s in (self.scheds[::-1] if self.run.get("reverse_steps") else self.scheds):
            if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                s.step(self.run["metric"][t % len(self.run["metric"])])
            else:
                s.step()

    def event(self, what: str) -> None:
        groups = self.opt.param_groups
        if what in ("scale", "fill", "replace"):
            for g in groups:
                if what == "scale" and isinstance(g["lr"], torch.Tensor):
                    g["lr"].mul_(0.5)
                elif what == "scale":
                    g["lr"] *= 0.5
                elif what == "fill" and isinstance(g["lr"], torch.Tensor):
                    g["lr"].fill_(0.07)
                else:  # "replace", or "fill" of a float: a new object in the group
                    g["lr"] = _lr_value(0.07, self.run["lr_kind"])
        elif what in ("last_lr_edited", "last_lr_synced"):
            # the list get_last_lr() returns is the user's to edit (torch never reads it back):
            # garbage in it, or a loop that sets each group's LR and logs it there too
            for i, g in enumerate(groups):
                if what == "last_lr_synced":
                    g["lr"] = _lr_value(0.03 * (i + 1), self.run["lr_kind"])
                for s in self.scheds:
                    shown = s.get_last_lr()
                    if i < len(shown):
                        shown[i] = g["lr"] if what == "last_lr_synced" else 123.0
        elif what == "add_group":
            self.opt.add_param_group(_one_param_group(_lr_value(0.2, self.run["lr_kind"])))
        elif what == "deepcopy":
            self.opt, self.scheds = copy.deepcopy((self.opt, self.scheds))
        elif what == "state_dict":
            opt_state = copy.deepcopy(self.opt.state_dict())
            states = [copy.deepcopy(s.state_dict()) for s in self.scheds]
            fresh = SoundTwin(self.ns, self.run, self.optimizer)
            for _ in range(len(groups) - len(fresh.opt.param_groups)):
                fresh.event("add_group")
            fresh.opt.load_state_dict(opt_state)
            for s, state in zip(fresh.scheds, states):
                s.load_state_dict(state)
            self.opt, self.scheds = fresh.opt, fresh.scheds
        elif what == "resume":  # a new scheduler of the same kind, resumed where the old one stood
            for i, (kind, s) in enumerate(zip(self.run["kinds"], self.scheds)):
                if kind in RESUMABLE:
                    self.scheds[i] = _build(self.ns, self.opt, kind, self.run["args"][i], s.last_epoch)
        elif what == "attribute":
            for kind, s in zip(self.run["kinds"], self.scheds):
                _edit_attributes(s, self.opt, kind)


def _play_sound(twin: SoundTwin, t: int, what: str) -> None:
    twin.step(t)
    twin.event(what)


def assert_applied_is_shown(twin: SoundTwin, where: str) -> None:
    """The last optimizer.step() of ``twin`` applied, per group, the LR the group showed."""
    shown, applied = twin.steps[-1]
    for i, (s, a) in enumerate(zip(shown, applied)):
        if not math.isfinite(s):
            continue
        assert abs(a - s) <= APPLIED_REL * abs(s), (
            f"{where} group {i}: the group showed lr {s!r}, the optimizer applied {a!r} "
            f"({twin.optimizer} optimizer, {twin.ns.name} schedulers)")


def check_sound_run(run: dict) -> None:
    """Play ``run`` on torch and lrfast: applied == shown on both, lrfast's shown == torch's."""
    rel, floor = _tolerance(run)
    torch_twin, torch_error = _attempt(SoundTwin, TORCH, run, "torch")
    fast_twin, fast_error = _attempt(SoundTwin, FAST, run, run["optimizer"])
    if torch_error is not None:
        assert fast_error is not None, f"torch raised {torch_error!r} at construction, lrfast did not"
        return
    if fast_error is not None:
        return _torch_fails_later(torch_twin, run, fast_error)
    _compare(torch_twin.lrs(), fast_twin.lrs(), rel, "construction", floor)
    for t, what in enumerate(run["events"]):
        _, torch_error = _attempt(_play_sound, torch_twin, t, what)
        if torch_error is not None:
            _, fast_error = _attempt(_play_sound, fast_twin, t, what)
            assert fast_error is not None, f"step {t} ({what}): torch raised {torch_error!r}, lrfast did not"
            return
        _play_sound(fast_twin, t, what)
        assert_applied_is_shown(torch_twin, f"step {t}")  # the measurement itself, on torch
        assert_applied_is_shown(fast_twin, f"step {t}")
        want, got = torch_twin.lrs(), fast_twin.lrs()
        if not all(math.isfinite(w) for w in want):
            return
        _compare(want, got, rel, f"step {t} ({what})", floor)


def _compare(want: list[float], got: list[float], rel: float, where: str, floor: float = 1e-12) -> None:
    assert len(want) == len(got), f"{where}: lrfast has {len(got)} groups, torch {len(want)}"
    for w, g in zip(want, got):
        assert math.isfinite(g), f"{where}: lrfast wrote {g}"
        assert abs(g - w) <= rel * max(abs(w), abs(g)) + floor, f"{where}: lrfast shows {got}, torch {want}"
