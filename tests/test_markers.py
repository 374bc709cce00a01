"""The ``gpu`` and ``slow`` markers are applied consistently: every module that needs a GPU
is marked (so ``-m "not gpu"`` deselects it, without importing it), and the integration
tests skip with a reason when their framework is absent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_support import is_gpu_module

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parent.parent
TEST_FILES = [p for p in sorted((ROOT / "tests").glob("test_*.py")) + sorted((ROOT / "benchmarks").glob("test_*.py"))
              if p != Path(__file__).resolve()]


def test_every_module_that_needs_a_gpu_is_marked():
    gpu_modules = [p for p in TEST_FILES
                   if "require_cuda()" in p.read_text() or re.search(r"(^|_)gpu(_|\.py$)", p.name)]
    assert len(gpu_modules) >= 5
    for path in gpu_modules:
        assert is_gpu_module(path), f"{path.name} needs a GPU: set pytestmark = pytest.mark.gpu"
    for path in TEST_FILES:
        text = path.read_text()
        if path not in gpu_modules and re.search(r"if not .*torch\.cuda\.is_available\(\)", text):
            assert "@pytest.mark.gpu" in text or "marks=pytest.mark.gpu" in text, \
                f"{path.name} skips without a GPU inline: mark that test (or its GPU parameter) gpu"


def test_integration_modules_skip_with_a_reason_without_their_framework():
    for name, frameworks in (("lightning", ["lightning.pytorch"]), ("transformers", ["transformers", "accelerate"])):
        text = (ROOT / "tests" / f"test_integration_{name}.py").read_text()
        for framework in frameworks:
            assert re.search(rf'pytest\.importorskip\(\s*"{re.escape(framework)}",\s*reason=', text), framework
        first_import = re.search(rf"^(import|from) {name}\b", text, re.MULTILINE)
        first_skip = text.index("pytest.importorskip(")
        assert first_import is None or first_import.start() > first_skip, "a plain import errors when absent"


def test_not_gpu_deselects_the_gpu_modules_without_importing_them():
    # tests/ as the argument (as scripts/test.sh passes it), the CPU modules left out to keep this quick
    tests = ROOT / "tests"
    gpu = [p for p in tests.glob("test_*.py") if is_gpu_module(p)]
    ignored = [f"--ignore={p}" for p in tests.glob("test_*.py") if p not in gpu]
    assert len(gpu) >= 5
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "not gpu", str(tests), *ignored], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # 5: nothing collected
    assert "skipped" not in proc.stdout.lower() and "error" not in proc.stdout.lower(), proc.stdout


def test_markers_are_registered_strictly_and_long_modules_are_slow():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"]
    assert {m.split(":")[0] for m in options["markers"]} == {"gpu", "slow"}
    for path in TEST_FILES:
        text = path.read_text()
        if "run_ranks(" in text or "torch.compile(" in text:  # spawned ranks, compilation: always long
            assert re.search(r"^pytestmark\s*=.*pytest\.mark\.slow", text, re.MULTILINE), path.name
