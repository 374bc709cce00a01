"""The base of lrfast's drop-in schedulers: a closed-form program per param group.

Each scheduler describes, per param group, its learning rate as a :class:`Schedule` of
its own step count (``last_epoch``). The schedules are packed once into descriptors
(the "program"); every ``step()`` then evaluates all groups with one call into the
compiled core and writes the values: floats by assignment, CPU tensors in place,
CUDA tensors with one kernel launch for all groups (no host sync).

NOTE [trusted descriptors] The program's descriptors are validated by ``_C.validate``
when built and made read-only; the per-step path then calls
``_C.evaluate_at_trusted``, which checks shapes only. Anything that changes the
schedules (``load_state_dict``, a LambdaLR table extension) rebuilds the program.

NOTE [group kinds] Whether a group's ``lr`` is a float or a tensor is read when the
program is built (construction, ``load_state_dict``, a change in the number of param
groups or in the identity of a tensor lr). Reading it on every step would cost more
than the whole float path; :meth:`LRScheduler.refresh` rebuilds on demand.

NOTE [lr tensor] ``scheduler.lr_tensor`` is every group's current LR as one float64 (G,)
tensor on the optimizer's device (its parameters' CUDA device, else the CPU), made on
first access and then written by every ``step()``: on CUDA by the same single launch that
writes the groups' tensor LRs (the writer's ``out`` buffer; with float LRs, that launch
is the one extra cost), on the CPU through a NumPy view. It is the same tensor from step
to step (a program rebuild keeps it), so it can be captured once; only a change in the
number of param groups replaces it.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import setitem
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler

from .. import _C
from .._backend import device_api
from .._compile import attach, compile_aware_scheduler_step
from ..schedules import Schedule, pack_many

__all__ = ["LRScheduler"]

_PRIVATE_PREFIX = "_lrfast_"

_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
    "will result in PyTorch skipping the first value of the learning rate schedule. "
    "See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)
_OVERRIDE_WARNING = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
    "initialization. Please, make sure to call `optimizer.step()` before "
    "`lr_scheduler.step()`. See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)
_EPOCH_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


class _Writer:
    """Writes one array of per-group values into the groups' ``key`` entries and, when
    given, into ``out`` (NOTE [lr tensor])."""

    def __init__(self, groups: list[dict], key: str, packed, tuple_slot: int | None = None,
                 out: torch.Tensor | None = None) -> None:
        self.key = key
        self.out = out
        self.out_view = out.numpy() if out is not None and not device_api.is_device(out.device) else None
        self.tuple_slot = tuple_slot  # betas: write element 0 of the tuple
        self.float_groups: list[int] = []
        self.cpu_tensors: list[tuple[int, np.ndarray]] = []
        self.cuda_writers: list[tuple[Any, list[torch.Tensor]]] = []
        self.tensors: list[torch.Tensor] = []
        cuda_by_device: dict[torch.device, list[int]] = {}
        for i, g in enumerate(groups):
            value = g[key][tuple_slot] if tuple_slot is not None else g[key]
            if isinstance(value, torch.Tensor):
                self.tensors.append(value)
                if device_api.is_device(value.device):  # NOTE [emulated device]
                    cuda_by_device.setdefault(value.device, []).append(i)
                else:
                    self.cpu_tensors.append((i, value.detach().view(-1).numpy()))
            else:
                self.float_groups.append(i)
        self.all_float = len(self.float_groups) == len(groups)
        if out is not None and device_api.is_device(out.device):
            cuda_by_device.setdefault(out.device, [])
        for device, indices in cuda_by_device.items():
            from .._backend.cuda import ScalarWriter

            if out is not None and device == out.device:
                # one launch writes this device's tensors and every group's value into out
                chosen = set(indices)
                targets = [self._value(g) if i in chosen else None for i, g in enumerate(groups)]
                self.cuda_writers.append((ScalarWriter(targets, packed, out), targets))
                continue
            sub = type(packed)(np.atleast_2d(packed.descriptors)[indices], packed.table)
            targets = [self._value(groups[i]) for i in indices]
            self.cuda_writers.append((ScalarWriter(targets, sub), targets))

    def _value(self, group: dict):
        return group[self.key][self.tuple_slot] if self.tuple_slot is not None else group[self.key]

    def still_valid(self, groups: list[dict]) -> bool:
        if not self.tensors:
            return True
        current = []
        for g in groups:
            value = g[self.key][self.tuple_slot] if self.tuple_slot is not None else g[self.key]
            if isinstance(value, torch.Tensor):
                current.append(value)
        return len(current) == len(self.tensors) and all(a is b for a, b in zip(current, self.tensors))

    def write(self, groups: list[dict], values: list[float], step: float) -> None:
        key = self.key
        if self.tuple_slot is not None:
            for i in self.float_groups:
                old = groups[i][key]
                groups[i][key] = (values[i], *old[1:])
        elif self.all_float:
            deque(map(setitem, groups, repeat(key), values), maxlen=0)
        else:
            for i in self.float_groups:
                groups[i][key] = values[i]
        for i, view in self.cpu_tensors:
            view[0] = values[i]
        if self.out_view is not None:
            self.out_view[:] = values
        for writer, _ in self.cuda_writers:
            writer.write(step)

    def write_out(self, values: list[float], step: float) -> None:
        """Only ``out`` (NOTE [lr tensor]), for groups already written by the caller; on CUDA
        the launch also rewrites that device's tensor groups, with the values they hold."""
        if self.out_view is not None:
            self.out_view[:] = values
        for writer, _ in self.cuda_writers:
            if writer.out is not None:
                writer.write(step)


