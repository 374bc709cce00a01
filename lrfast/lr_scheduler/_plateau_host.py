"""ReduceLROnPlateau's host engine: the program of NOTE [plateau state], and the rule on the host.

The engine keeps one :class:`HostProgram` -- descriptors and a writable table whose slots
hold each group's LR (plain) or factor (composed) -- built from the scheduler's host state
and dropped (:meth:`HostEngine.forget`) whenever that state stops describing it. Composed,
:meth:`HostEngine.step_composed` runs the C++ rule (``plateau.h``, through
``_C.plateau_step_host``) on it and writes the groups; plain, torch's own Python decides
(the public class) and :meth:`HostEngine.write_lr_tensor` only keeps ``lr_tensor`` current.
The device engine (``_plateau_device.py``) starts from this program too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from .. import _C
from .. import _descriptor as descriptor_layout
from .._scheduling_protocol import host_float
from ..schedules import Packed, Schedule, chain, pack_many
from ..schedules._core import single
from ._base import _Writer

__all__ = ["PLATEAU", "STATE_SIZE", "HostProgram", "HostEngine", "PlateauOwner", "last_lrs"]

PLATEAU = descriptor_layout.PLATEAU_LAYOUT  # plateau.h's codes and state slots
STATE_SIZE = PLATEAU["state_size"]


class PlateauOwner(Protocol):
    """What both engines read and write on the scheduler that owns them (the public
    ``ReduceLROnPlateau``): its torch attributes, its host state and its checks. The engines
    take the scheduler as this interface, so they never import the public class."""

    optimizer: torch.optim.Optimizer
    min_lrs: list[float]
    last_epoch: int
    _lrfast_factors: list[float]
    _lrfast_last_lr: list[Any]
    _lrfast_host: HostEngine

    @property
    def composed(self) -> bool: ...
    def _lrfast_base_schedules(self) -> list[Schedule]: ...
    def _lrfast_check_min_lrs(self) -> None: ...
    def _lrfast_rule(self) -> dict[str, Any]: ...
    def _lrfast_state_array(self) -> np.ndarray: ...
    def _lrfast_set_state(self, state: np.ndarray) -> None: ...
    def _lrfast_lr_buffer_if_any(self) -> torch.Tensor | None: ...
    def _lrfast_out(self, device: torch.device) -> torch.Tensor: ...


def _slot(value: float) -> Schedule:
    """One live table entry (kind PLATEAU) holding ``value``."""
    return single(descriptor_layout.plateau_segment(float(value)), f"plateau({value!r})")


def last_lrs(groups: list[dict[str, Any]], values: Sequence[float]) -> list[Any]:
    """What ``get_last_lr()`` holds after a step: a tensor group's LR cloned, a float group's
    new value."""
    return [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else values[i] for i, g in enumerate(groups)]


class HostProgram:
    """Descriptors and a writable table whose slots hold each group's LR (plain) or factor
    (composed), as NOTE [plateau state] lays them out."""

    def __init__(self, schedules: list[Schedule], min_lrs: list[float]) -> None:
        packed = pack_many(schedules)
        self.descriptors = packed.descriptors
        self.table = packed.table.copy()  # slots rewritten by the host rule
        self.min_lrs = np.array([float(v) for v in min_lrs], dtype=np.float64)
        _C.validate_plateau(self.descriptors, self.table.shape[0], self.min_lrs.shape[0])
        self.descriptors.setflags(write=False)
        self.slots = _C.plateau_slots(self.descriptors, self.table.shape[0])
        self.lrs = np.empty(len(schedules))
        self.writer: _Writer | None = None

    def packed(self) -> Packed:
        """A snapshot of the program for a writer (the table as it is now)."""
        return Packed(self.descriptors, self.table.copy())


class HostEngine:
    """The host program of one scheduler, and the host rule's writes (module docstring)."""

    def __init__(self) -> None:
        self.program_cache: HostProgram | None = None
        self.uploaded: list[float] | None = None  # the floats lr_tensor was last given (plain rule)

    def forget(self) -> None:
        """The host state changed under the program (or the device holds the truth): rebuild."""
        self.program_cache = None

    def program(self, scheduler: PlateauOwner, device: torch.device | None = None) -> HostProgram:
        """The program from the host state (composed: factors; plain: the groups' LRs, but for
        tensors on ``device``, which the kernel reads itself: no host read)."""
        program = self.program_cache
        groups = scheduler.optimizer.param_groups
        n = len(groups)
        if program is not None and program.lrs.shape[0] == n and program.min_lrs.tolist() == list(
                map(float, scheduler.min_lrs)):
            return program
        factors = scheduler._lrfast_factors
        if scheduler.composed:
            if len(factors) != n:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {n} param groups but the schedule was "
                                   f"built for {len(factors)}; build a new scheduler")
            scheduler._lrfast_check_min_lrs()
            schedules = [chain(s, _slot(f)).with_floor(float(m))
                         for s, f, m in zip(scheduler._lrfast_base_schedules(), factors, scheduler.min_lrs)]
        else:
            scheduler._lrfast_check_min_lrs()
            schedules = [_slot(0.0 if isinstance(g["lr"], torch.Tensor) and g["lr"].device == device
                               else host_float(g["lr"], sync=True)) for g in groups]
        program = self.program_cache = HostProgram(schedules, scheduler.min_lrs)
        _C.evaluate_at_trusted(program.descriptors, program.table, float(scheduler.last_epoch), program.lrs)
        return program

    def step_composed(self, scheduler: PlateauOwner, metric: float | None) -> None:
        """Composed, on the host: the C++ rule (plateau.h) decides, then the groups are written."""
        program = self.program(scheduler)
        groups = scheduler.optimizer.param_groups
        state = scheduler._lrfast_state_array()
        reduced = _C.plateau_step_host(state, program.table, program.descriptors, program.min_lrs, metric,
                                       float(scheduler.last_epoch), lrs=program.lrs, **scheduler._lrfast_rule())
        if metric is not None:
            scheduler._lrfast_set_state(state)
        if reduced:
            scheduler._lrfast_factors = program.table[program.slots].tolist()
        buffer = scheduler._lrfast_lr_buffer_if_any()
        writer = program.writer
        if reduced or writer is None or not writer.still_valid(groups) or writer.out is not buffer:
            writer = program.writer = _Writer(groups, "lr", program.packed(), out=buffer)
        values = program.lrs.tolist()
        writer.write(groups, values, float(scheduler.last_epoch))
        scheduler._lrfast_last_lr = last_lrs(groups, values)

    def fill_lr_tensor(self, scheduler: PlateauOwner, buffer: torch.Tensor) -> None:
        """A new ``lr_tensor`` buffer: the current values, with no sync."""
        self.uploaded = None
        if scheduler.composed:
            program = self.program(scheduler)
            program.writer = None
            _Writer(scheduler.optimizer.param_groups, "lr", program.packed(), out=buffer).write_out(
                program.lrs.tolist(), float(scheduler.last_epoch))
        else:
            self.write_lr_tensor(scheduler)

    def write_lr_tensor(self, scheduler: PlateauOwner) -> None:
        """Plain rule: lr_tensor follows the groups (no sync: device values are copied on the
        device, floats uploaded from pinned memory when they changed)."""
        buffer = scheduler._lrfast_lr_buffer_if_any()
        if buffer is None:
            return
        values = [g["lr"] for g in scheduler.optimizer.param_groups]
        if buffer.device.type == "cpu":
            buffer.copy_(torch.tensor([host_float(v, sync=True) for v in values], dtype=torch.float64))
        elif any(isinstance(v, torch.Tensor) and v.device.type == "cuda" for v in values):
            parts = [v.detach().reshape(()).to(buffer.device, torch.float64) if isinstance(v, torch.Tensor)
                     and v.device.type == "cuda" else torch.full((), host_float(v, sync=True), dtype=torch.float64,
                                                                  device=buffer.device) for v in values]
            torch.stack(parts, out=buffer)
        else:
            floats = [host_float(v, sync=True) for v in values]
            if floats != self.uploaded:
                buffer.copy_(torch.tensor(floats, dtype=torch.float64).pin_memory(), non_blocking=True)
                self.uploaded = floats
