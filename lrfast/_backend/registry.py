"""Which backend steps a bucket: ``backend_for(device)`` loads it once per device type.

- ``cpu``: ``lrfast._backend.cpu.step_bucket`` (the Numba kernels), or, when Numba is not
  installed, ``lrfast._backend.fallback.step_bucket`` (torch's own functional code, with
  one warning);
- ``cuda`` (and the emulated device, NOTE [emulated device]):
  ``lrfast._backend.cuda_optim.step_bucket``, imported on first use; a build without it
  raises a ``RuntimeError`` saying so.

Every backend keeps NOTE [bucket contract] (``lrfast/_backend/bucket.py``).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable

import torch

from . import device_api
from .bucket import Bucket

__all__ = ["backend_for", "reset_backends"]

_warned_no_numba = False


def _cpu_backend() -> Callable[[Bucket], None]:
    global _warned_no_numba
    try:
        from . import cpu
    except ImportError as exc:
        if not _warned_no_numba:
            _warned_no_numba = True
            warnings.warn(f"lrfast.optim: Numba is unavailable ({exc}); CPU parameters fall back to torch's "
                          "optimizer code (pip install numba for the fused kernels)", RuntimeWarning, stacklevel=4)
        from . import fallback
        return fallback.step_bucket
    return cpu.step_bucket


def _cuda_backend() -> Callable[[Bucket], None]:
    try:
        module = importlib.import_module("lrfast._backend.cuda_optim")
        return module.step_bucket
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(
            "lrfast.optim: the CUDA fused path (lrfast._backend.cuda_optim.step_bucket) is not available "
            f"in this build ({exc}); use torch.optim with fused=True for CUDA parameters"
        ) from None


_BACKEND_LOADERS = {"cpu": _cpu_backend, "cuda": _cuda_backend}
_backends: dict[str, Callable[[Bucket], None]] = {}


def backend_for(device: torch.device) -> Callable[[Bucket], None]:
    """The ``step_bucket`` function of ``device``'s backend (loaded once)."""
    kind = "cuda" if device_api.is_device(device) else device.type  # NOTE [emulated device]
    backend = _backends.get(kind)
    if backend is None:
        loader = _BACKEND_LOADERS.get(kind)
        if loader is None:
            raise RuntimeError(f"lrfast.optim: parameters on {device.type} devices are not supported (cpu, cuda)")
        backend = _backends[kind] = loader()
    return backend


def reset_backends() -> None:
    """Forget the loaded backends (tests that hide Numba use this)."""
    global _warned_no_numba
    _backends.clear()
    _warned_no_numba = False