class _Program:
    """Packed per-group schedules (LR and, optionally, momentum) and their writers."""

    def __init__(self, scheduler: LRScheduler) -> None:
        groups = scheduler.optimizer.param_groups
        lr_schedules = scheduler._lrfast_lr_schedules()
        momentum = scheduler._lrfast_momentum_schedules()
        self.n_groups = len(groups)
        if len(lr_schedules) != self.n_groups:
            raise ValueError(
                f"{type(scheduler).__name__}: the optimizer has {self.n_groups} param groups but the scheduler "
                f"was built for {len(lr_schedules)}"
            )
        self.lr = self._pack(lr_schedules)
        self.lr_out = np.empty(self.n_groups)
        out = scheduler._lrfast_lr_buffer
        if out is not None and out.shape[0] != self.n_groups:
            out = scheduler._lrfast_lr_buffer = None  # groups added or removed: lr_tensor is made anew
        self.lr_writer = _Writer(groups, "lr", self.lr, out=out)
        self.momentum = None
        if momentum is not None:
            self.momentum = self._pack(momentum)
            self.momentum_out = np.empty(self.n_groups)
            key, slot = scheduler._lrfast_momentum_key()
            self.momentum_writer = _Writer(groups, key, self.momentum, slot)

    @staticmethod
    def _pack(schedules: Sequence[Schedule]):
        packed = pack_many(schedules)
        _C.validate(packed.descriptors, packed.table.shape[0])  # NOTE [trusted descriptors]
        packed.descriptors.setflags(write=False)
        packed.table.setflags(write=False)
        return packed

    def still_valid(self, groups: list[dict]) -> bool:
        return (len(groups) == self.n_groups and self.lr_writer.still_valid(groups)
                and (self.momentum is None or self.momentum_writer.still_valid(groups)))

    def values_at(self, t: float) -> list[float]:
        _C.evaluate_at_trusted(self.lr.descriptors, self.lr.table, t, self.lr_out)
        return self.lr_out.tolist()

    def momentum_at(self, t: float) -> list[float]:
        _C.evaluate_at_trusted(self.momentum.descriptors, self.momentum.table, t, self.momentum_out)
        return self.momentum_out.tolist()


