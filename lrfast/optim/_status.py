"""Which code steps lrfast.optim's parameters on a device: lrfast's fused kernels, torch's
optimizer code (the CPU without Numba), or none (CUDA without lrfast's CUDA kernels)."""

from __future__ import annotations

import warnings

import torch

from .._backend import registry

__all__ = ["backend_status"]


def backend_status(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """(fused, why not): whether lrfast's optimizers step parameters on ``device`` with lrfast's
    fused kernels; when not, the reason (torch's optimizer code runs on a CPU without Numba;
    a build without lrfast's CUDA kernels cannot step CUDA parameters). Loads the backend.

    >>> import lrfast.optim
    >>> lrfast.optim.backend_status("cpu")
    (True, 'lrfast kernels')
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            backend = registry.backend_for(torch.device(device))
        except RuntimeError as exc:  # a build without lrfast's CUDA kernels, a device type lrfast does not step
            return False, str(exc)
    if getattr(backend, "__module__", "") == "lrfast._backend.fallback":
        # the fallback warns once per process: later calls give the general reason
        why = next((str(w.message) for w in caught), "lrfast.optim runs torch's optimizer code on this device")
        return False, why
    return True, "lrfast kernels"
