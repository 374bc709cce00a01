"""lrfast: learning-rate schedules that cost nothing.

Schedules are pure functions of an integer step, evaluated in closed form in float64
by one C++ header shared by the host, the CUDA kernels and a Numba twin.

>>> import lrfast
>>> from lrfast import schedules
>>> schedules.cosine_annealing(0.1, T_max=100)(50)
0.05
"""

from __future__ import annotations

from pathlib import Path

from . import schedules
from ._version import __version__

__all__ = ["__version__", "schedules", "info", "get_include", "cuda_status", "numba_status", "plot",
           "get_cmake_dir", "LAYOUT_VERSION", "warmup"]


def plot(*args, **kwargs):
    """Draw LR curves of schedules or schedulers (see :func:`lrfast.plotting.plot`)."""
    from .plotting import plot as _plot

    return _plot(*args, **kwargs)


def warmup(optimizers=("sgd", "adam", "adamw"), dtypes=None) -> bool:
    """Compile (or load from Numba's on-disk cache) the fused CPU optimizer kernels now,
    so that the first ``optimizer.step()`` does not pay for it. ``optimizers``: names
    among ``"sgd"``, ``"adam"``, ``"adamw"``; ``dtypes``: parameter dtypes (default:
    float32, float64, bfloat16, float16). Returns False when Numba is unavailable.
    """
    try:
        from ._backend import cpu
    except ImportError:
        return False
    kinds = {"sgd": "sgd", "adam": "adam", "adamw": "adam"}
    for name in optimizers:
        if str(name).lower() not in kinds:
            raise ValueError(f"warmup: optimizers must be among {sorted(kinds)}, got {name!r}")
    selected = dict.fromkeys(kinds[str(name).lower()] for name in optimizers)
    if dtypes is None:
        cpu.warmup(selected)
    else:
        cpu.warmup(selected, dtypes)
    return True


def get_include() -> str:
    """The directory holding ``lrfast/schedule.h`` (for out-of-tree C++/CUDA extensions)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "include", here.parent / "csrc" / "include"):
        if (candidate / "lrfast" / "schedule.h").exists():
            return str(candidate)
    raise FileNotFoundError("lrfast: schedule.h is not installed beside the package")


def get_cmake_dir() -> str:
    """The directory holding ``lrfastConfig.cmake``: ``find_package(lrfast CONFIG)`` with
    ``-Dlrfast_DIR=<this>`` gives the header-only target ``lrfast::headers``."""
    return str(Path(__file__).resolve().parent / "cmake")


LAYOUT_VERSION = 1  # the descriptor layout of schedule.h (NOTE [descriptor layout])


def cuda_status() -> tuple[bool, str]:
    """(usable, why not): whether lrfast's CUDA kernels can run here."""
    from . import _C

    if not _C.has_cuda():
        return False, "lrfast was built without CUDA: " + _C.build_info()["cuda_reason"]
    count, why = _C.cuda_device_count()
    if count == 0:
        return False, f"no usable CUDA device ({why})"
    return True, f"{count} CUDA device(s)"


def numba_status() -> tuple[bool, str]:
    """(usable, why not): whether the Numba CPU kernels can run here."""
    try:
        import numba
    except ImportError as exc:
        return False, f"numba is not installed ({exc})"
    return True, f"numba {numba.__version__}"


def _numba_threading() -> str:
    try:
        from ._backend import cpu  # noqa: F401 - imports the kernels, which set the layer preference
        from ._numba import threads
    except ImportError as exc:
        return f"none (numba unavailable: {exc})"
    return threads.describe()


def info(file=None) -> dict:
    """Print (and return) what was built and what is usable at run time, and why not."""
    from . import _C

    build = _C.build_info()
    cuda_ok, cuda_why = cuda_status()
    numba_ok, numba_why = numba_status()
    report = {
        "version": __version__,
        "host_module": f"lrfast._C ({build['cxx_compiler']})",
        "cuda_kernels_built": build["cuda_built"],
        "cuda_archs": build["cuda_archs"],
        "cuda_compiler": build["cuda_compiler"] or build["cuda_reason"],
        "cuda_usable": cuda_ok,
        "cuda": cuda_why,
        "numba_usable": numba_ok,
        "numba": numba_why,
        "numba_threading_layer": _numba_threading() if numba_ok else "none",
    }
    width = max(map(len, report))
    print(f"lrfast {__version__}", file=file)
    for key, value in list(report.items())[1:]:
        print(f"  {key:<{width}}  {value}", file=file)
    return report
