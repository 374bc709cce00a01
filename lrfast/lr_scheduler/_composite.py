"""SequentialLR and ChainedScheduler: torch's compositions, stepping lrfast children.

Both run torch's own logic: ChainedScheduler steps each scheduler in turn,
SequentialLR steps the one whose milestone has come (``_update_lr(0)`` at the
milestone). Stacked on one optimizer, the children compose exactly as torch's do
(NOTE [one step rule] in ``_base.py``): each child writes its closed
form while the groups hold its values, and torch's recursion from what they hold
otherwise. Any scheduler torch accepts may be a child, lrfast's or torch's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _C
from .. import schedules as S
from .._compile import compiled_scheduler_step
from .._scheduling_protocol import bind_scheduler, host_float
from ..schedules import Packed, Schedule, pack_many
from ._base import LRScheduler

__all__ = ["SequentialLR", "ChainedScheduler"]

if TYPE_CHECKING:
    # the mixin is only ever mixed into LRScheduler subclasses; at run time it stays a plain
    # class so that the composites' MRO is what torch's own composites expect
    _MixinBase = LRScheduler
else:
    _MixinBase = object

_is_compiling = torch.compiler.is_compiling


def _stepping(torch_step: Callable[[Any], None], keeps_epoch: bool = False) -> Callable[..., None]:
    """torch's composite step, then what a bound lrfast optimizer needs (NOTE [composite
    program]) and ``lr_tensor`` (NOTE [lr tensor]) from what the children wrote. With
    ``keeps_epoch``, a step that raises leaves ``last_epoch`` as it was (SequentialLR's own
    attribute; ChainedScheduler's is its first child's)."""
    def step(self: Any) -> None:
        if _is_compiling():  # NOTE [compiled steps]
            return compiled_scheduler_step(self)
        if keeps_epoch:
            prev = self.last_epoch
            try:
                torch_step(self)
            except BaseException:  # a child raised (NotImplementedError for a composite child at a milestone)
                self.last_epoch = prev
                raise
        else:
            torch_step(self)
        rt = self._lrfast_rt
        rt.t = self.last_epoch
        if rt.lr_buffer is not None:
            self._lrfast_fill_out(self._last_lr)
        return None

    step.__doc__ = torch_step.__doc__
    step._lrfast_compile_aware = True  # type: ignore[attr-defined]
    return step


# NOTE [composite program] A composite's children write the groups (torch's logic); for a
# bound lrfast optimizer on CUDA (NOTE [scheduler binding]) and CUDA-graph capture the
# composite also offers one packed program: its ``schedules`` (a join at the milestones, or
# a product for ChainedScheduler) at ``current_step``, packed once. Nothing is checked at
# ``step()``: the proof that a group holds the program's value is taken when an optimizer
# asks for it (``proven_groups()``, one compiled evaluation), so a child off its own
# program, a torch child or a hand edit leave those groups to be read as they are.
class _CompositeMixin(_MixinBase):
    if TYPE_CHECKING:  # each composite has these (last_epoch from torch's class)
        last_epoch: int
        def _lrfast_torch_load_state_dict(self, state_dict: dict[str, Any]) -> None: ...

    _lrfast_host_recursive = True  # the children write (NOTE [composite program])

    def get_lr(self) -> list[Any]:
        """A composite has no LRs of its own to compute (torch's ``LRScheduler.get_lr``
        raises NotImplementedError); its schedulers compute them."""
        raise NotImplementedError(f"{type(self).__name__} has no get_lr() of its own: its schedulers compute the "
                                  "learning rates (use get_last_lr())")

    def _update_lr(self, epoch: float | None = None) -> None:
        """torch's ``LRScheduler._update_lr`` on a composite ends in ``get_lr()``:
        NotImplementedError (a ChainedScheduler or SequentialLR inside a SequentialLR, at its
        milestone). Raised before any state changes."""
        self.get_lr()

    def _lrfast_children(self) -> Sequence[torch.optim.lr_scheduler.LRScheduler]:
        # torch types SequentialLR's _schedulers as a list and ChainedScheduler's as a Sequence,
        # so the mixin cannot declare it for both
        return self._schedulers  # type: ignore[attr-defined]

    def _lrfast_composite_step(self) -> int:
        return self.last_epoch

    def _lrfast_bind(self) -> None:
        self._lrfast_handle  # noqa: B018 - made outside any compilation (NOTE [compiled steps])
        self._lrfast_after_step()
        bind_scheduler(self)

    def _lrfast_composite_program(self) -> Packed | None:
        rt = self._lrfast_runtime()
        # a LambdaLR child bakes a new window as it goes: the join or product is packed again
        windows = tuple(getattr(getattr(c, "_lrfast_rt", None), "window", None) for c in self._lrfast_children())
        if rt.child_windows != windows:
            rt.packed, rt.child_windows, rt.no_program = None, windows, False
        if rt.packed is None and not rt.no_program:
            try:
                packed = pack_many(self.schedules)
                _C.validate(packed.descriptors, packed.table.shape[0])
                rt.packed = packed
            except (ValueError, TypeError, AttributeError, KeyError, IndexError, NotImplementedError):
                rt.no_program = True  # a child without a closed form: the groups' LRs are applied
        return rt.packed

    def _lrfast_after_step(self) -> None:
        """What ``step()`` does after torch's composite step (also after a load)."""
        rt = self._lrfast_runtime()
        rt.t = self._lrfast_composite_step()
        if rt.lr_buffer is not None:
            self._lrfast_fill_out(self._last_lr)

    def programs(self) -> tuple[Packed | None, None]:
        packed = self._lrfast_composite_program()
        if packed is None or packed.descriptors.shape[0] != len(self.optimizer.param_groups):
            return None, None
        return packed, None

    def proven_groups(self) -> tuple[list[bool], list[bool]]:
        """NOTE [composite program]: a float group holding the composite program's value at
        ``current_step`` (compared by value: the kernel evaluates the same closed form);
        tensor groups are read by the kernel, never proven here."""
        groups = self.optimizer.param_groups
        none = [False] * len(groups)
        packed, _ = self.programs()
        if packed is None:
            return none, none
        values = np.empty(len(groups))
        _C.evaluate_at_trusted(packed.descriptors, packed.table, float(self.current_step), values)
        return [type(g["lr"]) is float and g["lr"] == v for g, v in zip(groups, values.tolist())], none  # noqa: E721

    def packed_lr(self) -> Packed | None:
        packed, _ = self.programs()
        return packed if packed is not None and all(self.proven_groups()[0]) else None

    def packed_momentum(self) -> None:
        return None

    def graph_capture_blocker(self) -> str | None:
        """A child's reason (a LambdaLR baking without ``horizon=``, at any depth), or None."""
        for child in self._lrfast_children():
            if isinstance(child, LRScheduler):
                blocker = child.graph_capture_blocker()
                if blocker is not None:
                    return blocker
        return None

    def refresh(self) -> None:
        super().refresh()
        self._lrfast_runtime().packed = None
        for child in self._lrfast_children():
            if hasattr(child, "refresh"):
                child.refresh()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._lrfast_torch_load_state_dict(state_dict)
        self.refresh()
        self._lrfast_after_step()


