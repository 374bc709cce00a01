"""lrfast: learning-rate schedules that cost nothing.

Schedules are pure functions of an integer step, evaluated in closed form in float64
by one C++ header shared by the host, the CUDA kernels and a Numba twin.

``import lrfast`` is cheap (neither torch nor Numba is imported): the submodules
``lrfast.schedules``, ``lrfast.lr_scheduler`` and ``lrfast.optim`` load on first use.

>>> import lrfast
>>> lrfast.schedules.cosine_annealing(0.1, T_max=100)(50)
0.05
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # the lazy submodules, for type checkers and IDEs
    import torch
    from matplotlib.figure import Figure
    from torch.optim.lr_scheduler import LRScheduler

    from . import lr_finder, lr_scheduler, optim, schedules
    from .lr_finder import find_lr
    from .schedules import Schedule

    LAYOUT_VERSION: int  # NOTE [descriptor layout] in schedule.h (loaded on first access)

__all__ = ["__version__", "schedules", "lr_scheduler", "optim", "info", "get_include", "cuda_status",
           "numba_status", "plot", "get_cmake_dir", "LAYOUT_VERSION", "warmup", "find_lr", "lr_finder"]

# Loaded on first attribute access: lr_scheduler and optim import torch (and optim Numba),
# which a plain `import lrfast` (the CLI's `info`, a build script's get_include) should not pay for.
_LAZY_SUBMODULES = frozenset({"schedules", "lr_scheduler", "optim", "integrations", "plotting", "lr_finder"})


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name == "find_lr":  # the LR range test (lrfast/lr_finder.py), loaded on first use
        from .lr_finder import find_lr

        globals()[name] = find_lr
        return find_lr
    if name == "LAYOUT_VERSION":  # the descriptor layout of schedule.h, read from the compiled core
        from ._descriptor import LAYOUT_VERSION

        globals()[name] = LAYOUT_VERSION
        return LAYOUT_VERSION
    raise AttributeError(f"module 'lrfast' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the public names and the module's dunders: not the imports this file uses (Any, Path, ...)
    return sorted(set(__all__) | _LAZY_SUBMODULES | {n for n in globals() if n.startswith("__")})


def plot(items: Schedule | LRScheduler | Sequence[Schedule | LRScheduler], steps: int,
         path: str | Path | None = None, labels: Sequence[str] | None = None, title: str | None = None,
         log_y: bool = False) -> Figure:
    """Draw LR curves of schedules or schedulers and return the matplotlib figure (see
    :func:`lrfast.plotting.plot`; needs matplotlib: ``pip install "lrfast[plot]"``).

    >>> import lrfast, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "lr.png")
    >>> fig = lrfast.plot(lrfast.schedules.cosine_decay(1.0, 100), 120, path)
    >>> os.path.getsize(path) > 0
    True
    """
    from .plotting import plot as _plot

    return _plot(items, steps, path, labels=labels, title=title, log_y=log_y)


def warmup(optimizers: Iterable[str] = ("sgd", "adam", "adamw"), dtypes: Iterable[torch.dtype] | None = None) -> bool:
    """Compile (or load from Numba's on-disk cache) the fused CPU optimizer kernels now,
    so that the first ``optimizer.step()`` does not pay for it. ``optimizers``: names
    among ``"sgd"``, ``"adam"``, ``"adamw"``; ``dtypes``: parameter dtypes (default:
    float32, float64, bfloat16, float16). Returns False when Numba is unavailable.

    >>> import lrfast, torch
    >>> lrfast.warmup(["sgd"], [torch.float32])
    True
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
    """The directory holding ``lrfast/schedule.h`` (for out-of-tree C++/CUDA extensions).

    >>> import lrfast, os
    >>> os.path.exists(os.path.join(lrfast.get_include(), "lrfast", "schedule.h"))
    True
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "include", here.parent / "csrc" / "include"):
        if (candidate / "lrfast" / "schedule.h").exists():
            return str(candidate)
    raise FileNotFoundError("lrfast: schedule.h is not installed beside the package")


def get_cmake_dir() -> str:
    """The directory holding ``lrfastConfig.cmake``: ``find_package(lrfast CONFIG)`` with
    ``-Dlrfast_DIR=<this>`` gives the header-only target ``lrfast::headers``.

    >>> import lrfast, os
    >>> os.path.exists(os.path.join(lrfast.get_cmake_dir(), "lrfastConfig.cmake"))
    True
    """
    return str(Path(__file__).resolve().parent / "cmake")


def cuda_status() -> tuple[bool, str]:
    """(usable, why not): whether lrfast's CUDA kernels can run here.

    >>> import lrfast
    >>> usable, why = lrfast.cuda_status()
    >>> isinstance(usable, bool) and isinstance(why, str)
    True
    """
    from . import _C

    if not _C.has_cuda():
        return False, "lrfast was built without CUDA: " + _C.build_info()["cuda_reason"]
    count, why = _C.cuda_device_count()
    if count == 0:
        return False, f"no usable CUDA device ({why})"
    return True, f"{count} CUDA device(s)"


def numba_status() -> tuple[bool, str]:
    """(usable, why not): whether the Numba CPU kernels can run here.

    >>> import lrfast
    >>> lrfast.numba_status()[0]
    True
    """
    try:
        import numba
    except ImportError as exc:
        return False, f"numba is not installed ({exc})"
    return True, f"numba {numba.__version__}"


def _numba_threading() -> str:
    try:
        from ._backend import cpu  # noqa: F401 - imports the kernels, which set the layer preference
        from ._backend import cpu_threads as threads
    except ImportError as exc:
        return f"none (numba unavailable: {exc})"
    return threads.describe()


def info(file: IO[str] | None = None) -> dict[str, Any]:
    """Print (to ``file``, default stdout) and return what was built and what is usable
    at run time, and why not.

    >>> import io, lrfast
    >>> report = lrfast.info(io.StringIO())
    >>> report["version"] == lrfast.__version__
    True
    """
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
