"""Which Numba threading layer lrfast's parallel kernels run on, and how they stay safe.

NOTE [threading layer] Numba runs ``prange`` loops on one process-wide *threading
layer*, picked at the first parallel call: by default TBB if it loads, else OpenMP,
else Numba's own ``workqueue``. Users do not pick layers, so lrfast picks for them:

- **OpenMP first, then TBB, then workqueue** (``configure``), unless the user chose:
  a ``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY`` in the environment,
  a ``numba.config.THREADING_LAYER`` set in code, or a layer already launched by other
  Numba code is left alone. Measured on the quiet 2-core machine (issue 14;
  docs/benchmarks.md, "Threading layer"), lrfast against torch's fused step: OpenMP
  1.17x / 1.03x / 2.82x on the issue's three sets, TBB 0.87x / 0.82x / 2.71x, workqueue
  0.84x / 0.71x / 1.60x (it pays about 0.4 ms per parallel call here).
- **When other processes want the cores**, an OpenMP parallel region waits a scheduler
  quantum for descheduled team members: AdamW on 262,144 elements took 7.8 ms a step
  on the busy machine against 0.28 ms under workqueue. The CPU backend therefore times
  both kernels of a big bucket and runs whichever is faster now (NOTE [parallel or
  serial] in ``lrfast/_backend/cpu.py``), so a busy machine gets the serial kernel.
- TBB (the issue's system TBB) grew an AdamW step on 100 elements from 123 to 680 us and
  RSS by 27 MB over 20k steps; pip's ``tbb`` did not. Numba's pip wheel does not bring
  TBB, so the choice in practice is OpenMP.
- **workqueue is serialised**: it aborts the process ("Concurrent access has been
  detected") when two threads enter parallel code at once, so where it is the layer,
  lrfast's parallel kernel calls take one process-wide lock (``run_parallel``). Numba
  code of the user's own, run in parallel from another thread at the same moment, is
  not covered by that lock.
- **Small buckets run serial kernels** (``lrfast._backend.cpu``, ``_config.PARALLEL_MIN_CHUNKS``):
  waking a thread team costs more than updating a few thousand elements, and a serial
  kernel never touches the threading layer, whatever it is.
- **A forked child of a process that launched GNU OpenMP** must not
  enter OpenMP again (libgomp is not fork-safe: Numba terminates such a child).
  ``parallel_allowed()`` is then False and the CPU backend runs the serial kernels in
  that child.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numba

__all__ = ["configure", "layer", "describe", "parallel_allowed", "run_parallel", "user_choice", "PREFERRED"]

PREFERRED = ("omp", "tbb", "workqueue")

_lock = threading.Lock()
_serialize: bool | None = None  # None until the layer is known
_forked_after_omp = False
_configured = False  # lrfast set the priority (configure)


def _parallel_module():
    from numba.np.ufunc import parallel

    return parallel


def _launched() -> bool:
    return bool(getattr(_parallel_module(), "_is_initialized", False))


def user_choice() -> str | None:
    """How the user chose a layer (None: they did not)."""
    for name in ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"):
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    if str(numba.config.THREADING_LAYER).lower() != "default":
        return f"numba.config.THREADING_LAYER={numba.config.THREADING_LAYER!r}"
    priority = list(numba.config.THREADING_LAYER_PRIORITY)
    if priority != ["tbb", "omp", "workqueue"] and not (_configured and priority == list(PREFERRED)):
        return f"numba.config.THREADING_LAYER_PRIORITY={list(numba.config.THREADING_LAYER_PRIORITY)!r}"
    return None


def configure() -> bool:
    """Make Numba prefer ``PREFERRED`` unless the user chose or a layer already runs.

    Returns True when lrfast set the priority. Called when lrfast's kernels are imported,
    before any of them runs.
    """
    global _configured
    if _launched() or user_choice() is not None:
        return False
    numba.config.THREADING_LAYER_PRIORITY = list(PREFERRED)
    _configured = True
    return True


def layer() -> str:
    """The threading layer in use, launching Numba's threads if none runs yet.

    >>> from lrfast._backend import cpu_threads as threads
    >>> threads.layer() in ("omp", "tbb", "workqueue")
    True
    """
    if not _launched():
        configure()  # as the kernels' import would have: the layer is the one they will get
        launch = getattr(_parallel_module(), "_launch_threads", None)
        if launch is not None:
            launch()
    return numba.threading_layer()


def describe() -> str:
    """One line for ``lrfast info``: the layer, who chose it, and how lrfast uses it."""
    name = layer()
    choice = user_choice()
    if choice is not None:
        why = f"chosen by {choice}"
    elif _configured:
        why = "lrfast's preference " + " > ".join(PREFERRED)
    else:
        why = "launched before lrfast was imported"
    notes = ["parallel kernel calls serialised (workqueue is not thread-safe)"] if name == "workqueue" else []
    if not parallel_allowed():
        notes.append("serial kernels only (forked child of an OpenMP process)")
    return f"{name} ({'; '.join([why] + notes)})"


def _after_fork_in_child() -> None:
    global _forked_after_omp
    if _launched() and numba.threading_layer() == "omp":
        _forked_after_omp = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_allowed() -> bool:
    """False in a forked child of a process whose OpenMP threads already ran."""
    return not _forked_after_omp


def run_parallel(kernel: Callable[..., Any], *args: Any) -> Any:
    """Call a parallel kernel; under workqueue, one thread at a time (NOTE [threading layer])."""
    global _serialize
    if _serialize is False:
        return kernel(*args)
    with _lock:
        result = kernel(*args)
        if _serialize is None:
            _serialize = numba.threading_layer() == "workqueue"
        return result
