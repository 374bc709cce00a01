"""CUDA backend: device copies of packed schedules and the scalar-tensor writer.

NOTE [sync-free uploads] Device buffers are built from pinned host tensors with
``non_blocking=True`` copies, so building or refreshing them never makes the host
wait for the device; torch's caching host allocator keeps a pinned block until the copy
that reads it has run (the copy is stream-ordered before any kernel that reads the
buffer). The torch calls go through ``device_api`` (NOTE [emulated device]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._descriptor import SCALAR_TYPES
from ..schedules import Packed
from . import device_api

__all__ = ["DTYPE_CODES", "upload", "ScalarWriter"]

# ScalarType codes of csrc/cuda/cuda_api.h
DTYPE_CODES = {dtype: SCALAR_TYPES[str(dtype).removeprefix("torch.")]
               for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)}


def upload(array: np.ndarray, device: torch.device, keep: list) -> torch.Tensor:
    """A device copy of ``array`` without a host sync (NOTE [sync-free uploads])."""
    host = torch.from_numpy(np.array(array, order="C"))  # a copy: packed arrays are read-only
    if host.numel() == 0:
        host = torch.zeros(1, dtype=host.dtype)
    keep.append(host)
    return device_api.upload(host, device)


def require_cuda_kernels(what: str) -> None:
    kernels = device_api.kernels()
    if not kernels.has_cuda():
        raise RuntimeError(
            f"{what}: CUDA tensors need lrfast's CUDA kernels, but this build has none "
            f"({kernels.build_info()['cuda_reason']}); reinstall lrfast where nvcc is available"
        )


class ScalarWriter:
    """Writes scheduled values into one scalar CUDA tensor per group, one launch per step.

    ``targets[g]`` receives ``schedule_g(step)`` where the schedules are ``packed``; a
    ``None`` target is a group with no tensor of its own. ``out``, a float64 (G,) CUDA
    tensor, receives every group's value in the same launch (a scheduler's ``lr_tensor``).
    Targets and ``out`` must live on one device; targets are 1-element float tensors.
    """

    def __init__(self, targets: Sequence[torch.Tensor | None], packed: Packed,
                 out: torch.Tensor | None = None) -> None:
        require_cuda_kernels("lrfast")
        present = [t for t in targets if t is not None]
        if not present and out is None:
            raise ValueError("ScalarWriter: needs at least one target tensor or an out buffer")
        device = out.device if out is not None else present[0].device
        for t in present:
            if t.device != device:
                raise ValueError(f"ScalarWriter: all tensors must be on {device}, got one on {t.device}")
            if t.numel() != 1 or t.dtype not in DTYPE_CODES:
                raise TypeError(
                    f"ScalarWriter: targets must be 1-element float tensors, got {t.dtype} with {t.numel()} elements"
                )
        descriptors = np.atleast_2d(packed.descriptors)
        if descriptors.shape[0] != len(targets):
            raise ValueError(f"ScalarWriter: {descriptors.shape[0]} descriptors for {len(targets)} targets")
        if out is not None and (not device_api.is_device(device) or out.dtype != torch.float64
                                or not out.is_contiguous() or tuple(out.shape) != (len(targets),)):
            raise ValueError(f"ScalarWriter: out must be a contiguous float64 CUDA tensor of shape ({len(targets)},), "
                             f"got {out.dtype} {tuple(out.shape)} on {out.device}")
        self.device = device
        self.targets = list(targets)
        self.out = out
        self._keep: list = []
        self.n_groups = descriptors.shape[0]
        self.descriptors = upload(descriptors, device, self._keep)
        self.table = upload(packed.table, device, self._keep)
        self.addresses = self.dtypes = None
        if present:
            self.addresses = upload(np.array([0 if t is None else t.data_ptr() for t in targets],
                                             dtype=np.uint64).view(np.int64), device, self._keep)
            self.dtypes = upload(np.array([DTYPE_CODES[t.dtype] if t is not None else DTYPE_CODES[torch.float64]
                                           for t in targets], dtype=np.int32), device, self._keep)

    def write(self, step: float, counter: torch.Tensor | None = None, increment: int = 0) -> None:
        """Launch: targets[g] = out[g] = schedule_g(step) (or of the device counter, advanced)."""
        api = device_api.active()
        if counter is None and api.is_capturing():
            raise RuntimeError(
                "lrfast: a scheduler that writes tensor LRs (or lr_tensor) cannot be captured in a CUDA graph: the "
                "step would be frozen into the graph. Capture lrfast.optim optimizers with float LRs (their kernels "
                "advance the schedule on the device), or step the scheduler outside the graph"
            )
        api.kernels().cuda_write_scheduled_values(
            self.descriptors.data_ptr(), self.table.data_ptr(), self.n_groups,
            0 if self.addresses is None else self.addresses.data_ptr(),
            0 if self.dtypes is None else self.dtypes.data_ptr(),
            0 if self.out is None else self.out.data_ptr(),
            0 if counter is None else counter.data_ptr(), increment, float(step),
            api.current_stream(self.device).cuda_stream, api.device_index(self.device))
