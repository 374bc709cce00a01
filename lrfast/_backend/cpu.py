"""CPU backend of lrfast's fused optimizers: one Numba call per bucket and step.

:func:`step_bucket` is the CPU ``step_bucket`` of NOTE [bucket contract]
(``lrfast/optim/_dispatch.py``): it checks a bucket once per structure, derives and
keeps the kernel's tables (storage dtype, chunk map, scratch for per-tensor scalars),
and calls the kernel of ``lrfast/_numba/kernels.py``. :func:`warmup` compiles (or
loads from Numba's cache) the kernels ahead of the first step.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .. import _config
from .. import _layout as descriptor_layout
from .._numba import kernels as K
from .._numba import threads
from ..optim import _layout as L

__all__ = ["step_bucket", "chunk_map", "warmup"]

_STORAGE = {torch.float32: np.float32, torch.float64: np.float64, torch.bfloat16: np.uint16, torch.float16: np.int16}
_MATH = {torch.float32: np.float32, torch.float64: np.float64, torch.bfloat16: np.float32, torch.float16: np.float32}
_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _readonly(array: np.ndarray) -> np.ndarray:
    if not array.flags.writeable:
        return array
    view = array.view()
    view.setflags(write=False)
    return view


_NO_DESCRIPTORS = _readonly(np.zeros((0, descriptor_layout.DESCRIPTOR_SIZE)))
_NO_TABLE = _readonly(np.zeros(0))
_NO_SCALAR = np.zeros(0, dtype=np.float32)


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

    __slots__ = ("version", "chunk_size", "parallel_min_chunks", "kernel", "serial", "proto", "scalars", "flags",
                 "chunk_tensor", "chunk_start", "schedules")

    def __init__(self, bucket) -> None:
        _check_bucket(bucket)
        T = len(bucket.params)
        self.version = bucket.structure_version
        self.chunk_size = int(_config.CHUNK_SIZE)
        self.parallel_min_chunks = int(_config.PARALLEL_MIN_CHUNKS)
        self.kernel = K.KERNELS[bucket.kind]
        self.serial = K.SERIAL_KERNELS[bucket.kind]
        self.proto = np.empty(0, dtype=_STORAGE[bucket.dtype])
        self.scalars = np.zeros((T, L.SCALAR_COLUMNS), dtype=_MATH[bucket.dtype])
        self.flags = np.zeros((T, L.FLAG_COLUMNS), dtype=np.int32)
        self.chunk_tensor, self.chunk_start = chunk_map(bucket.numels, self.chunk_size)
        self.schedules: dict[str, tuple] = {}  # what -> (Packed, n_groups, (descriptors, table)), checked once

    def packed(self, packed, n_groups: int, what: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self.schedules.get(what)
        if cached is not None and cached[0] is packed and cached[1] == n_groups:
            return cached[2]
        arrays = _packed(packed, n_groups, what)
        self.schedules[what] = (packed, n_groups, arrays)  # holds the Packed: its identity stays unique
        return arrays


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
    if bucket.pointers.shape != (L.POINTER_ROWS, T) or bucket.pointers.dtype != np.int64:
        raise ValueError(f"{where}: pointers must be int64 of shape {(L.POINTER_ROWS, T)}")
    if bucket.tensor_group.dtype != np.int32 or bucket.numels.dtype != np.int64:
        raise TypeError(f"{where}: tensor_group must be int32 and numels int64")
    for p, n in zip(bucket.params, bucket.numels.tolist(), strict=True):
        if p.device.type != "cpu" or p.dtype != bucket.dtype or p.numel() != n:
            raise ValueError(f"{where}: a parameter does not match the bucket ({p.device}, {p.dtype}, {p.numel()})")
    required = {"adam": (L.ROW_PARAM, L.ROW_GRAD, L.ROW_EXP_AVG, L.ROW_EXP_AVG_SQ, L.ROW_STEP),
                "sgd": (L.ROW_PARAM, L.ROW_GRAD)}[bucket.kind]
    nonempty = bucket.numels > 0
    for row in required:
        if np.any(bucket.pointers[row][nonempty] == 0) and row != L.ROW_STEP:
            raise ValueError(f"{where}: pointer row {row} has null entries")
    if bucket.kind == "adam" and np.any(bucket.pointers[L.ROW_STEP] == 0):
        raise ValueError(f"{where}: every tensor needs a step tensor")


def _packed(packed, n_groups: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if packed is None:
        return _NO_DESCRIPTORS, _NO_TABLE
    descriptors, table = packed.descriptors, packed.table
    if descriptors.ndim != 2 or descriptors.shape != (n_groups, descriptor_layout.DESCRIPTOR_SIZE) \
            or descriptors.dtype != np.float64 or not descriptors.flags.c_contiguous:
        raise ValueError(f"lrfast._backend.cpu.step_bucket: {what} must be C-contiguous float64 of shape "
                         f"{(n_groups, descriptor_layout.DESCRIPTOR_SIZE)}, got {descriptors.shape}")
    if table.ndim != 1 or table.dtype != np.float64 or not table.flags.c_contiguous:
        raise ValueError(f"lrfast._backend.cpu.step_bucket: the {what} table must be 1-d C-contiguous float64")
    return _readonly(descriptors), _readonly(table)


def _scalar(tensor: torch.Tensor | None) -> np.ndarray:
    if tensor is None:
        return _NO_SCALAR
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
    if hyper.ndim != 2 or hyper.shape[1] != L.GROUP_COLUMNS or hyper.dtype != np.float64 \
            or bucket.schedule_t.shape != (n_groups,):
        raise ValueError("lrfast._backend.cpu.step_bucket: group_hyper must be float64 (G, GROUP_COLUMNS) "
                         "and schedule_t float64 (G,)")
    lr_desc, lr_table = tables.packed(bucket.lr_schedule, n_groups, "lr_schedule")
    mom_desc, mom_table = tables.packed(bucket.momentum_schedule, n_groups, "momentum_schedule")
    args = (tables.proto, tables.scalars, tables.flags, bucket.pointers, bucket.numels, bucket.tensor_group,
            tables.chunk_tensor, tables.chunk_start, tables.chunk_size, hyper, lr_desc, lr_table, mom_desc,
            mom_table, bucket.schedule_t, _scalar(bucket.grad_scale), _scalar(bucket.found_inf))
    return args + (bucket.momentum_fresh,) if bucket.kind == "sgd" else args


def step_bucket(bucket) -> None:
    """One optimizer step of ``bucket`` on the CPU (NOTE [bucket contract])."""
    if not bucket.params:
        return
    tables = _tables(bucket)
    args = _kernel_args(bucket, tables)
    # NOTE [threading layer] in lrfast/_numba/threads.py
    if tables.chunk_tensor.shape[0] < tables.parallel_min_chunks or not threads.parallel_allowed():
        tables.serial(*args)
    else:
        threads.run_parallel(tables.kernel, *args)


def warmup(kinds: Iterable[str] = ("adam", "sgd"),
           dtypes: Iterable[torch.dtype] = (torch.float32, torch.float64, torch.bfloat16, torch.float16)) -> None:
    """Compile (or load from Numba's on-disk cache) the kernels for ``kinds`` x ``dtypes``."""
    from ..optim._dispatch import Bucket

    for kind in kinds:
        if kind not in K.KERNELS:
            raise ValueError(f"warmup: kinds must be among {sorted(K.KERNELS)}, got {kind!r}")
        for dtype in dtypes:
            if dtype not in _STORAGE:
                raise ValueError(f"warmup: dtypes must be among {list(_STORAGE)}, got {dtype!r}")
            tensors = [torch.zeros(2, dtype=dtype) for _ in range(5)]
            step = torch.zeros((), dtype=torch.float32)
            bucket = Bucket(kind, torch.device("cpu"), dtype)
            bucket.params, bucket.grads = [tensors[0]], [tensors[1]]
            bucket.tensor_group = np.zeros(1, dtype=np.int32)
            bucket.numels = np.array([2], dtype=np.int64)
            bucket.pointers = np.zeros((L.POINTER_ROWS, 1), dtype=np.int64)
            for row, t in zip((L.ROW_PARAM, L.ROW_GRAD, L.ROW_EXP_AVG, L.ROW_EXP_AVG_SQ, L.ROW_MAX_EXP_AVG_SQ),
                              tensors, strict=True):
                bucket.pointers[row, 0] = t.data_ptr()
            bucket.pointers[L.ROW_STEP, 0] = step.data_ptr()
            bucket.steps = [step]
            hyper = np.zeros((1, L.GROUP_COLUMNS))
            hyper[0, L.GROUP_BETA2] = 0.5
            bucket.group_hyper = hyper
            bucket.schedule_t = np.zeros(1)
            bucket.momentum_fresh = np.zeros(1, dtype=np.uint8)
            tables = _tables(bucket)
            tables.serial(*_kernel_args(bucket, tables))  # both twins: which one a step takes depends on its size
            threads.run_parallel(tables.kernel, *_kernel_args(bucket, tables))
