"""CUDA backend of lrfast.optim: one fused launch per bucket (NOTE [bucket contract]).

``step_bucket(bucket)`` keeps, in ``bucket.backend_cache``, the bucket's device tables
(NOTE [persistent pointer table] in csrc/include/lrfast/fused_tables.h): the tensor
table is rebuilt when the bucket's structure changes and patched when only its grads
were reallocated; the group table (hyperparameters and each group's schedule step) is
refreshed from pinned memory with a non-blocking copy when its values change; the
packed schedules are uploaded when the scheduler rebuilt them. Nothing here waits for
the device.

Inside a CUDA graph capture the launch reads its schedule step from a device counter
and advances it (NOTE [schedule step counter]), so every replay moves the schedule on;
eager launches keep that counter equal to the next step, so a capture may start at any
time after the first eager step.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _bucket_layout as bucket_layout
from .._descriptor import FUSED_LAYOUT
from . import device_api
from .cuda import DTYPE_CODES, require_cuda_kernels

__all__ = ["step_bucket"]

# slots of csrc/include/lrfast/fused_tables.h, as the compiled module exports them
_TENSOR, _GROUP = FUSED_LAYOUT["tensor"], FUSED_LAYOUT["group"]
T_PARAM = _TENSOR["param"]
T_GRAD = _TENSOR["grad"]
T_STATE0 = _TENSOR["state0"]
T_STATE1 = _TENSOR["state1"]
T_STATE2 = _TENSOR["state2"]
T_STEP = _TENSOR["step"]
T_NUMEL = _TENSOR["numel"]
T_GROUP = _TENSOR["group"]
T_FLAGS = _TENSOR["flags"]
T_CHUNK_START = _TENSOR["chunk_start"]
TENSOR_SLOTS: int = FUSED_LAYOUT["tensor_slots"]
G_LR = _GROUP["lr"]
G_BETA1 = _GROUP["beta1"]
G_BETA2 = _GROUP["beta2"]
G_EPS = _GROUP["eps"]
G_WEIGHT_DECAY = _GROUP["weight_decay"]
G_DAMPENING = _GROUP["dampening"]
G_LR_SOURCE = _GROUP["lr_source"]
G_BETA1_SCHEDULED = _GROUP["beta1_scheduled"]
G_NESTEROV = _GROUP["nesterov"]
G_MAXIMIZE = _GROUP["maximize"]
G_AMSGRAD = _GROUP["amsgrad"]
G_LR_TENSOR_DTYPE = _GROUP["lr_tensor_dtype"]
G_SCHEDULE_STEP = _GROUP["schedule_step"]
G_DECOUPLED = _GROUP["decoupled"]
GROUP_SLOTS: int = FUSED_LAYOUT["group_slots"]
LR_VALUE, LR_SCHEDULE, LR_TENSOR = (FUSED_LAYOUT["lr_sources"][k] for k in ("value", "schedule", "tensor"))
ALGORITHMS: dict[str, int] = dict(FUSED_LAYOUT["algorithms"])
COUNTER_NONE, COUNTER_EAGER, COUNTER_GRAPH = (FUSED_LAYOUT["counter_modes"][k] for k in ("none", "eager", "graph"))
FIRST_STEP_FLAG: int = FUSED_LAYOUT["first_step_flag"]


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A device copy without a host sync (NOTE [sync-free uploads] in cuda.py)."""
    return device_api.upload(torch.from_numpy(np.ascontiguousarray(array)), device)


def _refresh(target: torch.Tensor, array: np.ndarray) -> None:
    device_api.refresh(target, torch.from_numpy(np.ascontiguousarray(array)))


