"""The base of lrfast's drop-in schedulers: torch's stepping, with closed-form values.

Each scheduler describes, per param group, its learning rate as a :class:`Schedule` of
its own step count (``last_epoch``). The schedules are packed once into descriptors
(the "program"); a ``step()`` then evaluates every group with one call into the compiled
core and writes the values: floats by assignment, CPU tensors in place, CUDA tensors with
one kernel launch for all groups (no host sync).

NOTE [one step rule] torch's chainable schedulers compute the next LR from the LR the
group holds now (``group["lr"] * gamma``, ...); that is what makes stacked schedulers,
hand-edited LRs and resumed runs behave as they do in torch. Every one of those recursions
is an affine map of the held value, ``a * (held - shift) + add``, with coefficients that
depend on the step and the scheduler's attributes only (``_lrfast_coefficients``: torch's
``get_lr`` expression, term for term). One rule, one compiled call for all float groups
(``_C.step_groups``):

- a group that holds the closed form of the previous step (compared by value) gets the
  closed form of this step: torch's recursion from that value *is* the closed form, and
  the closed form is exact in float64 where the recursion drifts;
- any other group (another scheduler stepped it, a hand edit, a resume from another LR)
  gets the affine map of what it holds: torch's recursion, at the same cost.

The rule is a function of the groups' values: copies, pickles and state dicts reproduce
the trajectory exactly. Schedulers whose torch twin ignores the held value (LambdaLR,
CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts: ``_lrfast_absolute``) always write
their closed form; LambdaLR and MultiplicativeLR call the user's function once per step,
as torch does (``_lrfast_host_values``). Arguments the closed form cannot describe (0-d
tensor hyperparameters, a negative gamma, ...) run torch's own ``get_lr``. CUDA tensor
LRs cannot be read without a host sync, so they are taken to hold the closed form
(docs/schedulers.md, "Stacking").

NOTE [proof of the program] A bound lrfast optimizer may evaluate the program in its
kernel instead of reading a group's LR only where it can prove the two are the same: the
group holds the very float object this scheduler wrote as the closed form at
``current_step`` (an identity test), or the very tensor, whose autograd version has not
moved since (every lrfast writer moves the version of the tensors it writes behind
autograd's back, as torch's in-place ops do, so another scheduler's write or a user's
``fill_`` is seen). ``proven_groups()`` gives the proof per group; the proof belongs to
the program it was taken for, so a rebuilt program (an attribute changed) proves nothing.
The proof is the runtime's own list: ``_last_lr`` (what ``get_last_lr()`` returns) is a
copy, so a user who edits that list -- or sets a group's LR and logs the same object
there -- changes nothing lrfast proves or remembers.

NOTE [fast step] The common ``step()`` -- no epoch, an int ``last_epoch``, every group's
LR a float or a float32 / float64 CPU tensor, the program still valid -- is one call into
the compiled core (``_C.FastStep``, csrc/scheduler_step.cpp, made with the program; LambdaLR
and MultiplicativeLR have one without a program, calling their lambdas): the same checks as
the Python step (the watched containers and group keys, torch's first-step warning, a
composing ReduceLROnPlateau, ``skip_schedule_on_overflow``, a step limit, a hand-set
``T_cur``), the one step rule over the groups, the writes, and the bookkeeping this module
keeps (``last_epoch``, ``_step_count`` or ``T_cur`` / ``T_i``, ``_last_lr``, the proof).
Where any of it is not the common case it returns False having changed nothing, and the
Python step below runs: the two are one rule, one in C. The coefficients of torch's
recursion are asked for before the groups are read, when the last step had groups off the
program; a first step off it is the Python step's, so no Python runs while the compiled
step holds the groups' values.

NOTE [watched attributes] is at :class:`Watched`.

NOTE [trusted descriptors] The program's descriptors are validated by ``_C.validate``
when built and made read-only; the per-step path then calls
``_C.evaluate_at_trusted``, which checks shapes only. Anything that changes the
schedules (``load_state_dict``, a LambdaLR window moving on) rebuilds the program.

NOTE [group kinds] Whether a group's ``lr`` is a float or a tensor is read when the
program is built (construction, ``load_state_dict``, a change in the number of param
groups or in the identity of a tensor lr). Reading it on every step would cost more
than the whole float path; :meth:`LRScheduler.refresh` rebuilds on demand.

NOTE [scheduler runtime] What a scheduler caches to run fast (the program, its writers and
NumPy views into tensor LRs, the ``lr_tensor`` buffer, the compiled-step handle) lives in
one slot, ``_lrfast_rt``, outside ``__dict__``: ``state_dict()`` and torch's
``__dict__``-equality checks see torch's attributes only, and a copy (``deepcopy``,
``pickle``) starts with a fresh runtime bound to *its* optimizer instead of writing into
the original's tensors.

NOTE [lr tensor] ``scheduler.lr_tensor`` is every group's current LR as one float64 (G,)
tensor on the optimizer's device (its parameters' CUDA device, else the CPU), made on
first access and then written by every ``step()``: on CUDA by the same single launch that
writes the groups' tensor LRs (the writer's ``out`` buffer; with float LRs, that launch
is the one extra cost), on the CPU through a NumPy view. It is the same tensor from step
to step (a program rebuild keeps it), so it can be captured once; only a change in the
number of param groups replaces it.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import operator
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import countOf, setitem
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.autograd.graph import increment_version
from torch.optim.lr_scheduler import LRScheduler as _TorchLRScheduler

from .. import _C
from .._backend import device_api
from .._compile import compile_aware_scheduler_step, compiled_scheduler_step, register
from .._scheduling_protocol import bind_scheduler, host_float, take_found_inf
from ..schedules import Packed, Schedule, pack_many
from ._pure import is_pure_code

_is_compiling = torch.compiler.is_compiling

if TYPE_CHECKING:
    from .._backend.cuda import ScalarWriter

__all__ = ["LRScheduler", "compiled_step_taken", "format_param", "group_lr", "optimizer_device",
           "restore_groups_on_error"]

_PRIVATE_PREFIX = "_lrfast_"
_COUNTING = {"last_epoch": 0, "steps": 1, "restarts": 2}  # NOTE [fast step]: csrc/scheduler_step.cpp's codes
_NO_RECURSION = object()  # _lrfast_coefficients: the class has no recursion of its own


def holds_tensor(value: Any) -> bool:
    """A tensor, or a list / tuple holding one: a hyperparameter torch computes with in the
    tensor's dtype (float32 for ``torch.tensor(0.5)``), writing tensors even into float groups."""
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)


def use_torch_code(scheduler: Any) -> None:
    """From now on this scheduler runs torch's own step (its values in the tensors' dtype,
    its writes): a tensor hyperparameter. Its groups are off the program (NOTE [proof of the
    program]); a bound optimizer applies what they hold."""
    scheduler.__dict__["_lrfast_host_path"] = True
    rt = getattr(scheduler, "_lrfast_rt", None)
    if rt is not None:
        rt.proof = rt.given = rt.momentum_proof = rt.proof_on = rt.proof_program = None


