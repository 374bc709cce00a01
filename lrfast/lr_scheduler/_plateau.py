"""ReduceLROnPlateau: torch's decisions, from a host metric or, on the device, from a CUDA one.

Three ways in, one rule (csrc/include/lrfast/plateau.h, NOTE [plateau state]):

- a float or CPU metric, no ``schedule``: torch's own Python code (this is torch's class,
  subclassed), with a tensor ``lr`` updated in place, never replaced by a float;
- a CUDA metric on the optimizer's device: one kernel launch (csrc/cuda/plateau.cu) reads
  the metric, decides and writes the LRs; the state lives in device memory, the host
  never waits (NOTE [plateau mirror]);
- ``schedule=...``: the plateau's reductions compose with another schedule,
  ``lr(t) = max(min_lr, schedule(t) * f)`` (docs/schedulers.md, "ReduceLROnPlateau on a
  schedule"); host metrics run the C++ rule through ``_C.plateau_step_host``.

NOTE [plateau mirror] Once a CUDA metric has been seen, the device holds the truth:
``best``, ``num_bad_epochs``, ``cooldown_counter``, the per-group LRs (and factors). The
host attributes of those names are properties that refresh themselves from the device
when read -- one documented sync per read after a step, none when nothing changed since --
as do ``get_last_lr()`` (except for groups whose ``lr`` is a tensor on that device: those
are cloned on the device, no sync) and ``state_dict()``. A group whose ``lr`` is a float
(or a CPU tensor) cannot be written without reading the device: the step stages the new
values into pinned memory without waiting, and an optimizer step pre-hook writes them into
the groups just before ``optimizer.step()`` reads them -- that is the one sync per step
such groups cost (tensor LRs cost none). A float metric after CUDA ones brings the state
back to the host (one sync) and continues there; the next CUDA metric uploads it again.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from .. import _C
from .. import _layout as L
from .._backend import device_api
from .._compile import attach
from .._scheduling_protocol import bind_scheduler, host_float
from ..schedules import Packed, Schedule, Segment, chain, pack_many
from ._base import LRScheduler, _Writer, optimizer_device

__all__ = ["ReduceLROnPlateau"]

_PLATEAU = _C.layout()["plateau"]
_STATE = _PLATEAU["state_size"]
_MIRRORED = ("best", "num_bad_epochs", "cooldown_counter", "_last_lr")
_EPOCH_WARNING = torch.optim.lr_scheduler.EPOCH_DEPRECATION_WARNING
_MISSING = object()


def _slot(value: float) -> Schedule:
    """One live table entry (kind PLATEAU) holding ``value``."""
    return Schedule([Segment(L.Kind.PLATEAU, 0, 0, (0.0,), (float(value),))], 1.0, f"plateau({value!r})")


def _slots_of(descriptors: np.ndarray) -> np.ndarray:
    """The table offset of each descriptor's PLATEAU slot (plateau::slot_of)."""
    out = np.empty(descriptors.shape[0], dtype=np.int64)
    for g, d in enumerate(descriptors):
        for s in range(int(d[L.SLOT_NUM_SEGMENTS])):
            o = L.HEADER_SIZE + s * L.SEGMENT_SIZE
            if int(d[o + L.SLOT_KIND]) == L.Kind.PLATEAU:
                out[g] = int(d[o + L.SLOT_PARAMS])
                break
    return out


class _HostProgram:
    """Descriptors and a writable table whose slots hold each group's LR (plain) or factor
    (composed), as NOTE [plateau state] lays them out."""

    def __init__(self, schedules: list[Schedule], min_lrs: list[float]) -> None:
        packed = pack_many(schedules)
        self.descriptors = packed.descriptors
        self.table = packed.table.copy()  # slots rewritten by the host rule
        self.min_lrs = np.array([float(v) for v in min_lrs], dtype=np.float64)
        _C.validate_plateau(self.descriptors, self.table.shape[0], self.min_lrs.shape[0])
        self.descriptors.setflags(write=False)
        self.slots = _slots_of(self.descriptors)
        self.lrs = np.empty(len(schedules))
        self.writer: _Writer | None = None


