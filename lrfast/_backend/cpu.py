"""CPU backend of lrfast's fused optimizers: one Numba call per bucket and step.

:func:`step_bucket` is the CPU ``step_bucket`` of NOTE [bucket contract]
(``lrfast/_backend/bucket.py``): it checks a bucket once per structure, derives and
keeps the kernel's tables (storage dtype, chunk map, scratch for per-tensor scalars),
and calls the kernel of ``lrfast/_backend/cpu_kernels.py``. :func:`warmup` compiles (or
loads from Numba's cache) the kernels ahead of the first step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch

from .. import _C, _config
from .. import _bucket_layout as bucket_layout
from .. import _descriptor as descriptor_layout
from . import cpu_kernels as K
from . import cpu_threads as threads
from .bucket import Bucket

__all__ = ["step_bucket", "chunk_map", "warmup", "ModeChooser"]

_STORAGE = {torch.float32: np.float32, torch.float64: np.float64, torch.bfloat16: np.uint16, torch.float16: np.int16}
_MATH = {torch.float32: np.float32, torch.float64: np.float64, torch.bfloat16: np.float32, torch.float16: np.float32}


def _readonly(array: np.ndarray) -> np.ndarray:
    if not array.flags.writeable:
        return array
    view = array.view()
    view.setflags(write=False)
    return view


# NOTE [compiled variants] An optional input the kernel does not need this step is passed
# as None, so Numba compiles (and caches) only the variant a bucket uses: no GradScaler
# division without a scaler, no AMSGrad or momentum-buffer loop where no tensor has that
# state. ``_PRESENT`` marks an option
# some tensor of the bucket needs; the kernel then picks per tensor at run time. A cold
# first step compiles one variant of one kernel (docs/benchmarks.md, "first step").
#
# NOTE [group values] A bucket's packed schedules are evaluated here, on the host, by
# the compiled header (``_C.evaluate_rows_trusted``: one call, every group at its own
# step) and reach the kernel as one float64 per group. Evaluating them inside the Numba
# kernel (``lrfast.numba``) gave the same values but cost about 2.5 s of
# compilation on every cold cache, for G scalar evaluations per step; the call costs
# about a microsecond. The Numba twin stays for users' own Numba kernels
# (docs/extending.md) and is tested against the header line for line.
_PRESENT = _readonly(np.zeros(0, dtype=np.int8))
_NOT_SCHEDULED = np.zeros(0)  # writable, as the values it stands for: one Numba type for both


def chunk_map(numels: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk -> tensor, chunk -> first element): every tensor cut into ``chunk_size`` pieces."""
    numels = np.asarray(numels, dtype=np.int64)
    if chunk_size <= 0:
        raise ValueError(f"chunk_map: chunk_size must be > 0, got {chunk_size!r}")
    counts = (numels + chunk_size - 1) // chunk_size
    chunk_tensor = np.repeat(np.arange(numels.shape[0], dtype=np.int32), counts)
    first = np.cumsum(counts) - counts  # index of each tensor's first chunk
    within = np.arange(chunk_tensor.shape[0], dtype=np.int64) - np.repeat(first, counts)
    return chunk_tensor, within * chunk_size


