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

__all__ = ["backend_for", "status", "reset_backends"]

# Why a device type runs torch's code instead of lrfast's kernels (set by its loader).
_fallback_reasons: dict[str, str] = {}


def _cpu_backend() -> Callable[[Bucket], None]:
    try:
        from . import cpu
    except ImportError as exc:
        _fallback_reasons["cpu"] = (f"lrfast.optim: Numba is unavailable ({exc}); CPU parameters fall back to "
                                    "torch's optimizer code (pip install numba for the fused kernels)")
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
_loaded: dict[str, Callable[[Bucket], None]] = {}  # loaded, whether or not a step has used it yet
_backends: dict[str, Callable[[Bucket], None]] = {}  # used by a step (the fallback's warning given)


def _kind(device: torch.device) -> str:
    return "cuda" if device_api.is_device(device) else device.type  # NOTE [emulated device]


def _load(kind: str, device_type: str) -> Callable[[Bucket], None]:
    backend = _loaded.get(kind)
    if backend is None:
        loader = _BACKEND_LOADERS.get(kind)
        if loader is None:
            raise RuntimeError(f"lrfast.optim: parameters on {device_type} devices are not supported (cpu, cuda)")
        backend = _loaded[kind] = loader()
    return backend


def backend_for(device: torch.device) -> Callable[[Bucket], None]:
    """The ``step_bucket`` function of ``device``'s backend (loaded once; the first step that
    falls back to torch's code warns, once per process)."""
    kind = _kind(device)
    backend = _backends.get(kind)
    if backend is None:
        backend = _load(kind, device.type)
        if kind in _fallback_reasons:
            warnings.warn(_fallback_reasons[kind], RuntimeWarning, stacklevel=3)
        _backends[kind] = backend
    return backend


def status(device: torch.device) -> tuple[bool, str]:
    """(fused, why not) for ``device``, as ``lrfast.optim.backend_status`` reports it; loads the
    backend but leaves the fallback's warning to the first step that uses it."""
    kind = _kind(device)
    try:
        _load(kind, device.type)
    except RuntimeError as exc:  # a build without lrfast's CUDA kernels, a device type lrfast does not step
        return False, str(exc)
    reason = _fallback_reasons.get(kind)
    return (False, reason) if reason is not None else (True, "lrfast kernels")


def reset_backends() -> None:
    """Forget the loaded backends (tests that hide Numba use this)."""
    _backends.clear()
    _loaded.clear()
    _fallback_reasons.clear()