class _DeviceTables:
    """The device-side state of one bucket."""

    def __init__(self, bucket) -> None:
        require_cuda_kernels("lrfast.optim")
        if bucket.dtype not in DTYPE_CODES:
            raise TypeError(f"lrfast.optim: CUDA parameters of dtype {bucket.dtype} are not supported")
        self.device = bucket.device
        self.structure_version = -1
        self.grads_version = -1
        self.tensors_host = np.zeros((0, TENSOR_SLOTS), dtype=np.int64)
        self.tensors: torch.Tensor | None = None
        self.n_chunks = 0
        self.groups_host: np.ndarray | None = None
        self.groups: torch.Tensor | None = None
        self.groups_key: tuple | None = None
        self.static_groups = np.zeros((0, GROUP_SLOTS))
        self.lr_tensor_addresses: np.ndarray | None = None
        self.lr_tensors: torch.Tensor | None = None
        self.counter_next: int | None = None  # what the device counter holds after the last launch
        self.plan_hyper: np.ndarray | None = None  # the group_hyper scheduled_* were derived from
        self.scheduled_mask = np.zeros(0, dtype=bool)
        self.scheduled_index: list[int] = []
        # name -> (id of the packed descriptors, descriptors, table, packed, their two addresses)
        self.schedules: dict[str, tuple] = {}
        # Once a launch was captured, device buffers it reads are never freed (a graph holds
        # addresses): replaced schedule uploads are retired here instead.
        self.captured = False
        self.retired: list[tuple] = []
        self.ticket = torch.zeros(1, dtype=torch.int32, device=self.device)
        self.counter = torch.zeros((), dtype=torch.int64, device=self.device)
        # per launch, read once here: the buffers below are replaced, never resized in place
        self.algorithm = ALGORITHMS[bucket.kind]
        self.dtype_code = DTYPE_CODES[bucket.dtype]
        self.device_index = device_api.active().device_index(self.device)
        self.ticket_address = self.ticket.data_ptr()
        self.counter_address = self.counter.data_ptr()
        self.tensors_address = self.groups_address = self.lr_tensors_address = 0

    # -- the tensor table ----------------------------------------------------------------
    def sync_tensors(self, bucket) -> None:
        chunk = FUSED_LAYOUT["chunk_size"]
        if bucket.structure_version != self.structure_version:
            T = len(bucket.params)
            table = np.zeros((T, TENSOR_SLOTS), dtype=np.int64)
            table[:, T_PARAM] = bucket.pointers[bucket_layout.ROW_PARAM]
            table[:, T_GRAD] = bucket.pointers[bucket_layout.ROW_GRAD]
            table[:, T_STATE0] = bucket.pointers[bucket_layout.ROW_EXP_AVG]
            table[:, T_STATE1] = bucket.pointers[bucket_layout.ROW_EXP_AVG_SQ]
            table[:, T_STATE2] = bucket.pointers[bucket_layout.ROW_MAX_EXP_AVG_SQ]
            table[:, T_STEP] = bucket.pointers[bucket_layout.ROW_STEP]
            table[:, T_NUMEL] = bucket.numels
            table[:, T_GROUP] = bucket.tensor_group
            chunks = (bucket.numels + chunk - 1) // chunk
            table[:, T_CHUNK_START] = np.concatenate([[0], np.cumsum(chunks)[:-1]]) if T else []
            self.n_chunks = int(chunks.sum())
            self.tensors_host = table
            self.structure_version = bucket.structure_version
            self.grads_version = -1
            self.tensors = None
        dirty = self.tensors is None
        if bucket.grads_version != self.grads_version:
            self.tensors_host[:, T_GRAD] = bucket.pointers[bucket_layout.ROW_GRAD]
            self.grads_version = bucket.grads_version
            dirty = True
        if bucket.kind == "sgd":
            flags = np.where(bucket.momentum_fresh != 0, FIRST_STEP_FLAG, 0).astype(np.int64)
            if not np.array_equal(flags, self.tensors_host[:, T_FLAGS]):
                self.tensors_host[:, T_FLAGS] = flags
                dirty = True
        if dirty:
            _refuse_upload_in_capture("its tensors changed (new parameters, state, or gradients reallocated, e.g. "
                                      "by zero_grad(set_to_none=True); use zero_grad(set_to_none=False) when "
                                      "capturing)")
            if self.tensors is None or self.tensors.shape[0] != self.tensors_host.shape[0]:
                self.tensors = _to_device(self.tensors_host, self.device)
                self.tensors_address = self.tensors.data_ptr()
            else:
                _refresh(self.tensors, self.tensors_host)

    # -- the group table ----------------------------------------------------------------
    def sync_groups(self, bucket, schedule_column: np.ndarray | None) -> None:
        """Upload the group table when its values changed. ``schedule_column``: the
        per-group schedule steps to store, or None to keep the stored ones (the launch
        then reads the device counter)."""
        hyper = bucket.group_hyper
        key = (id(hyper), id(bucket.lr_tensors))
        if key != self.groups_key:
            _refuse_upload_in_capture("its param groups changed")
            self.static_groups, self.lr_tensor_addresses = self._static_groups(bucket)
            self.groups_key = key
            self.lr_tensors = _to_device(self.lr_tensor_addresses, self.device)
            self.lr_tensors_address = self.lr_tensors.data_ptr()
        elif self.groups_host is not None and (
                schedule_column is None or np.array_equal(schedule_column, self.groups_host[:, G_SCHEDULE_STEP])):
            return  # the static columns derive from the key, the step column is as stored
        table = self.static_groups
        if schedule_column is not None:
            table = table.copy()
            table[:, G_SCHEDULE_STEP] = schedule_column
        elif self.groups_host is not None and self.groups_host.shape == table.shape:
            table = table.copy()
            table[:, G_SCHEDULE_STEP] = self.groups_host[:, G_SCHEDULE_STEP]
        if self.groups_host is None or not np.array_equal(table, self.groups_host):
            _refuse_upload_in_capture("its hyperparameters or schedule steps changed")
            if self.groups is None or self.groups.shape != table.shape:
                self.groups = _to_device(table, self.device)
                self.groups_address = self.groups.data_ptr()
            else:
                _refresh(self.groups, table)
            self.groups_host = table

    def _static_groups(self, bucket) -> tuple[np.ndarray, np.ndarray]:
        hyper = bucket.group_hyper
        G = hyper.shape[0]
        table = np.zeros((G, GROUP_SLOTS), dtype=np.float64)
        table[:, G_LR] = np.nan_to_num(hyper[:, bucket_layout.GROUP_LR], nan=0.0)
        table[:, G_BETA1] = hyper[:, bucket_layout.GROUP_MOMENTUM]
        table[:, G_BETA2] = hyper[:, bucket_layout.GROUP_BETA2]
        table[:, G_EPS] = hyper[:, bucket_layout.GROUP_EPS]
        table[:, G_WEIGHT_DECAY] = hyper[:, bucket_layout.GROUP_WEIGHT_DECAY]
        table[:, G_DAMPENING] = hyper[:, bucket_layout.GROUP_DAMPENING]
        table[:, G_NESTEROV] = hyper[:, bucket_layout.GROUP_NESTEROV]
        table[:, G_MAXIMIZE] = hyper[:, bucket_layout.GROUP_MAXIMIZE]
        table[:, G_AMSGRAD] = hyper[:, bucket_layout.GROUP_AMSGRAD]
        table[:, G_DECOUPLED] = hyper[:, bucket_layout.GROUP_DECOUPLED]
        table[:, G_BETA1_SCHEDULED] = hyper[:, bucket_layout.GROUP_MOMENTUM_SCHEDULED]
        unscheduled_momentum = hyper[:, bucket_layout.GROUP_MOMENTUM_SCHEDULED] == 0
        bad = np.isnan(table[:, [G_BETA2, G_EPS, G_WEIGHT_DECAY, G_DAMPENING]]).any(axis=1)
        bad |= unscheduled_momentum & np.isnan(table[:, G_BETA1])
        if bad.any():
            g = int(np.flatnonzero(bad)[0])
            raise ValueError(f"lrfast.optim: group {g} has a hyperparameter (betas, momentum, eps, weight_decay or "
                             f"dampening) held in a CUDA tensor; only lr may be a device tensor, got {hyper[g]!r}")
        addresses = np.zeros(G, dtype=np.int64)
        for g in range(G):
            lr_tensor = bucket.lr_tensors[g] if g < len(bucket.lr_tensors) else None
            if hyper[g, bucket_layout.GROUP_LR_SCHEDULED] != 0:
                table[g, G_LR_SOURCE] = LR_SCHEDULE
            elif lr_tensor is not None and device_api.is_device(lr_tensor.device):
                if lr_tensor.device != self.device:
                    raise ValueError(f"lrfast.optim: group {g}'s lr tensor is on {lr_tensor.device}, its "
                                     f"parameters on {self.device}")
                if lr_tensor.dtype not in DTYPE_CODES or lr_tensor.numel() != 1:
                    raise TypeError(f"lrfast.optim: group {g}'s lr tensor must be a 1-element float tensor, got "
                                    f"{lr_tensor.dtype} with {lr_tensor.numel()} elements")
                table[g, G_LR_SOURCE] = LR_TENSOR
                table[g, G_LR_TENSOR_DTYPE] = DTYPE_CODES[lr_tensor.dtype]
                addresses[g] = lr_tensor.data_ptr()
            elif np.isnan(hyper[g, bucket_layout.GROUP_LR]):
                raise ValueError(f"lrfast.optim: group {g} has no usable lr for parameters on {self.device}")
        return table, addresses

    def schedule(self, name: str, packed) -> tuple[int, int]:
        """Device addresses of (descriptors, table) of a packed schedule, uploaded on change."""
        if packed is None:
            return 0, 0
        cached = self.schedules.get(name)
        if cached is not None and cached[0] == id(packed.descriptors):
            return cached[4]
        if np.atleast_2d(packed.descriptors).shape[0] == 0:
            return 0, 0
        _refuse_upload_in_capture(f"its {name} schedule was rebuilt (a scheduler re-baked its table, or was "
                                  "replaced)")
        if cached is not None and self.captured:
            self.retired.append(cached)  # a captured graph still reads these addresses
        # copies: the packed arrays are read-only, which torch.from_numpy warns about
        descriptors = _to_device(np.array(np.atleast_2d(packed.descriptors)), self.device)
        table = _to_device(np.array(packed.table) if packed.table.size else np.zeros(1), self.device)
        # the packed arrays stay referenced with their id(), so that the id cannot be reused
        self.schedules[name] = (id(packed.descriptors), descriptors, table, packed,
                                (descriptors.data_ptr(), table.data_ptr()))
        return self.schedules[name][4]