def call_warning_at_caller(depth: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, its warnings re-issued at the line of the code that called lrfast:
    ``depth`` frames above the function calling this one (1: that function's caller).
    torch's warnings point into torch or lrfast otherwise."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=depth + 2)  # 1: here, 2: the function calling this
    return result


class Watched:
    """NOTE [watched attributes] torch's schedulers read their attributes (``gamma``,
    ``T_max``, ...) at every step, so a user may change them mid-run. lrfast builds its
    program from them once; assigning a watched attribute drops the program, to be rebuilt
    from the new value at the next step, with no cost per step. The value lives in the
    instance ``__dict__`` under its own name, where torch's ``state_dict()`` finds it.
    Containers changed in place (``base_lrs``, ``milestones``, ...) cannot be seen by
    assignment: the program keeps copies of those (``_lrfast_mutable``) and compares them
    at each step, which for a list of floats costs a pointer comparison per element."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    # No __get__: a read finds the value in the instance __dict__ at C speed (a descriptor with
    # __set__ and no __get__ gives way to the instance dict); only assignment runs Python.
    if TYPE_CHECKING:  # what type checkers should make of a read
        def __get__(self, instance: Any, owner: type | None = None) -> Any: ...

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.name] = value
        if holds_tensor(value):
            use_torch_code(instance)
        self._forget(instance)

    def __delete__(self, instance: Any) -> None:
        try:
            del instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        self._forget(instance)

    @staticmethod
    def _forget(instance: Any) -> None:
        rt = getattr(instance, "_lrfast_rt", None)
        if rt is not None:
            rt.program = None
            rt.no_program = False
            rt.prev_t = None


class DeletableWatched(Watched):
    """A watched attribute that torch's own code may delete and then test with ``hasattr``
    (OneCycleLR's ``_anneal_func_type``): reads raise AttributeError once it is gone."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


class _Writer:
    """Writes one array of per-group values into the groups' ``key`` entries and, when
    given, into ``out`` (NOTE [lr tensor])."""

    def __init__(self, groups: list[dict[str, Any]], key: str, packed: Packed, tuple_slot: int | None = None,
                 out: torch.Tensor | None = None) -> None:
        self.key = key
        self.out = out
        self.out_view = out.numpy() if out is not None and not device_api.is_device(out.device) else None
        self.tuple_slot = tuple_slot  # betas: write element 0 of the tuple
        self.float_groups: list[int] = []
        self.cpu_tensors: list[tuple[int, np.ndarray]] = []
        # (writer, the tensor each group's launch writes; None: a group written elsewhere)
        self.cuda_writers: list[tuple[ScalarWriter, list[torch.Tensor | None]]] = []
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
        self.cpu_index = np.array([i for i, _ in self.cpu_tensors], dtype=np.int64)
        self.cuda_groups = {i for indices in cuda_by_device.values() for i in indices}
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

    def _value(self, group: dict[str, Any]) -> Any:
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

    def on_program(self, groups: list[dict[str, Any]], expected: np.ndarray | Sequence[float]) -> list[int]:
        """The groups whose value is not ``expected`` (NOTE [one step rule]): floats compared
        exactly, CPU tensors after rounding ``expected`` to their dtype, CUDA tensors taken to
        hold it (reading them would sync; docs/schedulers.md, "Stacking")."""
        off = []
        for i in self.float_groups:
            if self._value(groups[i]) != expected[i]:
                off.append(i)
        if self.cpu_tensors:
            held = [view[0] for _, view in self.cpu_tensors]  # what each tensor holds, in its dtype
            want = np.asarray(expected, dtype=np.float64)[self.cpu_index]
            for (i, view), h, w in zip(self.cpu_tensors, held, want.tolist()):
                if h != view.dtype.type(w):
                    off.append(i)
        return sorted(off)

    def held(self, groups: list[dict[str, Any]], i: int) -> float:
        """What group ``i`` holds now, as a float (a CPU tensor read through its view)."""
        value = self._value(groups[i])
        return float(value.detach().reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)

    def proof_of(self, groups: list[dict[str, Any]], i: int, value: float) -> Any:
        """NOTE [proof of the program]: what shows that group ``i`` still holds the program's
        ``value`` just written: the float object, or (tensor, its version now)."""
        held = self._value(groups[i])
        if isinstance(held, torch.Tensor):
            try:
                return (held, held._version)
            except RuntimeError:  # an inference-mode tensor keeps no version: never proven
                return None
        return held if type(held) is float and held == value else None  # noqa: E721

    def bump_versions(self) -> None:
        """NOTE [proof of the program]: tensors written behind autograd's back (NumPy views,
        raw launches) get their version moved, as torch's own in-place ops do."""
        if self.tensors:
            increment_version(self.tensors)

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
        self.bump_versions()

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

    def __init__(self, scheduler: LRScheduler, lr_schedules: list[Schedule]) -> None:
        groups = scheduler.optimizer.param_groups
        momentum = scheduler._lrfast_momentum_schedules()
        self.n_groups = len(groups)
        self.lr = self._pack(lr_schedules)
        self.lr_rows, self.lr_row_of = _shared_rows(self.lr.descriptors)
        self.lr_out = np.empty(self.n_groups)  # values_at's buffer
        # the per-step buffers of _C.step_groups: this step's closed form, the previous one's, on-program flags
        self.cur, self.spare, self.on = np.empty(self.n_groups), np.empty(self.n_groups), np.empty(self.n_groups)
        # NOTE [watched attributes]: copies of the containers torch re-reads, compared at each step
        self.watched = [(name, value, isinstance(value, dict)) for name in scheduler._lrfast_mutable
                        for value in (_watched_copy(scheduler.__dict__.get(name)),)]
        keys = scheduler._lrfast_group_keys
        self.group_key_names = tuple(keys)
        self.group_keys = operator.itemgetter(*keys) if keys else None
        self.group_items = [self.group_keys(g) for g in groups] if self.group_keys is not None else None
        rt = scheduler._lrfast_runtime()
        out = rt.lr_buffer
        if out is not None and out.shape[0] != self.n_groups:
            out = rt.lr_buffer = None  # groups added or removed: lr_tensor is made anew
        self.lr_writer = _Writer(groups, "lr", self.lr, out=out)
        self.momentum: Packed | None = None
        if momentum is not None:
            self.momentum = self._pack(momentum)
            self.momentum_rows, self.momentum_row_of = _shared_rows(self.momentum.descriptors)
            self.momentum_out = np.empty(self.n_groups)
            self.momentum_cur, self.momentum_on = np.empty(self.n_groups), np.empty(self.n_groups)
            key, slot = scheduler._lrfast_momentum_key()
            _unalias(groups, key, slot)
            self.momentum_writer = _Writer(groups, key, self.momentum, slot)
        # no tensors to watch for replacement (neither writer's still_valid has anything to compare)
        self.plain = not self.lr_writer.tensors and (self.momentum is None or not self.momentum_writer.tensors)

    @staticmethod
    def _pack(schedules: Sequence[Schedule]) -> Packed:
        packed = pack_many(schedules)
        _C.validate(packed.descriptors, packed.table.shape[0])  # NOTE [trusted descriptors]
        packed.descriptors.setflags(write=False)
        packed.table.setflags(write=False)
        return packed

    def still_valid(self, scheduler: LRScheduler, groups: list[dict]) -> bool:
        """Whether the program still describes the groups and what torch would read
        (NOTE [group kinds], NOTE [watched attributes])."""
        if len(groups) != self.n_groups or (not self.plain and (not self.lr_writer.still_valid(groups) or (
                self.momentum is not None and not self.momentum_writer.still_valid(groups)))):
            return False
        attributes = scheduler.__dict__
        for name, value, is_dict in self.watched:
            current: Any = attributes.get(name)
            # a Counter's == runs in Python (MultiStepLR's milestones): dict's own, in C, when both are one type
            if not (dict.__eq__(current, value) if is_dict and type(current) is type(value) else current == value):
                return False
        return self.group_keys is None or list(map(self.group_keys, groups)) == self.group_items

    def values_at(self, t: float) -> list[float]:
        _C.evaluate_at_trusted(self.lr.descriptors, self.lr.table, t, self.lr_out)
        return self.lr_out.tolist()

    def momentum_at(self, t: float) -> list[float]:
        momentum = self.momentum
        assert momentum is not None, "momentum_at: this program has no momentum schedules"
        _C.evaluate_at_trusted(momentum.descriptors, momentum.table, t, self.momentum_out)
        return self.momentum_out.tolist()


def _watched_copy(value: Any) -> Any:
    """The copy a program compares a container with at each step: one level deep, and a
    level more for a list of dicts (OneCycleLR's ``_schedule_phases``, edited in place)."""
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return [copy.copy(v) if isinstance(v, dict) else v for v in value]
    return copy.copy(value)


def _shared_rows(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(distinct descriptor rows, each group's row as float64) when groups share
    descriptors (groups of one LR: each distinct schedule is evaluated once per step), else
    (descriptors, None)."""
    rows, row_of = np.unique(descriptors, axis=0, return_inverse=True)
    if rows.shape[0] == descriptors.shape[0]:
        return descriptors, None
    rows = np.ascontiguousarray(rows)
    rows.setflags(write=False)  # NOTE [trusted descriptors]: rows of validated descriptors
    return rows, row_of.reshape(-1).astype(np.float64)


def _unalias(groups: list[dict], key: str, slot: int | None) -> None:
    """A tensor momentum that is also the group's ``max_momentum`` (CyclicLR and OneCycleLR
    start it so, as torch's do) gets its own copy before it is written in place: torch
    assigns a new value there, leaving the bound untouched."""
    for group in groups:
        value = group[key][slot] if slot is not None else group[key]
        if isinstance(value, torch.Tensor) and any(v is value for k, v in group.items() if k != key):
            fresh = value.clone()
            group[key] = (*group[key][:slot], fresh, *group[key][slot + 1:]) if slot is not None else fresh


class _Runtime:
    """NOTE [scheduler runtime]: caches, never state."""

    __slots__ = ("program", "no_program", "lr_buffer", "handle", "count", "owner", "t", "prev_t", "prev_values",
                 "proof", "given", "proof_on", "momentum_proof", "proof_program", "off", "period", "window",
                 "child_windows", "packed", "fast", "__weakref__")

    def __init__(self) -> None:
        self.program: _Program | None = None
        self.no_program = False  # the closed form cannot describe these arguments: torch's recursion
        self.lr_buffer: torch.Tensor | None = None
        self.handle: int | None = None
        self.count: torch.Tensor | None = None
        self.owner: Any = None  # a ReduceLROnPlateau composed with this scheduler writes for it
        self.t: float | None = None  # the step whose values the groups hold
        self.prev_t: float | None = None  # prev_values = the program's values at prev_t
        self.prev_values: np.ndarray | None = None
        # NOTE [proof of the program]: per group, what shows it holds the program's value at t (None: not)
        self.proof: list | None = None
        # the copy of proof handed out as _last_lr (the user may edit that list; the proof stays
        # the runtime's own): `_last_lr is given` tells no other write replaced it since
        self.given: list | None = None
        self.proof_on: np.ndarray | None = None  # with proof: 1.0 where the program's value was written (None: all)
        self.momentum_proof: list | None = None
        self.proof_program: _Program | None = None  # the program the proof is of
        self.off = False  # a group took torch's recursion at the last step: coefficients computed up front
        self.period: tuple | None = None  # CosineAnnealingWarmRestarts: (step, T_cur, T_i)
        self.window: tuple[int, int] | None = None  # LambdaLR with horizon=: the baked steps [start, stop)
        self.child_windows: tuple[tuple[int, int] | None, ...] | None = None  # a composite's children's windows
        self.packed: Any = None  # SequentialLR / ChainedScheduler: NOTE [composite program]
        self.fast: Any = None  # NOTE [fast step]: the program's _C.FastStep, or None where its step is Python's


_C.bind_runtime(_Runtime)  # NOTE [fast step]: where the compiled step finds the slots above


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


def _torch_twin(cls: type) -> type[_TorchLRScheduler] | None:
    """The torch scheduler class an lrfast class stands in for (its recursion and closed form)."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.") and issubclass(klass, _TorchLRScheduler) \
                and klass is not _TorchLRScheduler and "get_lr" in klass.__dict__:
            return klass
    return None


class LRScheduler(_TorchLRScheduler):
    """Base of lrfast's drop-in schedulers (a subclass of torch's ``LRScheduler``).

    A subclass stores torch's attributes under torch's names, then implements
    :meth:`_lrfast_lr_schedules` (one :class:`~lrfast.schedules.Schedule` per group,
    the LR as a function of ``last_epoch``), and optionally
    :meth:`_lrfast_momentum_schedules`. Everything else -- stepping, writing float or
    tensor LRs, ``get_last_lr``, ``state_dict`` -- is here.

    Subclassed by a user the way torch's ``LRScheduler`` is (overriding ``get_lr()`` or
    ``_get_closed_form_lr()``), it runs torch's own host path with torch's semantics.
    """

    __slots__ = ("_lrfast_rt",)
    _lrfast_rt: _Runtime

    # The torch twin's get_lr ignores the current LR (it sets it from the base): always the
    # closed form (NOTE [one step rule]).
    _lrfast_absolute = False
    # _lrfast_host_values gives this step's LRs from the user's callables (LambdaLR, MultiplicativeLR)
    _lrfast_calls_host = False
    # NOTE [fast step]: those callables' rule, for the compiled step: 1 base_lr * f(t) (LambdaLR),
    # 2 group["lr"] * f(t) (MultiplicativeLR), 0 none
    _lrfast_callables = 0
    # _lrfast_check_step may refuse a step (OneCycleLR past total_steps) or move a baked window
    _lrfast_checks_step = False
    # NOTE [fast step]: the attribute a step may not pass, where that is all _lrfast_check_step checks
    _lrfast_step_limit: str | None = None
    # NOTE [fast step]: what step() moves, and the program's step, as the compiled step knows them:
    # "last_epoch" (last_epoch + 1, _step_count too), "steps" (SWALR: _step_count - 1), "restarts"
    # (CosineAnnealingWarmRestarts: last_epoch + 1 with T_cur / T_i, _step_count left alone); None: none of these
    _lrfast_counting: str | None = "last_epoch"
    # No closed form: torch's recursion on the host every step, no program for the kernels.
    _lrfast_host_recursive = False
    # NOTE [watched attributes]: containers torch re-reads each step, compared with the
    # program's copies; group keys the closed form reads (OneCycleLR's max_lr, SWALR's swa_lr)
    _lrfast_mutable: tuple[str, ...] = ("base_lrs",)
    _lrfast_group_keys: tuple[str, ...] = ()
    # A user subclass that overrides get_lr(): torch's step, untouched.
    _lrfast_host_path = False

    def __init_subclass__(cls, **kwargs) -> None:
        # NOTE [compiled steps] (lrfast/_compile.py): every step() becomes one custom op
        # under torch.compile, so the LR changing does not recompile the caller.
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            # NOTE [compiled steps]: the wrapper replaces the method on purpose
            cls.step = compile_aware_scheduler_step(cls.__dict__["step"])  # type: ignore[method-assign]
        if not cls.__module__.startswith("lrfast.") and (
                "get_lr" in cls.__dict__ or "_get_closed_form_lr" in cls.__dict__):
            cls._lrfast_host_path = True

    def _lrfast_runtime(self) -> _Runtime:
        try:
            return self._lrfast_rt
        except AttributeError:
            rt = self._lrfast_rt = _Runtime()
            return rt

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # NOTE [scheduler runtime]: the copy makes its own

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lrfast_handle  # noqa: B018 - its own compiled-step handle, made outside any compilation

    def _lrfast_eager_step(self) -> None:
        """The step the compiled op runs (NOTE [compiled steps])."""
        self.step()

    @property
    def _lrfast_handle(self) -> int:
        """This scheduler's compiled-step handle (NOTE [compiled steps]); one per object."""
        rt = self._lrfast_runtime()
        if rt.handle is None:
            rt.handle = register(self)
            rt.count = torch.zeros((), dtype=torch.int64)
        return rt.handle

    @property
    def _lrfast_count(self) -> torch.Tensor:
        self._lrfast_handle  # noqa: B018 - makes the count with the handle
        count = self._lrfast_rt.count
        assert count is not None, "the compiled-step handle comes with its count"
        return count

    @property
    def _lrfast_program_cache(self) -> _Program | None:
        """The program built last (ReduceLROnPlateau's composition watches it change)."""
        return self._lrfast_runtime().program

    @property
    def _lrfast_owner(self) -> Any:
        return self._lrfast_runtime().owner

    @_lrfast_owner.setter
    def _lrfast_owner(self, owner: Any) -> None:
        self._lrfast_runtime().owner = owner

    @restore_groups_on_error
    def __init__(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> None:
        self._get_lr_called_within_step = False  # torch's step() leaves it in __dict__ (and state_dict)
        _TorchLRScheduler.__init__(self, optimizer, last_epoch)
        self._lrfast_handle  # noqa: B018 - made now, outside any compilation (NOTE [compiled steps])
        if not self._lrfast_host_path:
            bind_scheduler(self)

    # -- what subclasses provide --------------------------------------------------
    def _lrfast_lr_schedules(self) -> list[Schedule]:
        return [self._lrfast_schedule(host_float(base, sync=True), i) for i, base in enumerate(self.base_lrs)]

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        """The LR of ``group`` as a function of this scheduler's step count, from ``base_lr`` (the
        group's base LR, read as a float once for all subclasses)."""
        raise NotImplementedError

    def _lrfast_momentum_schedules(self) -> list[Schedule] | None:
        return None

    def _lrfast_momentum_key(self) -> tuple[str, int | None]:
        use_beta1 = getattr(self, "use_beta1", False)
        return ("betas", 0) if use_beta1 else ("momentum", None)

    def _lrfast_check_step(self, t: float) -> None:
        """Hook: raise before anything changes when ``t`` is out of the schedule's range."""

    # -- the program ------------------------------------------------------------------
    def _lrfast_program(self) -> _Program | None:
        """The packed closed form of every group, or None where torch's recursion runs
        instead: no closed form for this class or these arguments, or groups added to the
        optimizer after the scheduler was built (torch's get_lr decides what they get)."""
        rt = self._lrfast_runtime()
        program = rt.program
        groups = self.optimizer.param_groups
        if program is not None and program.still_valid(self, groups):
            return program
        rt.program = None
        rt.prev_t = None
        if rt.no_program or self._lrfast_host_recursive or self._lrfast_host_path \
                or len(groups) != len(self.base_lrs):
            return None
        try:
            schedules = self._lrfast_lr_schedules()
            program = _Program(self, schedules)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError, RuntimeError):
            # arguments torch accepts that the closed form cannot describe (a negative gamma,
            # a 0-d tensor, a fractional T_max): torch's recursion gives the values (NOTE [one step rule])
            rt.no_program = True
            return None
        rt.program = program
        rt.fast = self._lrfast_fast_step(program)
        return program

    def _lrfast_fast_step(self, program: _Program) -> Any:
        """NOTE [fast step]: the compiled whole step of ``program``, or None where this
        scheduler's step is not the common one (its own step count aside from SWALR's, host
        callables, a checked step other than a limit, tensors, ``lr_tensor``, attributes a
        class turns into properties)."""
        writer = program.lr_writer
        # CPU tensor LRs of float32 / float64 are read and written through the program's NumPy views
        groups = self.optimizer.param_groups
        tensors = [(i, groups[i]["lr"], view) for i, view in writer.cpu_tensors]
        if (self._lrfast_host_path or self._lrfast_calls_host or self._lrfast_host_recursive
                or (self._lrfast_checks_step and self._lrfast_step_limit is None)
                or self._lrfast_counting is None
                or writer.cuda_writers or writer.out is not None
                or any(view.dtype not in (np.float32, np.float64) for _, _, view in tensors)
                or (program.momentum is not None and not program.momentum_writer.all_float)
                or not _plain_attributes(type(self))):
            return None
        momentum = None
        if program.momentum is not None:
            m_writer = program.momentum_writer
            momentum = (program.momentum_rows, program.momentum.table, program.momentum_row_of, m_writer.key,
                        -1 if m_writer.tuple_slot is None else m_writer.tuple_slot)
        return _C.make_fast_step(
            program, program.n_groups, (program.lr_rows, program.lr.table, program.lr_row_of, "lr", -1), momentum,
            program.on, tuple(program.watched),
            program.group_key_names, program.group_items, self._lrfast_step_limit, self._lrfast_absolute,
            _COUNTING[self._lrfast_counting], 0, tensors, increment_version)

    def _lrfast_fast_callables(self) -> Any:
        """NOTE [fast step]: the compiled step of LambdaLR / MultiplicativeLR (no program: the
        lambdas called once per group at each step), or None where this one's step is another."""
        rt = self._lrfast_rt
        if (not self._lrfast_callables or self._lrfast_host_path or self._lrfast_checks_step
                or self._lrfast_counting != "last_epoch" or rt.program is not None
                or not _plain_attributes(type(self), ("lr_lambdas", "base_lrs"))):
            return None
        # one lambda per group: the compiled step checks both counts at every step; consecutive
        # groups running the same pure code share one call (NOTE [pure lambdas] in _pure.py)
        return _C.make_fast_step(None, len(self.optimizer.param_groups), None, None, None, (), (), None, None, False, 0,
                                 self._lrfast_callables, [], None, is_pure_code)

    def refresh(self) -> None:
        """Rebuild the packed schedules and writers (NOTE [group kinds] in this module)."""
        rt = self._lrfast_runtime()
        rt.program = None
        rt.prev_t = None
        rt.no_program = False

    @property
    def schedules(self) -> list[Schedule]:
        """The LR schedule of each param group, as functional :class:`Schedule` objects."""
        return self._lrfast_lr_schedules()

    @property
    def lr_tensor(self) -> torch.Tensor:
        """Every group's current LR as a float64 (G,) tensor on the optimizer's device
        (its parameters' CUDA device, else the CPU), kept current by every ``step()``
        without a host sync (NOTE [lr tensor]): log it, or feed it to device code."""
        rt = self._lrfast_runtime()
        buffer = rt.lr_buffer
        n = len(self.optimizer.param_groups)
        if buffer is None or buffer.shape[0] != n:
            buffer = torch.empty(n, dtype=torch.float64, device=optimizer_device(self.optimizer))
            rt.lr_buffer = buffer
            self.refresh()
            self._lrfast_fill_out(self._last_lr)
        return buffer

    def _lrfast_fill_out(self, values: list) -> None:
        """lr_tensor after a step (NOTE [lr tensor])."""
        rt = self._lrfast_runtime()
        buffer = rt.lr_buffer
        if buffer is None:
            return
        program = self._lrfast_program()
        if program is not None and not rt.off and program.lr_writer.out is buffer:
            # a CUDA tensor's value is written by the launch itself (0.0 is a placeholder)
            program.lr_writer.write_out([0.0 if isinstance(v, torch.Tensor) and device_api.is_device(v.device)
                                         else float(v) for v in values], self.current_step)
            if not program.lr_writer.cuda_writers:
                return
            if all(not isinstance(v, torch.Tensor) or not device_api.is_device(v.device) for v in values):
                return
        parts = [v.detach().reshape(()).to(device=buffer.device, dtype=torch.float64)
                 if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64) for v in values]
        buffer.copy_(torch.stack([p.to(buffer.device) for p in parts]), non_blocking=True)

    # -- torch's API --------------------------------------------------------------------
    # NOTE [skipped steps] in lrfast/_scheduling_protocol.py
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
        """Whether the optimizer's last step was skipped on overflow (takes the record)."""
        if not self._lrfast_skip_on_overflow:
            return False
        found_inf = take_found_inf(self.optimizer)
        return found_inf is not None and host_float(found_inf, sync=True) != 0  # the documented sync

    def step(self, epoch: float | None = None) -> None:
        """torch's ``step()``: advance one step (or go to ``epoch``, deprecated) and write the LRs."""
        # NOTE [compiled steps]: under torch.compile, one custom op (the check is made here, not in
        # a wrapper, to keep a frame off the per-step path)
        if _is_compiling():
            return compiled_scheduler_step(self, epoch)
        if epoch is None:  # compiled_step_taken(self), inlined: a call is a frame more per step
            try:
                rt = self._lrfast_rt
            except AttributeError:  # torch's initial step, inside __init__
                pass
            else:
                fast = rt.fast  # NOTE [fast step]
                if fast is not None and fast.step(self, rt):
                    return None
        # torch's step(epoch) takes any real number (it stores it in last_epoch); its annotation says int
        if self._lrfast_host_path:
            return _TorchLRScheduler.step(self, epoch)  # type: ignore[arg-type]
        if epoch is not None:
            return self._lrfast_step_warning(epoch)
        if self._lrfast_skip_on_overflow and self._lrfast_overflow_skipped():
            return None
        if self._step_count == 1:
            return self._lrfast_step_warning(None)
        # torch's step, less its first-step and step(epoch) warnings; _update_lr() inlined
        prev = self.last_epoch
        if type(prev) is not int or self._lrfast_checks_step:  # noqa: E721 - a tensor or fractional epoch
            self._step_count += 1
            try:
                self._update_lr()
            except BaseException:
                self._step_count -= 1  # NOTE [errors before state changes]
                raise
            return None
        self._step_count += 1  # before the write: SWALR counts its steps by it
        self.last_epoch = prev + 1
        try:
            self._last_lr = self._lrfast_write(prev, prev + 1, False)
        except BaseException:
            self.last_epoch = prev  # NOTE [errors before state changes]
            self._step_count -= 1
            raise
        return None

    step._lrfast_compile_aware = True  # type: ignore[attr-defined]

    def _lrfast_step_warning(self, epoch: object) -> None:
        """torch's own ``step()``, whose warnings (the step order, the epoch deprecation) are
        re-issued at the line that called ``step()``, not inside lrfast or torch."""
        if epoch is not None:
            checked = self._lrfast_check_epoch(epoch)
            if not isinstance(epoch, torch.Tensor):  # a 0-d tensor goes on to torch (_update_lr)
                epoch = checked
        step_count = self._step_count
        try:
            call_warning_at_caller(2, _TorchLRScheduler.step, self, epoch)  # 1: here, 2: step(), then its caller
        except BaseException:
            self._step_count = step_count  # NOTE [errors before state changes]
            raise
        return None

    def _lrfast_check_epoch(self, epoch: object) -> float:
        """The step an explicit ``step(epoch)`` asks for: any real number >= 0 torch accepts
        (ints, NumPy integers, 0-d tensors, integral floats become ints)."""
        if isinstance(epoch, torch.Tensor):
            if epoch.numel() != 1 or epoch.is_complex():
                raise TypeError(f"{type(self).__name__}.step: epoch must be a number, got {epoch!r}")
            epoch = epoch.item()
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
            raise TypeError(f"{type(self).__name__}.step: epoch must be a number, got {epoch!r}")
        try:
            epoch = operator.index(epoch)  # type: ignore[arg-type]  # its TypeError is the test for an int
        except TypeError:
            epoch = float(epoch)
            if not math.isfinite(epoch):
                raise ValueError(f"{type(self).__name__}.step: epoch must be finite, got {epoch!r}") from None
            if epoch.is_integer():
                epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"{type(self).__name__}.step: epoch must be >= 0, got {epoch!r}")
        return epoch

    def _update_lr(self, epoch: float | None = None) -> None:
        """torch's ``_update_lr``: move ``last_epoch`` and write the LRs (NOTE [one step
        rule]). SequentialLR calls it as ``_update_lr(0)`` at a milestone."""
        if self._lrfast_host_path:
            return _TorchLRScheduler._update_lr(self, epoch)  # type: ignore[arg-type]  # as step(epoch)
        prev = self.last_epoch
        # None and ints told apart before isinstance (a metaclass call with torch.Tensor)
        if (epoch is not None and isinstance(epoch, torch.Tensor)) or (
                type(prev) is not int and isinstance(prev, torch.Tensor)):  # noqa: E721
            return self._lrfast_tensor_epoch_update(epoch)
        t = prev + 1 if epoch is None else epoch
        if self._lrfast_checks_step:
            self._lrfast_check_step(t)  # errors before any state changes
        self.last_epoch = t  # type: ignore[assignment]  # a fractional step(epoch), as torch stores it
        try:
            self._last_lr = self._lrfast_write(prev, t, epoch is not None)
        except BaseException:
            self.last_epoch = prev
            raise
        return None

    def _lrfast_tensor_epoch_update(self, epoch: torch.Tensor | None) -> None:
        """``step(epoch)`` with a 0-d tensor: torch keeps it as ``last_epoch`` and computes
        the LRs in its dtype (float32 for a float tensor), writing tensors even into float
        groups, at this step and every later one. lrfast lets torch's own ``_update_lr`` do
        exactly that; the groups are then off the program (NOTE [proof of the program])."""
        prev = self.last_epoch
        try:
            _TorchLRScheduler._update_lr(self, epoch)  # type: ignore[arg-type]
        except BaseException:
            self.last_epoch = prev
            raise
        self._lrfast_torch_wrote(self._last_lr)

    def _lrfast_torch_wrote(self, values: list[Any]) -> None:
        """torch's recursion or torch's own code wrote ``values`` into the groups: they are off
        the program (NOTE [proof of the program]); ``lr_tensor`` follows them."""
        rt = self._lrfast_runtime()
        if rt.program is not None:
            rt.program.lr_writer.bump_versions()
        rt.off, rt.prev_t = True, None
        rt.proof = rt.given = rt.momentum_proof = rt.proof_on = None
        self._lrfast_fill_out(values)

    def _lrfast_closed_form_step(self, explicit: bool) -> bool:
        """Whether this step writes the closed form whatever the groups hold: torch's twin
        ignores the current LR, or step(epoch) uses torch's closed form."""
        if self._lrfast_absolute:
            return True
        return explicit and hasattr(_torch_twin(type(self)), "_get_closed_form_lr")

    def _lrfast_write(self, prev: float, t: float, explicit: bool) -> list[Any]:
        """NOTE [one step rule]: write every group's LR for the step from ``prev`` to ``t``."""
        try:
            rt = self._lrfast_rt
        except AttributeError:  # torch's initial step, inside __init__
            rt = self._lrfast_runtime()
        counts_epochs = self._lrfast_counting != "steps"  # SWALR counts its own steps: _lrfast_step_of
        s = rt.t = t if counts_epochs else self._lrfast_step_of(t)
        program = rt.program
        groups = self.optimizer.param_groups
        if program is None or not program.still_valid(self, groups):
            program = self._lrfast_program()
        if rt.owner is not None:  # a composing ReduceLROnPlateau writes the groups
            rt.proof = rt.given = rt.momentum_proof = rt.proof_on = None
            return program.values_at(s) if program is not None else list(self._last_lr)
        if self._lrfast_calls_host:  # the user's callables, called once per step (LambdaLR, MultiplicativeLR)
            host = self._lrfast_host_values(t)
            if host is not None:
                values = self._lrfast_write_values(host, program, s)
                if rt.fast is None and program is None:
                    rt.fast = self._lrfast_fast_callables()
                return values
        if program is None or t < 0:  # t < 0: built with last_epoch < -1, where torch extrapolates its formulas
            return self._lrfast_torch_write(explicit)
        absolute = self._lrfast_absolute or (explicit and self._lrfast_closed_form_step(explicit))
        # torch's initial step when resuming (last_epoch given) applies torch's get_lr to what the
        # groups hold, whatever it is: every group takes the recursion then
        # -- and so does a first step that is not torch's initial one (a SequentialLR child that
        # torch <= 2.12 leaves unstarted): torch's get_lr at that epoch 0 is its recursion
        resuming = not absolute and (self._is_initial != (prev == -1))
        writer = program.lr_writer
        if writer.all_float:
            if absolute:
                expected = None
            elif resuming:
                expected = np.full(program.n_groups, np.nan)
            elif counts_epochs and rt.prev_t == prev and rt.prev_values is program.spare:
                expected = program.spare  # the closed form the last step wrote
            else:
                expected = self._lrfast_expected(program, prev)
            coeffs = None
            if rt.off and expected is not None:  # the last step had groups off the program: coefficients now
                coeffs = self._lrfast_coefficients(t)
                if coeffs is _NO_RECURSION:
                    return self._lrfast_torch_write(explicit)
                if not (type(coeffs) is tuple and type(coeffs[0]) is float  # noqa: E721 - the usual case
                        and type(coeffs[1]) is float and type(coeffs[2]) is float):  # noqa: E721
                    coeffs = _for_c(coeffs)
            try:
                values = _C.step_groups(program.lr_rows, program.lr.table, s, groups,
                                        "lr", -1, program.cur, expected, coeffs, program.on, program.lr_row_of)
                if type(values) is int and values == _C.STEP_NEEDS_COEFFICIENTS:
                    coeffs = _for_c(self._lrfast_coefficients(t))
                    if coeffs is _NO_RECURSION:
                        return self._lrfast_torch_write(explicit)
                    values = _C.step_groups(program.lr_rows, program.lr.table, s, groups,
                                            "lr", -1, program.cur, expected, coeffs, program.on, program.lr_row_of)
            except ValueError as exc:
                raise ValueError(f"{self._lrfast_described()}: {exc}; lrfast never writes a non-finite LR") from None
            if type(values) is int:  # STEP_NOT_FLOAT: a group's lr became a tensor (or other): kinds read anew
                self.refresh()
                return self._lrfast_write(prev, t, explicit)
            rt.off = coeffs is not None
            program.cur, program.spare = program.spare, program.cur  # cur: this step's closed form
            rt.prev_t, rt.prev_values = s, program.spare
            if writer.out is not None:
                writer.write_out(values, s)
            rt.proof, rt.proof_on = values, (program.on if rt.off else None)
            values = rt.given = list(values)  # _last_lr: the user's to edit, never the proof itself
        else:
            values = self._lrfast_mixed_write(program, prev, s, absolute, resuming)
        if program.momentum is not None or rt.momentum_proof is not None:
            self._lrfast_write_momentum(program, s)
        rt.proof_program = program
        return values

    def _lrfast_host_values(self, t: float) -> list[Any] | None:
        """Hook: the LRs of this step computed on the host from the user's callables
        (LambdaLR, MultiplicativeLR), or None where the program gives them."""
        return None

    def _lrfast_write_values(self, values: list[Any], program: _Program | None, s: float) -> list[Any]:
        """Write values computed on the host (a list of the caller's making, kept as the
        step's values); a group counts as on the program only where a program exists and
        gives the same value (NOTE [proof of the program])."""
        rt = self._lrfast_rt  # made by _lrfast_write, the one caller
        groups = self.optimizer.param_groups
        n = len(groups)
        if len(values) != n:
            self._lrfast_check_group_count(values, groups)
        # plain: every value and group a float (told apart without isinstance); a finite sum
        # shows every float finite before anything is written
        plain = countOf(map(type, values), float) == n and math.isfinite(sum(values))
        if plain:
            for group, value in zip(groups, values):
                if type(group["lr"]) is not float:  # noqa: E721 - a tensor lr: the general write below
                    plain = False  # the floats written so far are written again, the same objects
                    break
                group["lr"] = value
        else:
            self._lrfast_check_torch_values(values)
        if plain:  # torch's _last_lr reads the groups back (one dict at two places holds the later value)
            out = list(map(group_lr, groups))
        else:
            out = _write_host_values(groups, values, False)
        rt.prev_t = None
        rt.proof = rt.given = rt.proof_on = None
        if program is not None:
            closed = program.values_at(s)
            rt.proof = [v if type(v) is float and v == c else None  # noqa: E721
                        for v, c in zip(out, closed)] if plain else None
            self._lrfast_write_momentum(program, s)
            rt.proof_program = program
        if rt.lr_buffer is not None:
            self._lrfast_fill_out(out)
        return out

    def _lrfast_coefficients(self, t: float) -> Any:
        """torch's recursion at step ``t`` as ``(a, shift, add)``: the next LR of a group
        holding ``lr`` is ``a * (lr - shift) + add``, each a float or one per group, the very
        expression of torch's ``get_lr`` (NOTE [one step rule]); _NO_RECURSION where the
        class has none of its own (torch's get_lr runs then)."""
        return _NO_RECURSION

    def _lrfast_step_of(self, t: float) -> float:
        """The step of the closed form the groups hold after stepping to ``t``."""
        return t

    def _lrfast_prev_step(self, prev: float) -> float | None:
        """The closed form's step the groups held before this step (None: before the first)."""
        return None if prev == -1 else self._lrfast_step_of(prev)

    def _lrfast_start_values(self) -> np.ndarray:
        """What the groups hold before the first step: the base LRs (torch's initial step starts there)."""
        return np.array([host_float(b, sync=True) for b in self.base_lrs])

    def _lrfast_expected(self, program: _Program, prev: float) -> np.ndarray:
        """What an on-program group holds before this step: the closed form at ``prev``, and
        before the first step the base LR (torch's initial step starts from it)."""
        rt = self._lrfast_runtime()
        s = self._lrfast_prev_step(prev)
        if s is None:
            return self._lrfast_start_values()
        if rt.prev_t != s or rt.prev_values is None or rt.prev_values is program.cur:
            program.values_at(s)
            np.copyto(program.spare, program.lr_out)
            rt.prev_t, rt.prev_values = s, program.spare
        return rt.prev_values

    def _lrfast_mixed_write(self, program: _Program, prev: float, s: float, absolute: bool,
                            resuming: bool) -> list[Any]:
        """Groups holding tensors (or a mix): the same rule as ``_C.step_groups``, group by group."""
        rt = self._lrfast_runtime()
        groups = self.optimizer.param_groups
        writer = program.lr_writer
        closed = program.values_at(s)
        self._lrfast_check_finite(program.lr_out, s)
        off = [] if absolute else (list(range(len(groups))) if resuming else
                                   writer.on_program(groups, self._lrfast_expected(program, prev)))
        values: list[Any] = list(closed)
        if off:
            coeffs = self._lrfast_coefficients(rt.t if rt.t is not None else s)
            if coeffs is _NO_RECURSION:
                torch_values = self._lrfast_torch_get_lr()
                for i in off:
                    values[i] = torch_values[i]
            else:
                a, shift, add = (c if isinstance(c, (list, tuple, np.ndarray)) else [c] * len(groups)
                                 for c in coeffs)
                for i in off:
                    held = writer.held(groups, i)
                    values[i] = a[i] * (held - shift[i]) + add[i]
            self._lrfast_check_torch_values([values[i] for i in off])
        off_set = set(off)
        if not off:
            writer.write(groups, closed, s)
            out = list(closed)
            for i in (*writer.cuda_groups, *writer.cpu_index.tolist()):
                out[i] = _host_copy(groups[i]["lr"])
        else:
            out = _write_host_values(groups, values, False)
            writer.bump_versions()
            self._lrfast_fill_out(out)
        rt.prev_t = None
        rt.off = bool(off)
        rt.proof_on = rt.given = None
        rt.proof = [None if i in off_set else writer.proof_of(groups, i, closed[i]) for i in range(len(groups))]
        return out

    def _lrfast_check_group_count(self, values: list[Any], groups: list[dict[str, Any]]) -> None:
        if len(values) != len(groups):
            raise ValueError(
                f"{type(self).__name__}: the optimizer has {len(groups)} param groups but the scheduler was built "
                f"for {len(values)} (groups added after it; torch raises here too)")

    def _lrfast_check_torch_values(self, values: list[Any]) -> bool:
        """Raise before writing a non-finite value of torch's recursion; returns whether all
        values are plain numbers (the common case, told apart without isinstance)."""
        plain = all(type(v) in (float, int) for v in values)
        for value in values:
            if (plain or not isinstance(value, torch.Tensor)) and not _finite(value):
                raise ValueError(f"{self._lrfast_described()}: the next learning rate is {value!r}; lrfast never "
                                 "writes a non-finite LR")
        return plain

    def _lrfast_check_finite(self, values: np.ndarray, s: float) -> None:
        if not np.isfinite(values).all():
            bad = [float(v) for v in values if not math.isfinite(v)]
            raise ValueError(f"{self._lrfast_described()}: the learning rate at step {s:g} would be {bad[0]!r}; "
                             "lrfast never writes a non-finite LR")

    def _lrfast_described(self) -> str:
        """The class with the arguments its LRs follow (its watched attributes), for errors:
        ``ExponentialLR(gamma=1e+200)``."""
        names = [name for klass in reversed(type(self).__mro__) for name, value in vars(klass).items()
                 if isinstance(value, Watched) and not name.startswith("_")]
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in dict.fromkeys(names) if name in self.__dict__)
        return f"{type(self).__name__}({shown})"

    def _lrfast_write_momentum(self, program: _Program, s: float) -> None:
        """Momentum / beta1 (CyclicLR, OneCycleLR: torch writes them from the closed form)."""
        rt = self._lrfast_rt  # made by the callers (_lrfast_write and _lrfast_write_values, with the program)
        if program.momentum is None:
            rt.momentum_proof = None
            return
        writer = program.momentum_writer
        if writer.all_float:
            written = _C.step_groups(program.momentum_rows, program.momentum.table, s,
                                     self.optimizer.param_groups, writer.key,
                                     -1 if writer.tuple_slot is None else writer.tuple_slot,
                                     program.momentum_cur, None, None, program.momentum_on, program.momentum_row_of)
            if type(written) is int:  # STEP_NOT_FLOAT
                self.refresh()
                return self._lrfast_write_momentum(self._lrfast_program() or program, s)
            rt.momentum_proof = written
        else:
            values = program.momentum_at(s)
            writer.write(self.optimizer.param_groups, values, s)
            groups = self.optimizer.param_groups
            rt.momentum_proof = [writer.proof_of(groups, i, values[i]) for i in range(len(groups))]

    def _lrfast_torch_get_lr(self) -> list[float | torch.Tensor]:
        """torch's own get_lr() of this class's twin (the chainable recursion), as torch's
        step calls it."""
        twin = _torch_twin(type(self))
        if twin is None:
            raise NotImplementedError(f"{type(self).__name__}: no torch recursion to fall back on")
        previous = self._get_lr_called_within_step
        self._get_lr_called_within_step = True
        try:
            return twin.get_lr(self)
        finally:
            self._get_lr_called_within_step = previous

    def _lrfast_torch_write(self, explicit: bool) -> list[Any]:
        """torch's _update_lr body, once last_epoch is set: torch's values, torch's writes
        (no closed form for these arguments, or a recursion lrfast does not restate)."""
        twin = _torch_twin(type(self))
        if explicit and twin is not None and hasattr(twin, "_get_closed_form_lr"):
            values = twin._get_closed_form_lr(self)
        else:
            values = self._lrfast_torch_get_lr()
        groups = self.optimizer.param_groups
        self._lrfast_check_group_count(values, groups)
        plain = self._lrfast_check_torch_values(values)
        out = _write_host_values(
            groups, list(values), plain and all(type(g["lr"]) in (float, int) for g in groups))
        self._lrfast_torch_wrote(out)
        return out

    def get_last_lr(self) -> list[float | torch.Tensor]:
        """The LRs of the last step, with the types of the groups' ``lr`` (tensors are copies)."""
        last = self._last_lr
        if self._lrfast_host_path or last is self._lrfast_rt.given:  # the latter: floats step_groups wrote
            return last
        groups = self.optimizer.param_groups
        if len(last) != len(groups) or all(type(g["lr"]) is float or not isinstance(g["lr"], torch.Tensor)
                                           for g in groups):
            return last
        out: list[float | torch.Tensor] = list(last)
        for i, g in enumerate(self.optimizer.param_groups):
            value = out[i]
            if isinstance(g["lr"], torch.Tensor) and not isinstance(value, torch.Tensor):
                out[i] = torch.full_like(g["lr"], value)
        return out

    def get_lr(self) -> list[float | torch.Tensor]:
        """torch's ``get_lr()``: the next values of torch's chainable form, from the groups'
        current LRs (warns outside ``step()``, as torch's does; use get_last_lr())."""
        if _torch_twin(type(self)) is None:
            if not self._get_lr_called_within_step:
                warnings.warn("To get the last learning rate computed by the scheduler, please use "
                              "`get_last_lr()`.", UserWarning, stacklevel=2)
            program = self._lrfast_program()
            if program is None:
                raise NotImplementedError(f"{type(self).__name__}.get_lr")
            return [*program.values_at(self.last_epoch)]
        if self._get_lr_called_within_step:
            return super().get_lr()
        return call_warning_at_caller(1, super().get_lr)  # torch's warning, at the caller's line

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not k.startswith(_PRIVATE_PREFIX)}

    @staticmethod
    def _lrfast_public_state(
            torch_state_dict: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        """Wrap a torch ``state_dict`` method so that lrfast's private attributes stay out."""
        def state_dict(self: Any) -> dict[str, Any]:
            return {k: v for k, v in torch_state_dict(self).items() if not k.startswith(_PRIVATE_PREFIX)}
        state_dict.__doc__ = torch_state_dict.__doc__
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if not k.startswith(_PRIVATE_PREFIX)}
        self.__dict__.update(state)
        self.refresh()

    # -- lrfast/_scheduling_protocol.BoundScheduler (NOTE [scheduler binding] there) -----
    # ``packed_lr()`` is None when the groups are not on the program (torch's recursion wrote
    # them; ReduceLROnPlateau, whose LRs the device may decide, offers ``live_lr_program()``).
    @property
    def current_step(self) -> float:
        """The step the groups' current LRs belong to (``last_epoch`` for most schedulers)."""
        rt = self._lrfast_runtime()
        if rt.t is None:
            rt.t = self._lrfast_step_of(self.last_epoch)
        return rt.t

    def packed_lr(self) -> Packed | None:
        """(descriptors (G, DESCRIPTOR_SIZE), table): the packed LR schedule of every group,
        while every group provably holds its value at ``current_step`` (NOTE [proof of the
        program]), else None: read the groups' LRs then."""
        program = self._lrfast_program()
        if program is None or not all(self.proven_groups()[0]):
            return None
        return program.lr

    def packed_momentum(self) -> Packed | None:
        """The packed momentum / beta1 schedules when this scheduler cycles them and every
        group provably holds their value, else None."""
        program = self._lrfast_program()
        if program is None or program.momentum is None or not all(self.proven_groups()[1]):
            return None
        return program.momentum

    def programs(self) -> tuple[Packed | None, Packed | None]:
        """(LR program, momentum program), whether or not the groups hold them: for an
        optimizer that evaluates them only where :meth:`proven_groups` says so."""
        program = self._lrfast_program()
        return (None, None) if program is None else (program.lr, program.momentum)

    def proven_groups(self) -> tuple[list[bool], list[bool]]:
        """NOTE [proof of the program]: for each group, whether its LR (and its momentum /
        beta1) is, provably, this scheduler's program at ``current_step``; a bound optimizer
        evaluates the program only there and applies the group's own value elsewhere."""
        groups = self.optimizer.param_groups
        rt = self._lrfast_runtime()
        program = self._lrfast_program()  # rebuilt when an attribute changed: then nothing is proven
        if program is None or program is not rt.proof_program:
            return [False] * len(groups), [False] * len(groups)
        proof = rt.proof
        if proof is not None and rt.proof_on is not None:  # the groups that took torch's recursion prove nothing
            proof = [v if on else None for v, on in zip(proof, rt.proof_on.tolist())]
        lr = _proven(groups, "lr", None, proof)
        if program.momentum is None:
            return lr, [False] * len(groups)
        key, slot = self._lrfast_momentum_key()
        return lr, _proven(groups, key, slot, rt.momentum_proof)

    def graph_capture_blocker(self) -> str | None:
        """Why graph replays of a bound optimizer's step would not follow this scheduler, or
        None (a LambdaLR without ``horizon=`` overrides this)."""
        return None


