"""Shared by the GPU test modules: the module-level skip, with the reason."""

from __future__ import annotations

import pytest
import torch

import lrfast


def require_cuda() -> None:
    """Skip the calling test module, saying why, unless lrfast's CUDA kernels can run here."""
    usable, why = lrfast.cuda_status()
    if not usable:
        pytest.skip(f"GPU tests need lrfast's CUDA kernels and a GPU: {why}", allow_module_level=True)
    if not torch.cuda.is_available():
        pytest.skip("GPU tests need a CUDA build of torch with a visible GPU", allow_module_level=True)
