"""Which code steps lrfast.optim's parameters on a device: lrfast's fused kernels, torch's
optimizer code (the CPU without Numba), or none (CUDA without lrfast's CUDA kernels)."""

from __future__ import annotations

import torch

from .._backend import registry

__all__ = ["backend_status"]


def backend_status(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """(fused, why not): whether lrfast's optimizers step parameters on ``device`` with lrfast's
    fused kernels; when not, the reason (torch's optimizer code runs on a CPU without Numba;
    a build without lrfast's CUDA kernels cannot step CUDA parameters). Loads the backend; the
    warning a fallback gives is left to the first optimizer step that uses it.

    >>> import lrfast.optim
    >>> lrfast.optim.backend_status("cpu")
    (True, 'lrfast kernels')
    """
    return registry.status(torch.device(device))