def compiled_step_taken(scheduler: LRScheduler) -> bool:
    """NOTE [fast step]: whether the scheduler's compiled step took this step (False: it
    changed nothing, the Python step must run)."""
    try:
        rt = scheduler._lrfast_rt
    except AttributeError:  # torch's initial step, inside __init__
        return False
    fast = rt.fast
    return fast is not None and fast.step(scheduler, rt)


def _plain_attributes(cls: type, more: tuple[str, ...] = ()) -> bool:
    """NOTE [fast step]: the attributes the compiled step reads and sets in the instance
    ``__dict__`` are plain ones there (no class turns them into properties or descriptors)."""
    for name in ("_step_count", "last_epoch", "_last_lr", "_is_initial", "optimizer", "_lrfast_host_path",
                 "_lrfast_skip_on_overflow", *more):
        kind = type(getattr(cls, name, None))
        if hasattr(kind, "__get__") or hasattr(kind, "__set__"):
            return False
    return True


def _for_c(coeffs: Any) -> Any:
    """(a, shift, add) as _C.step_groups takes them: floats, or float64 arrays of one per group."""
    if coeffs is _NO_RECURSION:
        return coeffs
    a, shift, add = coeffs
    if type(a) is float and type(shift) is float and type(add) is float:  # noqa: E721 - the usual case
        return coeffs
    return tuple(np.asarray(c, dtype=np.float64) if isinstance(c, (list, tuple)) else c for c in (a, shift, add))


