"""Every code block in README.md and docs/*.md runs as a user would paste it.

- ```python blocks run as a script in a fresh interpreter, from an empty temporary folder
  (a snippet that writes anywhere else, e.g. into docs/, fails the check on the checkout).
- A block preceded by ``<!-- gpu -->`` needs a GPU (or nvcc): skipped, with the reason,
  without one.
- A block preceded by ``<!-- file: NAME -->`` is a file of an example project: written
  under that name, then built by the document's ```cmake block (CMakeLists.txt).
- ```bash blocks are only the README's two commands: .ci/run runs the test command exactly,
  and the demo command's extra exists (what they run is tested in tests/test_cli.py and
  by running the suite itself).
- ```text blocks are diagrams, not code.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpu_support import gpu_unusable_reason

import lrfast

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(gpu|file:\s*(\S+))\s*-->$")
LANGUAGES = {"python", "bash", "text", "cpp", "cuda", "cmake"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    gpu: bool
    filename: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path}:{start + 1}: unclosed code block"
        gpu, filename = False, None
        k = start - 1
        while k >= 0 and (marker := MARKER.match(lines[k].strip())):  # markers stack just above the fence
            gpu = gpu or marker.group(1) == "gpu"
            filename = filename or marker.group(2)
            k -= 1
        blocks.append(Block(path, start + 1, language, "\n".join(lines[start + 1:end]) + "\n", gpu, filename))
        i = end + 1
    return blocks


BLOCKS = [b for doc in DOCUMENTS for b in code_blocks(doc)]
PYTHON = [b for b in BLOCKS if b.language == "python"]
CMAKE = [b for b in BLOCKS if b.language == "cmake"]


def _checkout_snapshot() -> dict[str, float]:
    """Files at the top of the checkout and in docs/, with their modification times."""
    return {str(p): p.stat().st_mtime for d in (ROOT, ROOT / "docs") for p in d.iterdir() if p.is_file()}


def test_every_block_has_a_known_language():
    assert len(BLOCKS) >= 15 and len(PYTHON) >= 10
    for block in BLOCKS:
        assert block.language in LANGUAGES, f"{block.id}: code block language {block.language!r} (say which)"
        if block.language in ("cpp", "cuda"):
            assert block.filename, f"{block.id}: a C++ block must be a named file of a project a cmake block builds"


@pytest.mark.slow  # a fresh interpreter per block (a user's paste), torch imported each time
@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path):
    if block.gpu and (why := gpu_unusable_reason()):
        pytest.skip(f"{block.id} is a GPU example: {why}")
    script = tmp_path / "snippet.py"
    script.write_text(block.code)
    before = _checkout_snapshot()
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)  # as a user runs it: lrfast from the installed package
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{block.id} failed:\n{block.code}\n--- stderr:\n{proc.stderr[-4000:]}"
    assert _checkout_snapshot() == before, f"{block.id} wrote into the checkout"


@pytest.mark.slow  # configures and compiles a CUDA project
@pytest.mark.parametrize("block", CMAKE, ids=[b.id for b in CMAKE])
def test_cmake_project_builds(block: Block, tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    project = [b for b in BLOCKS if b.path == block.path and b.filename]
    needs_cuda = any(b.filename.endswith(".cu") for b in project) or "CUDA" in block.code
    if needs_cuda and shutil.which("nvcc") is None:
        pytest.skip(f"{block.id} builds CUDA code: needs nvcc")
    assert block.filename == "CMakeLists.txt", f"{block.id}: mark the cmake block <!-- file: CMakeLists.txt -->"
    for b in project:
        (tmp_path / b.filename).write_text(b.code)
    build = tmp_path / "build"
    configure = ["cmake", "-S", str(tmp_path), "-B", str(build), f"-Dlrfast_DIR={lrfast.get_cmake_dir()}"]
    for command in (configure, ["cmake", "--build", str(build)]):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{block.id}: {shlex.join(command)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _readme_commands() -> list[str]:
    bash = [b for b in code_blocks(ROOT / "README.md") if b.language == "bash"]
    assert len(bash) == 1
    return [line for line in bash[0].code.splitlines() if line.strip() and not line.startswith("#")]


def test_bash_blocks_are_the_readme_commands_and_ci_runs_the_test_command():
    others = [b.id for b in BLOCKS if b.language == "bash" and b.path.name != "README.md"]
    assert others == [], "bash blocks outside the README are not run by any test"
    demo, tests = _readme_commands()
    assert demo.startswith("pip install torch==2.13.0 && ") and demo.endswith(" && python -m lrfast demo")
    assert tests.startswith("pip install torch==2.13.0 && ") and tests.endswith(" && bash scripts/test.sh")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [line.strip() for line in ci], ".ci/run must run the README's test command as written"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for command, extra in ((demo, "plot"), (tests, "test")):
        assert f'pip install -e ".[{extra}]"' in command
        assert extras[extra], extra


def test_the_test_extra_installs_every_framework_the_tests_import():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_extra = " ".join(project["optional-dependencies"]["test"])
    for framework in ("lightning", "transformers", "accelerate", "matplotlib", "pytest", "mypy"):
        assert framework in test_extra, framework
    required = " ".join(project["dependencies"])
    for package in ("torch", "numpy", "numba"):
        assert package in required, package
