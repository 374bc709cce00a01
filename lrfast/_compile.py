"""torch.compile support: the optimizer step and the scheduler step as custom ops.

NOTE [compiled steps] A ``torch.compile``d training step that calls ``opt.step()`` and
``sched.step()`` on lrfast objects must not recompile as the learning rate changes.
Dynamo guards on every Python value a traced function reads, so reading ``group["lr"]``
(a float that changes every step) or a scheduler's ``last_epoch`` would recompile at
each step. Under compilation the two steps therefore become single custom ops,
``lrfast::optimizer_step`` and ``lrfast::scheduler_step``, whose implementations run the
ordinary eager step of the object they are handed (by an integer handle into a
registry, a constant of the graph). Dynamo sees only tensors (the parameters and
gradients the step mutates and reads, and a small count tensor that orders the
scheduler's steps), so nothing it guards on changes from step to step. The fake
implementations do nothing: both ops only mutate their inputs.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import torch

__all__ = ["register", "optimizer_step", "scheduler_step"]

_registry: dict[int, weakref.ref] = {}
_handles = itertools.count(1)


def register(obj: Any) -> int:
    """A handle under which the compiled ops find ``obj`` (held weakly)."""
    handle = next(_handles)
    _registry[handle] = weakref.ref(obj, lambda _ref, h=handle: _registry.pop(h, None))
    return handle


def _lookup(handle: int) -> Any:
    ref = _registry.get(handle)
    obj = ref() if ref is not None else None
    if obj is None:
        raise RuntimeError(f"lrfast: the optimizer or scheduler of compiled-step handle {handle} no longer exists")
    return obj


@torch.library.custom_op("lrfast::optimizer_step", mutates_args=("count",))
def optimizer_step(count: torch.Tensor, params: list[torch.Tensor], grads: list[torch.Tensor], handle: int) -> None:
    """Run the eager step of the lrfast optimizer registered as ``handle``; count += 1.

    The parameters are updated in place by the optimizer itself, behind
    functionalization's back: declaring them mutated would make AOTAutograd run the op
    on copies and copy those back over the update. ``count`` carries the op's side
    effect (it is never elided), ``params`` and ``grads`` order it after backward."""
    _lookup(handle)._lrfast_eager_step()
    count.add_(1)


@optimizer_step.register_fake
def _(count, params, grads, handle) -> None:
    return None


@torch.library.custom_op("lrfast::scheduler_step", mutates_args=("count",))
def scheduler_step(count: torch.Tensor, handle: int) -> None:
    """Run the eager step of the lrfast scheduler registered as ``handle``; count += 1."""
    _lookup(handle)._lrfast_eager_step()
    count.add_(1)


@scheduler_step.register_fake
def _(count, handle) -> None:
    return None


def _compiled_call(step_fn, scheduler, *args, **kwargs):
    """A scheduler's ``step`` under compilation: one ``lrfast::scheduler_step`` op."""
    if args or kwargs:  # step(epoch) under compilation: run it eagerly (a graph break)
        return _eager_call(step_fn, scheduler, *args, **kwargs)
    handle = getattr(scheduler, "_lrfast_handle", None)
    if handle is None:
        return _eager_call(step_fn, scheduler)
    torch.ops.lrfast.scheduler_step(scheduler._lrfast_count, handle)
    return None


def compiled_scheduler_step(scheduler, epoch=None):
    """What ``LRScheduler.step`` (which checks for compilation itself) does under torch.compile."""
    step_fn = type(scheduler).step
    return _compiled_call(step_fn, scheduler) if epoch is None else _compiled_call(step_fn, scheduler, epoch)


def compile_aware_scheduler_step(step_fn):
    """Wrap a scheduler class's ``step``: under torch.compile, one ``lrfast::scheduler_step``
    op; otherwise the step itself (NOTE [compiled steps])."""
    if getattr(step_fn, "_lrfast_compile_aware", False):
        return step_fn

    def step(self, *args, **kwargs):
        if torch.compiler.is_compiling():
            return _compiled_call(step_fn, self, *args, **kwargs)
        return step_fn(self, *args, **kwargs)

    step.__name__ = step_fn.__name__
    step.__qualname__ = step_fn.__qualname__
    step.__doc__ = step_fn.__doc__
    step.__wrapped__ = step_fn
    step._lrfast_compile_aware = True
    return step


# NOTE [lazy dynamo] ``torch.compiler.disable`` imports ``torch._dynamo`` (about a second)
# when it decorates, so applying it here at import would charge every user of lrfast,
# compiling or not. torch's own ``_disable_dynamo`` wrapper defers that import to the
# first call, which only happens under compilation, and Dynamo skips the wrapper's file
# (a graph break, then the call runs eagerly), as for torch's own lazily disabled
# functions such as ``torch.manual_seed``.
def disable(fn):
    """``torch.compiler.disable(fn)`` without importing ``torch._dynamo`` now (NOTE [lazy dynamo])."""
    lazy = getattr(torch, "_disable_dynamo", None)
    return lazy(fn) if lazy is not None else torch.compiler.disable(fn)


@disable
def _eager_call(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def attach(obj: Any) -> None:
    """Give ``obj`` (an lrfast scheduler or optimizer) its handle and count tensor."""
    if "_lrfast_handle" not in obj.__dict__:
        obj._lrfast_handle = register(obj)
        obj._lrfast_count = torch.zeros((), dtype=torch.int64)
