"""SequentialLR and ChainedScheduler: compositions compiled into one program.

The composite owns the writing: its sub-schedulers' counters are advanced (so their
state dicts read as torch's would) but they never write a group themselves.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import torch

from .. import schedules as S
from ..schedules import Schedule
from ._base import LRScheduler, as_float, bind_to_optimizer
from ._classes import MultiplicativeLR

__all__ = ["SequentialLR", "ChainedScheduler"]


def _check_children(cls: str, schedulers, optimizer) -> None:
    for i, s in enumerate(schedulers):
        if not hasattr(s, "optimizer"):
            raise TypeError(f"{cls} at index {i} should have `optimizer` as its attribute.")
        if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise ValueError(
                f"{cls} does not support `ReduceLROnPlateau` scheduler as it "
                "requires additional kwargs to be specified when calling `step`, "
                f"but got one at index {i} in the given schedulers sequence."
            )
        if optimizer != s.optimizer:
            raise ValueError(
                f"{cls} expects all schedulers to belong to the same optimizer, but "
                f"got scheduler {s.__class__.__name__} at index {i} has {s.optimizer}, "
                f"which is different from {optimizer.__class__.__name__}."
            )
        if not isinstance(s, LRScheduler):
            raise TypeError(
                f"{cls}: lrfast composes lrfast schedulers; the scheduler at index {i} is "
                f"{type(s).__module__}.{type(s).__name__} (use lrfast.lr_scheduler.{type(s).__name__})"
            )


def _load_with_children(self, state_dict: dict[str, Any]) -> None:
    """load_state_dict of a composite: its own state, then each child's (nested dicts)."""
    children = state_dict.pop("_schedulers")
    try:
        LRScheduler.load_state_dict(self, state_dict)
    finally:
        state_dict["_schedulers"] = children
    for s, saved in zip(self._schedulers, children):
        s.load_state_dict(saved)
    self.refresh()


def _detach(schedulers) -> None:
    for s in schedulers:
        s._lrfast_owner = True


# NOTE [composite momentum] torch's cycling children (CyclicLR, OneCycleLR) write momentum /
# beta1 whenever they step; a composite that owns the writing must write it for them.
def _momentum_key(optimizer: torch.optim.Optimizer) -> tuple[str, int | None]:
    return ("betas", 0) if "betas" in optimizer.defaults else ("momentum", None)


def _group_momentum(group: dict, key: tuple[str, int | None]):
    name, slot = key
    value = group.get(name)
    return value[slot] if slot is not None and value is not None else value


