"""What lrfast's fused optimizers share: the step, schedules as LRs, scheduler binding.

A fused optimizer is ``class X(FusedOptimizer, torch.optim.X)``: torch's class gives
the constructor (same arguments, defaults and validation errors), ``state_dict``,
hooks and the state layout; this mixin replaces ``step`` with one backend call per
(device, dtype) bucket (``_planner.py``; the buckets and their contract: ``lrfast/_backend/bucket.py``) and adds:

- NOTE [schedule as lr] ``lr`` may be an :class:`lrfast.schedules.Schedule`. The
  group then holds ``"lr_schedule"`` (the Schedule) and ``"lr_step"`` (the optimizer
  steps this group has taken, an int in the param group, so it travels with
  ``state_dict()``); ``group["lr"]`` shows the float the next step will use,
  ``schedule(lr_step)``. A step skipped by GradScaler (``found_inf``) does not count.
  ``state_dict()`` leaves the Schedule object out (checkpoints stay plain data, and
  torch optimizers can load them); ``load_state_dict`` keeps this optimizer's.
- NOTE [schedule count on the device] On a device, with a ``found_inf`` on that device
  (GradScaler), whether a step counts is known only on the device: reading it would be a
  host sync per step. From the first such step the Schedule-lr groups' count lives there
  (:class:`_DeviceCount`): ``group["lr_step"]`` is one int64 0-d device tensor shared by
  those groups, advanced after each step by ``found_inf == 0``, and ``group["lr"]`` a
  float64 0-d device tensor (a view of one buffer) that a scalar-writer launch sets to
  ``schedule(lr_step)`` from that counter. The kernel reads the group's lr from that
  tensor, so it applies exactly what the group shows; nothing is read on the host. A
  float could not show the next LR without a sync, hence the tensors. Needs every such
  group at the same count (else the host path: one sync per step); ``state_dict()``,
  copies and a change of the groups read the count back (one sync each) and give plain
  ints and floats again.
- NOTE [scheduler binding] (``lrfast/_scheduling_protocol.py``): the mixin is a
  ``SchedulerHost`` and a ``SkippedStepSource``; an lrfast scheduler built on this
  optimizer binds itself, and the kernels then evaluate its packed schedules at
  ``scheduler.current_step`` instead of reading each group's float.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import torch

from .._backend import device_api
from .._backend.registry import backend_for
from .._compile import attach, disable
from .._scheduling_protocol import BoundScheduler, host_float
from ..schedules import Schedule, constant, pack_many
from ._planner import Planner

__all__ = ["FusedOptimizer", "LRLike", "ScalarLike"]

# What an optimizer's ``lr`` may be (NOTE [schedule as lr]); other hyperparameters may be
# floats or 1-element tensors, as in torch.
LRLike: TypeAlias = float | torch.Tensor | Schedule
ScalarLike: TypeAlias = float | torch.Tensor


@disable  # not torch.compiler.disable: NOTE [lazy dynamo] in lrfast/_compile.py
def _eager_step(optimizer, closure, **kwargs):
    """A step with a closure or GradScaler tensors under compilation: run eagerly (a graph break)."""
    return type(optimizer).step(optimizer, closure, **kwargs)

_MISSING = object()


class _DeviceCount:
    """NOTE [schedule count on the device]: the count of the Schedule-lr groups, on the
    device, and the buffer their ``lr`` tensors view."""

    __slots__ = ("groups", "counter", "lrs", "writer")

    def __init__(self, groups: list[dict], step: int, device: torch.device) -> None:
        from .._backend.cuda import ScalarWriter, upload  # the CUDA path only

        self.groups = groups
        keep: list = []
        self.counter = upload(np.array(step, dtype=np.int64), device, keep)
        self.lrs = torch.zeros(len(groups), dtype=torch.float64, device=device)
        self.writer = ScalarWriter([None] * len(groups), pack_many([g["lr_schedule"] for g in groups]), out=self.lrs)
        self.writer.write(0.0, counter=self.counter)  # lrs = schedule(step)

    def holds(self, groups: list[dict]) -> bool:
        """Whether the Schedule-lr groups are still the ones counted here (none added, none loaded)."""
        counter = self.counter
        mine = self.groups
        k = 0
        for g in groups:
            if "lr_schedule" in g:
                if k == len(mine) or g is not mine[k] or g["lr_step"] is not counter:
                    return False
                k += 1
        return k == len(mine)

    def advance(self, found_inf: torch.Tensor | None) -> None:
        """After a step: the count moves on where the step was taken, then lrs = schedule(count)."""
        if found_inf is None:
            self.counter.add_(1)
        else:
            if found_inf.device != self.counter.device:
                found_inf = found_inf.to(self.counter.device, non_blocking=True)
            self.counter.add_(found_inf.reshape(()) == 0)
        self.writer.write(0.0, counter=self.counter)


try:  # torch's hook registries, to skip its per-step record_function when nothing listens
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks
except ImportError:  # pragma: no cover - a torch without them: always take torch's wrapper
    _global_optimizer_pre_hooks = _global_optimizer_post_hooks = None


class FusedOptimizer:
    """Mixin: put it before a ``torch.optim`` class (see the module docstring)."""

    _lrfast_kind = ""
    _step_supports_amp_scaling = True
    # class-level defaults: torch's __init__ calls add_param_group before ours has run,
    # and unpickling skips __init__ altogether
    _lrfast_planner: Planner | None = None
    _lrfast_scheduler_ref: weakref.ref[BoundScheduler] | None = None
    _lrfast_found_inf: torch.Tensor | None = None
    _lrfast_default_schedule: Schedule | None = None
    _lrfast_lr_written: dict[int, float | torch.Tensor] | None = None
    _lrfast_packed_schedules: tuple | None = None
    _lrfast_schedule_t: np.ndarray | None = None
    _lrfast_device_count: _DeviceCount | None = None  # NOTE [schedule count on the device]
    _lrfast_on_device_cache: tuple | None = None

    # -- construction -------------------------------------------------------------------
    @staticmethod
    def profile_hook_step(func: Callable[..., Any]) -> Callable[..., Any]:
        """torch's step wrapper (profiler range, step hooks), skipped while no profiler
        runs and no hook is registered: its ``record_function`` alone costs several µs,
        as much as the rest of a small step."""
        hooked = torch.optim.Optimizer.profile_hook_step(func)
        if _global_optimizer_pre_hooks is None:
            return hooked
        profiler_enabled = torch._C._autograd._profiler_enabled

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            self = args[0]
            if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _global_optimizer_pre_hooks
                    or _global_optimizer_post_hooks or profiler_enabled()):
                return hooked(*args, **kwargs)
            out = func(*args, **kwargs)
            self._optimizer_step_code()
            return out

        return wrapper

    @property
    def _lrfast_name(self) -> str:
        return f"lrfast.optim.{type(self).__name__}"

    def _lrfast_begin_init(self, lr: LRLike) -> float | torch.Tensor:
        """Before torch's ``__init__``: a Schedule ``lr`` becomes the default of new groups."""
        self._lrfast_lr_written = {}
        if isinstance(lr, Schedule):
            self._lrfast_default_schedule = lr
            return lr(0)
        return lr

    def _lrfast_end_init(self, differentiable: bool) -> None:
        if differentiable:
            raise RuntimeError(
                f"{self._lrfast_name}: differentiable=True is not supported (the update runs in a fused kernel, "
                f"outside autograd); use torch.optim.{type(self).__name__}"
            )
        self._step_supports_amp_scaling = True
        attach(self)  # NOTE [compiled steps]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``; ``param_group["lr"]`` may also be a Schedule."""
        if not isinstance(param_group, dict) or isinstance(param_group.get("params"), set) \
                or "params" not in param_group:
            super().add_param_group(param_group)  # torch's own errors
            return
        params = param_group["params"]
        if not isinstance(params, torch.Tensor):
            params = param_group["params"] = list(params)
        tensors = [params] if isinstance(params, torch.Tensor) else \
            [p[1] if isinstance(p, tuple) else p for p in params]
        for p in tensors:
            if isinstance(p, torch.Tensor) and p.is_complex():
                raise TypeError(f"{self._lrfast_name}: complex parameters are not supported; optimize "
                                "torch.view_as_real(param) or use torch.optim")
        if len({id(p) for p in tensors}) != len(tensors):
            raise ValueError(f"{self._lrfast_name}: a parameter group holds the same tensor twice")
        lr = param_group.get("lr", _MISSING)
        schedule = lr if isinstance(lr, Schedule) else (self._lrfast_default_schedule if lr is _MISSING else None)
        if schedule is not None:
            if self._lrfast_bound_scheduler() is not None:
                raise ValueError(f"{self._lrfast_name}: an lrfast scheduler drives this optimizer's LRs; "
                                 "a new group cannot have a Schedule as its lr")
            param_group["lr"] = schedule(0)
        super().add_param_group(param_group)
        # the parameters as one tuple, for the compiled step (NOTE [compiled steps])
        self._lrfast_all_params = tuple(p for g in self.param_groups for p in g["params"])
        if schedule is not None:
            param_group["lr_schedule"] = schedule
            param_group["lr_step"] = 0
            self._lrfast_write_lr(param_group, schedule(0))

    def _lrfast_write_lr(self, group: dict, value: float | torch.Tensor) -> None:
        if self._lrfast_lr_written is None:
            self._lrfast_lr_written = {}
        group["lr"] = value
        self._lrfast_lr_written[id(group)] = value

    # -- the optimizer's side of lrfast/_scheduling_protocol.py ---------------------------
    def lrfast_bind_scheduler(self, scheduler: BoundScheduler) -> None:
        """NOTE [scheduler binding]: called by an lrfast scheduler built on this optimizer."""
        for i, group in enumerate(self.param_groups):
            if "lr_schedule" in group:
                raise ValueError(f"{self._lrfast_name}: param group {i} has a Schedule as its lr; a scheduler "
                                 "cannot drive it as well (pass a float lr to use a scheduler)")
        self._lrfast_scheduler_ref = weakref.ref(scheduler)

    def _lrfast_bound_scheduler(self) -> BoundScheduler | None:
        ref = self._lrfast_scheduler_ref
        return ref() if ref is not None else None

    def lrfast_take_found_inf(self) -> torch.Tensor | None:
        """NOTE [skipped steps]: the ``found_inf`` the last ``step()`` saw, taken (cleared)."""
        found_inf = self._lrfast_found_inf
        self._lrfast_found_inf = None
        return found_inf

    # -- state ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the cached buckets at the next step (after editing state tensors by hand)."""
        if self._lrfast_planner is not None:
            self._lrfast_planner.forget()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a copy of a device count (NOTE [schedule count on the device])
            if "lr_schedule" in group and isinstance(group.get("lr_step"), torch.Tensor):
                group["lr_step"] = int(host_float(group["lr_step"], sync=True))
                group["lr"] = group["lr_schedule"](group["lr_step"])
        # a copy's groups are new dicts: what their Schedule lrs wrote is what they hold
        self._lrfast_lr_written = {id(g): g["lr"] for g in self.param_groups if "lr_schedule" in g}
        self.refresh()

    def state_dict(self) -> dict[str, Any]:
        state_dict = super().state_dict()
        # plain dicts, not the watched ones (NOTE [watched state]): torch.load(weights_only=True) reads them
        state_dict["state"] = {k: dict(v) for k, v in state_dict["state"].items()}
        count = self._lrfast_device_count
        step = None
        for group, ours in zip(state_dict["param_groups"], self.param_groups, strict=True):
            schedule = group.pop("lr_schedule", None)
            if count is not None and schedule is not None and ours["lr_step"] is count.counter:
                # NOTE [schedule count on the device]: checkpoints hold plain numbers (one sync)
                if step is None:
                    step = int(host_float(count.counter, sync=True))
                group["lr_step"] = step
                group["lr"] = schedule(step)
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        schedules = [g.get("lr_schedule") for g in self.param_groups]
        super().load_state_dict(state_dict)
        self._lrfast_device_count = None
        for group, schedule in zip(self.param_groups, schedules, strict=True):
            if schedule is not None:
                group["lr_schedule"] = schedule
                step = int(host_float(group.get("lr_step", 0), sync=True))
                group["lr_step"] = step
                self._lrfast_write_lr(group, schedule(step))
            else:
                group.pop("lr_step", None)
        self.refresh()

    # -- what subclasses provide ----------------------------------------------------------
    def _lrfast_group_row(self, group: dict, lr: float, momentum: float) -> tuple[tuple, Any]:
        """(columns GROUP_LR .. GROUP_DECOUPLED of the group's row, structure key);
        ``lr`` and ``momentum`` are already read (0.0 where a schedule provides them)."""
        raise NotImplementedError

    def _lrfast_needed_state(self, group: dict) -> tuple[str, ...]:
        raise NotImplementedError

    def _lrfast_momentum_of(self, group: dict) -> Any:
        raise NotImplementedError

    def _lrfast_sparse_message(self) -> str:
        raise NotImplementedError

    # -- the step ---------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None, *, grad_scale: torch.Tensor | None = None,
             found_inf: torch.Tensor | None = None) -> Any:
        """One optimization step: one backend call per (device, dtype) bucket.

        ``grad_scale`` / ``found_inf`` (or the optimizer attributes of the same names,
        which ``torch.amp.GradScaler`` sets): unscale the gradients in the kernel, and
        skip the whole update where ``found_inf`` is nonzero.
        """
        if torch.compiler.is_compiling():  # NOTE [compiled steps] in lrfast/_compile.py
            return self._lrfast_compiled_step(closure, grad_scale, found_inf)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if grad_scale is None:
            grad_scale = getattr(self, "grad_scale", None)
        if found_inf is None:
            found_inf = getattr(self, "found_inf", None)
        planner = self._lrfast_planner
        if planner is None:
            planner = self._lrfast_planner = Planner(
                self, self._lrfast_kind, name=self._lrfast_name, needed_state=self._lrfast_needed_state,
                sparse_message=self._lrfast_sparse_message())
        groups = self.param_groups
        device_count = self._lrfast_count_on_device(groups, found_inf)
        lr_schedule, momentum_schedule, schedule_t, owned, lr_flags, momentum_flags = self._lrfast_schedules(groups)
        if device_api.is_capturing():
            self._lrfast_check_capturable(lr_schedule, lr_flags)
        rows = []
        signature = []
        lr_tensors = None
        for i, group in enumerate(groups):
            lr = group["lr"]
            if isinstance(lr, torch.Tensor):
                if lr_tensors is None:
                    lr_tensors = [None] * len(groups)
                lr_tensors[i] = lr
            lr_scheduled = lr_flags[i]
            momentum_scheduled = momentum_flags[i]
            row, key = self._lrfast_group_row(
                group,
                0.0 if lr_scheduled else host_float(lr, sync=False),
                0.0 if momentum_scheduled else host_float(self._lrfast_momentum_of(group), sync=False),
            )
            rows.append((*row, 1.0 if lr_scheduled else 0.0, 1.0 if momentum_scheduled else 0.0))
            signature.append((id(group), id(group["params"]), len(group["params"]), key))
        buckets = planner.prepare(rows, signature)
        hyper = planner.group_hyper
        lr_tensors = planner.lr_tensor_list(lr_tensors or [None] * len(groups))
        for bucket in buckets:
            bucket.group_hyper = hyper
            bucket.lr_tensors = lr_tensors
            bucket.lr_schedule = lr_schedule
            bucket.momentum_schedule = momentum_schedule
            bucket.schedule_t = schedule_t
            bucket.grad_scale = grad_scale
            bucket.found_inf = found_inf
            bucket.hold_schedule_on_skip = owned is not None
            backend_for(bucket.device)(bucket)
        stepped: bool | None = True
        if found_inf is not None:
            if owned is not None or planner.fresh_ids:
                # NOTE [host reads]: a sync for a device tensor; with a device count (NOTE [schedule
                # count on the device]) only an SGD momentum buffer's first step (fresh_ids) needs it
                stepped = host_float(found_inf, sync=True) == 0
            else:
                stepped = None  # decided on the device where needed (the planner's grad copies)
        planner.after_step(buckets, stepped, found_inf)
        if device_count is not None:
            device_count.advance(found_inf)
        elif owned is not None and stepped:
            self._lrfast_advance_owned_schedules()
        self._lrfast_found_inf = found_inf  # NOTE [skipped steps]
        return loss

    def _lrfast_check_capturable(self, lr_schedule, lr_flags: list[bool]) -> None:
        """Refuse a CUDA graph capture that would freeze a bound scheduler's LR: graph
        replays run the kernels, never the scheduler's Python, so every group must follow
        the scheduler's program (NOTE [proof of the program]) for replays to advance it.

        - A group's LR is not, provably, the scheduler's program (torch's recursion wrote
          it, e.g. MultiplicativeLR, CyclicLR with ``scale_fn``, a stacked scheduler, an LR
          set by hand): the capture would bake the current LR into the graph.
        - A LambdaLR (or a composite holding one) without ``horizon=`` calls its function
          on the host at each step; with ``horizon=`` the user states that the baked table
          covers the replays.
        """
        if self._lrfast_device_count is not None:
            raise RuntimeError(
                f"{self._lrfast_name}: cannot capture this step in a CUDA graph: its Schedule lr is counted on the "
                "device under GradScaler (NOTE [schedule count on the device]); capture without GradScaler or with "
                "a scheduler")
        scheduler = self._lrfast_bound_scheduler()
        if scheduler is None:
            return
        name = type(scheduler).__name__
        blocker = scheduler.graph_capture_blocker()
        if blocker is not None:
            raise RuntimeError(f"{self._lrfast_name}: cannot capture this step in a CUDA graph: {blocker}")
        if lr_schedule is None or not all(lr_flags):
            raise RuntimeError(
                f"{self._lrfast_name}: cannot capture this step in a CUDA graph: the param groups' LRs are not all "
                f"{name}'s closed form (torch's recursion, another scheduler or a hand edit set them on the host), "
                "so every replay would use the LR of the captured step. Use one scheduler with a closed form, or "
                "LambdaLR(..., horizon=total_steps) for a custom function")

    def _lrfast_advance_owned_schedules(self) -> None:
        """NOTE [schedule as lr]: after a step taken, each Schedule-lr group moves one step on."""
        for group in self.param_groups:
            schedule = group.get("lr_schedule")
            if schedule is not None:
                group["lr_step"] += 1
                self._lrfast_write_lr(group, schedule(group["lr_step"]))

    def _lrfast_count_on_device(self, groups: list[dict], found_inf: torch.Tensor | None) -> _DeviceCount | None:
        """NOTE [schedule count on the device]: the device count in use for this step, made at
        the first step with a device ``found_inf``, or None (the count is on the host)."""
        count = self._lrfast_device_count
        if count is not None:
            if count.holds(groups):
                return count
            self._lrfast_count_to_host()
        if found_inf is None or not device_api.is_device(found_inf.device) or device_api.is_capturing() \
                or not self._lrfast_on_device():
            return None
        owned = [g for g in groups if "lr_schedule" in g]
        if not owned:
            return None
        steps = {g["lr_step"] for g in owned}
        written = self._lrfast_lr_written or {}
        if len(steps) != 1 or any(g["lr"] is not written.get(id(g)) for g in owned):
            return None  # counts differ, or an lr edited from outside (the step raises)
        step = int(steps.pop())
        count = self._lrfast_device_count = _DeviceCount(owned, step, self._lrfast_all_params[0].device)
        for g, lr in zip(owned, count.lrs.unbind(), strict=True):
            g["lr_step"] = count.counter
            self._lrfast_write_lr(g, lr)
        return count

    def _lrfast_count_to_host(self) -> None:
        """Back to host counts: the groups that still hold the device count get it as an int
        (one sync) and their lr as a float."""
        count = self._lrfast_device_count
        self._lrfast_device_count = None
        if count is None:
            return
        held = [g for g in count.groups if g.get("lr_step") is count.counter]
        if held:
            step = int(host_float(count.counter, sync=True))
            for g in held:
                g["lr_step"] = step
                self._lrfast_write_lr(g, g["lr_schedule"](step))

    def _lrfast_compiled_step(self, closure, grad_scale, found_inf):
        """Under torch.compile: the whole step as one ``lrfast::optimizer_step`` op that
        mutates the parameters, so Dynamo reads no learning rate (no recompiles)."""
        if closure is not None or grad_scale is not None or found_inf is not None:
            return _eager_step(self, closure, grad_scale=grad_scale, found_inf=found_inf)
        if "_lrfast_handle" not in self.__dict__:  # made outside compilation, in __init__
            return _eager_step(self, closure)
        # Not param_groups: Dynamo would guard on every group's (changing) "lr" value.
        params = [p for p in self._lrfast_all_params if p.grad is not None]
        torch.ops.lrfast.optimizer_step(self._lrfast_count, params, [p.grad for p in params], self._lrfast_handle)
        return None

    def _lrfast_eager_step(self) -> None:
        """The step the compiled op runs (NOTE [compiled steps])."""
        self.step()

    def _lrfast_schedules(self, groups: list[dict]):
        """(lr Packed, momentum Packed, schedule_t, owned mask, lr flags, momentum flags) for
        this step; a flag is True where the kernel evaluates the schedule for that group.

        NOTE [proof of the program] A bound lrfast scheduler's program is evaluated only for
        the groups that provably hold its value at ``current_step`` (``proven_groups()``),
        and only where it saves work: on a device (no group table to upload, the schedule
        counter kept for graph capture) or while capturing. Every other group -- and every
        group on the CPU, where reading the group's float costs what evaluating would --
        gets the value it shows. Groups whose lr is a Schedule (``owned``) are evaluated at
        their ``lr_step``.
        """
        n = len(groups)
        scheduler = self._lrfast_bound_scheduler()
        capturing = device_api.is_capturing()
        if scheduler is not None and (capturing or self._lrfast_on_device()):
            try:
                lr_packed, momentum_packed = scheduler.programs()
                lr_flags, momentum_flags = scheduler.proven_groups()
            except ValueError:  # groups added after the scheduler: it no longer describes them
                lr_packed = None
            descriptors = None if lr_packed is None else lr_packed.descriptors
            if descriptors is not None and descriptors.ndim == 2 and descriptors.shape[0] == n:
                if not capturing:  # eager: a tensor lr is read by the kernel (it shows its own dtype)
                    lr_flags = [f and not isinstance(g["lr"], torch.Tensor) for f, g in zip(lr_flags, groups)]
                if momentum_packed is None or len(momentum_packed.descriptors) != n:
                    momentum_packed, momentum_flags = None, [False] * n
                if any(lr_flags) or any(momentum_flags):
                    schedule_t = self._lrfast_schedule_t
                    if schedule_t is None or schedule_t.shape[0] != n:
                        schedule_t = self._lrfast_schedule_t = np.empty(n)
                    schedule_t.fill(float(scheduler.current_step))
                    return lr_packed, momentum_packed, schedule_t, None, lr_flags, momentum_flags
        unscheduled = [False] * n
        owned_groups = [g for g in groups if "lr_schedule" in g]
        if not owned_groups:
            return None, None, np.zeros(n), None, unscheduled, unscheduled
        written = self._lrfast_lr_written or {}
        for i, group in enumerate(groups):
            if "lr_schedule" in group and group["lr"] is not written.get(id(group)):
                raise RuntimeError(
                    f"{self._lrfast_name}: param group {i}'s lr is an lrfast Schedule, but group['lr'] was "
                    "changed from outside (by a torch scheduler?); pass a float lr to drive it with a scheduler"
                )
        if self._lrfast_device_count is not None:  # their lr tensors hold the schedule's value
            return None, None, np.zeros(n), None, unscheduled, unscheduled
        key = tuple(id(g.get("lr_schedule")) for g in groups)
        cached = self._lrfast_packed_schedules
        if cached is None or cached[0] != key:
            unit = constant(1.0)
            packed = pack_many([g.get("lr_schedule", unit) for g in groups])
            packed.descriptors.setflags(write=False)
            packed.table.setflags(write=False)
            owned = np.array([1.0 if "lr_schedule" in g else 0.0 for g in groups])
            # keep the schedules alive with the key made of their ids
            cached = self._lrfast_packed_schedules = (key, packed, owned, [g.get("lr_schedule") for g in groups])
        schedule_t = np.array([float(g.get("lr_step", 0)) for g in groups])
        return cached[1], None, schedule_t, cached[2], ["lr_schedule" in g for g in groups], unscheduled

    def _lrfast_on_device(self) -> bool:
        """Whether this optimizer's parameters live on a CUDA (or emulated) device; read again
        when the parameters, their storage (the planner's version) or the device API change."""
        params = getattr(self, "_lrfast_all_params", ())
        planner = self._lrfast_planner
        version = -1 if planner is None else planner.version
        api = device_api.active()
        cached = self._lrfast_on_device_cache
        if cached is not None and cached[0] is params and cached[1] == version and cached[2] is api:
            return cached[3]
        on = bool(params) and device_api.is_device(params[0].device)
        self._lrfast_on_device_cache = (params, version, api, on)
        return on
