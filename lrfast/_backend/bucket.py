"""The seam between lrfast's optimizers and their backends: buckets of tensors.

NOTE [bucket contract]

An optimizer step gathers its tensors into one :class:`Bucket` per (device, dtype)
(``lrfast/optim/_planner.py``) and calls, once per bucket, the backend of the bucket's device
(``lrfast/_backend/registry.py``)::

    step_bucket(bucket: Bucket) -> None

- ``cpu``:  ``lrfast._backend.cpu.step_bucket`` (the Numba kernels), or, when Numba is
  not installed, ``lrfast._backend.fallback.step_bucket`` (torch's own functional code);
- ``cuda``: ``lrfast._backend.cuda_optim.step_bucket``, imported on first use; a build
  without that module raises a ``RuntimeError`` saying so.

What a backend must do with a bucket:

1. If ``found_inf`` is given and nonzero, change nothing at all (no parameter, state,
   ``step`` or ``momentum_fresh`` flag) and return.
2. Adam: add 1 to every ``steps[t]`` and use the new value for the bias corrections
   (torch's order). SGD has no step.
3. If ``grad_scale`` is given, divide every gradient by it and write the unscaled
   gradient back into the grad tensor (as torch's fused kernels do for GradScaler).
4. Per group ``g``: the LR is ``group_hyper[g, GROUP_LR]``, or where
   ``group_hyper[g, GROUP_LR_SCHEDULED]`` is 1, the packed schedule
   ``lr_schedule`` (row ``g``) evaluated at ``schedule_t[g]``; momentum / beta1 the same
   with ``GROUP_MOMENTUM`` / ``GROUP_MOMENTUM_SCHEDULED`` / ``momentum_schedule``.
   Evaluate once per group per step, not per element.
5. SGD: where ``momentum_fresh[t]`` is 1 the momentum buffer holds no history yet:
   write ``buffer = grad`` (torch's first step) and set the flag to 0.
6. Update every parameter and state tensor in place with torch's math (float32 math for
   bfloat16 / float16 parameters, one rounding per stored value).

Bucket fields. Identity fields change together, and ``structure_version`` changes
with them; a backend may keep derived tables (device copies of pointer tables, a chunk
map) in ``backend_cache`` and rebuild them when the version differs:

=================  =====================================================================
``kind``           ``"adam"`` (Adam and AdamW) or ``"sgd"``
``device``         ``torch.device`` of every tensor of the bucket
``dtype``          the parameters' dtype: float32, float64, bfloat16 or float16
``params``         list of the T tensors to update: the parameters, or the local shards of
                   DTensor parameters (FSDP2); each dense (contiguous memory, any order)
``grads``          list of T gradients, same shape, dtype and strides as their parameter
``state``          dict kind -> list of T tensors or None (local shards as for params):
                   Adam ``"exp_avg"``, ``"exp_avg_sq"``, ``"max_exp_avg_sq"`` (None
                   where the group has no amsgrad); SGD ``"momentum_buffer"`` (None
                   where the group's momentum is 0)
``steps``          Adam: T float32 0-d ``step`` tensors on the parameters' device
``tensor_group``   int32 (T,): index of each tensor's group in ``optimizer.param_groups``
``numels``         int64 (T,)
``pointers``       int64 (POINTER_ROWS, T): data pointers, ``ROW_*`` rows of
                   ``lrfast/_bucket_layout.py``, 0 where a tensor is absent
=================  =====================================================================

``grads`` may be replaced without a new structure (``zero_grad(set_to_none=True)``
reallocates them every step); ``grads_version`` then changes and ``pointers[ROW_GRAD]``
holds the new addresses. Per-step fields, set before every call:

=========================  =============================================================
``group_hyper``            float64 (G, GROUP_COLUMNS) for all G groups of the optimizer
                           (``GROUP_*`` columns); NaN for an LR held in a CUDA tensor
``lr_tensors``             list of G: the group's ``lr`` tensor, or None (device LRs)
``lr_schedule``            ``lrfast.schedules.Packed`` with G descriptor rows, or None
``momentum_schedule``      the same for momentum / beta1, or None
``schedule_t``             float64 (G,): the step each group's schedules are evaluated at
``momentum_fresh``         uint8 (T,), SGD (see 5.)
``grad_scale``             None or a 1-element float32 tensor (GradScaler's scale)
``found_inf``              None or a 1-element float32 tensor (nonzero: skip, see 1.)
``hold_schedule_on_skip``  True when the optimizer owns the schedule count (groups whose
                           lr is a Schedule): a step skipped by ``found_inf`` must not
                           advance a device-side schedule counter; False when a scheduler
                           drives it (the scheduler steps regardless, as torch's do)
=========================  =============================================================

``group_hyper`` and ``lr_tensors`` are replaced, never edited in place, when their
values change, and the previous object stays alive until the next replacement, so a
backend may key its caches on their ``id()``; ``schedule_t`` is refilled in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import _bucket_layout as bucket_layout

__all__ = ["Bucket", "SUPPORTED_DTYPES", "STATE_KEYS"]

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
STATE_KEYS = {"adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), "sgd": ("momentum_buffer",)}


class Bucket:
    """Every tensor of one (device, dtype) that one optimizer step updates.

    The fields and what a backend must do with them: this module's docstring.
    """

    __slots__ = (
        "kind", "device", "dtype", "params", "grads", "state", "steps", "tensor_group", "numels", "pointers",
        "structure_version", "grads_version", "group_hyper", "lr_tensors", "lr_schedule", "momentum_schedule",
        "schedule_t", "momentum_fresh", "grad_scale", "found_inf", "hold_schedule_on_skip", "backend_cache",
        # the planner's bookkeeping
        "flat_index", "grad_getter", "grad_copies", "contiguous_params", "distributed",
    )

    def __init__(self, kind: str, device: torch.device, dtype: torch.dtype) -> None:
        self.kind = kind
        self.device = device
        self.dtype = dtype
        self.params: list[torch.Tensor] = []
        self.grads: list[torch.Tensor] = []
        self.state: dict[str, list[torch.Tensor | None]] = {k: [] for k in STATE_KEYS[kind]}
        self.steps: list[torch.Tensor] = []
        self.tensor_group = np.zeros(0, dtype=np.int32)
        self.numels = np.zeros(0, dtype=np.int64)
        self.pointers = np.zeros((bucket_layout.POINTER_ROWS, 0), dtype=np.int64)
        self.structure_version = 0
        self.grads_version = 0
        self.group_hyper = np.zeros((0, bucket_layout.GROUP_COLUMNS))
        self.lr_tensors: list[torch.Tensor | None] = []
        self.lr_schedule = None
        self.momentum_schedule = None
        self.schedule_t = np.zeros(0)
        self.momentum_fresh = np.zeros(0, dtype=np.uint8)
        self.grad_scale: torch.Tensor | None = None
        self.found_inf: torch.Tensor | None = None
        self.hold_schedule_on_skip = False
        self.backend_cache: Any = None
        self.flat_index: list[int] = []
        self.grad_getter: Callable | None = None
        self.grad_copies: list[tuple[int, torch.Tensor]] = []  # (t, user grad) where grads[t] is a staged copy
        self.contiguous_params = True
        self.distributed = False  # DTensor parameters: grads are unwrapped to their local shards

    def __repr__(self) -> str:
        return (f"Bucket({self.kind}, {self.device}, {self.dtype}, {len(self.params)} tensors, "
                f"{int(self.numels.sum())} elements)")
