"""ReduceLROnPlateau: torch's decisions, from a host metric or, on the device, from a CUDA one.

Three ways in, one rule (csrc/include/lrfast/plateau.h, NOTE [plateau state]):

- a float or CPU metric, no ``schedule``: torch's own Python code (this is torch's class,
  subclassed), with a tensor ``lr`` updated in place, never replaced by a float; a Python
  float takes torch's step restated on the host copies (NOTE [plateau host step] in
  ``step``), the same statements without a property call per attribute, compiled
  (``_C.plateau_host_step``) where the class keeps torch's ``_is_better`` and float groups;
- a CUDA metric on the optimizer's device: one kernel launch (csrc/cuda/plateau.cu) reads
  the metric, decides and writes the LRs; the state lives in device memory, the host
  never waits (NOTE [plateau mirror]);
- ``schedule=...``: the plateau's reductions compose with another schedule,
  ``lr(t) = max(min_lr, schedule(t) * f)`` (docs/schedulers.md, "ReduceLROnPlateau on a
  schedule"); host metrics run the C++ rule through ``_C.plateau_step_host``.

This module is torch's public class: arguments, torch's attributes, the choice of engine
and torch's API. The host engine (``_plateau_host.py``: the program of NOTE [plateau
state], the C++ rule on the host) and the device engine (``_plateau_device.py``: the
kernel, the mirror) do the work; ``_lrfast_device`` is the device engine while the device
decides, None while the host does.

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
from .. import _descriptor as descriptor_layout
from .._backend import device_api
from .._compile import attach
from .._scheduling_protocol import bind_scheduler, host_float
from ..schedules import Schedule
from ._base import LRScheduler, call_warning_at_caller, group_lr, optimizer_device
from ._plateau_device import DeviceEngine, device_metric
from ._plateau_host import PLATEAU, STATE_SIZE, HostEngine, last_lrs

__all__ = ["ReduceLROnPlateau"]

_MIRRORED = ("best", "num_bad_epochs", "cooldown_counter", "_last_lr")
# what step()'s host path reads directly (NOTE [plateau host step]): a subclass redefining one
# of them runs torch's own step()
_HOST_STEP_READS = (*_MIRRORED, "in_cooldown", "_lrfast_take_host")
_Tensor = torch.Tensor
_EPOCH_WARNING = torch.optim.lr_scheduler.EPOCH_DEPRECATION_WARNING
_MISSING = object()


def _mirrored(name: str) -> property:
    """torch's attribute ``name``, kept in ``_lrfast_<name>`` by the host and read from the
    device engine while it decides (NOTE [plateau mirror])."""
    key = "_lrfast_" + name.lstrip("_")

    # Any: best is a float, the counters ints, _last_lr a list (one property factory for all four)
    def get(self: ReduceLROnPlateau) -> Any:
        engine = self._lrfast_device
        if engine is not None:
            if name == "_last_lr":
                return engine.last_lr(self)
            engine.pull(self)
        return getattr(self, key)

    def set(self: ReduceLROnPlateau, value: Any) -> None:
        self._lrfast_take_host()
        setattr(self, key, value)

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
    # NOTE [scheduler runtime] (_base.py): the engines live outside __dict__, where torch's
    # state_dict and __dict__ comparisons do not look
    __slots__ = ("_lrfast_host", "_lrfast_device", "_lrfast_record")
    _lrfast_host: HostEngine
    _lrfast_device: DeviceEngine | None  # the host decides while None
    _lrfast_record: _C.GroupRecord  # NOTE [plateau record] (csrc/scheduler_step.cpp): deep copies start empty
    # the host's copies of the mirrored attributes (_mirrored)
    _lrfast_best: float
    _lrfast_num_bad_epochs: int
    _lrfast_cooldown_counter: int | float
    _lrfast_last_lr: list[Any]
    _lrfast_torch_names: bool = True  # NOTE [plateau host step]: no subclass redefines _HOST_STEP_READS
    _lrfast_compiled_step: bool = True  # ... nor torch's _is_better: the compiled step may run it
    _lrfast_compiled_reduction: bool = True  # ... nor _reduce_lr: the compiled step may reduce

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._lrfast_torch_names = all(getattr(cls, name) is getattr(ReduceLROnPlateau, name)
                                      for name in _HOST_STEP_READS)
        cls._lrfast_compiled_step = cls._lrfast_torch_names and \
            cls._is_better is torch.optim.lr_scheduler.ReduceLROnPlateau._is_better
        cls._lrfast_compiled_reduction = cls._reduce_lr is ReduceLROnPlateau._reduce_lr

    def __init__(self, optimizer: torch.optim.Optimizer, mode: Literal["min", "max"] = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: Literal["rel", "abs"] = "rel",
                 cooldown: int = 0, min_lr: list[float] | float = 0, eps: float = 1e-8, *,
                 schedule: Schedule | Sequence[Schedule] | LRScheduler | None = None) -> None:
        self._lrfast_device = None  # first: torch's __init__ sets the mirrored attributes
        self._lrfast_host = HostEngine()
        self._lrfast_record = _C.GroupRecord()
        self._lrfast_lr_buffer: torch.Tensor | None = None
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
            if len(s.segments) >= descriptor_layout.MAX_SEGMENTS:
                raise ValueError(f"{cls}: schedule {s!r} uses all {descriptor_layout.MAX_SEGMENTS} segments of a "
                                 "descriptor; the plateau factor needs one more")
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
        self._lrfast_host.step_composed(self, None)
        attach(self)  # its compiled-step handle (NOTE [compiled steps])
        bind_scheduler(self)  # replaces an inner scheduler's binding: this one writes the groups

    @property
    def composed(self) -> bool:
        """Whether the reductions compose with a schedule (``schedule=`` was given)."""
        return bool(self._lrfast_factors)

    @property
    def lr_factors(self) -> list[float]:
        """Composed: each group's plateau factor f (1.0 until a reduction); plain: []."""
        if self._lrfast_device is not None:
            self._lrfast_device.pull(self)
        return list(self._lrfast_factors)

    def _lrfast_base_schedules(self) -> list[Schedule]:
        inner = self._lrfast_inner
        if inner is not None:
            return inner.schedules
        schedules = self._lrfast_schedules
        assert schedules is not None, "composed with factors: set by _lrfast_compose"
        return list(schedules)

    def _lrfast_step_inner(self) -> None:
        """Steps an inner scheduler (its own counters, baking and bookkeeping); its writes
        are overwritten by this scheduler's, in stream order on the device."""
        inner = self._lrfast_inner
        if inner is None:
            return
        before = inner._lrfast_program_cache
        inner.step()
        if inner._lrfast_program_cache is not before:  # rebuilt: its schedules may have changed
            self._lrfast_host.forget()  # the factors carry over
            if self._lrfast_device is not None:
                self._lrfast_device.rebuild(self)

    # -- what both engines share: torch's attributes as the plateau rule takes them ---------
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
                    patience=float(self.patience), cooldown=float(self.cooldown), mode=PLATEAU[self.mode],
                    threshold_mode=PLATEAU[self.threshold_mode], composed=self.composed)

    def _lrfast_state_array(self) -> np.ndarray:
        """The host's decision state in plateau.h's order (NOTE [plateau state])."""
        state = np.empty(STATE_SIZE, dtype=np.float64)
        state[PLATEAU["best"]] = self._lrfast_best
        state[PLATEAU["num_bad_epochs"]] = self._lrfast_num_bad_epochs
        state[PLATEAU["cooldown_counter"]] = self._lrfast_cooldown_counter
        return state

    def _lrfast_set_state(self, state: np.ndarray) -> None:
        """The host's decision state from plateau.h's doubles, in torch's types: the counters
        ints (the cooldown too, unless the user's ``cooldown`` is a float)."""
        self._lrfast_best = float(state[PLATEAU["best"]])
        self._lrfast_num_bad_epochs = int(state[PLATEAU["num_bad_epochs"]])
        counter = float(state[PLATEAU["cooldown_counter"]])
        self._lrfast_cooldown_counter = int(counter) if isinstance(self.cooldown, int) and counter.is_integer() \
            else counter

    def _lrfast_lr_buffer_if_any(self) -> torch.Tensor | None:
        buffer = self._lrfast_lr_buffer
        return buffer if buffer is not None and buffer.shape[0] == len(self.optimizer.param_groups) else None

    def _lrfast_out(self, device: torch.device) -> torch.Tensor:
        """The buffer the plateau kernel writes every group's LR into (``lr_tensor``)."""
        buffer = self._lrfast_lr_buffer
        n = len(self.optimizer.param_groups)
        if buffer is None or buffer.shape[0] != n or buffer.device != device:
            buffer = self._lrfast_lr_buffer = torch.zeros(n, dtype=torch.float64, device=device)
        return buffer

    # -- stepping -------------------------------------------------------------------------
    def step(self, metrics: Any = _MISSING, epoch: int | None = None) -> None:  # type: ignore[override]
        """One step: a decision on ``metrics``. Composed, ``step()`` alone advances the schedule."""
        if type(metrics) is float and epoch is None and self._lrfast_device is None and not self._lrfast_factors \
                and self._lrfast_torch_names:
            if self._lrfast_compiled_step and _C.plateau_host_step(self, metrics, self._lrfast_compiled_reduction,
                                                                   self._lrfast_record):
                return  # the step below, compiled (csrc/scheduler_step.cpp)
            # NOTE [plateau host step] torch's step(), statement for statement, on the host
            # copies of the mirrored attributes (compiled above, csrc/scheduler_step.cpp, which
            # reduces by torch's rule unless the class has its own _reduce_lr; written out here
            # for the steps it declines): while the host decides, the properties
            # (_mirrored) would read and write exactly these, one Python call each, which cost
            # more than torch's whole step. The user's overridable methods (_is_better,
            # _reduce_lr) are called as torch calls them; a float metric never reaches the device.
            self.last_epoch = epoch = self.last_epoch + 1
            if self._is_better(metrics, self._lrfast_best):
                self._lrfast_best = metrics
                self._lrfast_num_bad_epochs = 0
            else:
                self._lrfast_num_bad_epochs += 1
            if self._lrfast_cooldown_counter > 0:  # torch's in_cooldown
                self._lrfast_cooldown_counter -= 1
                self._lrfast_num_bad_epochs = 0
            if self._lrfast_num_bad_epochs > self.patience:
                self._reduce_lr(epoch)
                self._lrfast_cooldown_counter = self.cooldown
                self._lrfast_num_bad_epochs = 0
            # torch's _param_groups_val_list: tensors cloned (a float told apart without
            # isinstance, which costs a metaclass call per group with torch.Tensor)
            self._lrfast_last_lr = [v if type(v) is float else v.clone() if isinstance(v, _Tensor) else v  # noqa: E721
                                    for v in map(group_lr, self.optimizer.param_groups)]
            if self._lrfast_lr_buffer is not None:
                self._lrfast_host.write_lr_tensor(self)
            return
        if metrics is _MISSING and not self.composed:
            raise TypeError("ReduceLROnPlateau.step() missing 1 required positional argument: 'metrics'")
        if epoch is not None and self._lrfast_inner is not None:
            raise TypeError("ReduceLROnPlateau.step: epoch= is not supported with schedule=<a scheduler>")
        on_device = None if metrics is _MISSING else device_metric(metrics, self.optimizer)
        if on_device is not None or (metrics is _MISSING and self._lrfast_device is not None):
            self._lrfast_step_device(on_device, epoch)
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
            self._lrfast_host.step_composed(self, current)
        elif epoch is None:
            super().step(metrics)
            self._lrfast_host.write_lr_tensor(self)
        else:
            call_warning_at_caller(1, super().step, metrics, epoch)  # torch's deprecation, at the caller's line
            self._lrfast_host.write_lr_tensor(self)

    def _lrfast_step_device(self, metric: tuple[torch.Tensor, int] | None, epoch: int | None) -> None:
        if device_api.active().is_capturing():
            # the step number goes to the kernel by value and the mirror is staged into pinned
            # memory: a graph would replay the captured step forever
            raise RuntimeError(
                "ReduceLROnPlateau.step: cannot be captured in a CUDA graph (the step would be frozen into the "
                "graph); call scheduler.step(metric) outside the captured region, after graph.replay()")
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=3)
        engine = self._lrfast_device_engine(optimizer_device(self.optimizer))
        self.last_epoch = epoch
        self._lrfast_step_inner()
        engine.step(self, metric, epoch)
        if engine.program.host_groups:
            self._lrfast_ensure_hook()

    def _lrfast_device_engine(self, device: torch.device) -> DeviceEngine:
        """The device engine, made (state uploaded) on the way from the host, its program
        rebuilt (state carried on the device) when the groups' tensors or min_lrs changed."""
        engine = self._lrfast_device
        if engine is not None and (engine.program.device != device
                                   or len(self.optimizer.param_groups) != engine.program.n_groups):
            # moved, or groups added: through the host (torch's min_lr rule there), then back
            self._lrfast_take_host()
            engine = None
        if engine is None:
            self._lrfast_host.forget()  # from the current host state
            engine = self._lrfast_device = DeviceEngine(self, device)
            return engine
        if not engine.program.still_valid(self.optimizer.param_groups, self.min_lrs):
            self._lrfast_host.forget()
            engine.rebuild(self)
        if not self.composed:
            engine.upload_changed_lrs(self)
        return engine

    def _lrfast_take_host(self) -> None:
        """Bring the state back to the host (one sync): the host decides from here on."""
        engine = self._lrfast_device
        if engine is None:
            return
        engine.pull(self)
        lrs = engine.lrs_pulled
        self._lrfast_last_lr = last_lrs(self.optimizer.param_groups, lrs)
        self._lrfast_device = None
        self._lrfast_host.forget()

    def _lrfast_ensure_hook(self) -> None:
        """Float LRs the device decided reach their groups just before ``optimizer.step()``
        reads them (NOTE [plateau mirror])."""
        if self._lrfast_hook is not None:
            return
        ref = weakref.ref(self)

        def refresh_groups(optimizer, args, kwargs):
            scheduler = ref()
            if scheduler is not None and scheduler._lrfast_device is not None:
                scheduler._lrfast_device.pull(scheduler)
            return None

        hook = self._lrfast_hook = self.optimizer.register_step_pre_hook(refresh_groups)
        weakref.finalize(self, hook.remove)

    # -- torch's API and lrfast/_scheduling_protocol.BoundScheduler -------------------------
    @property
    def lr_tensor(self) -> torch.Tensor:
        """Every group's current LR as a float64 (G,) tensor on the optimizer's device
        (NOTE [lr tensor] in _base.py); written by the plateau kernel itself when the
        device decides, so reading it never syncs."""
        n = len(self.optimizer.param_groups)
        buffer = self._lrfast_lr_buffer
        if buffer is not None and buffer.shape[0] == n:
            return buffer
        self._lrfast_take_host()  # groups changed under a device state: start again from the host
        buffer = self._lrfast_lr_buffer = torch.zeros(n, dtype=torch.float64, device=optimizer_device(self.optimizer))
        self._lrfast_host.fill_lr_tensor(self, buffer)
        return buffer

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

    def programs(self) -> tuple[None, None]:
        """No program the optimizer could evaluate: it reads the groups this scheduler writes."""
        return None, None

    def proven_groups(self) -> tuple[list[bool], list[bool]]:
        none = [False] * len(self.optimizer.param_groups)
        return none, none

    def graph_capture_blocker(self) -> None:
        """None: with ``packed_lr()`` None the optimizer refuses a capture already."""
        return None

    def live_lr_program(self) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """(descriptors (G, DESCRIPTOR_SIZE), live table, step) on the device while it decides,
        else None: evaluating descriptor g against this very table at ``step`` (lrfast::evaluate)
        gives group g's LR, reductions included, with no host involvement (NOTE [plateau
        state]). The table is rewritten in place by each step(metric); never copy it."""
        engine = self._lrfast_device
        if engine is None:
            return None
        return engine.program.descriptors, engine.program.table, float(self.last_epoch)

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
        if self._lrfast_device is not None:
            self._lrfast_device.pull(self)
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
        self._lrfast_host.forget()