class _DeviceProgram:
    """The device copy of a host program, the decision state and the kernel's targets
    (NOTE [plateau state]); the table here is the live one."""

    def __init__(self, scheduler: ReduceLROnPlateau, host: _HostProgram, device: torch.device,
                 out: torch.Tensor) -> None:
        from .._backend.cuda import DTYPE_CODES, upload

        groups = scheduler.optimizer.param_groups
        self.device = device
        self.n_groups = len(groups)
        self._keep: list = []
        self.descriptors = upload(host.descriptors, device, self._keep)
        self.table = upload(host.table, device, self._keep)
        self.slot_index = upload(host.slots, device, self._keep)
        self.min_lrs = upload(host.min_lrs, device, self._keep)
        self.min_lrs_key = host.min_lrs.tolist()
        self.state = torch.zeros(_STATE, dtype=torch.float64, device=device)
        self.out = out
        addresses = np.zeros(self.n_groups, dtype=np.uint64)
        dtypes = np.full(self.n_groups, DTYPE_CODES[torch.float64], dtype=np.int32)
        self.tensors: list[torch.Tensor | None] = []
        self.host_groups: list[int] = []  # groups the kernel cannot write: the mirror does
        for g, group in enumerate(groups):
            lr = group["lr"]
            if isinstance(lr, torch.Tensor) and lr.device == device and lr.numel() == 1 and lr.dtype in DTYPE_CODES:
                addresses[g] = lr.data_ptr()
                dtypes[g] = DTYPE_CODES[lr.dtype]
                self.tensors.append(lr)
            else:
                self.tensors.append(None)
                self.host_groups.append(g)
        self.targets = upload(addresses.view(np.int64), device, self._keep)
        self.dtypes = upload(dtypes, device, self._keep)
        self.pinned = device_api.active().pinned_empty(_STATE + 2 * self.n_groups, torch.float64)
        self.event = device_api.active().event()
        self.staged = -1  # the device step whose values the pinned buffer is receiving

    def still_valid(self, groups: list[dict], min_lrs: list) -> bool:
        if len(groups) != self.n_groups or list(map(float, min_lrs)) != self.min_lrs_key:
            return False
        for group, tensor in zip(groups, self.tensors):
            lr = group["lr"]
            if tensor is None:
                if isinstance(lr, torch.Tensor) and lr.device == self.device:
                    return False
            elif lr is not tensor or lr.data_ptr() != tensor.data_ptr():
                return False
        return True

    def stage(self, step_id: int) -> None:
        """Start copying state, LRs and slots into pinned memory; nothing waits."""
        n = self.n_groups
        self.pinned[:_STATE].copy_(self.state, non_blocking=True)
        self.pinned[_STATE:_STATE + n].copy_(self.out, non_blocking=True)
        self.pinned[_STATE + n:].copy_(self.table.index_select(0, self.slot_index), non_blocking=True)
        self.event.record(device_api.active().current_stream(self.device))
        self.staged = step_id

    def read(self, step_id: int) -> np.ndarray:
        """The staged values of ``step_id``: waits for the copies (the one sync)."""
        if self.staged != step_id:
            self.stage(step_id)
        self.event.synchronize()
        return self.pinned.numpy().copy()