def _counter_plan(tables: _DeviceTables, bucket, capturing: bool, hold: bool) -> tuple[int, int, np.ndarray | None]:
    """(counter mode, counter_next, schedule column to upload or None): NOTE [schedule
    step counter]. When the scheduled groups share one integer step and the device
    counter already holds it (the usual opt.step(); sched.step() loop), the launch reads
    the counter and nothing is uploaded; otherwise the steps go up with the group table."""
    hyper = bucket.group_hyper
    if tables.plan_hyper is not hyper:  # replaced, never edited, when its values change
        scheduled = ((hyper[:, bucket_layout.GROUP_LR_SCHEDULED] != 0)
                     | (hyper[:, bucket_layout.GROUP_MOMENTUM_SCHEDULED] != 0))
        tables.scheduled_mask = scheduled
        tables.scheduled_index = np.flatnonzero(scheduled).tolist()
        tables.plan_hyper = hyper
    index = tables.scheduled_index
    if not index:
        return COUNTER_NONE, 0, None
    scheduled = tables.scheduled_mask
    # Python floats: numpy calls on a handful of groups would cost more than the rest of the plan
    steps = bucket.schedule_t.tolist()
    t = steps[index[0]]
    uniform = t == int(t) and (len(index) == 1 or all(steps[i] == t for i in index))
    if capturing:
        # The captured launch reads the device counter at every replay: it must hold this
        # very step now, which only an eager launch at the previous step guarantees.
        if not uniform or tables.counter_next != int(t) or hold:
            raise RuntimeError(
                "lrfast: a CUDA graph can capture this optimizer's step only after an eager step (the device "
                "schedule counter must hold the current step), with every scheduled group at the same integer step "
                "and no optimizer-owned Schedule lr skipped on overflow"
            )
        tables.counter_next = None  # replays advance it; the host no longer knows its value
        return COUNTER_GRAPH, 0, None
    if uniform and not hold and tables.counter_next == int(t):
        tables.counter_next = int(t) + 1
        return COUNTER_GRAPH, 0, None
    column = np.where(scheduled, bucket.schedule_t, 0.0)
    if uniform:
        tables.counter_next = int(t) + 1
        return COUNTER_EAGER, int(t) + 1, column
    tables.counter_next = None  # steps differ between groups: leave the counter alone
    return COUNTER_NONE, 0, column