class _Tables:
    """What the kernel needs beyond the bucket, derived once per bucket structure."""

    __slots__ = ("version", "chunk_size", "parallel_min_chunks", "kernel", "serial", "proto", "values", "scalars",
                 "flags", "chunk_tensor", "chunk_start", "schedules", "optional_state", "chooser")

    def __init__(self, bucket) -> None:
        _check_bucket(bucket)
        T = len(bucket.params)
        self.version = bucket.structure_version
        self.chunk_size = int(_config.CHUNK_SIZE)
        self.parallel_min_chunks = int(_config.PARALLEL_MIN_CHUNKS)
        self.chooser = ModeChooser()
        self.kernel = K.KERNELS[bucket.kind]
        self.serial = K.SERIAL_KERNELS[bucket.kind]
        self.proto = np.empty(0, dtype=_STORAGE[bucket.dtype])
        self.values = np.zeros((bucket.group_hyper.shape[0], 2))  # (lr, momentum or beta1) per group, scratch
        self.scalars = np.zeros((T, bucket_layout.SCALAR_COLUMNS), dtype=_MATH[bucket.dtype])
        self.flags = np.zeros((T, bucket_layout.FLAG_COLUMNS), dtype=np.int32)
        self.chunk_tensor, self.chunk_start = chunk_map(bucket.numels, self.chunk_size)
        # AMSGrad's maximum (Adam) or the momentum buffer (SGD): present for some tensor?
        row = bucket_layout.ROW_MAX_EXP_AVG_SQ if bucket.kind == "adam" else bucket_layout.ROW_MOMENTUM_BUFFER
        self.optional_state = _PRESENT if bool(np.any(bucket.pointers[row] != 0)) else None
        self.schedules: dict[str, tuple] = {}  # what -> (Packed, n_groups, (descriptors, table), values), checked once

    def scheduled(self, packed, schedule_t: np.ndarray, what: str) -> np.ndarray:
        """``packed`` evaluated at each group's step (NOTE [group values]); empty without a schedule."""
        if packed is None:
            return _NOT_SCHEDULED
        n_groups = schedule_t.shape[0]
        cached = self.schedules.get(what)
        if cached is None or cached[0] is not packed or cached[1] != n_groups:
            cached = (packed, n_groups, _packed(packed, n_groups, what), np.empty(n_groups))
            self.schedules[what] = cached  # holds the Packed: its identity stays unique
        (descriptors, table), out = cached[2], cached[3]
        _C.evaluate_rows_trusted(descriptors, table, schedule_t, out)
        return out


def _check_bucket(bucket) -> None:
    where = f"lrfast._backend.cpu.step_bucket({bucket!r})"
    if bucket.device.type != "cpu":
        raise ValueError(f"{where}: the CPU backend got tensors on {bucket.device}")
    if bucket.dtype not in _STORAGE:
        raise TypeError(f"{where}: unsupported dtype {bucket.dtype}")
    if bucket.kind not in K.KERNELS:
        raise ValueError(f"{where}: unknown optimizer kind {bucket.kind!r}")
    T = len(bucket.params)
    if len(bucket.grads) != T or bucket.numels.shape != (T,) or bucket.tensor_group.shape != (T,):
        raise ValueError(f"{where}: params, grads, numels and tensor_group disagree in length")
    if bucket.pointers.shape != (bucket_layout.POINTER_ROWS, T) or bucket.pointers.dtype != np.int64:
        raise ValueError(f"{where}: pointers must be int64 of shape {(bucket_layout.POINTER_ROWS, T)}")
    if bucket.tensor_group.dtype != np.int32 or bucket.numels.dtype != np.int64:
        raise TypeError(f"{where}: tensor_group must be int32 and numels int64")
    for p, n in zip(bucket.params, bucket.numels.tolist(), strict=True):
        if p.device.type != "cpu" or p.dtype != bucket.dtype or p.numel() != n:
            raise ValueError(f"{where}: a parameter does not match the bucket ({p.device}, {p.dtype}, {p.numel()})")
    required = {"adam": (bucket_layout.ROW_PARAM, bucket_layout.ROW_GRAD, bucket_layout.ROW_EXP_AVG,
                         bucket_layout.ROW_EXP_AVG_SQ, bucket_layout.ROW_STEP),
                "sgd": (bucket_layout.ROW_PARAM, bucket_layout.ROW_GRAD)}[bucket.kind]
    nonempty = bucket.numels > 0
    for row in required:
        if np.any(bucket.pointers[row][nonempty] == 0) and row != bucket_layout.ROW_STEP:
            raise ValueError(f"{where}: pointer row {row} has null entries")
    if bucket.kind == "adam" and np.any(bucket.pointers[bucket_layout.ROW_STEP] == 0):
        raise ValueError(f"{where}: every tensor needs a step tensor")


