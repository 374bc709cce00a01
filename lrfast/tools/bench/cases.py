"""What the bench measures: the model layouts (one tensor of growing size, many tensors,
many groups), the optimizers' bytes per element, issue 14's three CPU targets, one
configuration of every scheduler class, and the patterns of scheduler use the pattern
table times (one scheduler, composites, two stacked, a resume, a hand edit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BYTES_PER_ELEMENT", "EDIT_AFTER", "EDITED_LR", "OFF_PROGRAM_T_MAX", "PATTERN_GROUPS", "PATTERN_OPTIMIZERS",
           "RESUME_STEP", "SCHEDULER_CASES", "TITLES", "TARGETS", "Case", "Pattern", "case_of", "curve_cases",
           "pattern_cases", "scheduler_calls", "target_cases"]

BYTES_PER_ELEMENT = {"adamw": 28, "sgd": 20}  # NOTE [bandwidth floor] in results.py
TITLES = {"adamw": "AdamW + cosine", "sgd": "SGD(momentum) + cosine"}

# issue 14 item 4: (optimizer, case, target ratio torch fused / lrfast)
TARGETS = (("adamw", "16M over 200 tensors", 1.2), ("sgd", "1 x 16M", 1.0), ("sgd", "100 groups x 10 tensors", 3.0))


@dataclass
class Case:
    """One model layout: tensors of ``shapes`` elements, split evenly into ``groups`` param groups."""

    name: str
    shapes: list[int]
    groups: int = 1

    @property
    def numel(self) -> int:
        return sum(self.shapes)


def case_of(shapes: list[int], groups: int = 1) -> Case:
    """A Case labelled with the elements it really holds (quick runs are labelled with their own sizes).

    >>> case_of([4096] * 1000, groups=100).name
    '100 groups x 10 tensors x 4,096 = 4,096,000'
    """
    t, n = len(shapes), sum(shapes)
    if groups > 1:
        name = f"{groups} groups x {t // groups} tensors x {shapes[0]:,} = {n:,}"
    elif t == 1:
        name = f"1 x {n:,}"
    else:
        name = f"{t:,} x {shapes[0]:,} = {n:,}"
    return Case(name, shapes, groups)


def curve_cases(quick: bool, device: str) -> list[Case]:
    """Single tensors of growing size (the curve: >= 5 sizes, >= 3 with --quick), then many tensors."""
    if device == "cuda":
        sizes = [2**20, 2**22, 2**24] if quick else [2**18, 2**20, 2**22, 2**24, 2**26, 2**28]
        many = [(2000, 2**20)] if quick else [(2000, 2**20), (148, 124_000_000)]
    else:
        sizes = [2**14, 2**17, 2**20] if quick else [2**16, 2**18, 2**20, 2**22, 2**24]
        many = [(2000, 2**20)] if quick else [(200, 2**24), (2000, 2**24), (2000, 2**20)]
    return [case_of([n]) for n in sizes] + [case_of([n // t] * t) for t, n in many]


def target_cases() -> dict[str, Case]:
    """The layouts of :data:`TARGETS`, by the name the targets give them."""
    return {"16M over 200 tensors": case_of([2**24 // 200] * 200), "1 x 16M": case_of([2**24]),
            "100 groups x 10 tensors": case_of([4096] * 1000, groups=100)}


# One configuration of every scheduler class: (scheduler module, optimizer) -> scheduler, the
# module torch's (torch.optim.lr_scheduler with SWALR) or lrfast's. benchmarks/scheduler_cases.py
# times the same ones.
SCHEDULER_CASES: dict[str, Callable[[Any, Any], Any]] = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda t: 0.999**t),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda t: 0.999),
    "StepLR": lambda m, o: m.StepLR(o, step_size=30, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[100, 200, 300], gamma=0.5),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=100),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=1000),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.999),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=100), m.CosineAnnealingLR(o, T_max=10_000)], [100]),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=100_000, power=2.0),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=1000),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=100), m.ExponentialLR(o, gamma=0.999)]),
    "ReduceLROnPlateau": lambda m, o: m.ReduceLROnPlateau(o, patience=5),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=500),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=1_000_000),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=100, T_mult=2),
    "SWALR": lambda m, o: m.SWALR(o, swa_lr=0.01, anneal_epochs=100),
}

PATTERN_GROUPS = (1, 10, 100)
# the optimizer each pattern table runs on (section name -> class); on lrfast.optim.SGD a bound
# lrfast scheduler's work may sit in optimizer.step(), so that table times both calls
PATTERN_OPTIMIZERS = {"patterns": "torch.optim.SGD", "patterns, lrfast.optim.SGD": "lrfast.optim.SGD"}
RESUME_STEP = 500  # "resumed": the last_epoch the scheduler is built with
EDIT_AFTER = 10  # "hand edit": the steps before the edit
EDITED_LR = 0.05  # what the resume and the hand edit put in every group (off the closed form)
# the cosine of the resume and the hand edit: long enough that no timed step reaches T_max,
# where the recursion from any LR meets the closed form again (eta_min) and a scheduler that
# left the closed form at the edit could find it again (with T_max=1000 the later rounds of a
# run timed the closed form, not the pattern)
OFF_PROGRAM_T_MAX = 100_000


def scheduler_calls(scheduler: Any) -> Callable[[], object]:
    """One loop step's call of ``scheduler``: ``step()``, ReduceLROnPlateau's ``step(metric)``
    with a flat metric."""
    if hasattr(scheduler, "patience"):
        return lambda: scheduler.step(1.0)
    return scheduler.step


@dataclass(frozen=True)
class Pattern:
    """One way a training loop drives schedulers: ``build(module, optimizer)`` makes ``module``'s
    (torch's or lrfast's) schedulers on ``optimizer``, does what comes before the timed steps
    (a resume's group values, a hand edit), and returns one loop step's scheduler calls."""

    name: str
    build: Callable[[Any, Any], Callable[[], object]]


def _single(name: str) -> Callable[[Any, Any], Callable[[], object]]:
    return lambda m, o: scheduler_calls(SCHEDULER_CASES[name](m, o))


def _chained(m: Any, o: Any) -> Callable[[], object]:
    return m.ChainedScheduler([SCHEDULER_CASES["ExponentialLR"](m, o), SCHEDULER_CASES["MultiStepLR"](m, o)]).step


def _stacked(m: Any, o: Any) -> Callable[[], object]:
    first, second = SCHEDULER_CASES["ExponentialLR"](m, o), SCHEDULER_CASES["StepLR"](m, o)

    def step() -> None:
        first.step()
        second.step()
    return step


def _resumed(m: Any, o: Any) -> Callable[[], object]:
    # as after loading a checkpoint: initial_lr kept, the groups' lr not the closed form at RESUME_STEP
    for group in o.param_groups:
        group["initial_lr"] = group["lr"]
        group["lr"] = EDITED_LR
    return m.CosineAnnealingLR(o, T_max=OFF_PROGRAM_T_MAX, last_epoch=RESUME_STEP).step


def _hand_edit(m: Any, o: Any) -> Callable[[], object]:
    scheduler = m.CosineAnnealingLR(o, T_max=OFF_PROGRAM_T_MAX)
    for _ in range(EDIT_AFTER):
        scheduler.step()
    for group in o.param_groups:
        group["lr"] = EDITED_LR
    return scheduler.step


def pattern_cases() -> list[Pattern]:
    """The rows of the pattern table: the composite and stacked patterns, a resume and a hand
    edit (of a CosineAnnealingLR with T_max=OFF_PROGRAM_T_MAX, beside one CosineAnnealingLR),
    then one scheduler of every other class."""
    named = [
        Pattern("one CosineAnnealingLR", _single("CosineAnnealingLR")),
        Pattern("SequentialLR(LinearLR → CosineAnnealingLR)", _single("SequentialLR")),
        Pattern("ChainedScheduler(ExponentialLR, MultiStepLR)", _chained),
        Pattern("ChainedScheduler(ConstantLR, ExponentialLR)", _single("ChainedScheduler")),
        Pattern("ExponentialLR + StepLR stacked, both stepped", _stacked),
        Pattern(f"CosineAnnealingLR resumed with last_epoch={RESUME_STEP}, groups holding another LR", _resumed),
        Pattern(f"CosineAnnealingLR after one hand edit of every group's LR (at step {EDIT_AFTER})", _hand_edit),
    ]
    shown = {"CosineAnnealingLR", "SequentialLR", "ChainedScheduler"}
    return named + [Pattern(f"one {name}", _single(name)) for name in SCHEDULER_CASES if name not in shown]