def _refuse_upload_in_capture(why: str) -> None:
    if device_api.is_capturing():
        raise RuntimeError(f"lrfast: cannot capture this optimizer step in a CUDA graph: {why}; run an eager step "
                           "with the same tensors first, and keep them unchanged while capturing")


def _on_device(tensor: torch.Tensor, device: torch.device, keep: list) -> int:
    """Address of ``tensor`` (GradScaler's scale / found_inf) as float32 on ``device``."""
    if tensor.device != device or tensor.dtype != torch.float32:
        tensor = tensor.to(device=device, dtype=torch.float32, non_blocking=True)
    keep.append(tensor)  # alive until the launch is enqueued; the caching allocator covers the rest
    return tensor.data_ptr()


def step_bucket(bucket) -> None:
    """One fused step of ``bucket`` (NOTE [bucket contract] in lrfast/_backend/bucket.py)."""
    tables = bucket.backend_cache
    if tables.__class__ is not _DeviceTables:
        tables = bucket.backend_cache = _DeviceTables(bucket)
    n_tensors = len(bucket.params)
    if n_tensors == 0:
        return
    api = device_api.active()
    capturing = api.is_capturing()
    tables.sync_tensors(bucket)
    if capturing:
        tables.captured = True
    hold = bool(getattr(bucket, "hold_schedule_on_skip", False))
    mode, counter_next, column = _counter_plan(tables, bucket, capturing, hold)
    tables.sync_groups(bucket, column)
    lr_desc, lr_table = tables.schedule("lr", bucket.lr_schedule)
    beta1_desc, beta1_table = tables.schedule("momentum", bucket.momentum_schedule)
    algorithm = tables.algorithm
    n_chunks = tables.n_chunks if algorithm == ALGORITHMS["sgd"] else max(tables.n_chunks, 1)
    if n_chunks == 0 and mode == COUNTER_NONE:
        return
    grad_scale = found_inf = 0
    if bucket.grad_scale is not None or bucket.found_inf is not None:
        keep: list[torch.Tensor] = []
        if bucket.grad_scale is not None:
            grad_scale = _on_device(bucket.grad_scale, bucket.device, keep)
        if bucket.found_inf is not None:
            found_inf = _on_device(bucket.found_inf, bucket.device, keep)
    api.kernels().cuda_fused_step(
        algorithm, tables.dtype_code, tables.tensors_address, n_tensors, max(n_chunks, 1),
        tables.groups_address, tables.lr_tensors_address, lr_desc, lr_table, beta1_desc, beta1_table,
        tables.counter_address, mode, counter_next, hold, grad_scale, found_inf, tables.ticket_address,
        api.current_stream(bucket.device).cuda_stream, tables.device_index)
    if bucket.kind == "sgd" and bucket.momentum_fresh.any():
        # The launch wrote buffer = grad where the flag was set, unless GradScaler skipped it
        # (reading found_inf syncs; the optimizer already does so on a first SGD step).
        if bucket.found_inf is None or not bool(bucket.found_inf.detach().reshape(-1)[0]):
            bucket.momentum_fresh[:] = 0
