"""Turns an optimizer's param groups and state into buckets (``lrfast._backend.bucket``),
once, and checks cheaply on every step whether they still hold (NOTE [persistent buckets],
NOTE [watched state] below).
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable
from itertools import repeat

import numpy as np
import torch

from .. import _bucket_layout as bucket_layout
from .._backend.bucket import STATE_KEYS, SUPPORTED_DTYPES, Bucket

__all__ = ["Planner"]

_STATE_ROWS = {"exp_avg": bucket_layout.ROW_EXP_AVG, "exp_avg_sq": bucket_layout.ROW_EXP_AVG_SQ,
               "max_exp_avg_sq": bucket_layout.ROW_MAX_EXP_AVG_SQ, "momentum_buffer": bucket_layout.ROW_MOMENTUM_BUFFER}

_grad_of = operator.attrgetter("grad")
_data_ptr = torch.Tensor.data_ptr
_is_contiguous = torch.Tensor.is_contiguous


def _local(t):
    """The tensor a kernel updates: a DTensor's local shard, else ``t`` itself."""
    local = getattr(t, "_local_tensor", None)
    return t if local is None else local


def _is_dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill its memory exactly once (contiguous in some order)."""
    if t.is_contiguous():
        return True
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda x: x[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(t: torch.Tensor, like: torch.Tensor) -> bool:
    return t.stride() == like.stride() or t.numel() <= 1


def _as_layout_of(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A copy of ``t`` with ``like``'s dtype, device and strides."""
    out = torch.empty_like(like)
    with torch.no_grad():
        out.copy_(t)
    return out


def _counting(method: Callable) -> Callable:
    """``method`` of dict, counting one edit per call (NOTE [watched state])."""

    def edited(self, *args, **kwargs):
        self._edits[0] += 1
        return method(self, *args, **kwargs)

    edited.__name__ = method.__name__
    return edited


_EDITING = ("__setitem__", "__delitem__", "__ior__", "pop", "popitem", "clear", "update", "setdefault")


class _WatchedState(dict):
    """One parameter's state dict that counts the entries replaced in it (NOTE [watched state])."""

    __slots__ = ("_edits",)

    def __init__(self, entries: dict, edits: list[int]) -> None:
        super().__init__(entries)
        self._edits = edits

    def __reduce_ex__(self, protocol):
        return dict, (dict(self),)  # copies and pickles are plain dicts, as torch makes them


class _WatchedStates(defaultdict):
    """``optimizer.state`` counting the parameters whose state dict was replaced."""

    __slots__ = ("_edits",)

    def __init__(self, states: dict, edits: list[int]) -> None:
        super().__init__(dict, states)
        self._edits = edits

    def __reduce_ex__(self, protocol):
        return defaultdict, (self.default_factory,), None, None, iter(self.items())


for _name in _EDITING:
    setattr(_WatchedState, _name, _counting(getattr(dict, _name)))
    setattr(_WatchedStates, _name, _counting(getattr(dict, _name)))
del _name