def _proven(groups: list[dict[str, Any]], key: str, slot: int | None, proof: list | None) -> list[bool]:
    """NOTE [proof of the program]: a float group holds the very object written as the
    program's value; a tensor group the same tensor, unchanged since (its version)."""
    if proof is None or len(proof) != len(groups):
        return [False] * len(groups)
    out = []
    for group, evidence in zip(groups, proof):
        value = group.get(key)
        if slot is not None:
            value = value[slot] if isinstance(value, tuple) and len(value) > slot else None
        if evidence is None or value is None:
            out.append(False)
        elif type(evidence) is tuple:  # noqa: E721 - (tensor, version)
            out.append(value is evidence[0] and value._version == evidence[1])
        else:
            out.append(value is evidence)
    return out


LRScheduler.step = compile_aware_scheduler_step(LRScheduler.step)  # type: ignore[method-assign]  # as in __init_subclass__


def _set_group_value(group: dict[str, Any], key: str, value: float | torch.Tensor) -> None:
    """torch's ``_update_param_group_val``: fill a tensor in place (with a value of more than
    one dimension squeezed, as torch's ``_to_scalar``), assign otherwise."""
    if isinstance(group[key], torch.Tensor):
        if isinstance(value, torch.Tensor) and value.dim() != 0:
            value = value.reshape(())
        group[key].fill_(value)
    else:
        group[key] = value


