"""The scheduler <-> optimizer contract: what each side offers the other, and one sync rule.

``lrfast.lr_scheduler`` and ``lrfast.optim`` meet here and nowhere else: both import this
module, it imports neither, and neither reads the other's private attributes.

NOTE [scheduler binding] An lrfast scheduler built on an optimizer that is a
:class:`SchedulerHost` binds itself there (:func:`bind_scheduler`, at construction; the
last one built wins). From then on, at every ``optimizer.step()``:

1. the optimizer may ask the bound :class:`BoundScheduler` for its ``programs()`` and, per
   group, whether the group provably holds the program's value at ``current_step``
   (``proven_groups()``, NOTE [proof of the program] in lrfast/lr_scheduler/_base.py): the
   kernels evaluate the program for those groups and apply every other group's own ``lr``
   (another scheduler stepped it, a hand edit, torch's recursion, a loaded state) -- the
   optimizer applies exactly what each group shows. ``packed_lr()`` is the program only
   while every group holds it (None otherwise), for optimizers that evaluate all or nothing;
2. the optimizer records the ``found_inf`` that step saw (GradScaler; None without one);
3. then the user calls ``scheduler.step()`` (torch's order: optimizer first). It writes the
   groups and moves ``current_step``, so the next ``optimizer.step()`` evaluates the next
   step of the program.

NOTE [skipped steps] A scheduler with ``skip_schedule_on_overflow = True`` takes the record
of 2. (:func:`take_found_inf`: taking clears it, so a second ``scheduler.step()`` with no
optimizer step between advances as usual) and does not advance when it is nonzero
(torch's schedulers always advance: pytorch issues 55585, 44511). Reading it is free for a
CPU ``found_inf`` and one host sync per step for a CUDA one (NOTE [host reads]). An
optimizer that is not a :class:`SkippedStepSource` (torch's own) never skips a schedule.

NOTE [host reads] The one sync rule for turning a number or a one-element tensor into a
Python float (:func:`host_float`): numbers and CPU tensors are read at once (no sync). A
tensor on a device (any tensor not in host memory, and every tensor under NOTE [emulated
device]) costs a host sync to read, so the caller says whether it may: ``sync=True``
where a read is expected -- building a program from base LRs, a state-dict load, reading
``found_inf`` for ``skip_schedule_on_overflow`` (documented as one sync per step), a
decision torch itself takes on the host; ``sync=False`` on the per-step path, which gets
NaN for a device tensor: the marker that the kernel reads the tensor itself.

Naming: the scheduler side keeps the public, documented names it always had
(``packed_lr``, ``current_step``, ... in docs/extending.md), since a scheduler's public
namespace is lrfast's to define. The optimizer side is implemented by user classes
(``torch.optim.Optimizer`` subclasses, docs/extending.md), whose namespace is the user's
and torch's: its methods carry an ``lrfast_`` prefix, public (a user's optimizer
implements them on purpose, and lrfast calls them across modules) yet unlikely to clash
with anything torch or a user names.

>>> import torch
>>> from lrfast import lr_scheduler, optim
>>> opt = optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
>>> isinstance(opt, SchedulerHost), isinstance(torch.optim.SGD(opt.param_groups[0]["params"]), SchedulerHost)
(True, False)
>>> sched = lr_scheduler.StepLR(opt, step_size=1)   # binds itself to opt
>>> sched.packed_lr().descriptors.shape[0], sched.current_step
(1, 0)
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from ._backend import device_api

if TYPE_CHECKING:
    from .schedules import Packed

__all__ = ["BoundScheduler", "SchedulerHost", "SkippedStepSource", "bind_scheduler", "take_found_inf",
           "host_float"]


class BoundScheduler(Protocol):
    """What an lrfast scheduler offers the optimizer it is bound to (NOTE [scheduler binding]).

    The optimizer calls these during its ``step()``, before the user's
    ``scheduler.step()`` of the same iteration; none of them reads a device value.
    Checked statically only: ``lr_tensor`` and ``current_step`` are computed properties,
    and a run-time ``isinstance`` would evaluate them (``lr_tensor`` allocates).
    """

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer the scheduler writes (and is bound to)."""
        ...

    @property
    def current_step(self) -> float:
        """The step of the program that the groups' current LRs belong to."""
        ...

    @property
    def lr_tensor(self) -> torch.Tensor:
        """Every group's current LR, float64 (G,), on the optimizer's device (no sync)."""
        ...

    def packed_lr(self) -> Packed | None:
        """Every group's LR program (G descriptor rows) while every group provably holds its
        value at ``current_step``, else None: the optimizer then applies what each group holds."""
        ...

    def packed_momentum(self) -> Packed | None:
        """The momentum / beta1 program when the scheduler cycles it and every group holds it."""
        ...

    def programs(self) -> tuple[Packed | None, Packed | None]:
        """(LR program, momentum program or None), whether or not the groups hold them."""
        ...

    def proven_groups(self) -> tuple[list[bool], list[bool]]:
        """Per group: whether its LR, and its momentum / beta1, is provably the program's value
        at ``current_step`` (NOTE [proof of the program]); only there may an optimizer
        evaluate the program instead of reading the group."""
        ...

    def graph_capture_blocker(self) -> str | None:
        """Why replays of a CUDA graph captured around ``optimizer.step()`` would not follow
        this scheduler although it offers a program (the sentence goes into the
        optimizer's error), or None when they would."""
        ...


