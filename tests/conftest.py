"""Shared by every test module: the ``gpu`` and ``slow`` markers and the fixtures several
modules use.

- ``gpu``: needs a GPU and lrfast's CUDA kernels. A GPU test module sets
  ``pytestmark = pytest.mark.gpu`` and skips at import, with the reason, where none is
  usable (``gpu_support.require_cuda``); a single GPU test in a CPU module carries the mark
  and is skipped here, with the reason. ``-m "not gpu"`` deselects them all (the GPU
  modules are then not even imported).
- ``slow``: longer than a few seconds on a 2-core machine; ``-m "not slow"`` is the quick
  loop. ``bash scripts/test.sh`` (the README's command, CI) runs them.

NOTE [one thread per worker] ``scripts/test.sh`` runs two pytest-xdist workers on the
2-core machine. Left alone, each worker's torch and each worker's Numba kernels start a
thread per core: four busy threads on two cores, and GNU OpenMP team members spin while
they wait for a descheduled partner, so the two workers slowed each other down until two
workers were barely faster than one process. Inside an xdist worker, torch and Numba
therefore run one thread each (the parallel kernels still run their parallel code, on a
team of one); the tests about threads run in subprocesses, with every thread, or ask for
every thread with the ``all_numba_threads`` fixture. Without xdist (``-n 0``) nothing
changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpu_support import gpu_unusable_reason, is_gpu_module


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # NOTE [one thread per worker]
        import torch

        try:
            import numba

            from lrfast._backend import cpu  # noqa: F401 - picks lrfast's threading layer before the launch below
        except ImportError:
            numba = None
        if numba is not None:
            numba.set_num_threads(1)
        # after Numba's launch, which sets OpenMP's count on this thread (NOTE [torch's thread count])
        torch.set_num_threads(1)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # A GPU module skips at import where there is no GPU, which pytest reports as "skipped",
    # not "deselected"; with -m "not gpu" it is left out before that import instead.
    if config.getoption("markexpr", "").strip() == "not gpu" and is_gpu_module(collection_path):
        return True
    return None


# NOTE [heaviest first] scripts/test.sh hands whole files to two xdist workers, in collection
# order (--dist loadfile); a long file handed out last keeps one worker busy while the other
# idles. The files that took longest on a cold cache (seconds on the 2-core machine, issue 15)
# are therefore collected first, longest first; every other file keeps its place after them.
# A stale list only costs time, never a test.
HEAVIEST_FIRST = (
    "tests/test_optim_cpu_parity.py",  # 70: a Numba kernel variant per option and dtype
    "tests/test_doc_snippets.py",  # 56: a fresh interpreter per block
    "tests/test_cpu_threading.py",  # 55: a subprocess per threading layer
    "tests/test_bench_cli.py",  # 35: the quick bench in a subprocess
    "tests/test_lr_finder.py",  # 33 (loaded machine, one process): Lightning's lr_find, the emulated device
    "tests/test_cpu_compiled_variants.py",  # 28: cold Numba caches in subprocesses
    "tests/test_examples_lion.py",  # 24: a CMake + nvcc build
    "tests/test_typing.py",  # 22 on a fresh clone: mypy over the public API
    "tests/test_lr_scheduler_parity.py",  # 19
    "tests/test_optim_cpu_api.py",  # 12
    "tests/test_compile.py",  # 10: torch.compile
    "tests/test_doctests.py",  # 10
    "tests/test_ddp_cpu.py",  # 10: spawned ranks
    "tests/test_integration_fsdp.py",  # 9: spawned ranks
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(HEAVIEST_FIRST)}
    root = config.rootpath

    def place(item: pytest.Item) -> int:
        try:
            relative = item.path.relative_to(root).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(relative, len(rank))

    items.sort(key=place)  # stable: each file's tests, and the other files, keep their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and (why := gpu_unusable_reason()):
        pytest.skip(f"GPU test: {why}")


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty temporary folder (for code that writes relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def all_numba_threads() -> Iterator[int]:
    """Every Numba thread for this test (NOTE [one thread per worker]); yields their number."""
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(before)
