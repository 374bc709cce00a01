"""Shared by the GPU tests (and tests/conftest.py's ``gpu`` marker): the skip, with the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import lrfast


def gpu_unusable_reason() -> str | None:
    """None where lrfast's CUDA kernels and a GPU torch can see are both here, else why not."""
    usable, why = lrfast.cuda_status()
    if not usable:
        return f"GPU tests need lrfast's CUDA kernels and a GPU: {why}"
    if not torch.cuda.is_available():
        return "GPU tests need a CUDA build of torch with a visible GPU"
    return None


_GPU_MODULE = re.compile(r"^pytestmark\s*=.*\bpytest\.mark\.gpu\b", re.MULTILINE)


def is_gpu_module(path: Path) -> bool:
    """A test module marked gpu as a whole (``pytestmark = pytest.mark.gpu``)."""
    return path.suffix == ".py" and path.name.startswith("test_") and bool(_GPU_MODULE.search(path.read_text()))


def require_cuda() -> None:
    """Skip the calling test module, saying why, unless lrfast's CUDA kernels can run here."""
    if why := gpu_unusable_reason():
        pytest.skip(why, allow_module_level=True)
