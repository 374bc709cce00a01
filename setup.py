"""A thin CMake driver: builds lrfast._C from CMakeLists.txt (see docs/design.md, Build)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def read_version() -> str:
    text = (ROOT / "lrfast" / "_version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def default_cuda_archs() -> str:
    """The visible GPU's arch when nvidia-smi reports one, else 80;90 (A100, H100/H200)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=True).stdout
            caps = sorted({line.strip().replace(".", "") for line in out.splitlines() if line.strip()})
            if caps and all(c.isdigit() for c in caps):
                return ";".join(caps)
        except (OSError, subprocess.SubprocessError):
            pass
    return "80;90"


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        cuda = os.environ.get("LRFAST_CUDA", "auto")
        if cuda not in ("auto", "0", "1"):
            raise ValueError(f"LRFAST_CUDA must be auto, 0 or 1, got {cuda!r}")
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('LRFAST_BUILD_TYPE', 'Release')}",
            f"-DLRFAST_VERSION={read_version()}",
            f"-DLRFAST_CUDA={cuda}",
            f"-DLRFAST_CUDA_ARCHS={os.environ.get('LRFAST_CUDA_ARCHS') or default_cuda_archs()}",
        ]
        try:
            import pybind11

            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        if shutil.which("ninja") or _pip_ninja():
            args += ["-G", "Ninja"]
            if _pip_ninja():
                args.append(f"-DCMAKE_MAKE_PROGRAM={_pip_ninja()}")
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", jobs], check=True)


class BuildPyWithHeaders(build_py):
    """Ship csrc/include/lrfast/*.h inside the package (lrfast.get_include()) for
    out-of-tree C++/CUDA extensions; an editable install reads them from csrc/ instead."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "lrfast" / "include" / "lrfast"
        target.mkdir(parents=True, exist_ok=True)
        for header in (ROOT / "csrc" / "include" / "lrfast").glob("*.h"):
            shutil.copy2(header, target / header.name)


def _pip_ninja() -> str | None:
    try:
        import ninja

        path = Path(ninja.BIN_DIR) / "ninja"
        return str(path) if path.exists() else None
    except ImportError:
        return None


setup(
    version=read_version(),
    ext_modules=[CMakeExtension("lrfast._C")],
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPyWithHeaders},
)