@runtime_checkable
class SchedulerHost(Protocol):
    """An optimizer that runs a bound scheduler's program (lrfast's fused optimizers,
    ``ScheduledOptimizer`` and user optimizers that implement it: docs/extending.md)."""

    def lrfast_bind_scheduler(self, scheduler: BoundScheduler) -> None:
        """Called by the scheduler at its construction; the last one bound wins. May raise
        ``ValueError`` (before the scheduler is usable) when the optimizer cannot be driven."""
        ...


@runtime_checkable
class SkippedStepSource(Protocol):
    """An optimizer that records whether its last step was skipped (NOTE [skipped steps])."""

    def lrfast_take_found_inf(self) -> torch.Tensor | None:
        """The ``found_inf`` its last ``step()`` saw (None without GradScaler, or when taken
        already); taking it clears the record."""
        ...


def bind_scheduler(scheduler: BoundScheduler) -> bool:
    """Bind ``scheduler`` to its optimizer when that optimizer is a :class:`SchedulerHost`;
    returns whether it was."""
    optimizer = scheduler.optimizer
    if isinstance(optimizer, SchedulerHost):
        optimizer.lrfast_bind_scheduler(scheduler)
        return True
    old_hook = getattr(optimizer, "_lrfast_bind_scheduler", None)
    if callable(old_hook):  # the name docs/extending.md gave user optimizers before this module
        warnings.warn(f"{type(optimizer).__name__} defines _lrfast_bind_scheduler, the hook's old name: rename it "
                      "lrfast_bind_scheduler (docs/extending.md); the old name will stop binding in a later release",
                      DeprecationWarning, stacklevel=4)
        old_hook(scheduler)
        return True
    return False


def take_found_inf(optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
    """The ``found_inf`` the optimizer's last step saw, taken (NOTE [skipped steps]); None
    for an optimizer that keeps no such record."""
    # per scheduler.step(): a getattr, not isinstance against the runtime-checkable protocol
    # (which inspects every member, about 10 us a step)
    take = getattr(optimizer, "lrfast_take_found_inf", None)
    return take() if take is not None else None


def host_float(value: float | torch.Tensor, *, sync: bool) -> float:
    """A Python float from a number or a one-element tensor (NOTE [host reads]): a device
    tensor is read (one host sync) only with ``sync=True``, else it gives NaN.

    >>> host_float(torch.tensor([0.5]), sync=False), host_float(2, sync=False)
    (0.5, 2.0)
    """
    if isinstance(value, torch.Tensor):
        if not sync and (value.device.type != "cpu" or device_api.is_device(value.device)):
            return float("nan")
        return float(value.item())
    if isinstance(value, (str, bytes)):  # float("1") would take it; torch's arithmetic does not
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