def _metric_code(metric: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    from .._backend.cuda import DTYPE_CODES

    if metric.is_complex():
        return None  # torch's float() decides what that means
    if metric.dtype not in DTYPE_CODES:
        metric = metric.to(torch.float64)  # ints and bools: a device conversion, no sync
    return metric, DTYPE_CODES[metric.dtype]


def _mirrored(name: str) -> property:
    key = "_lrfast_" + name.lstrip("_")

    # Any: best is a float, the counters ints, _last_lr a list (one property factory for all four)
    def get(self: ReduceLROnPlateau) -> Any:
        if self.__dict__.get("_lrfast_where") == "device":
            if name == "_last_lr":
                return self._lrfast_device_last_lr()
            self._lrfast_pull()
        return self.__dict__[key]

    def set(self: ReduceLROnPlateau, value: Any) -> None:
        if self.__dict__.get("_lrfast_where") == "device":
            self._lrfast_take_host()
        self.__dict__[key] = value

    return property(get, set, doc=f"torch's ``{name}`` (NOTE [plateau mirror]: read from the device when it decides)")


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Reduce each group's LR by ``factor`` once the metric has stopped improving for
    ``patience`` steps (torch's ``ReduceLROnPlateau``; same arguments, same decisions).

    ``step(metric)`` with a CUDA tensor decides on the device, without a host sync (see
    NOTE [plateau mirror] in this module for what reads the device back). With
    ``schedule=`` (keyword only) the reductions compose with another schedule:
    ``lr(t) = max(min_lr, schedule(t) * f)``, ``f`` shrinking by ``factor`` at each
    reduction; ``schedule`` is an lrfast ``Schedule`` (a factor of each group's initial
    LR), a list of one per group, or an lrfast scheduler on the same optimizer (whose
    per-group LRs are used, its counters advanced along). ``step()`` without a metric then
    advances the schedule alone (docs/schedulers.md).

    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = ReduceLROnPlateau(opt, patience=1)
    >>> for loss in [1.0, 1.0, 1.0]: s.step(loss)
    >>> s.get_last_lr()
    [0.1]
    """

    best = _mirrored("best")
    num_bad_epochs = _mirrored("num_bad_epochs")
    cooldown_counter = _mirrored("cooldown_counter")
    _last_lr = _mirrored("_last_lr")

    def __init__(self, optimizer: torch.optim.Optimizer, mode: Literal["min", "max"] = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: Literal["rel", "abs"] = "rel",
                 cooldown: int = 0, min_lr: list[float] | float = 0, eps: float = 1e-8, *,
                 schedule: Schedule | Sequence[Schedule] | LRScheduler | None = None) -> None:
        self.__dict__["_lrfast_where"] = "host"
        self._lrfast_dev: _DeviceProgram | None = None
        self._lrfast_host_program: _HostProgram | None = None
        self._lrfast_lr_buffer: torch.Tensor | None = None
        self._lrfast_steps_on_device = 0  # device steps so far (NOTE [plateau mirror])
        self._lrfast_pulled = 0  # the device step the host mirror reflects
        self._lrfast_known_lrs: dict[int, Any] = {}  # what float groups held when last written
        self._lrfast_hook: torch.utils.hooks.RemovableHandle | None = None
        self._lrfast_schedules: list[Schedule] | None = None
        self._lrfast_inner: LRScheduler | None = None
        self._lrfast_factors: list[float] = []
        composed = self._lrfast_check_schedule(optimizer, schedule)
        super().__init__(optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
                         threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)
        if composed is not None:
            self._lrfast_compose(*composed)

    # -- composition -----------------------------------------------------------------------
    @staticmethod
    def _lrfast_check_schedule(
            optimizer: torch.optim.Optimizer, schedule: Schedule | Sequence[Schedule] | LRScheduler | None,
    ) -> tuple[Literal["scheduler"], LRScheduler] | tuple[Literal["factors"], list[Schedule]] | None:
        """Checks ``schedule`` before anything changes; returns what _lrfast_compose needs."""
        if schedule is None:
            return None
        cls = "ReduceLROnPlateau"
        n = len(getattr(optimizer, "param_groups", []))
        if isinstance(schedule, LRScheduler):
            if schedule.optimizer is not optimizer:
                raise ValueError(f"{cls}: schedule= is a scheduler of another optimizer")
            if schedule._lrfast_momentum_schedules() is not None:
                raise ValueError(f"{cls}: schedule={type(schedule).__name__} also cycles momentum, which this "
                                 "composition would not write; build it with cycle_momentum=False")
            return ("scheduler", schedule)
        if isinstance(schedule, Schedule):
            factors = [schedule] * n
        elif isinstance(schedule, Sequence) and schedule and all(isinstance(s, Schedule) for s in schedule):
            factors = list(schedule)
            if len(factors) != n:
                raise ValueError(f"{cls}: expected {n} schedules (one per param group), got {len(factors)}")
        else:
            raise TypeError(f"{cls}: schedule must be an lrfast Schedule, a list of one per param group, or an "
                            f"lrfast scheduler on the same optimizer, got {schedule!r}")
        for s in factors:
            if s.floor != 0.0:
                raise ValueError(f"{cls}: schedule {s!r} has a floor; min_lr is the floor of the composition")
            if len(s.segments) >= L.MAX_SEGMENTS:
                raise ValueError(f"{cls}: schedule {s!r} uses all {L.MAX_SEGMENTS} segments of a descriptor; the "
                                 "plateau factor needs one more")
        return ("factors", factors)

    def _lrfast_compose(self, kind: str, what: Any) -> None:
        groups = self.optimizer.param_groups
        if kind == "scheduler":
            self._lrfast_inner = what
            what._lrfast_owner = self  # this scheduler writes for it; it only counts
            self.last_epoch = what.last_epoch
        else:
            bases = []
            for group in groups:
                initial = group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"]
                group.setdefault("initial_lr", initial)
                bases.append(host_float(group["initial_lr"], sync=True))
            self._lrfast_schedules = [base * s for base, s in zip(bases, what)]
        self._lrfast_factors = [1.0] * len(groups)
        self._lrfast_apply_host(None)
        attach(self)  # its compiled-step handle (NOTE [compiled steps])
        bind_scheduler(self)  # replaces an inner scheduler's binding: this one writes the groups

    @property
    def composed(self) -> bool:
        """Whether the reductions compose with a schedule (``schedule=`` was given)."""
        return bool(self._lrfast_factors)

    @property
    def lr_factors(self) -> list[float]:
        """Composed: each group's plateau factor f (1.0 until a reduction); plain: []."""
        if self.__dict__["_lrfast_where"] == "device":
            self._lrfast_pull()
        return list(self._lrfast_factors)

    def _lrfast_base_schedules(self) -> list[Schedule]:
        inner = self._lrfast_inner
        if inner is not None:
            return inner.schedules
        schedules = self._lrfast_schedules
        assert schedules is not None, "composed with factors: set by _lrfast_compose"
        return list(schedules)

    def _lrfast_program(self, device: torch.device | None = None) -> _HostProgram:
        """The host program from the host state (composed: factors; plain: the groups' LRs,
        but for tensors on ``device``, which the kernel reads itself: no host read)."""
        program = self._lrfast_host_program
        n = len(self.optimizer.param_groups)
        if program is not None and program.lrs.shape[0] == n and program.min_lrs.tolist() == list(
                map(float, self.min_lrs)):
            return program
        if self.composed:
            if len(self._lrfast_factors) != n:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {n} param groups but the schedule was "
                                   f"built for {len(self._lrfast_factors)}; build a new scheduler")
            self._lrfast_check_min_lrs()
            schedules = [chain(s, _slot(f)).with_floor(float(m))
                         for s, f, m in zip(self._lrfast_base_schedules(), self._lrfast_factors, self.min_lrs)]
        else:
            self._lrfast_check_min_lrs()
            schedules = [_slot(0.0 if isinstance(g["lr"], torch.Tensor) and g["lr"].device == device
                               else _host_value(g["lr"])) for g in self.optimizer.param_groups]
        program = self._lrfast_host_program = _HostProgram(schedules, self.min_lrs)
        _C.evaluate_at_trusted(program.descriptors, program.table, float(self.last_epoch), program.lrs)
        return program

    def _lrfast_check_min_lrs(self) -> None:
        """torch's rule for groups added after construction (applied here at the step, not
        only at the next reduction: the device cannot say in advance whether it reduces)."""
        n = len(self.optimizer.param_groups)
        if len(self.min_lrs) != n:
            if self.default_min_lr is None:
                raise RuntimeError(
                    "The number of param groups in the `optimizer` "
                    f"({n}) differs from when `ReduceLROnPlateau` was "
                    f"initialized ({len(self.min_lrs)}), usually due to a new param group being added to the "
                    "optimizer. Please modify the `min_lrs` field to match the length of the `optimizer` "
                    "param groups."
                )
            self.min_lrs = [self.default_min_lr] * n

    def _lrfast_rule(self) -> dict[str, Any]:
        return dict(factor=float(self.factor), threshold=float(self.threshold), eps=float(self.eps),
                    patience=float(self.patience), cooldown=float(self.cooldown), mode=_PLATEAU[self.mode],
                    threshold_mode=_PLATEAU[self.threshold_mode], composed=self.composed)

    def _lrfast_step_inner(self) -> None:
        """Steps an inner scheduler (its own counters, baking and bookkeeping); its writes
        are overwritten by this scheduler's, in stream order on the device."""
        inner = self._lrfast_inner
        if inner is None:
            return
        before = inner._lrfast_program_cache
        inner.step()
        if inner._lrfast_program_cache is not before:  # rebuilt: its schedules may have changed
            self._lrfast_host_program = None  # the factors carry over
            if self.__dict__["_lrfast_where"] == "device":
                self._lrfast_rebuild_device()

    # -- stepping -------------------------------------------------------------------------
    def step(self, metrics: Any = _MISSING, epoch: int | None = None) -> None:  # type: ignore[override]
        """One step: a decision on ``metrics``. Composed, ``step()`` alone advances the schedule."""
        if metrics is _MISSING and not self.composed:
            raise TypeError("ReduceLROnPlateau.step() missing 1 required positional argument: 'metrics'")
        if epoch is not None and self._lrfast_inner is not None:
            raise TypeError("ReduceLROnPlateau.step: epoch= is not supported with schedule=<a scheduler>")
        device_metric = None if metrics is _MISSING else self._lrfast_device_metric(metrics)
        if device_metric is not None or (metrics is _MISSING and self.__dict__["_lrfast_where"] == "device"):
            self._lrfast_step_device(device_metric, epoch)
            return
        self._lrfast_take_host()  # a host metric after device ones: the host decides again
        if self.composed:
            current = None if metrics is _MISSING else float(metrics)
            if epoch is None:
                epoch = self.last_epoch + 1
            else:
                warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=2)
            self.last_epoch = epoch
            self._lrfast_step_inner()
            self._lrfast_apply_host(current)
        else:
            super().step(metrics, epoch)
            self._lrfast_write_lr_tensor()

    def _lrfast_device_metric(self, metrics) -> tuple[torch.Tensor, int] | None:
        """(metric, dtype code) when this step runs on the device (NOTE [plateau mirror])."""
        if not (isinstance(metrics, torch.Tensor) and device_api.is_device(metrics.device)):
            return None
        if metrics.numel() != 1:
            raise RuntimeError(f"a Tensor with {metrics.numel()} elements cannot be converted to Scalar")
        if optimizer_device(self.optimizer) != metrics.device or not device_api.kernels().has_cuda():
            return None  # not where the LRs live (or no kernels): torch's host path, float(metric)
        return _metric_code(metrics.detach())

    def _lrfast_step_device(self, metric: tuple[torch.Tensor, int] | None, epoch: int | None) -> None:
        api = device_api.active()
        if api.is_capturing():
            # the step number goes to the kernel by value and the mirror is staged into pinned
            # memory: a graph would replay the captured step forever
            raise RuntimeError(
                "ReduceLROnPlateau.step: cannot be captured in a CUDA graph (the step would be frozen into the "
                "graph); call scheduler.step(metric) outside the captured region, after graph.replay()")
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=3)
        device = optimizer_device(self.optimizer)
        program = self._lrfast_device_program(device)
        self.last_epoch = epoch
        self._lrfast_step_inner()
        program = self._lrfast_live()
        rule = self._lrfast_rule()
        value, code = metric if metric is not None else (None, 0)
        api.kernels().cuda_plateau_step(
            0 if value is None else value.data_ptr(), code, program.state.data_ptr(), program.descriptors.data_ptr(),
            program.table.data_ptr(), program.min_lrs.data_ptr(), program.n_groups, float(epoch),
            program.targets.data_ptr(), program.dtypes.data_ptr(), program.out.data_ptr(),
            stream=api.current_stream(device).cuda_stream, device=api.device_index(device), **rule)
        self._lrfast_steps_on_device += 1
        if program.host_groups:
            program.stage(self._lrfast_steps_on_device)
            self._lrfast_ensure_hook()

    def _lrfast_device_program(self, device: torch.device) -> _DeviceProgram:
        """The device program, built (state uploaded) on the way from the host, rebuilt
        (state carried on the device) when the groups' tensors or min_lrs changed."""
        program = self._lrfast_dev
        groups = self.optimizer.param_groups
        if self.__dict__["_lrfast_where"] == "host" or program is None or program.device != device:
            self._lrfast_host_program = None  # from the current host state
            host = self._lrfast_program(device)
            program = self._lrfast_dev = _DeviceProgram(self, host, device, self._lrfast_out(device))
            from .._backend.cuda import upload

            d = self.__dict__
            state = [d["_lrfast_best"], d["_lrfast_num_bad_epochs"], d["_lrfast_cooldown_counter"]]
            program.state = upload(np.array(state, dtype=np.float64), device, program._keep)
            self._lrfast_known_lrs = {g: groups[g]["lr"] for g in program.host_groups}
            self.__dict__["_lrfast_where"] = "device"
            self._lrfast_pulled = self._lrfast_steps_on_device
            return program
        if len(groups) != program.n_groups:
            self._lrfast_take_host()  # groups added: torch's min_lr rule on the host, then back
            return self._lrfast_device_program(device)
        if not program.still_valid(groups, self.min_lrs):
            self._lrfast_host_program = None
            self._lrfast_rebuild_device()
            program = self._lrfast_live()
        if not self.composed:
            self._lrfast_upload_changed_lrs(program)
        return program

    def _lrfast_rebuild_device(self) -> None:
        """A new device program with the old one's state and slots, copied on the device."""
        old = self._lrfast_live()
        host = self._lrfast_program(old.device)
        new = _DeviceProgram(self, host, old.device, self._lrfast_out(old.device))
        new.state.copy_(old.state)
        new.table.index_copy_(0, new.slot_index, old.table.index_select(0, old.slot_index))
        self._lrfast_dev = new
        self._lrfast_known_lrs = {g: self.optimizer.param_groups[g]["lr"] for g in new.host_groups}

    def _lrfast_live(self) -> _DeviceProgram:
        """The device program: there whenever the device decides (NOTE [plateau mirror])."""
        program = self._lrfast_dev
        assert program is not None, "ReduceLROnPlateau: the device decides but holds no program"
        return program

    def _lrfast_upload_changed_lrs(self, program: _DeviceProgram) -> None:
        """Plain rule: a float group's lr set by hand since the device last wrote it is what
        the next reduction starts from, as in torch."""
        groups = self.optimizer.param_groups
        known = self._lrfast_known_lrs
        for g in program.host_groups:
            lr = groups[g]["lr"]
            if lr is not known.get(g):
                from .._backend.cuda import upload

                # the caching host allocator keeps the pinned source until the copy ran
                value = upload(np.array([_host_value(lr)]), program.device, [])
                program.table.index_copy_(0, program.slot_index[g:g + 1], value)
                known[g] = lr

    def _lrfast_out(self, device: torch.device) -> torch.Tensor:
        buffer = self._lrfast_lr_buffer
        n = len(self.optimizer.param_groups)
        if buffer is None or buffer.shape[0] != n or buffer.device != device:
            buffer = self._lrfast_lr_buffer = torch.zeros(n, dtype=torch.float64, device=device)
        return buffer

    def _lrfast_ensure_hook(self) -> None:
        if self._lrfast_hook is not None:
            return
        ref = weakref.ref(self)

        def refresh_groups(optimizer, args, kwargs):
            scheduler = ref()
            if scheduler is not None and scheduler.__dict__.get("_lrfast_where") == "device":
                scheduler._lrfast_pull()
            return None

        hook = self._lrfast_hook = self.optimizer.register_step_pre_hook(refresh_groups)
        weakref.finalize(self, hook.remove)

    # -- the host side of the mirror ---------------------------------------------------------
    def _lrfast_pull(self) -> None:
        """Refresh the host mirror from the device: the one sync (NOTE [plateau mirror])."""
        if self.__dict__["_lrfast_where"] != "device" or self._lrfast_pulled == self._lrfast_steps_on_device:
            return
        program = self._lrfast_live()
        values = program.read(self._lrfast_steps_on_device)
        n = program.n_groups
        state, lrs, slots = values[:_STATE], values[_STATE:_STATE + n], values[_STATE + n:]
        d = self.__dict__
        d["_lrfast_best"] = float(state[_PLATEAU["best"]])
        d["_lrfast_num_bad_epochs"] = int(state[_PLATEAU["num_bad_epochs"]])
        counter = float(state[_PLATEAU["cooldown_counter"]])
        d["_lrfast_cooldown_counter"] = int(counter) if isinstance(self.cooldown, int) and counter.is_integer() \
            else counter
        if self.composed:
            self._lrfast_factors = slots.tolist()
        groups = self.optimizer.param_groups
        known = self._lrfast_known_lrs
        for g in program.host_groups:
            value = float(lrs[g])
            lr = groups[g]["lr"]
            if isinstance(lr, torch.Tensor):
                lr.fill_(value)
            elif not self.composed and lr is not known.get(g):
                continue  # set by hand since: it stands, and the next step uploads it (torch's rule)
            elif lr != value or self.composed:
                groups[g]["lr"] = value
            known[g] = groups[g]["lr"]
        d["_lrfast_lrs_pulled"] = lrs.tolist()
        self._lrfast_pulled = self._lrfast_steps_on_device

    def _lrfast_take_host(self) -> None:
        """Bring the state back to the host (one sync): the host decides from here on."""
        if self.__dict__["_lrfast_where"] != "device":
            return
        self._lrfast_pull()
        d = self.__dict__
        groups = self.optimizer.param_groups
        lrs = d.get("_lrfast_lrs_pulled", [])
        d["_lrfast_last_lr"] = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else lrs[i]
                                for i, g in enumerate(groups)]
        d["_lrfast_where"] = "host"
        self._lrfast_host_program = None

    def _lrfast_device_last_lr(self) -> list[float | torch.Tensor]:
        """get_last_lr() while the device decides: tensors on that device are cloned there
        (no sync); other groups read the mirror."""
        groups = self.optimizer.param_groups
        program = self._lrfast_live()
        if program.host_groups:
            self._lrfast_pull()
        return [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"] for g in groups]

    # -- the host rule with a schedule ------------------------------------------------------------
    def _lrfast_apply_host(self, metric: float | None) -> None:
        """Composed, on the host: the C++ rule (plateau.h) decides, then the groups are written."""
        program = self._lrfast_program()
        groups = self.optimizer.param_groups
        d = self.__dict__
        state = np.array([d["_lrfast_best"], d["_lrfast_num_bad_epochs"], d["_lrfast_cooldown_counter"]],
                         dtype=np.float64)
        reduced = _C.plateau_step_host(state, program.table, program.descriptors, program.min_lrs, metric,
                                       float(self.last_epoch), lrs=program.lrs, **self._lrfast_rule())
        if metric is not None:
            d["_lrfast_best"] = float(state[0])
            d["_lrfast_num_bad_epochs"] = int(state[1])
            counter = float(state[2])
            d["_lrfast_cooldown_counter"] = int(counter) if isinstance(self.cooldown, int) and counter.is_integer() \
                else counter
        if reduced:
            self._lrfast_factors = program.table[program.slots].tolist()
        writer = program.writer
        if reduced or writer is None or not writer.still_valid(groups) or writer.out is not self._lrfast_lr_buffer:
            writer = program.writer = _Writer(groups, "lr", Packed(program.descriptors, program.table.copy()),
                                              out=self._lrfast_lr_buffer_if_any())
        values = program.lrs.tolist()
        writer.write(groups, values, float(self.last_epoch))
        d["_lrfast_last_lr"] = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else values[i]
                                for i, g in enumerate(groups)]

    def _lrfast_lr_buffer_if_any(self) -> torch.Tensor | None:
        buffer = self._lrfast_lr_buffer
        return buffer if buffer is not None and buffer.shape[0] == len(self.optimizer.param_groups) else None

    def _lrfast_write_lr_tensor(self) -> None:
        """Plain host rule: lr_tensor follows the groups (no sync: device values are copied
        on the device, floats uploaded from pinned memory when they changed)."""
        buffer = self._lrfast_lr_buffer_if_any()
        if buffer is None:
            return
        values = [g["lr"] for g in self.optimizer.param_groups]
        if buffer.device.type == "cpu":
            buffer.copy_(torch.tensor([_host_value(v) for v in values], dtype=torch.float64))
        elif any(isinstance(v, torch.Tensor) and v.device.type == "cuda" for v in values):
            parts = [v.detach().reshape(()).to(buffer.device, torch.float64) if isinstance(v, torch.Tensor)
                     and v.device.type == "cuda" else torch.full((), _host_value(v), dtype=torch.float64,
                                                                  device=buffer.device) for v in values]
            torch.stack(parts, out=buffer)
        else:
            floats = [_host_value(v) for v in values]
            if floats != self.__dict__.get("_lrfast_uploaded"):
                buffer.copy_(torch.tensor(floats, dtype=torch.float64).pin_memory(), non_blocking=True)
                self.__dict__["_lrfast_uploaded"] = floats

    # -- torch's API ----------------------------------------------------------------------------
    @property
    def lr_tensor(self) -> torch.Tensor:
        """Every group's current LR as a float64 (G,) tensor on the optimizer's device
        (NOTE [lr tensor] in _base.py); written by the plateau kernel itself when the
        device decides, so reading it never syncs."""
        n = len(self.optimizer.param_groups)
        buffer = self._lrfast_lr_buffer
        if buffer is not None and buffer.shape[0] == n:
            return buffer
        if self.__dict__["_lrfast_where"] == "device":
            self._lrfast_take_host()  # groups changed under a device state: start again from the host
        self._lrfast_lr_buffer = torch.zeros(n, dtype=torch.float64, device=optimizer_device(self.optimizer))
        self.__dict__.pop("_lrfast_uploaded", None)
        self._lrfast_dev = None
        if self.composed:
            program = self._lrfast_program()
            program.writer = None
            _Writer(self.optimizer.param_groups, "lr", Packed(program.descriptors, program.table.copy()),
                    out=self._lrfast_lr_buffer).write_out(program.lrs.tolist(), float(self.last_epoch))
        else:
            self._lrfast_write_lr_tensor()
        return self._lrfast_lr_buffer

    @property
    def current_step(self) -> float:
        """NOTE [scheduler binding]: the schedule step of the groups' LRs (composed)."""
        return float(self.last_epoch)

    def packed_lr(self) -> None:
        """NOTE [scheduler binding]: None -- this scheduler writes the groups' ``lr`` itself
        (the device decides them), so a bound lrfast optimizer reads the groups; see
        :meth:`live_lr_program` for evaluating them in a kernel instead."""
        return None

    def packed_momentum(self) -> None:
        return None

    def lrs_written(self) -> None:
        """Unknown: ``packed_lr()`` is None, the optimizer reads the groups this scheduler writes."""
        return None

    def graph_capture_blocker(self) -> None:
        """None: with ``packed_lr()`` None the optimizer refuses a capture already."""
        return None

    def live_lr_program(self) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """(descriptors (G, DESCRIPTOR_SIZE), live table, step) on the device while it decides,
        else None: evaluating descriptor g against this very table at ``step`` (lrfast::evaluate)
        gives group g's LR, reductions included, with no host involvement (NOTE [plateau
        state]). The table is rewritten in place by each step(metric); never copy it."""
        if self.__dict__["_lrfast_where"] != "device":
            return None
        program = self._lrfast_live()
        return program.descriptors, program.table, float(self.last_epoch)

    def _reduce_lr(self, epoch: int) -> None:
        self._lrfast_check_min_lrs()
        for i, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(new_lr)
                else:
                    group["lr"] = new_lr

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict (reads the device back: one sync when it decides); composed,
        also ``lr_factors``."""
        self._lrfast_pull()
        state = {k: v for k, v in self.__dict__.items() if k != "optimizer" and not k.startswith("_lrfast_")}
        for name in _MIRRORED:
            state[name] = getattr(self, name)
        if self.composed:
            state["lr_factors"] = list(self._lrfast_factors)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load (a torch state dict loads here, and this one into torch's class)."""
        self._lrfast_take_host()
        state = {k: v for k, v in state_dict.items() if not k.startswith("_lrfast_")}
        mirrored = {k: state.pop(k) for k in _MIRRORED if k in state}
        factors = state.pop("lr_factors", None)
        self.__dict__.update(state)
        for k, v in mirrored.items():
            setattr(self, k, v)
        if factors is not None and self.composed:
            self._lrfast_factors = [float(f) for f in factors]
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)
        self._lrfast_host_program = None
        self._lrfast_dev = None


def _host_value(value: float | torch.Tensor) -> float:
    """A group's LR as a float: a CUDA tensor off the state's device costs a read."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().reshape(-1)[0].item()) if value.device.type == "cuda" else float(value)
    return float(value)


def _baked(scheduler: object) -> tuple[Any, ...]:
    """What changes when a baked scheduler (or a composite's child) extends its table."""
    children = getattr(scheduler, "_schedulers", ())
    return (getattr(scheduler, "_lrfast_baked", None), *(getattr(c, "_lrfast_baked", None) for c in children))