class SequentialLR(_CompositeMixin, LRScheduler, torch.optim.lr_scheduler.SequentialLR):
    """Runs ``schedulers[i]`` from ``milestones[i - 1]`` on, each counting from its own
    milestone (torch's ``SequentialLR``).

    >>> import torch
    >>> from lrfast.lr_scheduler import ConstantLR, ExponentialLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = SequentialLR(opt, [ConstantLR(opt, factor=0.5, total_iters=2), ExponentialLR(opt, gamma=0.5)], [2])
    >>> [s.get_last_lr()[0]] + [(opt.step(), s.step(), s.get_last_lr()[0])[2] for _ in range(3)]
    [0.5, 0.5, 1.0, 0.5]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedulers: list[torch.optim.lr_scheduler.LRScheduler],
                 milestones: list[int], last_epoch: int = -1) -> None:
        torch.optim.lr_scheduler.SequentialLR.__init__(self, optimizer, schedulers, milestones, last_epoch)
        self._lrfast_bind()

    step = _stepping(torch.optim.lr_scheduler.SequentialLR.step, keeps_epoch=True)
    recursive_undo = torch.optim.lr_scheduler.SequentialLR.recursive_undo
    state_dict = torch.optim.lr_scheduler.SequentialLR.state_dict
    _lrfast_torch_load_state_dict = torch.optim.lr_scheduler.SequentialLR.load_state_dict
    get_last_lr = torch.optim.lr_scheduler.SequentialLR.get_last_lr

    @property
    def schedules(self) -> list[Schedule]:
        """Each group's LR while nothing else writes it: the children's schedules joined at
        the milestones (each child counting from its own), as :func:`lrfast.schedules.join`."""
        starts = [0, *self._milestones]
        # a torch child has no closed form: its AttributeError says so (_lrfast_composite_program)
        per_child: list[list[Schedule]] = [getattr(s, "schedules") for s in self._schedulers]  # noqa: B009
        out = []
        for g in range(len(self.optimizer.param_groups)):
            parts: list[Schedule] = []
            bounds: list[int] = []
            for j, child in enumerate(per_child):
                if j + 1 < len(starts) and starts[j + 1] <= starts[j]:
                    continue  # an empty segment (milestone 0, or a repeated milestone)
                if parts:
                    bounds.append(starts[j])
                parts.append(child[g])
            out.append(S.join(parts, bounds) if len(parts) > 1 else parts[0])
        return out



class ChainedScheduler(_CompositeMixin, LRScheduler, torch.optim.lr_scheduler.ChainedScheduler):
    r"""Steps several schedulers together, in order (torch's ``ChainedScheduler``): each
    applies its step to the LR the previous one left, as in torch.

    >>> import torch
    >>> from lrfast.lr_scheduler import ConstantLR, ExponentialLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=2), ExponentialLR(opt, gamma=0.5)])
    >>> [s.get_last_lr()[0]] + [(opt.step(), s.step(), s.get_last_lr()[0])[2] for _ in range(3)]
    [0.5, 0.25, 0.25, 0.125]
    """

    def __init__(self, schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler],
                 optimizer: torch.optim.Optimizer | None = None) -> None:
        torch.optim.lr_scheduler.ChainedScheduler.__init__(self, schedulers, optimizer)
        self._lrfast_bind()

    def _lrfast_chained_step(self) -> None:
        """torch's ChainedScheduler.step: each scheduler steps in turn; the LRs are the groups'
        as the last one left them (read from an lrfast child's own record: no pass over the groups)."""
        for scheduler in self._schedulers:
            scheduler.step()
        last = self._schedulers[-1]
        if isinstance(last, LRScheduler) and last._last_lr is last._lrfast_runtime().given:
            self._last_lr = list(last._last_lr)
        else:
            self._last_lr = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
                             for g in last.optimizer.param_groups]

    step = _stepping(_lrfast_chained_step)

    @property  # never assigned: torch's ChainedScheduler has no last_epoch of its own
    def last_epoch(self) -> int:  # type: ignore[override]  # its schedulers count
        return self._schedulers[0].last_epoch
    state_dict = torch.optim.lr_scheduler.ChainedScheduler.state_dict
    _lrfast_torch_load_state_dict = torch.optim.lr_scheduler.ChainedScheduler.load_state_dict
    get_last_lr = torch.optim.lr_scheduler.ChainedScheduler.get_last_lr

    @property
    def schedules(self) -> list[Schedule]:
        """Each group's LR while nothing else writes it, for multiplicative children: the
        first child's schedule times the others' factors (:func:`lrfast.schedules.chain`)."""
        # a torch child has no closed form: its AttributeError says so (_lrfast_composite_program)
        per_child: list[list[Schedule]] = [getattr(s, "schedules") for s in self._schedulers]  # noqa: B009
        out = []
        for g, base in enumerate(self._schedulers[0].base_lrs):
            base = host_float(base, sync=True)
            if base == 0.0:
                out.append(S.constant(0.0))
                continue
            factors = [per_child[0][g]] + [c[g] * (1.0 / base) for c in per_child[1:]]
            out.append(S.chain(*factors) if len(factors) > 1 else factors[0])
        return out

