"""Shared by every test module: the ``gpu`` and ``slow`` markers and the fixtures several
modules use.

- ``gpu``: needs a GPU and lrfast's CUDA kernels. A GPU test module sets
  ``pytestmark = pytest.mark.gpu`` and skips at import, with the reason, where none is
  usable (``gpu_support.require_cuda``); a single GPU test in a CPU module carries the mark
  and is skipped here, with the reason. ``-m "not gpu"`` deselects them all (the GPU
  modules are then not even imported).
- ``slow``: longer than a few seconds on a 2-core machine; ``-m "not slow"`` is the quick
  loop. ``bash scripts/test.sh`` (the README's command, CI) runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gpu_support import gpu_unusable_reason, is_gpu_module


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # A GPU module skips at import where there is no GPU, which pytest reports as "skipped",
    # not "deselected"; with -m "not gpu" it is left out before that import instead.
    if config.getoption("markexpr", "").strip() == "not gpu" and is_gpu_module(collection_path):
        return True
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and (why := gpu_unusable_reason()):
        pytest.skip(f"GPU test: {why}")


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty temporary folder (for code that writes relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