def restore_groups_on_error(init: Callable) -> Callable:
    """NOTE [errors before state changes] A scheduler constructor that raises leaves the
    optimizer's param groups as it found them: entries added (``initial_lr``, ``swa_lr``,
    ``max_lr``, ...) are removed, values (tensor LRs filled in place included) put back.
    torch's constructors check some arguments only after writing into the groups."""
    @functools.wraps(init)
    def wrapper(self, optimizer, *args, **kwargs):
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            return init(self, optimizer, *args, **kwargs)
        saved = [(g, dict(g), {k: v.clone() for k, v in g.items() if isinstance(v, torch.Tensor)}) for g in groups]
        try:
            return init(self, optimizer, *args, **kwargs)
        except BaseException:
            for group, items, tensors in saved:
                group.clear()
                group.update(items)
                for key, value in tensors.items():
                    items[key].copy_(value)
            raise
    return wrapper


class LRScheduler(_TorchLRScheduler):
    """Base of lrfast's drop-in schedulers (a subclass of torch's ``LRScheduler``).

    A subclass stores torch's attributes under torch's names, then implements
    :meth:`_lrfast_lr_schedules` (one :class:`~lrfast.schedules.Schedule` per group,
    the LR as a function of ``last_epoch``), and optionally
    :meth:`_lrfast_momentum_schedules`. Everything else -- stepping, writing float or
    tensor LRs, ``get_last_lr``, ``state_dict`` -- is here.
    """

    # "ratio": stepping multiplies the current LR (StepLR, ...); "absolute": it sets the
    # LR from the base (LambdaLR, CyclicLR, ...). ChainedScheduler composes by it.
    _lrfast_chain_kind = "ratio"

    def __init_subclass__(cls, **kwargs) -> None:
        # NOTE [compiled steps] (lrfast/_compile.py): every step() becomes one custom op
        # under torch.compile, so the LR changing does not recompile the caller.
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = compile_aware_scheduler_step(cls.__dict__["step"])

    def _lrfast_eager_step(self) -> None:
        """The step the compiled op runs (NOTE [compiled steps])."""
        self.step()
    _lrfast_lr_buffer: torch.Tensor | None = None  # lr_tensor, once asked for (NOTE [lr tensor])

    @restore_groups_on_error
    def __init__(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> None:
        self._lrfast_program_cache: _Program | None = None
        self._lrfast_owner: Any = None  # a composite scheduler that writes for this one
        self._lrfast_t: float = 0.0  # the step whose values the groups hold now
        self._get_lr_called_within_step = False  # torch's step() leaves it in __dict__ (and state_dict)
        _TorchLRScheduler.__init__(self, optimizer, last_epoch)
        bind_to_optimizer(self)

    # -- what subclasses provide --------------------------------------------------
    def _lrfast_lr_schedules(self) -> list[Schedule]:
        return [self._lrfast_schedule(base, i) for i, base in enumerate(self.base_lrs)]

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        """The LR of ``group`` as a function of this scheduler's step count, from ``base_lr``."""
        raise NotImplementedError

    def _lrfast_momentum_schedules(self) -> list[Schedule] | None:
        return None

    def _lrfast_momentum_key(self) -> tuple[str, int | None]:
        use_beta1 = getattr(self, "use_beta1", False)
        return ("betas", 0) if use_beta1 else ("momentum", None)

    # -- the program ------------------------------------------------------------------
    def _lrfast_program(self) -> _Program:
        program = self._lrfast_program_cache
        if program is None or not program.still_valid(self.optimizer.param_groups):
            program = self._lrfast_program_cache = _Program(self)
        return program

    def refresh(self) -> None:
        """Rebuild the packed schedules and writers (NOTE [group kinds] in this module)."""
        self._lrfast_program_cache = None

    @property
    def schedules(self) -> list[Schedule]:
        """The LR schedule of each param group, as functional :class:`Schedule` objects."""
        return self._lrfast_lr_schedules()

    @property
    def lr_tensor(self) -> torch.Tensor:
        """Every group's current LR as a float64 (G,) tensor on the optimizer's device
        (its parameters' CUDA device, else the CPU), kept current by every ``step()``
        without a host sync (NOTE [lr tensor]): log it, or feed it to device code."""
        buffer = self._lrfast_lr_buffer
        n = len(self.optimizer.param_groups)
        if buffer is None or buffer.shape[0] != n:
            buffer = torch.empty(n, dtype=torch.float64, device=optimizer_device(self.optimizer))
            self._lrfast_lr_buffer = buffer
            self.refresh()
            program = self._lrfast_program()
            program.lr_writer.write_out(program.values_at(self._lrfast_t), self._lrfast_t)
        return buffer

    # -- torch's API --------------------------------------------------------------------
    # NOTE [skipped steps] With skip_schedule_on_overflow, a step() that follows an lrfast
    # optimizer step skipped by GradScaler (found_inf set) does not advance the schedule
    # (torch's schedulers always advance: pytorch issues 55585, 44511). Knowing that reads
    # found_inf: free on the CPU, one host sync per step for a CUDA found_inf.
    _lrfast_skip_on_overflow = False

    @property
    def skip_schedule_on_overflow(self) -> bool:
        """Opt-in: do not advance the schedule past optimizer steps GradScaler skipped."""
        return self._lrfast_skip_on_overflow

    @skip_schedule_on_overflow.setter
    def skip_schedule_on_overflow(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"{type(self).__name__}: skip_schedule_on_overflow must be a bool, got {value!r}")
        self._lrfast_skip_on_overflow = value

    def _lrfast_overflow_skipped(self) -> bool:
        """Whether the optimizer's last step was skipped on overflow (consumes the record)."""
        if not self._lrfast_skip_on_overflow:
            return False
        found_inf = getattr(self.optimizer, "_lrfast_last_found_inf", None)
        if found_inf is None:
            return False
        self.optimizer._lrfast_last_found_inf = None
        return bool(found_inf.detach().reshape(-1)[0] != 0)

    def step(self, epoch: float | None = None) -> None:  # type: ignore[override]
        if epoch is None and self._lrfast_overflow_skipped():
            return
        if epoch is None:
            t = self.last_epoch + 1
        else:
            t = self._lrfast_check_epoch(epoch)
        self._lrfast_check_step(t)  # errors before any state changes
        if self._step_count == 1:
            self._lrfast_warn_order()
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = t
        self._lrfast_apply(t)

    def _lrfast_check_epoch(self, epoch) -> int:
        """The step an explicit ``step(epoch)`` asks for (an int >= 0)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"{type(self).__name__}.step: epoch must be an int, got {epoch!r}")
        if epoch < 0:
            raise ValueError(f"{type(self).__name__}.step: epoch must be >= 0, got {epoch!r}")
        return epoch

    def _lrfast_warn_order(self) -> None:
        if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
            warnings.warn(_OVERRIDE_WARNING, UserWarning, stacklevel=3)
        elif not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(_ORDER_WARNING, UserWarning, stacklevel=3)

    def _lrfast_check_step(self, t: float) -> None:
        """Hook: raise before anything changes when ``t`` is out of the schedule's range."""

    def _lrfast_advance(self, t: float, counted: bool = True) -> None:
        """Move this scheduler's own counters to step ``t`` without writing any group: a
        composite (SequentialLR, ChainedScheduler) that owns the writing drives it so."""
        if counted:
            self._step_count += 1
        self.last_epoch = t

    def _lrfast_apply(self, t: float) -> None:
        self._lrfast_t = t
        program = self._lrfast_program()
        groups = self.optimizer.param_groups
        if program.lr_writer.all_float:  # the common case, one call into the core
            values = _C.assign_group_values(program.lr.descriptors, program.lr.table, t, groups, "lr")
            if program.lr_writer.out is not None:
                program.lr_writer.write_out(values, t)
        else:
            values = program.values_at(t)
            program.lr_writer.write(groups, values, t)
        if program.momentum is not None:
            writer = program.momentum_writer
            if writer.all_float:
                _C.assign_group_values(program.momentum.descriptors, program.momentum.table, t, groups, writer.key,
                                       -1 if writer.tuple_slot is None else writer.tuple_slot)
            else:
                writer.write(groups, program.momentum_at(t), t)
        self._last_lr = values

    def get_last_lr(self) -> list[float | torch.Tensor]:
        """The LRs of the last step, with the types of the groups' ``lr`` (tensors are copies)."""
        program = self._lrfast_program_cache
        if program is None or program.lr_writer.all_float:
            return self._last_lr
        out: list[float | torch.Tensor] = list(self._last_lr)
        for i, g in enumerate(self.optimizer.param_groups):
            if isinstance(g["lr"], torch.Tensor):
                out[i] = torch.full_like(g["lr"], out[i])
        return out

    def get_lr(self) -> list[float]:
        """The LRs at the current ``last_epoch`` (closed form; use get_last_lr() to inspect)."""
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=2)
        return self._lrfast_program().values_at(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not k.startswith(_PRIVATE_PREFIX)}

    @staticmethod
    def _lrfast_public_state(torch_state_dict):
        """Wrap a torch ``state_dict`` method so that lrfast's private attributes stay out."""
        def state_dict(self) -> dict[str, Any]:
            return {k: v for k, v in torch_state_dict(self).items() if not k.startswith(_PRIVATE_PREFIX)}
        state_dict.__doc__ = torch_state_dict.__doc__
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if not k.startswith(_PRIVATE_PREFIX)}
        self.__dict__.update(state)
        self._last_lr = [float(v) if isinstance(v, torch.Tensor) else v for v in self._last_lr]
        self._lrfast_t = self._lrfast_resume_step()
        self.refresh()

    def _lrfast_resume_step(self) -> float:
        """The step whose values the groups hold, as restored by load_state_dict."""
        return self.last_epoch

    # -- the binding protocol with lrfast's fused optimizers ------------------------------
    # NOTE [scheduler binding] A scheduler built on an optimizer that has
    # ``_lrfast_bind_scheduler`` registers itself there (a composite, built after its
    # children, replaces them). The optimizer then evaluates, inside its kernels, the
    # scheduler's packed program at ``current_step`` -- the same values this scheduler
    # writes into the groups, so group["lr"] and get_last_lr() stay true. ``packed_lr()``
    # may return None: the scheduler writes the groups' ``lr`` itself and the optimizer
    # reads them (ReduceLROnPlateau, whose LRs the device may decide; its
    # ``live_lr_program()`` offers the descriptors and the live table instead).
    @property
    def current_step(self) -> float:
        """The step the groups' current LRs belong to (``last_epoch`` for most schedulers)."""
        return self._lrfast_t

    def packed_lr(self):
        """(descriptors (G, DESCRIPTOR_SIZE), table): the packed LR schedule of every group."""
        return self._lrfast_program().lr

    def packed_momentum(self):
        """The packed momentum / beta1 schedules when this scheduler cycles them, else None."""
        return self._lrfast_program().momentum