def _packed(packed, n_groups: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    descriptors, table = packed.descriptors, packed.table
    if descriptors.ndim != 2 or descriptors.shape != (n_groups, descriptor_layout.DESCRIPTOR_SIZE) \
            or descriptors.dtype != np.float64 or not descriptors.flags.c_contiguous:
        raise ValueError(f"lrfast._backend.cpu.step_bucket: {what} must be C-contiguous float64 of shape "
                         f"{(n_groups, descriptor_layout.DESCRIPTOR_SIZE)}, got {descriptors.shape}")
    if table.ndim != 1 or table.dtype != np.float64 or not table.flags.c_contiguous:
        raise ValueError(f"lrfast._backend.cpu.step_bucket: the {what} table must be 1-d C-contiguous float64")
    _C.validate(descriptors, table.shape[0])  # once per packed schedule: each step evaluates it trusted
    return _readonly(descriptors), _readonly(table)


def _scalar(tensor: torch.Tensor | None) -> np.ndarray | None:
    if tensor is None:
        return None
    return tensor.detach().reshape(-1)[:1].to(device="cpu", dtype=torch.float32).numpy()


def _tables(bucket) -> _Tables:
    tables = bucket.backend_cache
    if (not isinstance(tables, _Tables) or tables.version != bucket.structure_version
            or tables.chunk_size != _config.CHUNK_SIZE
            or tables.parallel_min_chunks != _config.PARALLEL_MIN_CHUNKS):
        tables = bucket.backend_cache = _Tables(bucket)
    return tables


def _kernel_args(bucket, tables: _Tables) -> tuple:
    hyper = bucket.group_hyper
    n_groups = hyper.shape[0]
    if hyper.ndim != 2 or hyper.shape[1] != bucket_layout.GROUP_COLUMNS or hyper.dtype != np.float64 \
            or bucket.schedule_t.shape != (n_groups,):
        raise ValueError("lrfast._backend.cpu.step_bucket: group_hyper must be float64 (G, GROUP_COLUMNS) "
                         "and schedule_t float64 (G,)")
    lr_scheduled = tables.scheduled(bucket.lr_schedule, bucket.schedule_t, "lr_schedule")
    momentum_scheduled = tables.scheduled(bucket.momentum_schedule, bucket.schedule_t, "momentum_schedule")
    if tables.values.shape[0] != n_groups:
        tables.values = np.zeros((n_groups, 2))
    args = (tables.proto, tables.values, tables.scalars, tables.flags, bucket.pointers, bucket.numels,
            bucket.tensor_group, tables.chunk_tensor, tables.chunk_start, tables.chunk_size, hyper, lr_scheduled,
            momentum_scheduled, _scalar(bucket.grad_scale), _scalar(bucket.found_inf))
    if bucket.kind == "sgd":
        return args + (bucket.momentum_fresh, tables.optional_state)
    return args + (tables.optional_state,)


# NOTE [parallel or serial] A bucket big enough to share (``PARALLEL_MIN_CHUNKS``) runs
# the parallel kernel while that is faster, and the serial twin while it is not: each
# bucket times its steps (one clock read around the call) and keeps a moving average
# per mode; now and then (every ``ModeChooser.EXPLORE`` calls, the interval doubling
# while the answer stays the same) it runs the other mode for three calls to see whether
# the machine changed. On a quiet machine the parallel kernel wins (GNU OpenMP:
# 0.45 ms against 0.8 ms serial for AdamW on 1M elements, 2 cores); when other
# processes want the cores, a parallel region waits for descheduled team members and
# the serial kernel wins by up to 28x (docs/benchmarks.md, "Threading layer"). Both
# modes compute every element alike, so results do not depend on the mode.

class ModeChooser:
    """Parallel or serial, by the moving average of each mode's measured call time.

    >>> chooser = ModeChooser()
    >>> for _ in range(40):
    ...     parallel = chooser.parallel()
    ...     chooser.record(parallel, 0.008 if parallel else 0.001)  # a busy machine
    >>> chooser.parallel()
    False
    """

    EXPLORE = 32  # calls between looks at the mode not preferred, at first and after a change
    EXPLORE_MAX = 1024  # the interval doubles each time a look confirms the preference, up to this
    LOOK = 3  # calls per look; the median of their times replaces that mode's average
    WEIGHT = 0.25  # of a new time in the moving average of the preferred mode

    __slots__ = ("calls", "averages", "seen", "interval", "next_look", "look_times")

    def __init__(self) -> None:
        self.calls = 0
        self.averages: list[float | None] = [None, None]  # [serial, parallel] seconds per call
        self.seen = [0, 0]  # calls per mode; the first (compiling or loading) is not timed
        self.interval = self.EXPLORE
        self.next_look = self.EXPLORE
        self.look_times: list[float] = []

    def _prefer_parallel(self) -> bool:
        serial, parallel = self.averages
        return serial is None or parallel is None or parallel <= serial

    def parallel(self) -> bool:
        """The mode of the next call: the preferred one, or the other during a look."""
        self.calls += 1
        if self.averages[0] is None and self.seen[1] >= 2:
            return False  # the parallel kernel is timed: time the serial one
        return self._prefer_parallel() != (self.calls >= self.next_look)

    def record(self, parallel: bool, seconds: float) -> None:
        """Time of a call made in the mode ``parallel()`` returned."""
        mode = int(parallel)
        self.seen[mode] += 1
        if self.seen[mode] == 1:
            return
        if self.calls < self.next_look or self.averages[1 - mode] is None:  # the preferred mode, or timing both
            average = self.averages[mode]
            self.averages[mode] = seconds if average is None else average + self.WEIGHT * (seconds - average)
            return
        self.look_times.append(seconds)
        if len(self.look_times) < self.LOOK:
            return
        before = self._prefer_parallel()
        self.averages[mode] = sorted(self.look_times)[self.LOOK // 2]
        self.look_times = []
        changed = self._prefer_parallel() != before
        self.interval = self.EXPLORE if changed else min(2 * self.interval, self.EXPLORE_MAX)
        self.next_look = self.calls + self.interval


def step_bucket(bucket) -> None:
    """One optimizer step of ``bucket`` on the CPU (NOTE [bucket contract])."""
    if not bucket.params:
        return
    tables = _tables(bucket)
    args = _kernel_args(bucket, tables)
    # NOTE [threading layer] in lrfast/_backend/cpu_threads.py, NOTE [parallel or serial]
    if tables.chunk_tensor.shape[0] < tables.parallel_min_chunks or not threads.parallel_allowed():
        tables.serial(*args)
        return
    chooser = tables.chooser
    parallel = chooser.parallel()
    start = time.perf_counter()
    if parallel:
        threads.run_parallel(tables.kernel, *args)
    else:
        tables.serial(*args)
    chooser.record(parallel, time.perf_counter() - start)


def warmup(kinds: Iterable[str] = ("adam", "sgd"),
           dtypes: Iterable[torch.dtype] = (torch.float32, torch.float64, torch.bfloat16, torch.float16)) -> None:
    """Compile (or load from Numba's on-disk cache) the kernels for ``kinds`` x ``dtypes``.

    For each, both twins (a step takes the serial one for small buckets) of the variant a
    default-constructed optimizer uses (NOTE [compiled variants]): no GradScaler, no
    AMSGrad; for SGD with and without a momentum buffer. Nothing runs: the signatures
    are compiled.
    """
    import numba

    threads.ensure_launched()  # compiling a parallel kernel launches Numba's threads: NOTE [torch's thread count]
    kinds, dtypes = list(kinds), list(dtypes)
    for kind in kinds:
        if kind not in K.KERNELS:
            raise ValueError(f"warmup: kinds must be among {sorted(K.KERNELS)}, got {kind!r}")
    for dtype in dtypes:
        if dtype not in _STORAGE:
            raise ValueError(f"warmup: dtypes must be among {list(_STORAGE)}, got {dtype!r}")
    for kind in kinds:
        for dtype in dtypes:
            tensor, step = torch.zeros(2, dtype=dtype), torch.zeros((), dtype=torch.float32)
            bucket = Bucket(kind, torch.device("cpu"), dtype)  # one tensor, never stepped: it types the arguments
            bucket.params, bucket.grads, bucket.steps = [tensor], [tensor], [step]
            bucket.numels = np.array([2], dtype=np.int64)
            bucket.tensor_group = np.zeros(1, dtype=np.int32)
            bucket.pointers = np.zeros((bucket_layout.POINTER_ROWS, 1), dtype=np.int64)
            rows = [bucket_layout.ROW_PARAM, bucket_layout.ROW_GRAD, bucket_layout.ROW_EXP_AVG,
                    bucket_layout.ROW_EXP_AVG_SQ]
            bucket.pointers[rows, 0] = tensor.data_ptr()
            bucket.pointers[bucket_layout.ROW_STEP, 0] = step.data_ptr()
            bucket.group_hyper = np.zeros((1, bucket_layout.GROUP_COLUMNS))
            bucket.schedule_t = np.zeros(1)
            bucket.momentum_fresh = np.zeros(1, dtype=np.uint8)
            tables = _Tables(bucket)
            variants = (None, _PRESENT) if kind == "sgd" else (None,)
            for optional_state in variants:
                tables.optional_state = optional_state
                signature = tuple(numba.typeof(arg) for arg in _kernel_args(bucket, tables))
                for kernel in (K.SERIAL_KERNELS[kind], K.KERNELS[kind]):
                    kernel.compile(signature)