class Planner:
    """Turns an optimizer's param groups and state into buckets, once; then checks
    cheaply on every step whether they still hold (NOTE [persistent buckets]).

    NOTE [persistent buckets] Built at the first step and rebuilt only when something
    changed: the param groups (added, or their ``params`` lists edited), a parameter's
    storage (``p.data = ...``), which parameters have a gradient, the state (loaded, an
    entry replaced, NOTE [watched state], or ``optimizer.refresh()``), a group option that
    changes which state exists (``amsgrad``, ``momentum`` to or from 0). Gradients replaced by new
    tensors (``zero_grad(set_to_none=True)``, torch's default) only refresh the gradient
    pointers. Per step this costs one ``data_ptr()`` per parameter and one ``.grad`` read
    per parameter (plus a ``data_ptr()`` and a contiguity check per new gradient).

    NOTE [watched state] The kernels hold the state tensors' addresses, so a state tensor
    replaced by hand (``opt.state[p]["exp_avg"] = t``, or ``opt.state[p] = {...}``) must
    rebuild the buckets, or the kernel would go on writing into the old (possibly freed)
    memory. Checking every state tensor's ``data_ptr()`` per step would cost more than the
    rest of the step, so the rebuild wraps ``optimizer.state`` and each parameter's state
    dict in dict subclasses that count their edits (``edits``); the count is part of the
    per-step state token. Reads and in-place tensor updates cost nothing extra. Not seen:
    a state tensor's storage swapped under the same object (``t.data = ...``, ``t.set_``):
    call ``optimizer.refresh()`` after those.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, *, name: str,
                 needed_state: Callable[[dict], tuple[str, ...]], sparse_message: str) -> None:
        """``optimizer``: read through torch's ``param_groups`` and ``state`` only (NOTE
        [watched state] wraps the latter); ``name`` starts error messages; ``needed_state(group)``:
        the ``STATE_KEYS`` the group's options need; ``sparse_message``: the error for a
        sparse gradient (torch's wording)."""
        self.opt = optimizer
        self.kind = kind
        self.name = name
        self.needed_state = needed_state
        self.sparse_message = sparse_message
        self.state_keys = STATE_KEYS[kind]
        self.version = 0
        self.buckets: list[Bucket] = []
        self.group_signature: list = []
        self.params: list[torch.Tensor] = []
        self.has_dtensor = False  # then the local shards are looked up again every step
        self.param_ptrs: list[int] = []
        self.grads: list[torch.Tensor | None] = []
        self.any_none = False  # whether some parameter had no grad at the last rebuild
        self.state_token: tuple = ()
        self.group_hyper = np.zeros((0, bucket_layout.GROUP_COLUMNS))
        self.hyper_rows: list = []
        self.previous_hyper = self.group_hyper
        self.lr_tensors: list = []
        self.previous_lr_tensors: list = []
        self.fresh_ids: set[int] = set()  # SGD: params whose momentum buffer holds no history yet
        self.edits = [0]  # NOTE [watched state]

    # -- per step ---------------------------------------------------------------------
    def prepare(self, rows: list[tuple], signature: list) -> list[Bucket]:
        """The buckets for this step. ``rows``: the per-group hyperparameter rows;
        ``signature``: what, per group, decides the bucket structure."""
        opt = self.opt
        if rows != self.hyper_rows:
            # the old array stays referenced: backends key caches on id(group_hyper)
            self.previous_hyper = self.group_hyper
            self.group_hyper = np.array(rows, dtype=np.float64).reshape(len(rows), bucket_layout.GROUP_COLUMNS)
            self.hyper_rows = rows
        params = self.params
        state_token = (id(opt.state), len(opt.state), self.edits[0])
        current = list(map(_local, params)) if self.has_dtensor else params
        if (signature != self.group_signature or state_token != self.state_token
                or list(map(_data_ptr, current)) != self.param_ptrs):
            self._rebuild(signature)
            return self.buckets
        grads = list(map(_grad_of, params))
        if not all(map(operator.is_, grads, self.grads)):
            if (self.any_none or any(map(operator.is_, grads, repeat(None)))) and \
                    [g is None for g in grads] != [g is None for g in self.grads]:
                self._rebuild(signature)
                return self.buckets
            self.grads = grads
            for bucket in self.buckets:
                self._set_grads(bucket, _pick(bucket, grads))
            return self.buckets
        for bucket in self.buckets:
            if bucket.grad_copies:  # the same grads, written in place since: stage this step's values
                with torch.no_grad():
                    for t, user_grad in bucket.grad_copies:
                        bucket.grads[t].copy_(user_grad)
        return self.buckets

    def lr_tensor_list(self, lr_tensors: list) -> list:
        """``lr_tensors``, or the equal list of the last step (same object, NOTE above)."""
        old = self.lr_tensors
        if len(old) == len(lr_tensors) and all(map(operator.is_, old, lr_tensors)):
            return old
        self.previous_lr_tensors = old
        self.lr_tensors = lr_tensors
        return lr_tensors

    def _set_grads(self, bucket: Bucket, grads: list[torch.Tensor]) -> None:
        """Point ``bucket`` at new gradient tensors (staging copies of odd layouts)."""
        if bucket.distributed:
            grads = [_local(g) for g in grads]
        try:
            pointers = np.fromiter(map(_data_ptr, grads), np.int64, len(grads))
            ok = bucket.contiguous_params and all(map(_is_contiguous, grads))
        except RuntimeError:
            for g in grads:
                if g.is_sparse:
                    raise RuntimeError(self.sparse_message) from None
            raise
        bucket.grad_copies = []
        if not ok:
            for t, (g, p) in enumerate(zip(grads, bucket.params, strict=True)):
                if not _same_layout(g, p):
                    staged = _as_layout_of(g, p)
                    bucket.grad_copies.append((t, g))
                    grads[t] = staged
                    pointers[t] = staged.data_ptr()
        bucket.grads = grads
        bucket.pointers[bucket_layout.ROW_GRAD] = pointers
        bucket.grads_version += 1

    def after_step(self, buckets: list[Bucket], stepped: bool | None, found_inf: torch.Tensor | None) -> None:
        """Write staged gradients back; forget SGD buffers the kernel has now written.
        ``stepped``: whether the step was taken, or None where only ``found_inf`` (on the
        device) knows: the write-back then picks the values on the device, with no sync."""
        for bucket in buckets:
            if bucket.grad_copies and bucket.grad_scale is not None and stepped is not False:
                with torch.no_grad():
                    for t, user_grad in bucket.grad_copies:
                        unscaled = bucket.grads[t]
                        if stepped is None and found_inf is not None:  # a skipped step leaves the grad as it was
                            skipped = found_inf.to(user_grad.device, non_blocking=True).reshape(()) != 0
                            unscaled = torch.where(skipped, user_grad, unscaled)
                        user_grad.copy_(unscaled)
        if self.fresh_ids:
            for bucket in buckets:
                if bucket.kind == "sgd":
                    for p, fresh in zip(bucket.params, bucket.momentum_fresh.tolist(), strict=True):
                        if not fresh:
                            self.fresh_ids.discard(id(p))

    def forget(self) -> None:
        """Drop the buckets (and the SGD first-step marks: loaded buffers hold history); the
        next ``prepare`` rebuilds them."""
        self.group_signature = []
        self.state_token = ()
        self.fresh_ids.clear()

    # -- building -------------------------------------------------------------------------
    def _rebuild(self, signature: list) -> None:
        opt = self.opt
        params: list[torch.Tensor] = []
        for group in opt.param_groups:
            params.extend(group["params"])
        grads = list(map(_grad_of, params))
        # first check everything that can raise, then change the state
        local_params = [_local(p) for p in params]
        for p, g in zip(local_params, grads, strict=True):
            if g is None:
                continue
            if p.dtype not in SUPPORTED_DTYPES:
                raise TypeError(f"{self.name}: parameters of dtype {p.dtype} are not supported "
                                "(float32, float64, bfloat16, float16)")
            if g.is_sparse:
                raise RuntimeError(self.sparse_message)
            if not _is_dense(p):
                raise ValueError(f"{self.name}: parameters must be dense tensors (no gaps or overlaps "
                                 f"in memory), got one of shape {tuple(p.shape)} and strides {p.stride()}")
        self._watch_state()
        members: dict[tuple[torch.device, torch.dtype], list[tuple[int, int]]] = {}
        flat = 0
        for gi, group in enumerate(opt.param_groups):
            for p in group["params"]:
                if grads[flat] is not None:
                    members.setdefault((p.device, p.dtype), []).append((flat, gi))
                flat += 1
        self.version += 1
        self.buckets = [self._build(device, dtype, entries, params, grads)
                        for (device, dtype), entries in members.items()]
        self.params = params
        self.has_dtensor = any(p is not q for p, q in zip(params, local_params))
        self.param_ptrs = list(map(_data_ptr, local_params))
        self.grads = grads
        self.any_none = any(g is None for g in grads)
        self.group_signature = signature
        self.state_token = (id(opt.state), len(opt.state), self.edits[0])

    def _watch_state(self) -> None:
        """NOTE [watched state]: wrap the state dicts (once; again after a load replaced them)."""
        opt = self.opt
        edits = self.edits
        states = opt.state
        if type(states) is not _WatchedStates or states._edits is not edits:
            states = opt.state = _WatchedStates(states, edits)
        for p, state in list(states.items()):
            if type(state) is not _WatchedState or state._edits is not edits:
                dict.__setitem__(states, p, _WatchedState(state, edits))

    def _build(self, device: torch.device, dtype: torch.dtype, entries: list[tuple[int, int]],
               params: list[torch.Tensor], grads: list) -> Bucket:
        opt = self.opt
        bucket = Bucket(self.kind, device, dtype)
        needs_by_group: dict[int, tuple[str, ...]] = {}
        for flat, gi in entries:
            p = params[flat]
            needs = needs_by_group.get(gi)
            if needs is None:
                needs = needs_by_group[gi] = self.needed_state(opt.param_groups[gi])
            state = opt.state[p]
            if type(state) is not _WatchedState:  # a parameter with no state yet
                state = _WatchedState(state, self.edits)
                dict.__setitem__(opt.state, p, state)
            if self.kind == "adam":
                bucket.steps.append(self._step_tensor(state, p))
            for key in self.state_keys:
                bucket.state[key].append(self._state_tensor(state, key, p) if key in needs else None)
            local = _local(p)
            bucket.distributed |= local is not p
            bucket.params.append(local)
        T = len(entries)
        bucket.flat_index = [flat for flat, _ in entries]
        bucket.tensor_group = np.array([gi for _, gi in entries], dtype=np.int32)
        bucket.numels = np.array([p.numel() for p in bucket.params], dtype=np.int64)
        bucket.contiguous_params = all(p.is_contiguous() for p in bucket.params)
        bucket.pointers = np.zeros((bucket_layout.POINTER_ROWS, T), dtype=np.int64)
        bucket.pointers[bucket_layout.ROW_PARAM] = [p.data_ptr() for p in bucket.params]
        for key, tensors in bucket.state.items():
            bucket.pointers[_STATE_ROWS[key]] = [0 if s is None else s.data_ptr() for s in tensors]
        if bucket.steps:
            bucket.pointers[bucket_layout.ROW_STEP] = [s.data_ptr() for s in bucket.steps]
        bucket.grad_getter = operator.itemgetter(*bucket.flat_index)
        bucket.momentum_fresh = np.array([id(p) in self.fresh_ids for p in bucket.params], dtype=np.uint8)
        self._set_grads(bucket, _pick(bucket, grads))
        bucket.structure_version = self.version
        return bucket

    @staticmethod
    def _step_tensor(state: dict, p: torch.Tensor) -> torch.Tensor:
        """``state["step"]`` as a float32 0-d tensor on ``p``'s device (torch's fused layout)."""
        step = state.get("step")
        if not (isinstance(step, torch.Tensor) and step.dtype == torch.float32 and step.device == p.device
                and step.dim() == 0):
            value = float(step) if step is not None else 0.0
            step = state["step"] = torch.tensor(value, dtype=torch.float32, device=p.device)
        return step

    def _state_tensor(self, state: dict, key: str, p: torch.Tensor) -> torch.Tensor:
        """``state[key]`` (created as torch does: zeros like ``p``, a DTensor for a DTensor)
        with ``p``'s dtype, device and layout; returns the tensor the kernel updates."""
        tensor = state.get(key)
        if tensor is None:
            if key == "momentum_buffer":
                self.fresh_ids.add(id(p))
            tensor = state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        local, local_p = _local(tensor), _local(p)
        if (local.dtype != local_p.dtype or local.device != local_p.device or local.shape != local_p.shape
                or not _same_layout(local, local_p)):
            if local is not tensor or local_p is not p:
                raise ValueError(f"{self.name}: state {key!r} of a DTensor parameter does not match "
                                 f"its local shard ({tuple(local.shape)} {local.dtype} vs {tuple(local_p.shape)} "
                                 f"{local_p.dtype})")
            tensor = state[key] = _as_layout_of(tensor, p)
            local = tensor
        return local


def _pick(bucket: Bucket, grads: list) -> list[torch.Tensor]:
    picked = bucket.grad_getter(grads)
    return [picked] if len(bucket.flat_index) == 1 else list(picked)