LRScheduler.step = compile_aware_scheduler_step(LRScheduler.step)


def bind_to_optimizer(scheduler: LRScheduler) -> None:
    """NOTE [scheduler binding]: let an lrfast optimizer run this scheduler in its kernels.
    Also gives the scheduler its handle for compiled steps (NOTE [compiled steps])."""
    attach(scheduler)
    bind = getattr(scheduler.optimizer, "_lrfast_bind_scheduler", None)
    if bind is not None:
        bind(scheduler)


def optimizer_device(optimizer: torch.optim.Optimizer) -> torch.device:
    """Where an optimizer's LR tensor lives (NOTE [lr tensor]): the CUDA device of its first
    parameter, else the CPU."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if isinstance(p, torch.Tensor):
                return p.device if device_api.is_device(p.device) else torch.device("cpu")
    return torch.device("cpu")


def format_param(cls: str, name: str, optimizer: torch.optim.Optimizer, value) -> list:
    """``value`` per param group: a list/tuple of one per group, or one value for all."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(value)} values, param_groups has {n}."
            )
        return [v.clone() if isinstance(v, torch.Tensor) else v for v in value]
    return [value.clone() if isinstance(value, torch.Tensor) else value for _ in range(n)]


def as_float(value) -> float:
    """A Python float from a number or a 1-element tensor (one read at build time)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().cpu().item())
    return float(value)


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
