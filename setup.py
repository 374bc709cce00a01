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
    """The archs to build SASS for (CMakeLists.txt adds PTX for the newest): torch's own
    list when torch is importable here and reports one, else the visible GPUs' archs when
    nvidia-smi reports them, else 80;90 (A100, H100/H200). Archs the nvcc on PATH cannot
    build are dropped."""
    archs = _torch_cuda_archs() or _visible_gpu_archs() or ["80", "90"]
    supported = _nvcc_archs()
    if supported:
        archs = [a for a in archs if a in supported] or [max(supported, key=int)]
    return ";".join(sorted(set(archs), key=int))


def _torch_cuda_archs() -> list[str]:
    # Under pip's build isolation torch is not importable: then this gives nothing.
    try:
        import torch

        names = torch.cuda.get_arch_list()
    except Exception:  # noqa: BLE001 -- any failure means "torch does not say"
        return []
    return sorted({n.split("_", 1)[1] for n in names if re.fullmatch(r"(sm|compute)_\d+", n)}, key=int)


def _visible_gpu_archs() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    caps = sorted({line.strip().replace(".", "") for line in out.splitlines() if line.strip()})
    return caps if caps and all(c.isdigit() for c in caps) else []


def _nvcc_archs() -> list[str]:
    nvcc = shutil.which("nvcc")
    if not nvcc:
        return []
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(set(re.findall(r"compute_(\d+)\b", out)), key=int)


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        # One CMake build makes every module; lrfast._C_emu is listed as an extension only so
        # that setuptools copies it too (an editable install copies just the listed ones).
        if ext.name != "lrfast._C":
            return
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        cuda = os.environ.get("LRFAST_CUDA", "auto")
        if cuda not in ("auto", "0", "1"):
            raise ValueError(f"LRFAST_CUDA must be auto, 0 or 1, got {cuda!r}")
        emu = "1" if _build_emulator() else "0"
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('LRFAST_BUILD_TYPE', 'Release')}",
            f"-DLRFAST_VERSION={read_version()}",
            f"-DLRFAST_CUDA={cuda}",
            f"-DLRFAST_CUDA_ARCHS={os.environ.get('LRFAST_CUDA_ARCHS') or default_cuda_archs()}",
            f"-DLRFAST_EMU={emu}",
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


def _build_emulator() -> bool:
    """Whether to build lrfast._C_emu, the kernels on the CPU grid emulator (docs/emulator.md):
    by default wherever ucontext exists (POSIX); LRFAST_EMU=0 skips it."""
    emu = os.environ.get("LRFAST_EMU", "1")
    if emu not in ("0", "1"):
        raise ValueError(f"LRFAST_EMU must be 0 or 1, got {emu!r}")
    return emu == "1" and os.name == "posix"


def _pip_ninja() -> str | None:
    try:
        import ninja

        path = Path(ninja.BIN_DIR) / "ninja"
        return str(path) if path.exists() else None
    except ImportError:
        return None


setup(
    version=read_version(),
    ext_modules=[CMakeExtension("lrfast._C")] + ([CMakeExtension("lrfast._C_emu")] if _build_emulator() else []),
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPyWithHeaders},
)