group_lr = operator.itemgetter("lr")  # a group's LR, read as torch reads it (group["lr"]), no frame


def _write_host_values(groups: list[dict[str, Any]], values: list[Any], all_float: bool) -> list[Any]:
    """Write values computed on the host into the groups' ``lr``; returns what _last_lr
    keeps. ``all_float``: every group and value is a plain number, written without per-group
    type checks."""
    if all_float:
        for group, value in zip(groups, values):  # a plain loop: cheaper than deque(map(setitem, ...)) at any size
            group["lr"] = value
        return list(map(group_lr, groups))
    for group, value in zip(groups, values):
        _set_group_value(group, "lr", value)
    # read back once all are written, as torch's _last_lr: one dict at two places holds the later value
    return list(map(_host_copy, map(group_lr, groups)))


def _host_copy(value: Any) -> Any:
    """What _last_lr keeps of a group's LR: the float (a CPU tensor's value, read for free),
    or a copy of a device tensor (reading it would sync)."""
    if isinstance(value, torch.Tensor):
        return value.clone() if device_api.is_device(value.device) else float(value)
    return value


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return True


def optimizer_device(optimizer: torch.optim.Optimizer) -> torch.device:
    """Where an optimizer's LR tensor lives (NOTE [lr tensor]): the CUDA device of its first
    parameter, else the CPU."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if isinstance(p, torch.Tensor):
                return p.device if device_api.is_device(p.device) else torch.device("cpu")
    return torch.device("cpu")


def format_param(cls: str, name: str, optimizer: torch.optim.Optimizer, value: Any) -> list[Any]:
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