class SequentialLR(LRScheduler, torch.optim.lr_scheduler.SequentialLR):
    """Runs ``schedulers[i]`` from ``milestones[i - 1]`` on, each counting from its own
    milestone (torch's ``SequentialLR``), compiled to one :func:`lrfast.schedules.join`
    per group.

    >>> import torch
    >>> from lrfast.lr_scheduler import ConstantLR, ExponentialLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = SequentialLR(opt, [ConstantLR(opt, factor=0.5, total_iters=2), ExponentialLR(opt, gamma=0.5)], [2])
    >>> [s.get_last_lr()[0]] + [(opt.step(), s.step(), s.get_last_lr()[0])[2] for _ in range(3)]
    [0.5, 0.5, 1.0, 0.5]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedulers: list[LRScheduler], milestones: list[int],
                 last_epoch: int = -1) -> None:
        cls = type(self).__name__
        if len(schedulers) < 1:
            raise ValueError(f"{cls} expects at least one scheduler, but got no scheduler.")
        _check_children(cls, schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers {len(schedulers)} and the "
                f"number of milestones to be equal to {len(milestones)}"
            )
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, int) or m < 0:
                raise ValueError(f"{cls}: milestones must be ints >= 0, got {list(milestones)!r}")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"{cls}: milestones must be sorted, got {list(milestones)!r}")
        # Checks done: torch's construction, with the writing done by this composite.
        self._lrfast_program_cache = None
        self._lrfast_owner = None
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        self._lrfast_momentum0 = [_group_momentum(g, _momentum_key(optimizer)) for g in optimizer.param_groups]
        _detach(schedulers)
        for group in optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(as_float(group["initial_lr"]))
            else:
                group["lr"] = group["initial_lr"]
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        child = self._schedulers[idx]
        child._step_count = 0
        child._lrfast_advance(child.last_epoch + 1)
        self._lrfast_base_lrs = [g["initial_lr"] for g in optimizer.param_groups]  # torch keeps no base_lrs
        self._lrfast_t = 0.0
        self._lrfast_apply(self.last_epoch)
        child._last_lr = list(self._last_lr)
        bind_to_optimizer(self)

    @property
    def _lrfast_chain_kind(self) -> str:  # type: ignore[override]
        return "absolute" if any(s._lrfast_chain_kind == "absolute" for s in self._schedulers) else "ratio"

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        starts = [0, *self._milestones]
        child_schedules = [s._lrfast_lr_schedules() for s in self._schedulers]
        out = []
        for g in range(len(self.optimizer.param_groups)):
            parts: list[Schedule] = []
            bounds: list[int] = []
            for j, s in enumerate(self._schedulers):
                end = starts[j + 1] if j + 1 < len(starts) else None
                if end is not None and end <= starts[j]:
                    continue  # an empty segment (milestone 0, or a repeated milestone)
                part = child_schedules[j][g]
                if isinstance(s, MultiplicativeLR) and parts:
                    # torch: at its milestone MultiplicativeLR multiplies the LR it finds.
                    so_far = S.join(parts, bounds) if len(parts) > 1 else parts[0]
                    start = so_far(starts[j] - 1) * s.lr_lambdas[g](0)
                    part = S.from_values(s.lr_values(start, s.lr_lambdas[g], s._lrfast_baked))
                if parts:
                    bounds.append(starts[j])
                parts.append(part)
            out.append(S.join(parts, bounds) if len(parts) > 1 else parts[0])
        return out

    def _lrfast_momentum_schedules(self) -> list[Schedule] | None:
        # NOTE [composite momentum]: a cycling child's segment cycles it; elsewhere it holds
        # the value it had (at construction, or at the end of the segment before).
        child_momentum = [s._lrfast_momentum_schedules() for s in self._schedulers]
        if all(m is None for m in child_momentum):
            return None
        starts = [0, *self._milestones]
        out = []
        for g in range(len(self.optimizer.param_groups)):
            parts: list[Schedule] = []
            bounds: list[int] = []
            for j in range(len(self._schedulers)):
                end = starts[j + 1] if j + 1 < len(starts) else None
                if end is not None and end <= starts[j]:
                    continue
                if child_momentum[j] is not None:
                    part = child_momentum[j][g]
                elif parts:
                    so_far = S.join(parts, bounds) if len(parts) > 1 else parts[0]
                    part = S.constant(so_far(starts[j] - 1))
                else:
                    part = S.constant(as_float(self._lrfast_momentum0[g]))
                if parts:
                    bounds.append(starts[j])
                parts.append(part)
            out.append(S.join(parts, bounds) if len(parts) > 1 else parts[0])
        return out

    def _lrfast_momentum_key(self) -> tuple[str, int | None]:
        return _momentum_key(self.optimizer)

    def _lrfast_check_step(self, t: float) -> None:
        idx = bisect_right(self._milestones, t)
        child = self._schedulers[idx]
        baked = getattr(child, "_lrfast_baked", None)
        start = self._milestones[idx - 1] if idx > 0 else 0
        if baked is not None and t - start >= baked - 1:
            child.refresh()
            self.refresh()

    def step(self) -> None:  # type: ignore[override]
        t = self.last_epoch + 1
        self._lrfast_check_step(t)
        self.last_epoch = t
        idx = bisect_right(self._milestones, t)
        child = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == t:
            child._lrfast_advance(0, counted=False)
        else:
            child._lrfast_advance(child.last_epoch + 1)
        self._lrfast_apply(t)
        child._last_lr = self._last_lr

    def _lrfast_advance(self, t: float, counted: bool = True) -> None:
        raise TypeError("SequentialLR cannot be nested inside another composite scheduler by lrfast")

    def recursive_undo(self, sched=None) -> None:
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    state_dict = LRScheduler._lrfast_public_state(torch.optim.lr_scheduler.SequentialLR.state_dict)

    load_state_dict = _load_with_children


class ChainedScheduler(LRScheduler, torch.optim.lr_scheduler.ChainedScheduler):
    r"""Steps several schedulers together (torch's ``ChainedScheduler``), compiled to one
    product per group: :math:`\eta_t = \eta_0 \prod_i f_i(t)` where :math:`f_i` is the
    factor scheduler ``i`` applies (``lrfast.schedules.chain``).

    torch applies each scheduler's recursion to the LR the previous one left; for
    multiplicative schedulers (StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
    PolynomialLR, MultiplicativeLR, CosineAnnealingLR with ``eta_min=0`` within its first
    period) that is exactly the product. A scheduler that sets the LR outright (LambdaLR,
    CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts, SWALR) overrides those before it;
    one followed by a multiplicative scheduler would make the later one apply only its
    last step's ratio, which lrfast refuses with ``ValueError``. With ``eta_min > 0`` a
    chained CosineAnnealingLR is an affine recursion in torch and a product here.
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: torch.optim.Optimizer | None = None) -> None:
        cls = type(self).__name__
        if len(schedulers) < 1:
            raise ValueError(f"{cls} expects at least one scheduler to be chained, but got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_children(cls, schedulers, optimizer)
        kinds = [s._lrfast_chain_kind for s in schedulers]
        last_absolute = max((i for i, k in enumerate(kinds) if k == "absolute"), default=-1)
        if last_absolute >= 0 and last_absolute < len(schedulers) - 1:
            raise ValueError(
                f"{cls}: {type(schedulers[last_absolute]).__name__} at index {last_absolute} sets the LR outright "
                f"and is followed by multiplicative schedulers; lrfast chains products only (put it last, or "
                f"use SequentialLR)"
            )
        epochs = {s.last_epoch for s in schedulers}
        if len(epochs) != 1:
            raise ValueError(f"{cls}: lrfast needs the chained schedulers at the same step, got last_epoch "
                             f"{[s.last_epoch for s in schedulers]}")
        self._lrfast_program_cache = None
        self._lrfast_owner = None
        self._schedulers = schedulers
        self.optimizer = optimizer
        _detach(schedulers)
        self._lrfast_first = max(last_absolute, 0)
        self._lrfast_base_lrs = [g["initial_lr"] for g in optimizer.param_groups]  # torch keeps no base_lrs
        self._lrfast_t = 0.0
        self._lrfast_apply(schedulers[0].last_epoch)
        bind_to_optimizer(self)

    @property
    def last_epoch(self) -> int:  # torch's ChainedScheduler has none; its schedulers count
        return self._schedulers[0].last_epoch

    @property
    def _lrfast_chain_kind(self) -> str:  # type: ignore[override]
        return "absolute" if any(s._lrfast_chain_kind == "absolute" for s in self._schedulers) else "ratio"

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        first = getattr(self, "_lrfast_first", 0)
        used = self._schedulers[first:]
        per_child = [s._lrfast_lr_schedules() for s in used]
        out = []
        for g, base in enumerate(self._lrfast_base_lrs):
            base = as_float(base)
            if base == 0.0 and first == 0:
                out.append(S.constant(0.0))
                continue
            factors = [per_child[0][g]] + [c[g] * (1.0 / base) for c in per_child[1:]]
            out.append(S.chain(*factors) if len(factors) > 1 else factors[0])
        return out

    def _lrfast_momentum_schedules(self) -> list[Schedule] | None:
        # NOTE [composite momentum]: every cycling child writes it; the last one's value stays.
        for s in reversed(self._schedulers):
            momentum = s._lrfast_momentum_schedules()
            if momentum is not None:
                return momentum
        return None

    def _lrfast_momentum_key(self) -> tuple[str, int | None]:
        return _momentum_key(self.optimizer)

    def _lrfast_check_step(self, t: float) -> None:
        if any(getattr(s, "_lrfast_baked", t + 2) - 1 <= t for s in self._schedulers):
            for s in self._schedulers:
                s.refresh()
            self.refresh()
        for s in self._schedulers:
            s._lrfast_check_step(t)

    def step(self) -> None:  # type: ignore[override]
        t = self.last_epoch + 1
        self._lrfast_check_step(t)
        for s in self._schedulers:
            s._lrfast_advance(t)
        self._lrfast_apply(t)
        for s in self._schedulers:
            s._last_lr = self._last_lr

    def _lrfast_advance(self, t: float, counted: bool = True) -> None:
        for s in self._schedulers:
            s._lrfast_advance(t, counted)

    state_dict = LRScheduler._lrfast_public_state(torch.optim.lr_scheduler.ChainedScheduler.state_dict)

    load_state_dict = _load_with_children
