"""CUDA backend: device copies of packed schedules and the scalar-tensor writer.

NOTE [sync-free uploads] Device buffers are built from pinned host tensors with
``non_blocking=True`` copies, so building or refreshing them never makes the host
wait for the device; the pinned source is kept alive on the object until replaced
(the copy is stream-ordered before any kernel that reads the buffer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import _C
from ..schedules import Packed

__all__ = ["DTYPE_CODES", "upload", "ScalarWriter"]

# ScalarType codes of csrc/cuda/cuda_api.h
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


def upload(array: np.ndarray, device: torch.device, keep: list) -> torch.Tensor:
    """A device copy of ``array`` without a host sync (NOTE [sync-free uploads])."""
    host = torch.from_numpy(np.ascontiguousarray(array))
    if host.numel() == 0:
        host = torch.zeros(1, dtype=host.dtype)
    pinned = host.pin_memory()
    keep.append(pinned)
    return pinned.to(device, non_blocking=True)


def require_cuda_kernels(what: str) -> None:
    if not _C.has_cuda():
        raise RuntimeError(
            f"{what}: CUDA tensors need lrfast's CUDA kernels, but this build has none "
            f"({_C.build_info()['cuda_reason']}); reinstall lrfast where nvcc is available"
        )


class ScalarWriter:
    """Writes scheduled values into one scalar CUDA tensor per group, one launch per step.

    ``targets[g]`` receives ``schedule_g(step)`` where the schedules are ``packed``. All
    targets must live on one device and be 1-element tensors of a floating dtype.
    """

    def __init__(self, targets: Sequence[torch.Tensor], packed: Packed) -> None:
        require_cuda_kernels("lrfast")
        if not targets:
            raise ValueError("ScalarWriter: needs at least one target tensor")
        device = targets[0].device
        for t in targets:
            if t.device != device:
                raise ValueError(f"ScalarWriter: all tensors must be on {device}, got one on {t.device}")
            if t.numel() != 1 or t.dtype not in DTYPE_CODES:
                raise TypeError(
                    f"ScalarWriter: targets must be 1-element float tensors, got {t.dtype} with {t.numel()} elements"
                )
        self.device = device
        self.targets = list(targets)
        self._keep: list = []
        descriptors = np.atleast_2d(packed.descriptors)
        self.n_groups = descriptors.shape[0]
        self.descriptors = upload(descriptors, device, self._keep)
        self.table = upload(packed.table, device, self._keep)
        self.addresses = upload(np.array([t.data_ptr() for t in targets], dtype=np.uint64).view(np.int64),
                                device, self._keep)
        self.dtypes = upload(np.array([DTYPE_CODES[t.dtype] for t in targets], dtype=np.int32), device, self._keep)

    def still_targets(self, tensors: Sequence[torch.Tensor]) -> bool:
        """Whether ``tensors`` are the very tensors (same storage) this writer was built for."""
        return len(tensors) == len(self.targets) and all(
            a is b and a.data_ptr() == b.data_ptr() for a, b in zip(tensors, self.targets))

    def write(self, step: float, counter: torch.Tensor | None = None, increment: int = 0) -> None:
        """Launch: targets[g] = schedule_g(step) (or of the device counter, advanced)."""
        stream = torch.cuda.current_stream(self.device)
        _C.cuda_write_scheduled_values(
            self.descriptors.data_ptr(), self.table.data_ptr(), self.n_groups, self.addresses.data_ptr(),
            self.dtypes.data_ptr(), 0 if counter is None else counter.data_ptr(), increment, float(step),
            stream.cuda_stream, self.device.index if self.device.index is not None else torch.cuda.current_device())
